"""Section 2c: phase diagrams and the benign/harmful transition over p (seed-bootstrap CIs),
compute apart from render."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

import jaxprune
from analysis import figures
from analysis.stats import Verdict, first_crossings, percentile_ci, seed_array, seed_bootstrap

P_MAX = 0.5
OLD = "fails (mild p moves the transition towards stronger signals: +0.04, +0.07)"


@dataclasses.dataclass(frozen=True)
class PhaseResult:
    """transitions: per p, the measured transition ||mu|| (where the seed-mean test accuracy
    first rises to `level`), its shift from p = 0 with a seed-bootstrap 95% CI, and the
    benign-score (d -> (1-p) d) prediction. frame, over: the sweeps, for the figures."""

    transitions: pd.DataFrame
    level: float
    score: float
    frame: pd.DataFrame
    over: pd.DataFrame | None
    n_boot: int
    verdicts: list[Verdict]


def compute(directory: Path, *, n_boot: int = 1000) -> PhaseResult:
    directory = Path(directory)
    frame = jaxprune.load(directory / "phase_mu")
    last = jaxprune.final(frame)
    cfg, base = frame.attrs["config"], frame.attrs["base"]
    n, d, sigma = cfg["n_train"], cfg["dim"], base["sigma_noise"]
    chance = 1 / cfg["num_classes"]
    array, ps, mus = seed_array(last, "prune_frac", "mu_norm", "test_acc")
    mean = np.nanmean(array, axis=0)
    level = (mean[0].max() + chance) / 2

    def transition(table):
        return first_crossings(mus, table, level, below=False)

    point = transition(mean)
    reps = seed_bootstrap(array, lambda t: transition(t) - transition(t)[0], n_boot=n_boot)
    low, high = percentile_ci(reps)
    score = n * point[0] ** 4 / (sigma**4 * d) if np.isfinite(point[0]) else np.nan
    transitions = pd.DataFrame(
        {
            "p": ps,
            "transition": point,
            "shift": point - point[0],
            "shift_low": low,
            "shift_high": high,
            "predicted": (score * sigma**4 * d * (1 - ps) / n) ** 0.25,
        }
    )
    over_dir = directory / "overprune"
    over = jaxprune.load(over_dir) if over_dir.exists() else None
    return PhaseResult(
        transitions=transitions,
        level=level,
        score=score,
        frame=frame,
        over=over,
        n_boot=n_boot,
        verdicts=[_verdict(transitions)],
    )


def _verdict(t: pd.DataFrame) -> Verdict:
    mild = t[(t.p > 0) & (t.p <= P_MAX) & np.isfinite(t["shift"])]
    up, down = (mild.shift_low > 0).sum(), (mild.shift_high < 0).sum()
    text = ", ".join(
        f"p = {r.p:g}: {r.shift:+.2f} [{r.shift_low:+.2f}, {r.shift_high:+.2f}]"
        for r in mild.itertuples()
    )
    new = (
        "not shown (no mild p in the grid)"
        if mild.empty
        else "fails: the transition moves towards stronger signals"
        if up and not down
        else "holds: it moves towards weaker signals"
        if down and not up
        else "not shown (shifts' CIs include 0)"
        if not up and not down
        else "mixed"
    )
    return Verdict(
        claim="(c) pruning moves the benign/harmful transition like d -> (1-p) d",
        old=OLD,
        new=new,
        control="seed bootstrap of the transition",
        evidence=f"shift of the transition ||mu|| from p = 0 (bootstrap 95% CI): {text}",
        figure="phase_p_mu.png",
    )


def render(result: PhaseResult, figures_dir: Path) -> str:
    cfg = result.frame.attrs["config"]
    chance = 1 / cfg["num_classes"]
    contours = {"p_any_class_without_signal": [0.5]}
    if np.isfinite(result.score):
        contours["benign_score"] = [round(result.score, 3)]
    figures.phase(
        result.frame,
        figures_dir / "phase_p_mu.png",
        x="prune_frac",
        y="mu_norm",
        contours=contours,
        title=f"Final test accuracy, K={cfg['num_classes']}, d={cfg['dim']}, m={cfg['width']}, "
        f"n={cfg['n_train']}; outlined: in_regime",
        vmin=chance,
    )
    text = []
    if result.over is not None:
        ocfg = result.over.attrs["config"]
        figures.phase(
            result.over,
            figures_dir / "phase_p_width.png",
            x="prune_frac",
            y="width",
            contours={"p_any_class_without_signal": [0.5], "signal_neurons_expected": [1.0]},
            title=f"Final test accuracy, K={ocfg['num_classes']}, d={ocfg['dim']}, "
            f"n={ocfg['n_train']}; outlined: in_regime",
            vmin=chance,
        )
        text = ["", "![phase p x width](phase_p_width.png)"]
    table = result.transitions.assign(
        shift=result.transitions.apply(
            lambda r: f"{r['shift']:+.2f} [{r.shift_low:+.2f}, {r.shift_high:+.2f}]", axis=1
        )
    )[["p", "transition", "shift", "predicted"]].rename(
        columns={
            "transition": "measured transition ‖mu‖",
            "shift": "shift from p = 0 [bootstrap 95% CI]",
            "predicted": "benign-score prediction",
        }
    )
    (verdict,) = result.verdicts
    return "\n".join(
        [
            "## 2c. Phase diagrams",
            "",
            f"Test accuracy over p x ||mu|| (d = {cfg['dim']}, m = {cfg['width']}, n = "
            f"{cfg['n_train']}, K = {cfg['num_classes']}, trained until loss "
            f"{cfg['loss_tol']:g}, cap {cfg['steps']} steps) and over p x width (the "
            "over-pruning sweep). Cells where every run is `in_regime` are outlined (none, "
            "in these grids: d/n^2 < 1).",
            "",
            f"The transition ||mu|| at each p is where the seed-mean test accuracy first rises "
            f"to {result.level:.3f}, midway between chance and the best cell at p = 0; its "
            f"shift from p = 0 has a seed-bootstrap 95% CI ({result.n_boot} resamples). The "
            "benign-score prediction keeps n ||mu||^4 / (sigma^4 (1-p) d) at its p = 0 value "
            f"({result.score:.3g}).",
            "",
            table.to_markdown(index=False, floatfmt=".3g"),
            "",
            f"**{verdict.claim}: {verdict.new}.** {verdict.evidence}.",
            "",
            "![phase p x mu](phase_p_mu.png)",
            *text,
        ]
    )
