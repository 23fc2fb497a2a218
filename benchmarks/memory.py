"""Peak memory of command-line sweeps against their number of runs (results stream to disk).

    python benchmarks/memory.py [--seeds 16 160] [--steps 100] [--out DIR]

Runs `jaxprune sweep SPEC --out DIR/runs-N` for the quickstart grid (9 pruning fractions x 8
signal strengths) at each number of seeds, each in a fresh process, and prints its wall time
and peak resident memory (ru_maxrss of the child) as a markdown table. With out=DIR, each chunk
is written and dropped, and the command line never collects the table, so the peak should not
grow with the number of runs.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

GRID = {
    "prune_frac": [0.0, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 0.98, 0.99],
    "mu_norm": [0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0],
}


def peak_rss_mib(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of `command`, run in a fresh process that reports its
    own child's ru_maxrss."""
    probe = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    done = subprocess.run([sys.executable, "-c", probe, *command], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr)
    wall, kib = done.stdout.split()
    return float(wall), int(kib) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[16, 160])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--out", default="results/memory")
    args = parser.parse_args()
    out = Path(args.out)
    rows = []
    for seeds in args.seeds:
        spec = {
            "preset": "yang2023",
            "config": {"steps": args.steps, "log_every": max(1, args.steps // 10)},
            "grid": GRID,
            "seeds": seeds,
        }
        target, spec_path = out / f"runs-{seeds}", out / f"spec-{seeds}.json"
        shutil.rmtree(target, ignore_errors=True)
        out.mkdir(parents=True, exist_ok=True)
        spec_path.write_text(json.dumps(spec))
        cli = [sys.executable, "-m", "jaxprune.cli", "sweep", str(spec_path), "--out", str(target)]
        wall, peak = peak_rss_mib(cli)
        meta = json.loads((target / "_sweep.json").read_text())
        rows.append(
            {
                "runs": meta["runs_total"],
                "chunks": meta["chunks_total"],
                "rows written": sum(
                    pd.read_parquet(f, columns=["run"]).shape[0] for f in target.glob("part-*")
                ),
                "wall s": round(wall, 1),
                "peak RSS MiB": round(peak),
            }
        )
        print(rows[-1], file=sys.stderr, flush=True)
    print(pd.DataFrame(rows).to_markdown(index=False))
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n(this script itself: {usage:.0f} MiB; measured at {time.strftime('%Y-%m-%d %H:%M')})")


if __name__ == "__main__":
    main()
