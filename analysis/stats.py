"""The statistics of the science reports, in one place, on scipy.stats and `jaxprune.stats`.

- Paired contrasts: `paired_differences` (treatment minus baseline, paired by seed) and
  `control_differences` (a pruned run minus its matched dense control, the same seed at p = 0
  and init scale sigma_0 sqrt(1 - p)), each with t-based CIs from `jaxprune.stats` and a
  two-sided one-sample t-test p-value from `scipy.stats.ttest_1samp`.
- The primary contrast of a claim: `seed_slopes` (per seed, the least-squares slope of a
  measurement over p, pooled over other axes, by `scipy.stats.linregress`) and `contrast`
  (mean, t-based CI and p-value of per-seed values).
- Family-wise control of cell maps: `holm` (Holm-Bonferroni adjusted p-values).
- Boundaries: `first_crossings` (where each row of a seed-mean table first crosses a level),
  `seed_bootstrap` (replicates of a statistic of the seed-mean under resampling of whole seeds,
  reproducible from its seed) and `boundary_fits` (the benign/harmful boundary of a heatmap
  over a range of levels: exponents against d and against d log d and the constant C, each
  with seed-bootstrap percentile CIs).

Functions take plain pandas frames of final rows (`jaxprune.final`), so the sweep scripts, the
report and the tests share them.

Length: the one statistics module of the analysis (one place per formula) is longer than
~400 lines on purpose: splitting it would put formulas in two places.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from jaxprune.config import CONFIG_FIELDS, PARAMS_FIELDS
from jaxprune.stats import LEVEL, LogisticFit, fit_logistic_threshold, mean_ci
from jaxprune.theory import init_matched_sigma


def _sig6(values) -> np.ndarray:
    """Values rounded to 6 significant digits: the key that matches a control's init scale."""
    return np.array([float(f"{v:.6g}") for v in np.asarray(values, dtype=float).ravel()])


def contrast(values, level: float = LEVEL) -> dict:
    """Mean, t-based `level` CI, two-sided t-test p-value against 0 (scipy) and n of a sample
    of per-seed values (paired differences or slopes); NaN where n < 2."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    mean, low, high, n = mean_ci(x, level)
    if n >= 2 and np.ptp(x) > 0:
        pvalue = float(scipy_stats.ttest_1samp(x, 0.0).pvalue)
    else:  # constant differences: exactly 0 means no evidence, a constant shift is certain
        pvalue = 1.0 if n >= 2 and mean == 0 else (0.0 if n >= 2 else np.nan)
    return {"diff": mean, "ci_low": low, "ci_high": high, "pvalue": pvalue, "n": n}


def _paired(wide: pd.DataFrame, treated: str, base: str, by: list[str]) -> list[dict]:
    """Rows of `contrast` of wide[treated] - wide[base] per group of `by` (index levels)."""
    pairs = wide[[base, treated]].dropna()
    groups = pairs.groupby(level=by) if by else [((), pairs)]
    rows = []
    for key, cell in groups:
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key, strict=True))
        row.update(treated=float(cell[treated].mean()), base=float(cell[base].mean()))
        row.update(contrast(cell[treated] - cell[base]))
        rows.append(row)
    return rows


def paired_differences(
    last: pd.DataFrame,
    *,
    value: str = "test_acc",
    treatment: str = "prune_frac",
    baseline: float = 0.0,
    by: Sequence[str] = (),
    pair: str = "seed",
) -> pd.DataFrame:
    """Treatment minus baseline of `value`, paired by `pair` (seed), per group of `by`.

    last: one row per run. For every treatment level other than `baseline`, each run is matched
    with the run of the same seed at treatment == baseline in the same group. Columns: by...,
    treatment, treated and base (means over the pairs), diff, ci_low, ci_high (t-based 95%),
    half_width, pvalue (paired t-test) and n (pairs). Runs without a partner are left out.
    """
    by = list(by)
    wide = last.pivot_table(index=[*by, pair], columns=treatment, values=value, aggfunc="first")
    if baseline not in wide.columns:
        raise ValueError(f"no runs with {treatment} = {baseline!r} to pair with.")
    rows = []
    for level in wide.columns:
        if level != baseline:
            rows += [{**r, treatment: level} for r in _paired(wide, level, baseline, by)]
    out = pd.DataFrame(rows).sort_values([*by, treatment]).reset_index(drop=True)
    out["half_width"] = (out.ci_high - out.ci_low) / 2
    return out


def config_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with every Config field of `frame.attrs["config"]` (what `jaxprune.load` records)
    as a column, where it is not one already (a grid over a Config field makes it a column).
    Frames of different sweeps keep their Config through `pd.concat` only this way."""
    config = frame.attrs.get("config", {})
    missing = {k: v for k, v in config.items() if k in CONFIG_FIELDS and k not in frame.columns}
    return frame.assign(**missing) if missing else frame


