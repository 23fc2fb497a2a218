"""What experiment scripts (the repository's sweeps/) share: their command line, sizes and the
run record.

A science script runs at one of three sizes: full (the default, the report's size), `--quick`
(minutes on a 2-core CPU) and `--smoke` (seconds, for CI). Its results go under one directory,
default `results/NAME` (`results/NAME-quick`, `results/NAME-smoke`), one subdirectory per sweep
(jaxprune's resumable parquet output), plus `run.json`: the script, its size, and for every
invocation the command line, the wall time, the runs of its sweeps and those it trained (not
resumed from disk), and the hardware.
The repository's `analysis/report.py` reads `run.json` (through `invocation_table`) to say which
size and commands made the report.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from jaxprune.cli import SWEEP_FLAGS, error_line, exit_interrupted
from jaxprune.errors import InvalidValue
from jaxprune.progress import logger
from jaxprune.results import chunk_files, environment, final, write_json
from jaxprune.runner import sweep as run_sweep
from jaxprune.stopping import SweepInterrupted

SIZES = ("full", "quick", "smoke")
RUN_FILE = "run.json"
# The flags of `parser` for the sweep arguments a refusal may name (`cli.error_line`): the
# `jaxprune sweep` command's, and --chunk-seconds, which only the scripts have.
SCRIPT_FLAGS = {**SWEEP_FLAGS, "chunk_seconds": "--chunk-seconds"}


def parser(doc: str) -> argparse.ArgumentParser:
    """The command line of a science script: --out, --quick, --smoke and the sweep options that
    `jaxprune sweep SCRIPT` passes through."""
    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    p.add_argument("--out", default=None, help="output directory (default results/NAME[-SIZE])")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="coarse grids: minutes on 2 CPU cores")
    size.add_argument("--smoke", action="store_true", help="tiny grids: seconds, for CI")
    p.add_argument("--seeds", type=int, default=None, help="seeds per cell (default: per size)")
    p.add_argument("--chunk-size", type=int, default=None)
    p.add_argument("--memory-budget", type=float, default=None)
    p.add_argument("--chunk-seconds", type=float, default=None,
                   help="estimated seconds of work per chunk (default: the library's)")  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace different results at --out")
    return p


def size_of(args) -> str:
    """'smoke', 'quick' or 'full' from the parsed arguments."""
    return "smoke" if args.smoke else "quick" if args.quick else "full"


def out_dir(name: str, args) -> Path:
    """The output directory: --out, else results/NAME for full size, results/NAME-SIZE else."""
    size = size_of(args)
    return Path(args.out or (f"results/{name}" if size == "full" else f"results/{name}-{size}"))


def hardware() -> dict:
    """What ran it: CPU model and count, platform, JAX backend and device."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    env = environment()
    return {
        "cpu": cpu,
        "cpu_count": usable,
        "platform": platform.platform(),
        "python": platform.python_version(),
        **env,
    }


def runs_on_disk(directory: Path) -> int:
    """Runs already written to a sweep directory (0 when there is none): the ones a resumed
    sweep does not train again. Reads only the `run` column of each chunk file."""
    return sum(
        len(pq.read_table(f, columns=["run"]).column("run").unique())
        for f in chunk_files(directory)
    )


def invocation_table(record: dict) -> pd.DataFrame:
    """One row per invocation in a run.json record: command, wall time, the runs it trained
    (not those it resumed from disk) and the hardware. Records written before the trained
    count was kept give every run of their sweeps, resumed ones included. Where an invocation
    did not finish (killed, or interrupted: its `interrupted` note), a `status` column says so;
    records written before the flag was kept count as finished."""
    rows, statuses = [], []
    for inv in record.get("invocations", []):
        hw = inv.get("hardware", {})
        sweeps = inv.get("sweeps", {}).values()
        rows.append(
            {
                "command": f"`{inv['command']}`",
                "wall time (s)": round(inv.get("wall_s", float("nan"))),
                "runs trained": sum(s.get("trained", s["runs"]) for s in sweeps),
                "hardware": f"{hw.get('cpu', '?')}, {hw.get('cpu_count', '?')} cores; JAX "
                f"{hw.get('jax_version', '?')} on {hw.get('backend', '?')} "
                f"({hw.get('device_kind', '?')})",
            }
        )
        note = inv.get("interrupted")
        statuses.append(
            f"interrupted: {note}" if note else "finished" if inv.get("finished", True) else
            "did not finish (killed, or still running)"
        )  # fmt: skip
    table = pd.DataFrame(rows)
    if any(s != "finished" for s in statuses):
        table["status"] = statuses
    return table


