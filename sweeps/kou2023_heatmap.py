"""Benign overfitting heatmap of Kou et al. (ICML 2023): test error over signal x dimension.

    python sweeps/kou2023_heatmap.py [--out DIR] [--quick | --smoke]

The `kou2023` preset (their experiment code's model and training) with p = 0: test error over
||mu|| = 0, 0.1, ..., 9.9 x d = 100, 110, ..., 1090, 10 repeats per cell (100,000 trainings;
five shape buckets of d, one compilation each). `--quick` is a coarse subgrid (minutes on 2 CPU
cores), `--smoke` a tiny one (seconds, for CI). Results go to DIR/heatmap (default DIR
results/kou2023_heatmap, with -quick or -smoke appended), with DIR/run.json; re-running the
same command resumes. `python -m analysis.report` draws the figure and fits the boundary
(analysis/kou.py).
"""

from __future__ import annotations

import numpy as np

import jaxprune
from jaxprune.experiment import Recorder, parser

# size: (dimensions, signal strengths, seeds)
SIZES = {
    "full": (list(range(100, 1100, 10)), np.round(np.arange(0, 10, 0.1), 1).tolist(), 10),
    "quick": (list(range(100, 1100, 100)), np.round(np.arange(0, 10, 0.25), 2).tolist(), 5),
    "smoke": ([100, 400], [0.0, 2.0, 4.0, 8.0], 2),
}


def main(argv=None) -> None:
    args = parser(__doc__).parse_args(argv)
    rec = Recorder("sweeps/kou2023_heatmap.py", args, "kou2023_heatmap")
    dims, mus, seeds = SIZES[rec.size]
    config, params = jaxprune.presets.kou2023()
    if rec.size == "smoke":
        config = config.replace(n_test=200, steps=20, log_every=20)
    rec.sweep(
        "heatmap",
        config,
        {"dim": dims, "mu_norm": mus},
        args.seeds or seeds,
        params,
        purpose="test error over signal strength x dimension, kou2023 preset, p = 0",
    )
    rec.done()


if __name__ == "__main__":
    main()
