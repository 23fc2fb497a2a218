"""The one place confidence intervals come from (docs/science.md#statistics: CIs from one place).

Every report, figure caption and `jaxprune.plot` takes its intervals from here: Student-t
intervals of a mean over seeds, on `scipy.stats`. `analysis/stats.py` builds the report's
statistics (paired contrasts, family-wise control, bootstrap) on top of these.
"""

from __future__ import annotations

import numpy as np
from scipy import stats as _scipy_stats

LEVEL = 0.95


def t_quantile(df, level: float = LEVEL):
    """Two-sided `level` quantile of Student's t with `df` degrees of freedom (float or array;
    df = inf gives the normal quantile)."""
    return _scipy_stats.t.ppf(0.5 + level / 2, df)


def ci_half_width(values, axis=None, level: float = LEVEL):
    """Half-width of the t-based `level` confidence interval of the mean of `values` along
    `axis` (NaN where fewer than two finite values). NaNs are ignored."""
    x = np.asarray(values, dtype=float)
    finite = np.isfinite(x)
    n = finite.sum(axis=axis)
    x = np.where(finite, x, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = x.sum(axis=axis, keepdims=True) / finite.sum(axis=axis, keepdims=True)
        squares = np.where(finite, (x - mean) ** 2, 0.0).sum(axis=axis)
        sem = np.sqrt(squares / (n - 1) / n)
        half = t_quantile(np.maximum(n - 1, 1), level) * sem
    return np.where(n >= 2, half, np.nan)


def mean_ci(values, level: float = LEVEL) -> tuple[float, float, float, int]:
    """(mean, ci_low, ci_high, n) of a sample's finite values: the t-based `level` CI of its
    mean (NaN bounds for n < 2, all NaN for n = 0)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return np.nan, np.nan, np.nan, 0
    mean = float(x.mean())
    half = float(ci_half_width(x, level=level))
    return mean, mean - half, mean + half, len(x)


def grouped_mean_ci(series, by, level: float = LEVEL):
    """Per group of `series.groupby(by)`: a frame with columns mean, half_width, n (the t-based
    `level` CI of each group's mean is mean ± half_width; NaN half-width for n < 2)."""
    import pandas as pd

    groups = series.groupby(by, sort=True, dropna=False)
    n = groups.count()
    with np.errstate(invalid="ignore", divide="ignore"):
        half = t_quantile(np.maximum(n - 1, 1), level) * groups.std(ddof=1) / np.sqrt(n)
    return pd.DataFrame({"mean": groups.mean(), "half_width": half.where(n >= 2), "n": n})
