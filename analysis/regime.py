"""The superseded regime section's numbers: Yang et al.'s claims at sigma_0 sigma sqrt(d) = 0.1,
from the results of `sweeps/theory_regime.py` (`analysis.regime_render` formats them; the E0-E2
section, `analysis.boundary`, replaces it: that init scale lies above the Kou-type condition
sigma_0 sigma sqrt(d) <~ sqrt(n/d) from d ~ 800 at n = 8, and m = 5 leaves mask combinatorics to
decide most outcomes).

    result = compute("results/theory_regime")      # RegimeResult: numbers and verdicts

`compute` reads the sweep directories, `classes.parquet`, `coefficients.parquet` and `run.json`
and computes every number with the statistics of `analysis.stats` (`fit_logistic_threshold`,
`paired_slopes`) and scipy's chi-square and Fisher tails.

Length: ~500 lines, kept whole as the superseded section's computation (no new work goes here;
the E0-E2 section replaces it); its text, figures and statistics live elsewhere.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as _scipy_stats

import jaxprune
from analysis.stats import (
    fit_logistic_threshold,
    paired_slopes,
    percentile_ci,
    seed_weights,
    threshold_replicates,
)
from jaxprune.experiment import invocation_table
from jaxprune.stats import LEVEL, mean_ci, t_quantile

CHANCE = 0.5  # K = 2
LEARNED = 0.75  # a run (class) has learned when its test accuracy is >= this, midway to 1
N_BOOT = 1000  # seed-cluster bootstrap resamples of the class-level thresholds
FIGURES = {
    "mild": "regime_mild.png",
    "threshold": "regime_threshold.png",
    "collapse": "regime_collapse.png",
    "coefficients": "regime_coefficients.png",
}


@dataclasses.dataclass(frozen=True)
class RegimeResult:
    """Everything the regime section reports. Frames are small (one row per cell or d).

    setting: the fixed constants (n, m, sigma, init and step scales, loss_tol, step cap, size)
    regime: per d, the regime quantities d/n^2, sigma_0 sigma sqrt(d), eta sigma^2 d, m d / n
    mild: per (d, score, p): test accuracy, the paired differences to p = 0 (diff_prune), to
      the matched-init dense control (diff_control) and of that control to p = 0 (diff_init)
    slopes: per d, the primary contrast: paired slope over p in [0, max mild p] of test accuracy
      (prune), of the control's accuracy (init) and of their difference (beyond_init), with
      Bonferroni-simultaneous CIs over the d's
    mild_status, mild_text: the verdict on "mild pruning raises test accuracy" in regime
    threshold: per (d, condition): the logistic p* in log(1 - p) of class outcomes, with CI
      (NaN where not estimable), and the predictions p_mask (p^m = 1/2) and p_live
      (((1+p)/2)^m = 1/2: half the classes without a live signal neuron)
    fitted: per (sweep kind, d, p): fraction of runs whose training accuracy is 1 and that
      reached loss_tol
    over_status, over_text: the verdict on over-pruning (Fisher test among classes with a live
      signal neuron: do they learn less at p >= p_live than at p = 0?)
    collapse: per d: the score midpoint s50 where half the p = 0 runs learn, with CI
    collapse_tests: chi-square tests of "s50 is the same for every d" in the score without and
      with a log d factor; collapse_text the verdict
    coefficients: per (d, p, step): gamma_max, rho_max (means over seeds) and their ratio to the
      predicted linear growth eta ||mu||^2 t / m and eta sigma^2 (1-p) d t / (n m)
    coefficient_text: the summary of the coefficient growth against the predictions
    classes: per (d, p, seed, class): realised signal neurons, class test accuracy, learned
    unpruned: per p = 0 run of the mild sweeps: dim, score, seed, test_acc (the collapse figure)
    runs: per invocation of the sweep script: command, wall time, runs trained, hardware
    """

    setting: dict
    regime: pd.DataFrame
    mild: pd.DataFrame
    slopes: pd.DataFrame
    mild_status: str
    mild_text: str
    threshold: pd.DataFrame
    fitted: pd.DataFrame
    over_status: str
    over_text: str
    collapse: pd.DataFrame
    collapse_tests: pd.DataFrame
    collapse_text: str
    coefficients: pd.DataFrame
    coefficient_text: str
    classes: pd.DataFrame
    unpruned: pd.DataFrame
    runs: pd.DataFrame


def _paired(left: pd.DataFrame, right: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """left.test_acc - right.test_acc for the rows matched on `keys` (seed among them)."""
    both = left.merge(right, on=keys, suffixes=("", "_base"))
    return both.assign(diff=both.test_acc - both.test_acc_base)


def mild_frames(directory: Path, key: str, meta: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The final rows of mild sweep `key` as (pruned: every p at sigma_0, control: the dense
    runs at sigma_0 sqrt(1 - p) for the p > 0), which `sweeps/theory_regime.py`'s
    `mild_pairs` puts in one sweep."""
    last = jaxprune.final(jaxprune.load(directory / key))
    at_sigma0 = np.isclose(last.sigma_init, meta["sigma_init"], rtol=1e-6, atol=0)
    return last[at_sigma0], last[~at_sigma0]


