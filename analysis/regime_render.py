"""The superseded regime section's text (`sweeps/theory_regime.py`, sigma_0 sigma sqrt(d) = 0.1
at every d): `render` formats an `analysis.regime.RegimeResult` and draws its figures
(`analysis.figures.regime_*`); `summary` is its paragraph for a theorist. The E0-E2 section
(`analysis.boundary`) replaces it: that init scale lies above the Kou-type condition
sigma_0 sigma sqrt(d) <~ sqrt(n/d) at the section's n = 8 from d ~ 800.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis import figures
from analysis.regime import FIGURES, RegimeResult, sign_of


def _table(frame: pd.DataFrame, floatfmt: str = ".3g") -> str:
    """DataFrame.to_markdown, dimensions written in full (not as 1e+03)."""
    whole = {c: frame[c].map(lambda v: f"{v:.0f}") for c in ("d", "dim") if c in frame}
    return frame.assign(**whole).to_markdown(index=False, floatfmt=floatfmt)


def _with_ci(frame: pd.DataFrame, name: str, prefix: str = "") -> list[str]:
    mean, low, high = frame[f"{prefix}{name}"], frame[f"{name}_low"], frame[f"{name}_high"]
    return [f"{m:+.3f} [{lo:+.3f}, {hi:+.3f}]" for m, lo, hi in zip(mean, low, high, strict=True)]


def summary(result: RegimeResult) -> str:
    """The section's findings in a few sentences a theorist can quote, from its fields."""
    s, slopes, regime = result.setting, result.slopes, result.regime
    signs = [sign_of(r.prune_low, r.prune_high) for r in slopes.itertuples()]
    first, last = slopes.iloc[0], slopes.iloc[-1]
    setting = (
        f"At the theorems' scalings (as recalled, up to constants: the paper's model at "
        f"n = {s['n_train']}, m = {s['width']}, d = {regime.d.min():g} to {regime.d.max():g}, "
        f"so d/n^2 = {regime['d / n^2'].min():.0f} to {regime['d / n^2'].max():.0f}; "
        f"sigma_0 sigma sqrt(d) = {s['init_scale']:g} against 1/n = {1 / s['n_train']:.3g}; "
        f"eta sigma^2 d = {s['lr_scale']:g}; trained to loss {s['loss_tol']:g}; "
        f"{int(slopes.seeds.min())} seeds)"
    )
    collapse = result.collapse
    mild = (
        f"the claim that mild pruning raises test accuracy {result.mild_status}: the paired "
        f"slope of test accuracy over p in [0, {max(s['mild_p']):g}] is negative at "
        f"{signs.count('negative')} of {len(signs)} dimensions and positive at "
        f"{signs.count('positive')}, going from "
        f"{first.prune:+.3f} [{first.prune_low:+.3f}, {first.prune_high:+.3f}] at d = "
        f"{first.dim:g} to {last.prune:+.3f} [{last.prune_low:+.3f}, {last.prune_high:+.3f}] "
        f"at d = {last.dim:g}, while a dense network initialised at the scale the mask leaves "
        f"(sigma_0 sqrt(1-p)) has slope {first.init:+.3f} to {last.init:+.3f}"
        + (
            "; pruning gains nothing beyond that control at any d"
            if not (slopes.beyond_init_low > 0).any()
            else ""
        )
        + ". The signal strengths are fixed benign scores, and the score where half the "
        f"unpruned runs learn grows with d ({collapse.s50.iloc[0]:.2g} to "
        f"{collapse.s50.iloc[-1]:.2g}), so the same scores lie further on the harmful side at "
        "large d: the trend over d is not a pure effect of d"
    )
    classes = result.classes
    live = classes[classes.signal_neurons_live >= 1]
    failed = classes[classes.learned == 0]
    fits = result.threshold[result.threshold.condition == "all classes"]
    predicted = fits.p_live.iloc[0]
    inside = ((fits.p_low <= predicted) & (predicted <= fits.p_high)).sum()
    runs = classes.drop_duplicates(["dim", "prune_frac", "seed"])
    top = runs[runs.prune_frac == runs.prune_frac.max()]
    over = (
        f"Over-pruning {result.over_status}: a class fails once the mask and the init signs "
        f"leave it no live signal neuron (kept, positive at init), which predicts p* = "
        f"{predicted:.3f}; the fitted p* of all classes is {fits.p_star.min():.3f} to "
        f"{fits.p_star.max():.3f} over d, with the prediction inside its CI at {inside} of "
        f"{len(fits)} (seed-cluster bootstrap CIs: a run's two classes resampled together; "
        "classes without a live neuron learn at times, by exclusion: K = 2). "
        f"Classes that keep one learn at every p ({int(live.learned.sum())} of {len(live)}); "
        f"the failed classes test at median class accuracy "
        f"{failed.class_test_acc.median():.2f}, and at p = {top.prune_frac.iloc[0]:g} "
        f"{(top.train_acc >= 1).mean():.0%} of the runs fit their training set while testing "
        f"at {top.test_acc.mean():.2f} (run-level mean)"
    )
    tests = result.collapse_tests
    test = tests.set_index("variable").p_value if len(tests) else pd.Series(dtype=float)
    usable = collapse[collapse.estimable]
    growth = np.polyfit(np.log(usable.dim), np.log(usable.s50), 1)[0] if len(usable) > 1 else np.nan
    collapse_text = (
        "Unpruned test accuracy does not collapse on n ||mu||^4 / (sigma^4 d), nor on it over "
        f"log d (chi-square tests of one midpoint, p < {_p_bound(test.get('score', np.nan))} "
        f"and < {_p_bound(test.get('score / log d', np.nan))}, treating the d's as "
        f"independent): the score where half the runs learn goes from "
        f"{collapse.s50.iloc[0]:.2g} at d = {collapse.dim.iloc[0]:g} to "
        f"{collapse.s50.iloc[-1]:.2g} at d = {collapse.dim.iloc[-1]:g} (least-squares growth "
        f"about d^{growth:.2f})"
    )
    return f"{setting}, {mild}. {over}. {collapse_text}."