def run_keys(pruned: pd.DataFrame, control: pd.DataFrame) -> list[str]:
    """The columns that define a run apart from p and sigma_0 (which a control changes by
    design): the seed, the other Params fields and every Config field. Raises ValueError when a
    Config field is recorded in neither the columns nor `attrs["config"]` of a frame: a frame
    that stacks sweeps without their Config cannot be paired safely."""
    pruned, control = config_columns(pruned), config_columns(control)
    for name, frame in (("pruned", pruned), ("control", control)):
        absent = [c for c in CONFIG_FIELDS if c not in frame.columns]
        if absent:
            raise ValueError(
                f"with_controls: the {name} frame does not record Config field {absent[0]!r}: "
                "pass frames from jaxprune.load (attrs['config']) or apply "
                "analysis.stats.config_columns to each sweep before stacking them."
            )
    params = [c for c in PARAMS_FIELDS if c not in ("prune_frac", "sigma_init")]
    return ["seed", *[c for c in params if c in pruned and c in control], *CONFIG_FIELDS]


def with_controls(pruned: pd.DataFrame, control: pd.DataFrame, *, value: str = "test_acc"):
    """The pruned runs (p > 0) of `pruned` with column `control_value`: `value` of the matched
    dense control in `control` (p = 0, sigma_init = sigma_0 sqrt(1 - p), the seed, every other
    Params field and every Config field equal: `run_keys`), NaN where the control is missing.
    Config fields come from the columns or from `attrs["config"]` (`config_columns`)."""
    keys = run_keys(pruned, control)
    runs = config_columns(pruned)
    runs = runs[runs.prune_frac > 0].copy()
    runs["_init"] = _sig6(init_matched_sigma(runs.sigma_init, runs.prune_frac))
    control = config_columns(control)
    dense = control[control.prune_frac == 0][[*keys, "sigma_init", value]].copy()
    dense["_init"] = _sig6(dense.sigma_init)
    dense = dense.drop(columns="sigma_init").rename(columns={value: "control_value"})
    duplicated = dense.duplicated([*keys, "_init"])
    if duplicated.any():
        raise ValueError(
            f"with_controls: {int(duplicated.sum())} control runs share every run key "
            f"({', '.join(keys)}) with another: add the column that tells them apart."
        )
    merged = runs.merge(dense, on=[*keys, "_init"], how="left")
    return merged.drop(columns="_init")


def control_differences(
    pruned: pd.DataFrame,
    control: pd.DataFrame,
    *,
    value: str = "test_acc",
    by: Sequence[str] = (),
) -> pd.DataFrame:
    """Each pruned cell minus its matched dense control (same seed, p = 0, init scale
    sigma_0 sqrt(1 - p)), per group of `by` and p: the columns of `paired_differences`, with
    `base` the controls' mean. A difference near 0 means the smaller effective init explains
    the effect of pruning."""
    by = [*by, "prune_frac"]
    runs = with_controls(pruned, control, value=value).dropna(subset=["control_value"])
    wide = runs.set_index([*by, "seed"])[[value, "control_value"]]
    out = pd.DataFrame(_paired(wide, value, "control_value", by))
    if len(out):
        out = out.sort_values(by).reset_index(drop=True)
        out["half_width"] = (out.ci_high - out.ci_low) / 2
    return out