def _mild(directory: Path, record: dict, level: float, family: int):
    """The mild-pruning frames of every d: cells and slopes."""
    cells, slopes, fitted = [], [], []
    for key, meta in record["sweeps"].items():
        if not key.startswith("mild-d"):
            continue
        dim = meta["dim"]
        mild, control = mild_frames(directory, key, meta)
        score = dict(zip(meta["mus"], meta["scores"], strict=True))
        sigma0 = meta["sigma_init"]
        # the control run of p: p = 0 at sigma_0 sqrt(1 - p), matched to the pruned run of p
        control_p = meta["control_p"]
        shrunk = {p: round(sigma0 * math.sqrt(1 - p), 9) for p in control_p}
        base = mild[mild.prune_frac == 0][["seed", "mu_norm", "test_acc"]]
        ctrl = [
            control[np.isclose(control.sigma_init, s)].assign(prune_frac=p)
            for p, s in shrunk.items()
        ]
        ctrl = pd.concat([base.assign(prune_frac=0.0), *ctrl])[
            ["seed", "mu_norm", "prune_frac", "test_acc"]
        ]
        d_prune = _paired(mild, base, ["seed", "mu_norm"])
        d_control = _paired(mild, ctrl, ["seed", "mu_norm", "prune_frac"])
        d_init = _paired(ctrl, base, ["seed", "mu_norm"])
        for (mu, p), group in mild.groupby(["mu_norm", "prune_frac"]):
            row = {"dim": dim, "score": score[mu], "mu_norm": mu, "prune_frac": p}
            row["test_acc"] = group.test_acc.mean()
            for name, diffs in (("prune", d_prune), ("control", d_control), ("init", d_init)):
                cell = diffs[(diffs.mu_norm == mu) & (diffs.prune_frac == p)]["diff"]
                mean, low, high, n = mean_ci(cell, level)
                row |= {f"diff_{name}": mean, f"{name}_low": low, f"{name}_high": high}
            row["seeds"] = n
            cells.append(row)
        joint = mild[["seed", "mu_norm", "prune_frac", "test_acc"]].merge(
            ctrl, on=["seed", "mu_norm", "prune_frac"], suffixes=("", "_ctrl")
        )
        joint["beyond_init"] = joint.test_acc - joint.test_acc_ctrl
        simultaneous = 1 - (1 - level) / family  # Bonferroni over the d's and both slopes
        row = {"dim": dim}
        for name, frame, value in (
            ("prune", mild, "test_acc"),
            ("init", ctrl, "test_acc"),
            ("beyond_init", joint, "beyond_init"),
        ):
            mean, low, high, n = paired_slopes(frame, value, simultaneous)
            row |= {name: mean, f"{name}_low": low, f"{name}_high": high}
        row["seeds"] = n
        slopes.append(row)
        for kind, frame in (("mild", mild), ("control", control)):
            fitted.append(_fitted(frame, kind, dim))
    return pd.DataFrame(cells), pd.DataFrame(slopes).sort_values("dim"), fitted