def _p_bound(p: float) -> str:
    """A p-value as a coarse upper bound (the tests' independence is approximate)."""
    if not np.isfinite(p):
        return "nan"
    for bound in (1e-6, 1e-3, 0.01, 0.05):
        if p < bound:
            return f"{bound:g}"
    return f"{p:.2f}"


def render(result: RegimeResult, figures_dir) -> str:
    """The section as markdown; its figures are saved as PNG in `figures_dir` (the markdown
    links them by file name)."""
    out = Path(figures_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures.regime_mild(result.mild[result.mild.prune_frac > 0], out / FIGURES["mild"])
    figures.regime_threshold(result.classes, result.threshold, out / FIGURES["threshold"])
    figures.regime_collapse(result.unpruned, out / FIGURES["collapse"])
    figures.regime_coefficients(result.coefficients, out / FIGURES["coefficients"])
    s = result.setting
    slopes = result.slopes[["dim", "seeds"]].assign(
        **{
            "test accuracy": _with_ci(result.slopes, "prune"),
            "dense at sigma_0 sqrt(1-p)": _with_ci(result.slopes, "init"),
            "pruned - that control": _with_ci(result.slopes, "beyond_init"),
        }
    )
    mild = result.mild[result.mild.prune_frac > 0]
    mild = mild[["dim", "score", "prune_frac", "test_acc", "seeds"]].assign(
        **{
            "pruned - dense": _with_ci(mild, "prune", "diff_"),
            "pruned - control": _with_ci(mild, "control", "diff_"),
            "control - dense": _with_ci(mild, "init", "diff_"),
        }
    )
    fitted = result.fitted.pivot_table(index=["sweep", "dim"], columns="prune_frac", values="fit")
    lines = [
        "## The claims in the theorems' regime",
        "",
        f"Setting: `sweeps/theory_regime.py` ({s['size']} size): the paper's model (K = 2) at "
        f"n = {s['n_train']}, m = {s['width']}, sigma = {s['sigma_noise']:g}, initial scale "
        f"sigma_0 = {s['init_scale']:g} / (sigma sqrt(d)) and step eta = {s['lr_scale']:g} / "
        "(sigma^2 d) at every d (the network's 1/m output and mean loss are the normalization "
        "of Cao et al. 2022 and Kou et al. 2023, so eta is their step and their conditions read "
        "eta sigma^2 d <~ 1, sigma_0 sigma sqrt(d) <~ 1/n, d >> n^2), every run trained by GD "
        f"to training loss {s['loss_tol']:g} (cap {s['steps']} steps).",
        "",
        _table(result.regime, ".4g"),
        "",
        _table(result.runs),
        "",
        f"### Mild pruning near p = 0: **{result.mild_status}**",
        "",
        result.mild_text,
        "",
        "Primary contrast: paired slope per unit p, mean [simultaneous CI] over seeds:",
        "",
        _table(slopes),
        "",
        f"![mild pruning in regime]({FIGURES['mild']})",
        "",
        "Rows: pruned minus dense (p = 0); pruned minus the init control (the dense network "
        "initialised at sigma_0 sqrt(1 - p), same seeds); the init control minus dense. Bars: "
        "per-cell 95% t intervals over seeds.",
        "",
        "<details><summary>Every cell: paired differences, mean [95% CI] over seeds (per cell, "
        "not adjusted for multiplicity: the verdict rests on the slopes above)</summary>",
        "",
        _table(mild),
        "",
        "</details>",
        "",
        f"### Over-pruning threshold: **{result.over_status}**",
        "",
        result.over_text,
        "",
        _table(result.threshold),
        "",
        f"![over-pruning threshold]({FIGURES['threshold']})",
        "",
        "Fraction of classes that learned, by whether the class keeps a live signal neuron; "
        "dashed: the logistic p* of all classes; dotted: the mask-and-signs prediction.",
        "",
        "Fraction of runs that fitted their training set (training accuracy 1), by p:",
        "",
        _table(fitted.reset_index(), ".2f"),
        "",
        "### Test accuracy against the benign score",
        "",
        result.collapse_text,
        "",
        _table(result.collapse),
        "",
        _table(result.collapse_tests),
        "",
        f"![collapse]({FIGURES['collapse']})",
        "",
        "### The proofs' coefficients",
        "",
        result.coefficient_text,
        "",
        f"![coefficients]({FIGURES['coefficients']})",
        "",
    ]
    return "\n".join(lines)
