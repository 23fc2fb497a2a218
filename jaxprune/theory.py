"""Theory quantities a phase diagram can overlay (docs/schema.md).

Each is a plain formula of a run's parameters and works elementwise on floats, NumPy arrays and
pandas Series alike.

The `regime_*` quantities say how far a run is from the regime in which the theorems of Cao et
al. (NeurIPS 2022), Kou et al. (ICML 2023) and Yang et al. (2023) are proved; `in_regime` is
their conjunction at the thresholds of `REGIME_THRESHOLDS`. The theorems state their conditions
up to constants and log factors (often with higher powers of n and m), so the thresholds are
order-one stand-ins: a run outside them is certainly outside the theorems' regime; one inside
them is at least not excluded by the leading-order conditions.
"""

from __future__ import annotations

import numpy as np

THEORY_COLUMNS = (
    "d_eff",
    "snr_eff",
    "benign_score",
    "signal_neurons_expected",
    "p_class_without_signal",
    "p_any_class_without_signal",
    "regime_d_over_n2",
    "regime_init_scale",
    "regime_init_kou",
    "regime_step",
    "regime_signal_neurons",
    "regime_memorization",
    "in_regime",
)

# name: (comparison, threshold). in_regime is the conjunction of these four conditions.
# regime_signal_neurons is not among them: mild pruning needs it large and over-pruning small.
REGIME_THRESHOLDS = {
    "regime_d_over_n2": (">=", 1.0),
    "regime_init_kou": ("<=", 1.0),
    "regime_step": ("<=", 1.0),
    "regime_memorization": (">=", 1.0),
}


def d_eff(prune_frac, dim):
    """Noise dimensions one neuron still sees: (1 - p) d."""
    return (1 - prune_frac) * dim


def snr_eff(mu_norm, sigma_noise, prune_frac, dim):
    """Effective signal-to-noise ratio mu / (sigma sqrt(d_eff))."""
    return mu_norm / (sigma_noise * np.sqrt(d_eff(prune_frac, dim)))


def benign_score(n_train, mu_norm, sigma_noise, prune_frac, dim):
    """n mu^4 / (sigma^4 d_eff): the unpruned benign/harmful boundary of Kou et al. (2023) sits at
    n ||mu||^4 ≍ sigma^4 d; with d_eff in place of d this is the pruned analogue to test."""
    return n_train * mu_norm**4 / (sigma_noise**4 * d_eff(prune_frac, dim))


def init_matched_sigma(sigma_init, prune_frac):
    """sigma_0 sqrt(1 - p): the init scale of a dense network whose filters have the squared norm
    a Bernoulli(1 - p) mask leaves, in expectation (E ||w ⊙ M||^2 = (1 - p) d sigma_0^2). The
    dense network at this init is the control that tells pruning apart from a smaller init."""
    return sigma_init * np.sqrt(1 - prune_frac)


def signal_neurons_expected(prune_frac, width):
    """Expected number of a class's m neurons whose mask keeps its signal coordinate: (1 - p) m."""
    return (1 - prune_frac) * width


def p_class_without_signal(prune_frac, width):
    """Probability that no neuron of a given class keeps its signal coordinate: p^m."""
    return prune_frac**width


def p_any_class_without_signal(prune_frac, width, num_classes):
    """Probability that some class of the K has no neuron keeping its signal: 1 - (1 - p^m)^K."""
    return 1 - (1 - p_class_without_signal(prune_frac, width)) ** num_classes


def regime_d_over_n2(dim, n_train):
    """d / n^2: the theorems need high dimension, d >= Omega~(n^2) at least (Cao et al. 2022,
    Cond. 4.1, and Kou et al. 2023 ask for higher powers of n and m), so that the n P noise
    patches are nearly orthogonal and their inner products ~ sigma^2 sqrt(d) are small next to
    their norms ~ sigma^2 d. Threshold: >= 1."""
    return dim / n_train**2


def regime_init_scale(sigma_init, sigma_noise, dim):
    """sigma_0 sigma sqrt(d): the standard deviation of a filter's pre-activation on a noise
    patch at initialization. The theorems need a small init, sigma_0 <= O~(1/(sigma sqrt(d)))
    (times further negative powers of n and m), so that training, not the random init,
    decides which neurons learn signal or noise. Descriptive: in_regime uses `regime_init_kou`."""
    return sigma_init * sigma_noise * np.sqrt(dim)