def _fitted(last: pd.DataFrame, kind: str, dim: int) -> pd.DataFrame:
    """Per prune_frac: fraction of runs with training accuracy 1 and of runs at loss_tol."""
    return (
        last.assign(fit=last.train_acc >= 1.0, converged=last.converged_step >= 0)
        .groupby("prune_frac")[["fit", "converged"]]
        .mean()
        .reset_index()
        .assign(sweep=kind, dim=dim)
    )


def sign_of(low: float, high: float) -> str:
    """positive, negative or not significant: the sign a CI [low, high] shows."""
    return "positive" if low > 0 else "negative" if high < 0 else "not significant"


def _mild_verdict(slopes: pd.DataFrame, mild_p_max: float, level: float) -> tuple[str, str]:
    """Per d: the sign of the paired slope, and whether the init control explains it."""
    parts, signs = [], []
    for row in slopes.itertuples():
        sign, beyond = (
            sign_of(row.prune_low, row.prune_high),
            sign_of(row.beyond_init_low, row.beyond_init_high),
        )
        signs.append(sign)
        parts.append(
            f"d = {row.dim:g}: slope {row.prune:+.3f} "
            f"[{row.prune_low:+.3f}, {row.prune_high:+.3f}] per unit p ({sign}); "
            f"beyond the init-scale control {row.beyond_init:+.3f} "
            f"[{row.beyond_init_low:+.3f}, {row.beyond_init_high:+.3f}] ({beyond})"
        )
    negative = [d for d, sign in zip(slopes.dim, signs, strict=True) if sign == "negative"]
    if all(s == "positive" for s in signs):
        status = "holds"
    elif "positive" in signs:
        status = "holds only in a region"
    elif len(negative) == len(signs):
        status = "fails: pruning lowers accuracy"
    elif not negative:
        status = "not shown (no slope differs from 0)"
    elif list(slopes.dim[: len(negative)]) == negative:  # the smallest d's
        status = f"fails at d <= {max(negative):g} (pruning lowers accuracy); not shown above"
    else:
        status = f"fails at {len(negative)} of {len(signs)} d; not shown at the others"
    family = (
        f"{level:.0%} CIs simultaneous over the {len(slopes)} dimensions and the two slopes "
        "(Bonferroni)"
    )
    text = (
        f"Paired slope of test accuracy over p in [0, {mild_p_max:g}], pooled over signal "
        f"strengths, {family}: " + "; ".join(parts) + "."
    )
    if len(slopes) > 1:
        first, last = slopes.iloc[0], slopes.iloc[-1]
        gain = (slopes.beyond_init_low > 0).any()
        text += (
            f" From d = {first.dim:g} to d = {last.dim:g} the slope goes from "
            f"{first.prune:+.3f} to {last.prune:+.3f} and the init-scale control's (dense at "
            f"sigma_0 sqrt(1-p) minus dense) from {first.init:+.3f} to {last.init:+.3f}; "
            + (
                "pruning gains beyond that control at some d."
                if gain
                else "at no d does pruning gain beyond that control."
            )
        )
    return status, text


