"""The statistics of the science report, in one place.

- `t_quantile`: the two-sided 95% quantile of Student's t (no scipy: an exact table for 1-30
  degrees of freedom, the Cornish-Fisher expansion beyond, accurate to 1e-4 there).
- `mean_ci`: mean and t-based 95% confidence interval of a sample.
- `paired_differences`: treatment minus baseline, paired by seed, with t-based 95% CIs.
- `boundary_points` and `fit_boundary_constant`: the measured benign/harmful boundary of a
  (dimension x signal strength) heatmap and the constant C of n ||mu||^4 = C sigma^4 d fitted to it.
- `first_crossing`: where a seed-mean curve first falls below a level (interpolated).
- `Verdict`, `mild_pruning_verdict`, `over_pruning_verdict`: the verdict texts of the report,
  computed from the data.

Every function takes plain pandas frames (the final rows of a sweep, see `jaxprune.final`), so the
same code serves the sweep scripts, the report and the tests.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np
import pandas as pd

LEVEL = 0.95

# t_{0.975, df} for df = 1..30 (two-sided 95%).
_T975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)  # fmt: skip


def t_quantile(df: float) -> float:
    """Two-sided 95% quantile t_{0.975, df} of Student's t with `df` degrees of freedom.

    df <= 30: the exact tabulated value (df rounded down to an integer >= 1). df > 30: the
    Cornish-Fisher expansion of t in powers of 1/df around the normal quantile z = 1.95996
    (Abramowitz & Stegun 26.7.5), whose error is below 1e-4 for df > 30; df = inf gives z.
    """
    if not df >= 1:
        raise ValueError(f"df = {df!r} is invalid: a t quantile needs df >= 1.")
    if df <= len(_T975):
        return _T975[int(df) - 1]
    z = NormalDist().inv_cdf(0.975)
    if math.isinf(df):
        return z
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def mean_ci(values) -> tuple[float, float, float, int]:
    """(mean, ci_low, ci_high, n) of a sample: the t-based 95% CI of its mean (NaN for n < 2)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan, math.nan, n
    half = t_quantile(n - 1) * float(x.std(ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half, n


def paired_differences(
    last: pd.DataFrame,
    *,
    value: str = "test_acc",
    treatment: str = "prune_frac",
    baseline: float = 0.0,
    by: Sequence[str] = (),
    pair: str = "seed",
) -> pd.DataFrame:
    """Treatment minus baseline of `value`, paired by `pair`, with t-based 95% CIs.

    last: one row per run (e.g. `jaxprune.final(frame)`). For every group of `by` and every
    treatment level other than `baseline`, each run is matched with the run of the same `pair`
    (seed) at treatment == baseline in the same group; the differences of matched runs give
    `diff` (mean), `ci_low`, `ci_high`, `half_width` (t_{0.975, n-1} sd / sqrt(n)) and `n`
    (pairs). `treated` and `base` are the means of the two sides over the same pairs. Runs
    without a partner are left out. Returns one row per (by..., treatment level), sorted.
    """
    by = list(by)
    index = [*by, pair]
    wide = last.pivot_table(index=index, columns=treatment, values=value, aggfunc="first")
    if baseline not in wide.columns:
        raise ValueError(f"no runs with {treatment} = {baseline!r} to pair with.")
    rows = []
    for level in wide.columns:
        if level == baseline:
            continue
        pairs = wide[[baseline, level]].dropna()
        groups = pairs.groupby(level=by) if by else [((), pairs)]
        for key, cell in groups:
            key = key if isinstance(key, tuple) else (key,)
            diff = cell[level] - cell[baseline]
            mean, low, high, n = mean_ci(diff)
            rows.append(
                {
                    **dict(zip(by, key, strict=True)),
                    treatment: level,
                    "treated": float(cell[level].mean()),
                    "base": float(cell[baseline].mean()),
                    "diff": mean,
                    "ci_low": low,
                    "ci_high": high,
                    "half_width": (high - low) / 2,
                    "n": n,
                }
            )
    return pd.DataFrame(rows).sort_values([*by, treatment]).reset_index(drop=True)


def cell_summary(last: pd.DataFrame, by: Sequence[str], value: str) -> pd.DataFrame:
    """Mean and t-based 95% CI of `value` per group of `by`: columns mean, ci_low, ci_high, n."""
    rows = []
    for key, cell in last.groupby(list(by)):
        key = key if isinstance(key, tuple) else (key,)
        mean, low, high, n = mean_ci(cell[value])
        rows.append({**dict(zip(by, key, strict=True)), "mean": mean, "ci_low": low})
        rows[-1].update({"ci_high": high, "n": n})
    return pd.DataFrame(rows)


def first_crossing(xs, ys, level: float, *, below: bool = True) -> float:
    """The first x (scanning xs in increasing order) where y crosses `level`, linearly
    interpolated between grid points: the first fall to <= level (below=True) or rise to >= level
    (below=False). NaN if it never crosses; xs[0] if it starts there."""
    order = np.argsort(np.asarray(xs, dtype=float))
    x = np.asarray(xs, dtype=float)[order]
    y = np.asarray(ys, dtype=float)[order]
    if not below:
        y, level = -y, -level
    hits = np.flatnonzero(y <= level)
    if len(hits) == 0:
        return math.nan
    i = hits[0]
    if i == 0:
        return float(x[0])
    x0, x1, y0, y1 = x[i - 1], x[i], y[i - 1], y[i]
    return float(x0 + (level - y0) * (x1 - x0) / (y1 - y0)) if y1 != y0 else float(x1)


def boundary_points(
    last: pd.DataFrame,
    level: float,
    *,
    value: str = "test_error",
    x: str = "mu_norm",
    y: str = "dim",
) -> pd.DataFrame:
    """The measured boundary of a heatmap: for each `y` (dimension), the first `x` (signal
    strength) at which the seed-mean of `value` falls to `level` (see `first_crossing`).
    Returns columns y and x (NaN where the row never crosses)."""
    table = last.groupby([y, x])[value].mean().unstack(x)
    points = [first_crossing(table.columns, row.to_numpy(), level) for _, row in table.iterrows()]
    return pd.DataFrame({y: table.index.to_numpy(), x: points})


@dataclasses.dataclass(frozen=True)
class BoundaryFit:
    """n ||mu||^4 = C sigma^4 d fitted to measured boundary points. C is the geometric mean of
    the per-point values n mu^4 / (sigma^4 d) (least squares of log C with the exponents fixed);
    ci_low, ci_high its t-based 95% CI (on log C); points: the points used; rel_spread: the
    standard deviation of log(n mu^4 / (sigma^4 d)) across points (0 for a perfect n mu^4 ∝ d)."""

    C: float
    ci_low: float
    ci_high: float
    points: int
    rel_spread: float


def fit_boundary_constant(mu, dim, n_train: float, sigma_noise: float = 1.0) -> BoundaryFit:
    """Fit C of n mu^4 = C sigma^4 d to boundary points (mu_i, d_i); non-finite or zero mu are
    left out. See `BoundaryFit`."""
    mu, dim = np.asarray(mu, dtype=float), np.asarray(dim, dtype=float)
    ok = np.isfinite(mu) & (mu > 0) & np.isfinite(dim) & (dim > 0)
    logs = np.log(n_train * mu[ok] ** 4 / (sigma_noise**4 * dim[ok]))
    if len(logs) == 0:
        raise ValueError("no finite boundary points to fit C to.")
    mean, low, high, n = mean_ci(logs)
    spread = float(logs.std(ddof=1)) if n > 1 else math.nan
    return BoundaryFit(math.exp(mean), math.exp(low), math.exp(high), n, spread)


@dataclasses.dataclass(frozen=True)
class Verdict:
    """A claim's measured verdict: status is 'holds', 'fails' or 'holds only in a region';
    text says it in a sentence or two with the numbers behind it."""

    status: str
    text: str


def _fmt(value) -> str:
    """A cell key for text: numbers in %g, anything else as str."""
    return f"{value:g}" if isinstance(value, (int, float, np.number)) else str(value)


def _fmt_ci(row) -> str:
    return f"{row['diff']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]"


def mild_pruning_verdict(diffs: pd.DataFrame, *, by: Sequence[str], p_max: float = 0.5) -> Verdict:
    """Verdict on "mild pruning (0 < p <= p_max) raises test accuracy" from `paired_differences`
    rows (columns by..., prune_frac, diff, ci_low, ci_high, n).

    A cell (by..., p) counts as better when its CI lies above 0, worse when it lies below 0.
    holds: every setting of `by` has a better cell and no mild cell is worse; fails: no mild
    cell is better; otherwise holds only in the region of the better cells, which are named.
    The CIs are per cell (not corrected for the number of cells): with 20 cells about one can
    reach significance by chance, which is why the text gives the counts.
    """
    by = list(by)
    mild = diffs[(diffs.prune_frac > 0) & (diffs.prune_frac <= p_max + 1e-12)]
    better = mild[mild.ci_low > 0]
    worse = mild[mild.ci_high < 0]
    counts = (
        f"{len(better)} of {len(mild)} mild cells (0 < p <= {p_max:g}) significantly better, "
        f"{len(worse)} significantly worse, at 95% per cell"
    )
    best = mild.loc[mild["diff"].idxmax()] if len(mild) else None
    best_text = (
        ""
        if best is None
        else f"; the largest paired gain is {_fmt_ci(best)} at "
        + ", ".join(f"{k} = {_fmt(best[k])}" for k in [*by, "prune_frac"])
    )
    if len(better) == 0:
        return Verdict("fails", f"Fails: {counts}{best_text}.")
    settings_with_gain = better.groupby(by).size() if by else pd.Series([len(better)])
    all_settings = mild.groupby(by).size() if by else pd.Series([len(mild)])
    if len(worse) == 0 and len(settings_with_gain) == len(all_settings):
        return Verdict("holds", f"Holds: {counts}{best_text}.")
    region = "; ".join(
        ", ".join(f"{k} = {_fmt(row[k])}" for k in [*by, "prune_frac"]) + f": {_fmt_ci(row)}"
        for _, row in better.iterrows()
    )
    return Verdict(
        "holds only in a region", f"Holds only in a region: {counts}. Better cells: {region}."
    )


def over_pruning_verdict(
    cells: pd.DataFrame, *, chance: float, fit_level: float = 0.99, margin: float = 0.05
) -> Verdict:
    """Verdict on "some large p still fits the training set, yet tests at chance", from one row
    per (width, prune_frac) with columns width, prune_frac, train_acc (seed-mean), test_ci_high
    (upper 95% CI bound of the seed-mean test accuracy).

    A cell shows the claim when train_acc >= fit_level and test_ci_high <= chance + margin.
    holds: every width has such a cell; fails: none has; else holds only for the widths named.
    """
    shown = cells[(cells.train_acc >= fit_level) & (cells.test_ci_high <= chance + margin)]
    widths = sorted(cells.width.unique())
    hit = sorted(shown.width.unique())
    rule = (
        f"training accuracy >= {fit_level:g} and test accuracy's upper 95% bound <= chance "
        f"+ {margin:g} = {chance + margin:g}"
    )
    if not hit:
        return Verdict("fails", f"Fails: no (m, p) cell has {rule}.")
    where = "; ".join(
        f"m = {m:g}: p in {{{', '.join(f'{p:g}' for p in shown[shown.width == m].prune_frac)}}}"
        for m in hit
    )
    if len(hit) == len(widths):
        return Verdict("holds", f"Holds for every width: cells with {rule}: {where}.")
    return Verdict(
        "holds only in a region",
        f"Holds only for widths m in {{{', '.join(f'{m:g}' for m in hit)}}} of "
        f"{{{', '.join(f'{m:g}' for m in widths)}}}: cells with {rule}: {where}.",
    )


@dataclasses.dataclass(frozen=True)
class PowerLaw:
    """y = a x^slope fitted by least squares on logs: slope with its t-based 95% CI, and a."""

    slope: float
    ci_low: float
    ci_high: float
    prefactor: float
    points: int


def fit_power_law(x, y) -> PowerLaw:
    """Ordinary least squares of log y on log x (positive, finite points only); the CI of the
    slope is slope ± t_{0.975, n-2} SE (NaN with fewer than 3 points)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    lx, ly = np.log(x[ok]), np.log(y[ok])
    n = len(lx)
    if n < 2:
        raise ValueError("a power law needs at least 2 positive points.")
    slope, intercept = np.polyfit(lx, ly, 1)
    if n < 3:
        return PowerLaw(float(slope), math.nan, math.nan, math.exp(intercept), n)
    resid = ly - (slope * lx + intercept)
    se = math.sqrt(float(resid @ resid) / (n - 2) / float(((lx - lx.mean()) ** 2).sum()))
    half = t_quantile(n - 2) * se
    return PowerLaw(float(slope), slope - half, slope + half, math.exp(intercept), n)


def solve_p_any_class_without_signal(level: float, width: float, num_classes: int) -> float:
    """The pruning fraction p at which 1 - (1 - p^m)^K = level (the predicted over-pruning
    boundary): p = (1 - (1 - level)^(1/K))^(1/m)."""
    return float((1 - (1 - level) ** (1 / num_classes)) ** (1 / width))
