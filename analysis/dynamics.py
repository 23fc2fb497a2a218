"""Section 3: signal_max and noise_max over training steps (descriptive), compute apart from
render."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

import jaxprune
from analysis import figures
from jaxprune.stats import mean_ci

COLUMNS = ("signal_max", "noise_max", "train_acc", "test_acc")


@dataclasses.dataclass(frozen=True)
class DynamicsResult:
    """finals: per p, the mean and 95% CI (COLUMN, COLUMN_low, COLUMN_high) of the final
    values; frame: the logged curves, for the figure."""

    finals: pd.DataFrame
    frame: pd.DataFrame


def compute(directory: Path) -> DynamicsResult:
    frame = jaxprune.load(Path(directory) / "dynamics")
    rows = []
    for p, part in jaxprune.final(frame).groupby("prune_frac"):
        row = {"p": p}
        for column in COLUMNS:
            mean, low, high, _ = mean_ci(part[column])
            row.update({column: mean, f"{column}_low": low, f"{column}_high": high})
        rows.append(row)
    return DynamicsResult(finals=pd.DataFrame(rows), frame=frame)


def render(result: DynamicsResult, figures_dir: Path) -> str:
    frame, finals = result.frame, result.finals
    cfg = frame.attrs["config"]
    figures.dynamics(frame, figures_dir / "dynamics.png")
    table = finals[["p"]].copy()
    for column in COLUMNS:
        table[column] = finals.apply(
            lambda r, c=column: f"{r[c]:.3f} [{r[c + '_low']:.3f}, {r[c + '_high']:.3f}]", axis=1
        )
    lo, hi = finals.iloc[0], finals.iloc[-1]
    return "\n".join(
        [
            "## 3. Dynamics: feature learning against noise memorization",
            "",
            f"signal_max and noise_max every {cfg['log_every']} GD steps for "
            f"{frame.seed.nunique()} seeds at each p (d = {cfg['dim']}, m = {cfg['width']}, "
            f"n = {cfg['n_train']}, ||mu|| = {frame.attrs['base']['mu_norm']:g}, "
            f"{cfg['steps']} steps, no loss target so the curves run to the end).",
            "",
            "![dynamics](dynamics.png)",
            "",
            "Final values, mean [95% CI]:",
            "",
            table.to_markdown(index=False),
            "",
            f"At p = {hi.p:g}, signal_max ends at {hi.signal_max:.3f} (p = 0: "
            f"{lo.signal_max:.3f}) and noise_max at {hi.noise_max:.3f} (p = 0: "
            f"{lo.noise_max:.3f}); the network fits {hi.train_acc:.3f} of its training set "
            f"and tests at {hi.test_acc:.3f} (p = 0: {lo.train_acc:.3f} and {lo.test_acc:.3f}).",
        ]
    )