def _threshold(directory: Path, record: dict, level: float):
    """Logistic p* in log(1 - p) of class outcomes per (d, condition); the per-class frame;
    the fitted fractions of the over-pruning sweeps."""
    classes = pd.read_parquet(directory / "classes.parquet")
    classes = classes.assign(learned=(classes.class_test_acc >= LEARNED).astype(float))
    rows, fitted = [], []
    for dim, group in classes.groupby("dim"):
        sweep = jaxprune.final(jaxprune.load(directory / f"overprune-d{dim}"))
        fitted.append(_fitted(sweep, "overprune", dim))
        conditions = {
            "all classes": group,
            "class keeps >= 1 signal neuron": group[group.signal_neurons_class >= 1],
            "class keeps >= 1 live signal neuron": group[group.signal_neurons_live >= 1],
        }
        seeds = np.sort(group.seed.unique())
        weights = seed_weights(len(seeds), N_BOOT, seed=int(dim))
        for condition, cell in conditions.items():
            x = np.log1p(-cell.prune_frac)
            fit = fit_logistic_threshold(x, cell.learned, level)
            # a threshold where learning falls through 1/2 as p grows inside the p grid; an
            # estimable fit that does not (no decline) has none, and no bracket either
            threshold = fit.rises_through_half()
            if threshold:  # seed-cluster bootstrap: a run's classes are resampled together
                wide = cell.pivot_table(
                    index="seed", columns=["prune_frac", "class"], values="learned"
                ).reindex(seeds)
                reps = threshold_replicates(
                    np.log1p(-wide.columns.get_level_values(0).to_numpy(dtype=float)),
                    wide.to_numpy(dtype=float),
                    weights,
                )
                x_low, x_high = percentile_ci(reps, level)
            else:  # the bracket the data allow (open where not estimable either)
                x_low, x_high = fit.x50_low, fit.x50_high
            bracket = threshold or not fit.estimable
            rows.append(
                {
                    "dim": dim,
                    "condition": condition,
                    "p_star": 1 - math.exp(fit.x50) if threshold else math.nan,
                    # x = log(1 - p) falls as p grows: the bounds swap; p is clipped to [0, 1]
                    "p_low": max(0.0, 1 - math.exp(min(x_high, 0.0))) if bracket else math.nan,
                    "p_high": (1 - math.exp(x_low) if x_low > -math.inf else 1.0)
                    if bracket
                    else math.nan,
                    "estimable": threshold,
                    "classes": fit.n,
                    "learned": fit.successes,
                }
            )
    threshold = pd.DataFrame(rows)
    width = record["sweeps"]["coefficients"]["width"]
    threshold["p_mask"] = p_mask(width)
    threshold["p_live"] = p_live(width)
    return threshold, classes, fitted


def p_mask(width: int) -> float:
    """The p where a class keeps no signal neuron with probability 1/2: p^m = 1/2."""
    return 0.5 ** (1 / width)


def p_live(width: int) -> float:
    """The p where a class has no live signal neuron (kept, and with a positive initial weight
    on its signal coordinate: probability (1 - p) / 2 per neuron) with probability 1/2:
    ((1 + p) / 2)^m = 1/2."""
    return 2 * 0.5 ** (1 / width) - 1


def _over_verdict(
    threshold: pd.DataFrame, classes: pd.DataFrame, width: int, level: float
) -> tuple[str, str]:
    """Is over-pruning's failure the loss of a class's live signal neurons (the mask and the
    init signs), or do classes that keep one fail too (the dynamics)? Among classes with a live
    signal neuron, a one-sided Fisher exact test of 'learned less often at p >= p_live than at
    p = 0'; and do the classes that fail fit their training set?"""
    live = classes[classes.signal_neurons_live >= 1]
    cut = p_live(width)
    parts, beyond = [], []
    for dim, cell in live.groupby("dim"):
        low, high = cell[cell.prune_frac == 0], cell[cell.prune_frac >= cut]
        table = [
            [int(low.learned.sum()), int((1 - low.learned).sum())],
            [int(high.learned.sum()), int((1 - high.learned).sum())],
        ]
        p_value = _scipy_stats.fisher_exact(table, alternative="greater").pvalue
        failures = cell[cell.learned == 0].prune_frac
        beyond.append(p_value < 1 - level)
        parts.append(
            f"d = {dim:g}: {int(cell.learned.sum())} of {len(cell)} learned"
            + (
                f" (failures at p = {', '.join(f'{p:g}' for p in failures)})"
                if len(failures)
                else ""
            )
            + f"; at p >= {cut:.2f} {table[1][0]} of {sum(table[1])} against {table[0][0]} of "
            f"{sum(table[0])} at p = 0 (one-sided Fisher p = {p_value:.3f})"
        )
    if not any(beyond):
        status = "holds per class, at the loss of the last live signal neuron (mask and init signs)"
    elif all(beyond):
        status = "a threshold beyond the mask and the init signs"
    else:
        status = "a threshold beyond the mask and the init signs at some d"
    fits = threshold[threshold.condition == "all classes"]
    fitted_p = "; ".join(
        f"d = {r.dim:g}: "
        + (
            f"{r.p_star:.3f} [{r.p_low:.3f}, {r.p_high:.3f}]"
            if np.isfinite(r.p_star)
            else "no threshold in the p range"
        )
        for r in fits.itertuples()
    )
    failed = classes[classes.learned == 0]
    none = classes[classes.signal_neurons_class == 0]
    memorized = failed[failed.train_acc >= 1.0]
    text = (
        f"Per class (a class has learned when its test accuracy is >= {LEARNED:g}). A ReLU "
        "filter whose initial weight on its class's signal coordinate is <= 0 never learns the "
        "signal (the signal patch leaves it inactive, and noise orthogonal to the signals gives "
        "that coordinate no gradient), so a class needs a *live* signal neuron: kept by the mask "
        "and positive at init. The mask and init signs alone put the threshold at p* = "
        f"{cut:.3f} (((1+p)/2)^m = 1/2 at m = {width}; the mask alone, p^m = 1/2, gives "
        f"{p_mask(width):.3f}); the logistic fit of all classes gives {fitted_p}. Among classes "
        "with a live signal neuron: "
        + "; ".join(parts)
        + f". {len(none)} classes kept no signal neuron and {int((none.learned == 0).sum())} of "
        "them failed (with K = 2 a class can still be told apart by exclusion, when the other "
        f"class learned its signal). Of the {len(failed)} classes that failed, "
        f"{len(memorized)} belong to runs that fitted their training set (training accuracy "
        "1): the over-pruning claim's 'fits, yet tests at chance'."
    )
    return status, text