class Recorder:
    """Runs a script's sweeps into subdirectories of `out` and keeps `out/run.json` up to date."""

    def __init__(self, script: str, args, name: str):
        self.args, self.size = args, size_of(args)
        self.out = out_dir(name, args)
        self.out.mkdir(parents=True, exist_ok=True)
        self.start = time.perf_counter()
        self.runs = {}
        path = self.out / RUN_FILE
        record = json.loads(path.read_text()) if path.exists() else {}
        if record and (record.get("size") != self.size or record.get("script") != script):
            if not args.overwrite:
                raise SystemExit(
                    f"{self.out} holds {record.get('script')} results of size "
                    f"{record.get('size')!r}, not {script} {self.size!r}: choose another --out "
                    f"or pass --overwrite."
                )
            record = {}
        self.record = {"script": script, "size": self.size, "invocations": [], **record}
        self.invocation = {
            "command": "python " + shlex.join([script, *sys.argv[1:]]),
            "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "hardware": hardware(),
            "sweeps": {},
            "finished": False,  # until done(): a killed invocation stays marked unfinished
        }

    def sweep(self, key: str, config, grid, seeds, base, **meta):
        """jaxprune.sweep into out/key (resumable); `meta` (what the sweep is for) goes to
        run.json. Returns the tidy frame."""
        t0 = time.perf_counter()
        before = runs_on_disk(self.out / key) if not self.args.overwrite else 0
        self.save()  # recorded (unfinished) before it trains, so that a kill mid-sweep shows
        try:
            frame = run_sweep(
                config,
                grid,
                seeds,
                base=base,
                out=self.out / key,
                chunk_size=self.args.chunk_size,
                memory_budget_gb=self.args.memory_budget,
                chunk_seconds=self.args.chunk_seconds,
                overwrite=self.args.overwrite,
            )
        except SweepInterrupted as stopped:  # Ctrl-C: one line saying how to resume, status 130
            self.save()
            exit_interrupted(stopped, self.invocation["command"])
        except InvalidValue as refused:  # e.g. another sweep at out/key: one line, in flags
            raise SystemExit(error_line(refused, SCRIPT_FLAGS)) from None
        runs = len(final(frame))
        self.record_pass(key, runs, runs - before, time.perf_counter() - t0, meta)
        return frame

    def record_pass(self, key: str, runs: int, trained: int, wall_s: float, meta: dict) -> None:
        """Record a pass (a sweep or a derived pass) in run.json: this invocation's runs of it,
        those it trained and its wall time; `meta` (what the pass is for) under its key."""
        self.invocation["sweeps"][key] = {"runs": runs, "trained": trained, "wall_s": wall_s}
        self.record.setdefault("sweeps", {})[key] = meta
        self.save()

    def save(self) -> None:
        """Write run.json with this invocation's wall time so far."""
        self.invocation["wall_s"] = round(time.perf_counter() - self.start, 1)
        invocations = [i for i in self.record["invocations"] if i is not self.invocation]
        self.record["invocations"] = [*invocations, self.invocation]
        write_json(self.out / RUN_FILE, self.record)

    def done(self) -> None:
        """Write run.json (this invocation marked finished) and log what it ran and where its
        results are."""
        self.invocation["finished"] = True
        self.save()
        sweeps = self.invocation["sweeps"].values()
        total, trained = sum(s["runs"] for s in sweeps), sum(s["trained"] for s in sweeps)
        logger.info(
            f"{total} runs ({trained} trained now) in {self.invocation['wall_s']:.0f}s; "
            f"results in {self.out}/"
        )
