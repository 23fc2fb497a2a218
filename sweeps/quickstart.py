"""Quickstart: pruning fraction x signal strength x seeds in the paper's model (Yang et al.).

    python sweeps/quickstart.py [--out DIR] [--quick]

Writes the tidy results as parquet chunk files under DIR (default results/quickstart) and the
phase diagram of final test accuracy over (p, ||mu||) as DIR.png, with two theory contours:
where half the runs are expected to have a class with no neuron keeping its signal coordinate
(p^m rule, the over-pruning side), and benign_score = n ||mu||^4 / (sigma^4 (1-p) d) = 1.
Re-running the same command resumes from the chunks already written.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import jaxprune
from jaxprune.cli import exit_interrupted
from jaxprune.plot import save_phase_diagram

PRUNE_FRACS = [0.0, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 0.98, 0.99]
MU_NORMS = [0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0]
SEEDS = 16


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=None, help="output directory (default results/quickstart)")
    parser.add_argument("--quick", action="store_true", help="a tiny grid, for smoke tests")
    parser.add_argument("--seeds", type=int, default=None, help=f"seeds per cell (default {SEEDS})")
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument("--memory-budget", type=float, default=None)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()

    config, params = jaxprune.presets.yang2023()
    grid = {"prune_frac": PRUNE_FRACS, "mu_norm": MU_NORMS}
    seeds = args.seeds or SEEDS
    if args.quick:
        config = config.replace(dim=60, n_test=200, steps=60, log_every=30)
        grid = {"prune_frac": [0.0, 0.5, 0.99], "mu_norm": [0.5, 4.0]}
        seeds = args.seeds or 2
    out = Path(args.out or ("results/quickstart-quick" if args.quick else "results/quickstart"))

    start = time.perf_counter()
    try:
        frame = jaxprune.sweep(
            config,
            grid,
            seeds,
            base=params,
            out=out,
            chunk_size=args.chunk_size,
            memory_budget_gb=args.memory_budget,
            overwrite=args.overwrite,
        )
    except jaxprune.results.SweepInterrupted as stopped:  # Ctrl-C: one line, status 130
        exit_interrupted(stopped, shlex.join(["python", *sys.argv]))
    elapsed = time.perf_counter() - start
    figure = out.with_suffix(".png")
    save_phase_diagram(
        frame,
        figure,
        x="prune_frac",
        y="mu_norm",
        value="test_acc",
        log1mp=True,  # p up to 0.99: a log(1 - p) axis keeps the over-pruned cells readable
        contours={"p_any_class_without_signal": [0.5], "benign_score": [1.0]},
        vmin=1 / config.num_classes,  # chance level
        title=f"Final test accuracy, K={config.num_classes}, d={config.dim}, m={config.width}, "
        f"n={config.n_train}, {config.steps} GD steps",
    )
    runs = len(jaxprune.final(frame))
    print(f"{runs} runs in {elapsed:.1f}s; results in {out}/, phase diagram in {figure}")


if __name__ == "__main__":
    main()
