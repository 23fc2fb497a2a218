"""Theory quantities a phase diagram can overlay (SPEC §2.6).

Each is a plain formula of a run's parameters and works elementwise on floats, NumPy arrays and
pandas Series alike.
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
)


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


def signal_neurons_expected(prune_frac, width):
    """Expected number of a class's m neurons whose mask keeps its signal coordinate: (1 - p) m."""
    return (1 - prune_frac) * width


def p_class_without_signal(prune_frac, width):
    """Probability that no neuron of a given class keeps its signal coordinate: p^m."""
    return prune_frac**width


def p_any_class_without_signal(prune_frac, width, num_classes):
    """Probability that some class of the K has no neuron keeping its signal: 1 - (1 - p^m)^K."""
    return 1 - (1 - p_class_without_signal(prune_frac, width)) ** num_classes


def columns(frame) -> dict:
    """Every theory column for a frame-like mapping with the run's Params and Config fields
    (prune_frac, mu_norm, sigma_noise, dim, width, n_train, num_classes)."""
    f = frame
    with np.errstate(divide="ignore", invalid="ignore"):
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
        }
