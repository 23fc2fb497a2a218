"""The one place confidence intervals come from (docs/science.md#statistics: CIs from one place).

Every report, figure caption and `jaxprune.plot` takes its intervals from here: Student-t
intervals of a mean over seeds, on `scipy.stats`. `analysis/stats.py` builds the report's
statistics (paired contrasts, family-wise control, bootstrap) on top of these.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import optimize as _scipy_optimize
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


@dataclasses.dataclass(frozen=True)
class LogisticFit:
    """P(y = 1 | x) = sigmoid(a + b x) fitted by maximum likelihood to n binary outcomes.

    x50 = -a / b (where P = 1/2) with its Wald interval [x50_low, x50_high] at `level` (delta
    method from the inverse observed information). When the maximum-likelihood estimate does
    not exist (no outcomes, a single x value, all outcomes equal, or outcomes separated by x),
    `estimable` is False, a and b are NaN, and [x50_low, x50_high] is the bracket that the data
    allow: between the last x with a success and the first x with a failure (+-inf where open),
    with x50 its midpoint (NaN when open). x_min, x_max: the range of the data's x."""

    a: float
    b: float
    x50: float
    x50_low: float
    x50_high: float
    n: int
    successes: int
    estimable: bool
    x_min: float
    x_max: float

    def rises_through_half(self) -> bool:
        """Whether the fitted curve rises (b > 0) through 1/2 inside the data's x range: only
        then is x50 a threshold. A curve that falls, or crosses 1/2 outside the data (outcomes
        that barely change with x), gives an extrapolated x50 that means nothing."""
        return self.estimable and self.b > 0 and self.x_min <= self.x50 <= self.x_max


def fit_logistic_threshold(x, y, level: float = LEVEL, trials=None) -> LogisticFit:
    """Fit P(y = 1) = sigmoid(a + b x) to outcomes y in {0, 1} at x (finite values only); with
    `trials`, y[i] successes out of trials[i] at x[i] (the same likelihood on counts)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    t = np.ones_like(y) if trials is None else np.asarray(trials, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y) & (t > 0)
    x, y, t = x[ok], y[ok], t[ok]
    n, k = int(t.sum()), int(y.sum())
    ones, zeros = x[y > 0], x[y < t]
    span = (float(x.min()), float(x.max())) if len(x) else (math.nan, math.nan)
    if (
        k in (0, n)
        or len(np.unique(x)) < 2
        or ones.min() >= zeros.max()
        or ones.max() <= zeros.min()
    ):
        low, high = -math.inf, math.inf
        if 0 < k < n and ones.min() >= zeros.max():  # successes at large x
            low, high = float(zeros.max()), float(ones.min())
        elif 0 < k < n and ones.max() <= zeros.min():
            low, high = float(ones.max()), float(zeros.min())
        mid = (low + high) / 2 if np.isfinite(low + high) else math.nan
        return LogisticFit(math.nan, math.nan, mid, low, high, n, k, False, *span)
    design = np.column_stack([np.ones(len(x)), x])

    def negloglik(theta):
        z = design @ theta
        return float(np.sum(t * np.logaddexp(0, z) - y * z))

    def gradient(theta):
        return design.T @ (t * _scipy_stats.logistic.cdf(design @ theta) - y)

    theta = _scipy_optimize.minimize(negloglik, np.zeros(2), jac=gradient, method="BFGS").x
    prob = _scipy_stats.logistic.cdf(design @ theta)
    info = design.T @ (design * (t * prob * (1 - prob))[:, None])
    cov = np.linalg.inv(info)
    a, b = theta
    x50 = -a / b
    grad = np.array([-1 / b, a / b**2])
    half = float(t_quantile(np.inf, level)) * math.sqrt(float(grad @ cov @ grad))
    return LogisticFit(float(a), float(b), float(x50), x50 - half, x50 + half, n, k, True, *span)
