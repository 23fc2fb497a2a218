"""Section 2b: over-pruning, with simultaneous CIs, the realised signal neurons and the matched
dense controls, compute apart from render."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

import jaxprune
from analysis import figures
from analysis.stats import (
    LEVEL,
    Verdict,
    add_holm,
    control_differences,
    solve_p_any_class_without_signal,
)
from jaxprune.stats import mean_ci

FIT_LEVEL = 0.99  # "fits the training set": seed-mean training accuracy at least this
MARGIN = 0.05  # "at chance": the simultaneous upper bound of test accuracy <= chance + MARGIN
MEASURES = ("train_loss", "train_acc", "test_acc", "signal_max", "noise_max")
OLD = "holds only in a region (m = 10 of 1, 2, 5, 10, 20, 50; per-cell 95% CIs)"


@dataclasses.dataclass(frozen=True)
class OverResult:
    """cells: per (width, prune_frac): for each measure NAME_mean, NAME_low, NAME_high
    (simultaneous CIs: Bonferroni over the cells), capped (fraction of runs stopped by the step
    cap before the loss target), lost (fraction with some class keeping no signal neuron),
    test_acc_lost / test_acc_kept (mean test accuracy of those runs and of the others) and,
    with controls, control_acc and the Holm verdict of pruned minus control. predicted: p* per
    width. shown: the cells that show the claim."""

    cells: pd.DataFrame
    predicted: dict
    shown: pd.DataFrame
    chance: float
    level: float
    setting: dict
    verdicts: list[Verdict]


def compute(directory: Path) -> OverResult:
    directory = Path(directory)
    last = jaxprune.final(jaxprune.load(directory / "overprune"))
    control_dir = directory / "overprune-control"
    cfg, base = last.attrs["config"], last.attrs["base"]
    k = cfg["num_classes"]
    chance = 1 / k
    groups = last.groupby(["width", "prune_frac"])
    level = 1 - (1 - LEVEL) / groups.ngroups  # Bonferroni: simultaneous over the cells
    rows = []
    for (m, p), cell in groups:
        row = {"width": m, "prune_frac": p, "seeds": len(cell)}
        for name in MEASURES:
            mean, low, high, _ = mean_ci(cell[name], level)
            row.update({f"{name}_mean": mean, f"{name}_low": low, f"{name}_high": high})
        lost = cell.signal_neurons < 1  # K = 2: some class kept no signal neuron
        row.update(
            capped=float((cell.converged_step < 0).mean()),
            lost=float(lost.mean()),
            test_acc_lost=float(cell.test_acc[lost].mean()) if lost.any() else np.nan,
            test_acc_kept=float(cell.test_acc[~lost].mean()) if (~lost).any() else np.nan,
        )
        rows.append(row)
    cells = pd.DataFrame(rows)
    if control_dir.exists():
        control = jaxprune.final(jaxprune.load(control_dir))
        vs = add_holm(control_differences(last, control, by=["width"]), 1 - LEVEL)
        vs = vs[["width", "prune_frac", "base", "diff", "verdict"]].rename(
            columns={"base": "control_acc", "diff": "minus_control", "verdict": "vs_control"}
        )
        cells = cells.merge(vs, on=["width", "prune_frac"], how="left")
    widths = sorted(cells.width.unique())
    predicted = {m: solve_p_any_class_without_signal(0.5, m, k) for m in widths}
    shown = cells[(cells.train_acc_mean >= FIT_LEVEL) & (cells.test_acc_high <= chance + MARGIN)]
    return OverResult(
        cells=cells,
        predicted=predicted,
        shown=shown,
        chance=chance,
        level=level,
        setting={
            **cfg,
            "mu_norm": base["mu_norm"],
            "sigma_init": base["sigma_init"],
            "seeds": int(cells.seeds.min()),
            "in_regime": bool(last.in_regime.any()) if "in_regime" in last else None,
        },
        verdicts=[_verdict(cells, shown, chance)],
    )


def _verdict(cells: pd.DataFrame, shown: pd.DataFrame, chance: float) -> Verdict:
    widths = sorted(cells.width.unique())
    hit = sorted(shown.width.unique())
    status = (
        "holds for every width"
        if len(hit) == len(widths)
        else "not shown: no cell shows it"
        if not hit
        else "holds only in a region"
    )
    where = "; ".join(
        f"m = {m:g}: p in {{{', '.join(f'{p:g}' for p in shown[shown.width == m].prune_frac)}}}"
        for m in hit
    )
    explained = "-"
    if "vs_control" in cells and len(shown):
        control = cells.merge(shown[["width", "prune_frac"]])
        worse = int((control.vs_control == "worse").sum())
        explained = (
            f"not init scale: dense controls test at {control.control_acc.mean():.2f}, "
            f"pruned significantly worse in {worse} of {len(control)} cells (Holm)"
        )
    both = cells[(cells.lost > 0) & (cells.lost < 1)]  # cells with runs of either outcome
    conditioned = (
        f"in the {len(both)} cells with both outcomes, runs where a class kept no signal neuron "
        f"test at {both.test_acc_lost.mean():.2f} (mean over cells), the others at "
        f"{both.test_acc_kept.mean():.2f}"
        if len(both)
        else "no cell has runs of both outcomes (a class keeping or losing its signal neuron)"
    )
    evidence = (
        f"cells with train acc >= {FIT_LEVEL:g} and simultaneous upper bound <= chance + "
        f"{MARGIN:g}: {where or 'none'}; {conditioned}; {int((cells.capped > 0.5).sum())} "
        "cells have most runs stopped by the step cap"
    )
    return Verdict(
        claim="(b) over-pruning: a large p fits the training set yet tests at chance",
        old=OLD,
        new=status
        + (
            f" (m = {', '.join(f'{m:g}' for m in hit)}: {len(hit)} of {len(widths)} widths)"
            if hit
            else ""
        ),
        control=explained,
        evidence=evidence,
        figure="over_pruning.png",
    )


def render(result: OverResult, figures_dir: Path) -> str:
    s, cells = result.setting, result.cells
    figures.over_pruning(
        cells, result.predicted, figures_dir / "over_pruning.png", chance=result.chance
    )
    columns = {
        "width": "m",
        "prune_frac": "p",
        "train_acc_mean": "train acc",
        "test_acc_mean": "test acc",
        "test_acc_high": "test acc upper bound",
        "lost": "P(a class lost its signal)",
        "test_acc_lost": "test acc if a class lost it",
        "test_acc_kept": "test acc otherwise",
        "capped": "P(stopped by step cap)",
        "control_acc": "dense control test acc",
        "vs_control": "pruned vs control (Holm)",
    }
    table = cells[[c for c in columns if c in cells]].rename(columns=columns)
    (verdict,) = result.verdicts
    return "\n".join(
        [
            "## 2b. Over-pruning",
            "",
            "**Claim (Yang et al.).** There is a large pruning fraction at which GD still "
            "drives the training loss to zero, by memorizing noise, while the test accuracy is "
            "no better than chance: too few neurons keep the signal coordinate.",
            "",
            f"Setting: the paper's model with d = {s['dim']}, n = {s['n_train']}, K = "
            f"{s['num_classes']}, ||mu|| = {s['mu_norm']:g}, sigma_0 = {s['sigma_init']:g}, "
            f"trained until loss {s['loss_tol']:g} (cap {s['steps']} steps); {s['seeds']} "
            f"seeds per cell. Bounds are simultaneous {result.level:.4f} t-intervals "
            "(Bonferroni over the cells). Predicted p* (p_any_class_without_signal = 0.5): "
            + ", ".join(f"m = {m:g}: {p:.3f}" for m, p in result.predicted.items())
            + ". The outcome is bimodal (a class keeps a signal neuron or not), so the test "
            "accuracy is also given conditioned on the realised `signal_neurons`.",
            "",
            "![over-pruning](over_pruning.png)",
            "",
            table.to_markdown(index=False, floatfmt=".3g"),
            "",
            f"**{verdict.claim}: {verdict.new}.** {verdict.evidence}. Control: {verdict.control}.",
        ]
    )