def holm(pvalues) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (same order; NaN stays NaN): a cell is significant at
    family-wise error rate alpha when its adjusted p-value is <= alpha."""
    p = np.asarray(pvalues, dtype=float)
    adjusted = np.full_like(p, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    scaled = (m - np.arange(m)) * p[order]
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return adjusted


def add_holm(cells: pd.DataFrame, alpha: float = 1 - LEVEL) -> pd.DataFrame:
    """`cells` (rows with diff and pvalue) with p_holm (Holm over all its rows, one family) and
    verdict: 'better' or 'worse' where p_holm <= alpha (by the sign of diff), else 'no change'."""
    out = cells.copy()
    out["p_holm"] = holm(out.pvalue)
    significant = out.p_holm <= alpha
    out["verdict"] = np.where(
        significant, np.where(out["diff"] > 0, "better", "worse"), "no change"
    )
    return out


def seed_slopes(
    last: pd.DataFrame,
    *,
    value: str = "test_acc",
    x: str = "prune_frac",
    x_max: float = 0.5,
    pool: Sequence[str] = ("mu_norm",),
    pair: str = "seed",
) -> pd.Series:
    """Per seed, the least-squares slope (scipy.stats.linregress) of `value` over `x` in
    [0, x_max], after averaging over the `pool` axes at each x: one paired slope per seed (the
    seed's runs share data and init). Seeds with fewer than 2 x values are left out."""
    rows = last[last[x] <= x_max + 1e-12]
    means = rows.groupby([pair, x])[value].mean().reset_index()
    slopes = {}
    for seed, part in means.groupby(pair):
        if part[x].nunique() >= 2:
            slopes[seed] = scipy_stats.linregress(part[x], part[value]).slope
    return pd.Series(slopes, name="slope", dtype=float)


def first_crossings(xs, table, level: float, *, below: bool = True) -> np.ndarray:
    """For each row of `table` (..., len(xs)) over increasing `xs`, the first x where the row
    falls to <= level (below=True; rises to >= level otherwise), linearly interpolated between
    grid points; NaN where it never does, xs[0] where it starts there."""
    xs = np.asarray(xs, dtype=float)
    y = np.asarray(table, dtype=float)
    if not below:
        y, level = -y, -level
    hit = y <= level
    i = np.argmax(hit, axis=-1)
    prev = np.maximum(i - 1, 0)
    y0 = np.take_along_axis(y, prev[..., None], -1)[..., 0]
    y1 = np.take_along_axis(y, i[..., None], -1)[..., 0]
    x0, x1 = xs[prev], xs[i]
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.where(y1 != y0, x0 + (level - y0) * (x1 - x0) / (y1 - y0), x1)
    x = np.where(i == 0, xs[0], x)
    return np.where(hit.any(axis=-1), x, np.nan)


def first_crossing(xs, ys, level: float, *, below: bool = True) -> float:
    """`first_crossings` of one curve, with xs in any order."""
    order = np.argsort(np.asarray(xs, dtype=float))
    xs, ys = np.asarray(xs, dtype=float)[order], np.asarray(ys, dtype=float)[order]
    return float(first_crossings(xs, ys, level, below=below))


def seed_array(last: pd.DataFrame, rows: str, cols: str, value: str, pair: str = "seed"):
    """`value` as an array (seeds, rows, cols) with the sorted row and column values; the
    seeds of a cell-complete grid (NaN where a run is missing)."""
    cube = last.pivot_table(index=[pair, rows], columns=cols, values=value, aggfunc="first")
    seeds = cube.index.get_level_values(0).unique()
    row_values = np.sort(last[rows].unique())
    full = pd.MultiIndex.from_product([seeds, row_values])
    array = cube.reindex(full).to_numpy(dtype=float).reshape(len(seeds), len(row_values), -1)
    return array, row_values, cube.columns.to_numpy(dtype=float)


def seed_bootstrap(
    values: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> np.ndarray:
    """Replicates (n_boot, ...) of statistic(mean over seeds) with the seeds (axis 0 of
    `values`) resampled with replacement: whole seeds, so cells that share a seed (its data,
    init and masks) stay together. Reproducible from `seed` (numpy's default_rng)."""
    rng = np.random.default_rng(seed)
    num_seeds = values.shape[0]
    flat = values.reshape(num_seeds, -1)
    reps = []
    for _ in range(n_boot):
        weights = np.bincount(rng.integers(0, num_seeds, num_seeds), minlength=num_seeds)
        mean = (weights @ np.nan_to_num(flat)) / num_seeds
        reps.append(statistic(mean.reshape(values.shape[1:])))
    return np.asarray(reps)


def percentile_ci(replicates, level: float = LEVEL, axis: int = 0):
    """The percentile bootstrap CI (low, high) of replicates along `axis` (NaNs ignored)."""
    tail = 100 * (1 - level) / 2
    with warnings.catch_warnings():  # a statistic that is NaN in every replicate stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        low = np.nanpercentile(replicates, tail, axis=axis)
        return low, np.nanpercentile(replicates, 100 - tail, axis=axis)


BOUNDARY_MODELS = {"d": lambda d: d, "d log d": lambda d: d * np.log(d)}


def _boundary_statistics(mu_b, dims, n_train, sigma) -> np.ndarray:
    """[exponent of mu_b over d, over d log d, C for d, C for d log d, RMS log-residual of the
    fixed-exponent law for d, for d log d] from boundary points (mu_b NaN or 0: left out)."""
    ok = np.isfinite(mu_b) & (mu_b > 0)
    if ok.sum() < 3:
        return np.full(6, np.nan)
    mu, d = mu_b[ok], dims[ok]
    out = []
    for scale in BOUNDARY_MODELS.values():
        out.append(scipy_stats.linregress(np.log(scale(d)), np.log(mu)).slope)
    for scale in BOUNDARY_MODELS.values():
        out.append(np.exp(np.mean(np.log(n_train * mu**4 / (sigma**4 * scale(d))))))
    for scale in BOUNDARY_MODELS.values():
        logs = np.log(n_train * mu**4 / (sigma**4 * scale(d)))
        out.append(np.sqrt(np.mean((logs - logs.mean()) ** 2)))
    return np.asarray(out)


BOUNDARY_COLUMNS = (
    "exponent_d",
    "exponent_dlogd",
    "C_d",
    "C_dlogd",
    "rms_d",
    "rms_dlogd",
)


def boundary_fits(
    last: pd.DataFrame,
    levels: Sequence[float],
    *,
    n_train: float,
    sigma_noise: float = 1.0,
    value: str = "test_error",
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """The benign/harmful boundary of a (dim x mu_norm) heatmap at each error `level`: for each
    d the first ||mu|| whose seed-mean `value` falls to the level, then the free exponents of
    ||mu||_b over d and over d log d (linregress of logs; the claim: 1/4), the constants C of
    n ||mu||^4 = C sigma^4 d and = C sigma^4 d log d, and the RMS log-residuals of those two
    fixed-exponent laws. Each with a seed-bootstrap 95% percentile CI (columns NAME_low,
    NAME_high), reproducible from `seed`. One row per level, with `points` (dims crossing)."""
    array, dims, mus = seed_array(last, "dim", "mu_norm", value)
    rows = []
    for level in levels:

        def statistic(table, level=level):
            return _boundary_statistics(
                first_crossings(mus, table, level), dims, n_train, sigma_noise
            )

        point = statistic(np.nanmean(array, axis=0))
        reps = seed_bootstrap(array, statistic, n_boot=n_boot, seed=seed)
        low, high = percentile_ci(reps)
        row = {"level": level}
        row["points"] = int(np.isfinite(first_crossings(mus, np.nanmean(array, 0), level)).sum())
        for i, name in enumerate(BOUNDARY_COLUMNS):
            row.update({name: point[i], f"{name}_low": low[i], f"{name}_high": high[i]})
        rows.append(row)
    return pd.DataFrame(rows)


def boundary_points(
    last: pd.DataFrame, level: float, *, value: str = "test_error", x="mu_norm", y="dim"
) -> pd.DataFrame:
    """The measured boundary of a heatmap at one level: for each `y`, the first `x` at which the
    seed-mean of `value` falls to `level` (NaN where it never does)."""
    table = last.groupby([y, x])[value].mean().unstack(x).sort_index(axis=1)
    points = first_crossings(table.columns.to_numpy(float), table.to_numpy(float), level)
    return pd.DataFrame({y: table.index.to_numpy(), x: points})


def solve_p_any_class_without_signal(level: float, width: float, num_classes: int) -> float:
    """The pruning fraction p at which 1 - (1 - p^m)^K = level (the predicted over-pruning
    boundary): p = (1 - (1 - level)^(1/K))^(1/m)."""
    return float((1 - (1 - level) ** (1 / num_classes)) ** (1 / width))


@dataclasses.dataclass(frozen=True)
class Verdict:
    """One claim's verdict as the report states it: the claim, the old report's status, the
    new status (holds, fails, not shown, holds only in a region, retracted, ...), the control
    that explains the effect (or '-'), the numbers behind it and the supporting figure."""

    claim: str
    old: str
    new: str
    control: str
    evidence: str
    figure: str


def rising_x50(fit: LogisticFit) -> float:
    """The threshold x50 of a fit as a bootstrap replicate takes it: the fitted midpoint when
    the curve rises through 1/2 inside the data; the midpoint of the separating bracket when
    the outcomes are separated with the successes at large x; NaN otherwise (no threshold)."""
    if fit.rises_through_half():
        return fit.x50
    separated_rising = not fit.estimable and np.isfinite(fit.x50_low + fit.x50_high)
    return fit.x50 if separated_rising and fit.successes > 0 else math.nan


def seed_weights(num_seeds: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """(n_boot, num_seeds) multiplicities of each seed in n_boot resamples of whole seeds with
    replacement (numpy's default_rng(seed)): row b weights seed s by how often it was drawn."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, num_seeds, (n_boot, num_seeds))
    return np.stack([np.bincount(row, minlength=num_seeds) for row in draws])


def threshold_replicates(x, outcomes: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(n_boot,) log-threshold replicates of one cell: outcomes (seeds, len(x)) in {0, 1, NaN}
    of each seed's run at each x; each row of `weights` (n_boot, seeds) resamples the seeds
    (`seed_weights`) and the logistic fit on the resampled counts gives `rising_x50`."""
    finite = np.isfinite(outcomes)
    succ, tried = weights @ np.where(finite, outcomes, 0.0), weights @ finite
    fits = (fit_logistic_threshold(x, k, trials=n) for k, n in zip(succ, tried, strict=True))
    return np.array([rising_x50(fit) for fit in fits])


def paired_slopes(frame: pd.DataFrame, value: str, level: float = LEVEL) -> tuple:
    """The mean over seeds of the least-squares slope of `value` over prune_frac, pooled over
    mu_norm (each seed's slopes at every mu averaged): (mean, low, high, seeds) with the t
    interval of `jaxprune.stats.mean_ci` at `level`."""

    def slope(cell: pd.DataFrame) -> float:
        p, v = cell.prune_frac.to_numpy(), cell[value].to_numpy()
        return float(np.polyfit(p, v, 1)[0]) if len(np.unique(p)) > 1 else math.nan

    per_seed = frame.groupby(["seed", "mu_norm"]).apply(slope, include_groups=False)
    return mean_ci(per_seed.groupby(level="seed").mean(), level)
