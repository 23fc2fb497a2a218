"""Pruning criteria in the paper's model (Yang et al.): criterion x p x ||mu|| x seeds.

    python -m sweeps.criteria [--out DIR] [--quick | --smoke] [--seeds N] [--chunk-size N]
                              [--memory-budget GB] [--overwrite] [--report DIR]

Trains the yang2023 preset (full-batch GD) pruned at initialization by each criterion: random
('bernoulli', the paper's), 'structured' (whole neurons), and magnitude, SNIP, GraSP and SynFlow,
each ranking per neuron and per layer. One sweep per criterion, written as parquet under
DIR/<criterion>/ (default results/criteria, or results/criteria-quick); re-running resumes.
DIR/run.json records every invocation (jaxprune.experiment, as for the other scripts).
Then `analysis/criteria_report.py` writes the report (REPORT/criteria.md and its figures;
default report/ at full size, report/quick or report/smoke otherwise): final test accuracy with
95% CIs, signal_neurons (does the criterion keep the signal coordinate?) and noise_max by
criterion x p x ||mu||, the GraSP diagnosis, and a verdict computed from the data.
--quick is a reduced grid that runs in minutes on 2 CPU cores; --smoke a tiny one, for CI.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jaxprune
from analysis import criteria_report
from jaxprune.experiment import Recorder, parser

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


def main(argv: list[str] | None = None) -> None:
    cli = parser(__doc__)
    cli.add_argument(
        "--report", default=None, help="report directory (default report/, or report/SIZE)"
    )
    args = cli.parse_args(argv)
    rec = Recorder("sweeps/criteria.py", args, "criteria")
    grid_size = SIZES[rec.size]
    config, params = jaxprune.presets.yang2023()
    criteria = CRITERIA
    if rec.size == "smoke":
        config = config.replace(dim=20, width=4, n_train=8, n_test=50, steps=10, log_every=5)
        criteria = SMOKE_CRITERIA
    grid = {"prune_frac": grid_size["prune_frac"], "mu_norm": grid_size["mu_norm"]}
    seeds = args.seeds or grid_size["seeds"]
    for mask, scope in criteria:
        name = criterion_name(mask, scope)
        print(f"{name}:", file=sys.stderr)
        rec.sweep(
            name.replace("/", "-"),
            config.replace(mask=mask, mask_scope=scope),
            grid,
            seeds,
            params,
            purpose=f"criterion {name}: test accuracy over p x ||mu||",
            criterion=name,
        )
    rec.done()
    report = Path(args.report or ("report" if rec.size == "full" else f"report/{rec.size}"))
    print(f"report in {criteria_report.write_report(rec.out, report)}")


if __name__ == "__main__":
    main()