def _collapse(directory: Path, record: dict, level: float):
    """Per d, the benign score s50 where half the unpruned runs learn (logistic in log score);
    chi-square tests that log s50 (score) or log(s50 / log d) (score with a log factor) is the
    same for every d. Returns (collapse, tests, text, unpruned runs)."""
    rows, runs = [], []
    for key, meta in record["sweeps"].items():
        if not key.startswith("mild-d"):
            continue
        last, _ = mild_frames(directory, key, meta)
        last = last[last.prune_frac == 0]
        score = last.mu_norm.map(dict(zip(meta["mus"], meta["scores"], strict=True)))
        runs.append(last.assign(score=score, dim=meta["dim"])[["dim", "score", "seed", "test_acc"]])
        fit = fit_logistic_threshold(np.log(score), last.test_acc >= LEARNED, level)
        z = float(t_quantile(np.inf, level))
        crosses = fit.rises_through_half()
        # a midpoint where the fitted curve crosses 1/2 in the data, or a separated bracket's
        bracketed = not fit.estimable and np.isfinite(fit.x50)
        rows.append(
            {
                "dim": meta["dim"],
                "s50": math.exp(fit.x50) if crosses or bracketed else math.nan,
                "s50_low": math.exp(fit.x50_low),
                "s50_high": math.exp(fit.x50_high),
                "log_s50": fit.x50,
                "se": (fit.x50_high - fit.x50_low) / (2 * z) if crosses else math.nan,
                "estimable": crosses,
            }
        )
    collapse = pd.DataFrame(rows).sort_values("dim").reset_index(drop=True)
    usable = collapse[collapse.estimable & (collapse.se > 0)]
    tests = []
    for name, shift in (("score", 0.0), ("score / log d", np.log(np.log(usable.dim)))):
        y, w = usable.log_s50 - shift, 1 / usable.se**2
        dof = len(usable) - 1
        if dof < 1:
            tests.append({"variable": name, "chi2": math.nan, "dof": dof, "p_value": math.nan})
            continue
        centre = float((w * y).sum() / w.sum())
        chi2 = float((w * (y - centre) ** 2).sum())
        tests.append(
            {"variable": name, "chi2": chi2, "dof": dof, "p_value": _scipy_stats.chi2.sf(chi2, dof)}
        )
    tests = pd.DataFrame(tests)
    if tests.dof.iloc[0] < 1:
        text = "Too few dimensions with an estimable midpoint to test the collapse."
    else:
        verdicts = [
            f"in {r.variable}: chi2 = {r.chi2:.2f} on {r.dof} dof, p = {r.p_value:.3f} ("
            + ("consistent with one curve" if r.p_value > 1 - level else "the curves differ")
            + ")"
            for r in tests.itertuples()
        ]
        text = (
            "Is the midpoint s50 (where half the unpruned runs reach test accuracy "
            f"{LEARNED:g}) the same at every d? " + "; ".join(verdicts) + "."
        )
    return collapse, tests, text, pd.concat(runs, ignore_index=True)