def regime_init_kou(sigma_init, sigma_noise, dim, n_train):
    """sigma_0 sigma sqrt(d) against sqrt(n / d), i.e. sigma_0 sigma d / sqrt(n): the Kou-type
    condition on the init of a ReLU network, sigma_0 <~ sqrt(n) / (sigma d) (Kou et al. 2023),
    which the science report's experiment E0 tests (the benign boundary of unpruned runs at
    sigma_0 sigma sqrt(d) = c sqrt(n / d) as d grows). A fixed sigma_0 sigma sqrt(d) leaves it
    from d ~ n / (sigma_0 sigma sqrt(d))^2 on. Threshold: <= 1."""
    return sigma_init * sigma_noise * dim / np.sqrt(n_train)


def step_scale(width, output_scale):
    """The factor that turns the simulator's learning rate into the theorems' eta: the theorems
    write F = (1/m) sum_r ... and W <- W - eta grad L, which is output_scale='mean' with
    eta = lr; with output_scale='sum' each gradient is m times larger, so eta = m lr."""
    return np.where(np.asarray(output_scale) == "sum", width, 1.0)


def regime_step(lr, sigma_noise, dim, width=1, output_scale="mean"):
    """eta sigma^2 d with eta = lr * step_scale (see `step_scale`): the theorems need
    eta <= O~(min(1/||mu||^2, 1/(sigma^2 d))) (Cao et al. 2022, Kou et al. 2023), so that one
    step moves a neuron's inner product with its own noise patch, ~ eta sigma^2 d / (n m), by
    less than it is. Threshold: <= 1."""
    return lr * step_scale(width, output_scale) * sigma_noise**2 * dim


def regime_signal_neurons(prune_frac, width):
    """(1 - p) m: neurons per class expected to keep their class's signal coordinate. Yang et
    al.'s mild-pruning theorem needs it large (>~ log K), their over-pruning theorem small
    (a class with no such neuron cannot learn its signal). Not part of in_regime."""
    return signal_neurons_expected(prune_frac, width)


def regime_memorization(prune_frac, width, dim, n_train):
    """m (1 - p) d / n: kept first-layer weights per class per training sample. Both of Yang et
    al.'s theorems say GD drives the training loss to zero (by signal or by noise), which needs
    the pruned network to be able to memorize its n noise patches. Threshold: >= 1."""
    return width * (1 - prune_frac) * dim / n_train


def in_regime(values: dict):
    """True where every condition of `REGIME_THRESHOLDS` holds for the `regime_*` values."""
    ok = True
    for name, (op, threshold) in REGIME_THRESHOLDS.items():
        value = np.asarray(values[name], dtype=float)
        ok = ok & (value >= threshold if op == ">=" else value <= threshold)
    return np.asarray(ok, dtype=bool)


def columns(frame) -> dict:
    """Every theory column for a frame-like mapping with the run's Params and Config fields
    (prune_frac, mu_norm, sigma_noise, sigma_init, lr, dim, width, n_train, num_classes and,
    optionally, output_scale, default 'mean'). `in_regime` is boolean, the others float."""
    f = frame
    output_scale = f["output_scale"] if "output_scale" in f else "mean"
    with np.errstate(divide="ignore", invalid="ignore"):
        regime = {
            "regime_d_over_n2": regime_d_over_n2(f["dim"], f["n_train"]),
            "regime_init_scale": regime_init_scale(f["sigma_init"], f["sigma_noise"], f["dim"]),
            "regime_init_kou": regime_init_kou(
                f["sigma_init"], f["sigma_noise"], f["dim"], f["n_train"]
            ),
            "regime_step": regime_step(
                f["lr"], f["sigma_noise"], f["dim"], f["width"], output_scale
            ),
            "regime_signal_neurons": regime_signal_neurons(f["prune_frac"], f["width"]),
            "regime_memorization": regime_memorization(
                f["prune_frac"], f["width"], f["dim"], f["n_train"]
            ),
        }
        return {
            "d_eff": d_eff(f["prune_frac"], f["dim"]),
            "snr_eff": snr_eff(f["mu_norm"], f["sigma_noise"], f["prune_frac"], f["dim"]),
            "benign_score": benign_score(
                f["n_train"], f["mu_norm"], f["sigma_noise"], f["prune_frac"], f["dim"]
            ),
            "signal_neurons_expected": signal_neurons_expected(f["prune_frac"], f["width"]),
            "p_class_without_signal": p_class_without_signal(f["prune_frac"], f["width"]),
            "p_any_class_without_signal": p_any_class_without_signal(
                f["prune_frac"], f["width"], f["num_classes"]
            ),
            **regime,
            "in_regime": in_regime(regime),
        }
