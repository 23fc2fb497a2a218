"""Pruning criteria in the paper's model (Yang et al.): criterion x p x ||mu|| x seeds.

    python sweeps/criteria.py [--out DIR] [--quick | --smoke] [--report DIR]

Trains the yang2023 preset (full-batch GD) pruned at initialization by each criterion: random
('bernoulli', the paper's), 'structured' (whole neurons), and magnitude, SNIP, GraSP and SynFlow,
each ranking per neuron and per layer. One sweep per criterion, written as parquet under
DIR/<criterion>/ (default results/criteria, or results/criteria-quick); re-running resumes.
Then `analysis/criteria_report.py` writes the report (REPORT/criteria.md and its figures; default
report/): final test accuracy with 95% CIs, signal_neurons (does the criterion keep the signal
coordinate?) and noise_max by criterion x p x ||mu||, and a verdict computed from the data.
--quick is a reduced grid that runs in minutes on 2 CPU cores; --smoke a tiny one, for CI.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import jax

import jaxprune

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analysis"))
import criteria_report  # noqa: E402  (analysis/ is a folder of scripts, not a package)

# (mask, mask_scope); the scope does not change 'bernoulli' or 'structured'.
CRITERIA = [
    ("bernoulli", "neuron"),
    ("structured", "layer"),
    ("magnitude", "neuron"),
    ("magnitude", "layer"),
    ("snip", "neuron"),
    ("snip", "layer"),
    ("grasp", "neuron"),
    ("grasp", "layer"),
    ("synflow", "neuron"),
    ("synflow", "layer"),
]
SIZES = {
    "full": {
        "prune_frac": [0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99],
        "mu_norm": [0.5, 1.0, 2.0, 4.0, 8.0],
        "seeds": 32,
    },
    "quick": {
        "prune_frac": [0.0, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99],
        "mu_norm": [1.0, 2.0, 4.0],
        "seeds": 8,
    },
    "smoke": {"prune_frac": [0.0, 0.5, 0.9], "mu_norm": [1.0, 4.0], "seeds": 2},
}
SMOKE_CRITERIA = [("bernoulli", "neuron"), ("snip", "layer")]


def criterion_name(mask: str, scope: str) -> str:
    """'bernoulli', 'structured', or '<criterion>/<scope>'."""
    return mask if mask in ("bernoulli", "structured") else f"{mask}/{scope}"


def hardware() -> str:
    """CPU model and core count, and the JAX backend's device."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    device = jax.devices()[0]
    return f"{cpu}, {os.cpu_count()} cores visible; JAX {jax.__version__} on {device.device_kind}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=None, help="results directory")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a reduced grid (minutes on 2 cores)")
    size.add_argument("--smoke", action="store_true", help="a tiny grid and model, for CI")
    parser.add_argument("--report", default="report", help="report directory (default report/)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per cell")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)

    label = "smoke" if args.smoke else "quick" if args.quick else "full"
    grid_size = SIZES[label]
    config, params = jaxprune.presets.yang2023()
    criteria = CRITERIA
    if args.smoke:
        config = config.replace(dim=20, width=4, n_train=8, n_test=50, steps=10, log_every=5)
        criteria = SMOKE_CRITERIA
    out = Path(args.out or ("results/criteria" if label == "full" else f"results/criteria-{label}"))
    grid = {"prune_frac": grid_size["prune_frac"], "mu_norm": grid_size["mu_norm"]}
    seeds = args.seeds or grid_size["seeds"]

    start = time.perf_counter()
    for mask, scope in criteria:
        name = criterion_name(mask, scope)
        print(f"{name}:", file=sys.stderr)
        jaxprune.sweep(
            config.replace(mask=mask, mask_scope=scope),
            grid,
            seeds,
            base=params,
            out=out / name.replace("/", "-"),
            overwrite=args.overwrite,
        )
    elapsed = time.perf_counter() - start
    run_info = {
        "command": "python sweeps/criteria.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "size": label,
        "wall_s": elapsed,
        "hardware": hardware(),
    }
    (out / criteria_report.RUN_FILE).write_text(json.dumps(run_info, indent=1))
    report = criteria_report.write_report(out, Path(args.report))
    print(f"{len(criteria)} criteria in {elapsed:.1f}s; results in {out}/, report in {report}")


if __name__ == "__main__":
    main()