def _coefficients(directory: Path) -> tuple[pd.DataFrame, str]:
    """Seed means of gamma_max and rho_max, and their ratios to the predicted growth.

    The theory's rates are for the inner products gamma ||mu||^2 = <w - w0, mu> (eta ||mu||^2
    / m per step) and rho ||xi||^2 = <w - w0, xi> (eta sigma^2 (1-p) d / (n m) per step); in
    the normalized coefficients they read eta t / m and eta (1-p) t / (n m), up to constants
    (the fraction of active samples times |loss derivative|, <= 1/2 early)."""
    coef = pd.read_parquet(directory / "coefficients.parquet")
    coef = coef.assign(
        gamma_ratio=coef.gamma_max / (coef.lr * coef.step / coef.width),
        rho_ratio=coef.rho_max
        / (coef.lr * (1 - coef.prune_frac) * coef.step / (coef.n_train * coef.width)),
    )
    values = ["gamma_max", "rho_max", "rho_other_min", "gamma_ratio", "rho_ratio"]
    means = coef.groupby(["dim", "prune_frac", "step"])[values].mean().reset_index()
    parts = []
    for step in (means.step.min(), means.step.max()):
        at = means[means.step == step]
        parts.append(
            f"at step {step:g}, gamma / (eta t / m) lies in [{at.gamma_ratio.min():.2f}, "
            f"{at.gamma_ratio.max():.2f}] and rho / (eta (1-p) t / (n m)) in "
            f"[{at.rho_ratio.min():.2f}, {at.rho_ratio.max():.2f}]"
        )
    text = (
        "Measured growth as a multiple of the predicted linear growth, over every (d, p): "
        + "; ".join(parts)
        + ". Near t = 0 the constants are known: every loss derivative is 1/2, so gamma's is "
        "n_k / (2n) (1/4 for balanced classes; a class with fewer samples grows slower) and "
        "rho's is 1/2 (times ||xi ⊙ M||^2 / ((1 - p) ||xi||^2), about 1, and the max over "
        "filters). A narrow range at a step means the predicted dependence on d, p, n and m "
        "holds there; the ratios fall with t as the loss derivatives shrink."
    )
    return means, text


def compute(results_dir, level: float = LEVEL) -> RegimeResult:
    """The regime section's numbers and verdicts from `sweeps/theory_regime.py`'s directory."""
    directory = Path(results_dir)
    record = json.loads((directory / "run.json").read_text())
    mild_meta = [m for k, m in record["sweeps"].items() if k.startswith("mild-d")]
    first = mild_meta[0]
    names = ("n_train", "width", "sigma_noise", "init_scale", "lr_scale", "loss_tol", "steps")
    setting = {k: first[k] for k in names} | {"size": record["size"], "mild_p": first["mild_p"]}
    dims = np.array(sorted(m["dim"] for m in mild_meta), dtype=float)
    n, m = setting["n_train"], setting["width"]
    regime = pd.DataFrame(
        {
            "d": dims.astype(int),
            "d / n^2": dims / n**2,
            "sigma_0 sigma sqrt(d)": setting["init_scale"],
            "eta sigma^2 d": setting["lr_scale"],
            "m d / n (p = 0)": m * dims / n,
        }
    )
    mild, slopes, fitted = _mild(directory, record, level, family=2 * len(dims))
    mild_status, mild_text = _mild_verdict(slopes, max(setting["mild_p"]), level)
    threshold, classes, over_fitted = _threshold(directory, record, level)
    over_status, over_text = _over_verdict(threshold, classes, m, level)
    collapse, tests, collapse_text, unpruned = _collapse(directory, record, level)
    coefficients, coefficient_text = _coefficients(directory)
    return RegimeResult(
        setting=setting,
        regime=regime,
        mild=mild,
        slopes=slopes,
        mild_status=mild_status,
        mild_text=mild_text,
        threshold=threshold,
        fitted=pd.concat([*fitted, *over_fitted], ignore_index=True),
        over_status=over_status,
        over_text=over_text,
        collapse=collapse,
        collapse_tests=tests,
        collapse_text=collapse_text,
        coefficients=coefficients,
        coefficient_text=coefficient_text,
        classes=classes,
        unpruned=unpruned,
        runs=invocation_table(record),
    )
