"""jaxprune: a JAX simulator of pruning at initialization in two-layer CNNs, for vmapped sweeps.

import jaxprune
config, params = jaxprune.presets.yang2023()
df = jaxprune.sweep(config, {"prune_frac": [0.0, 0.5, 0.9], "mu_norm": [1.0, 4.0]}, seeds=8)
jaxprune.final(df).groupby(["prune_frac", "mu_norm"]).test_acc.mean()
"""

__version__ = "0.2.0"

from jaxprune import data, masks, metrics, model, optimizers, presets, state, theory, training
from jaxprune.config import Config, Params
from jaxprune.results import final, load
from jaxprune.runner import sweep, train
from jaxprune.state import RunState

__all__ = [
    "Config",
    "Params",
    "RunState",
    "data",
    "final",
    "load",
    "masks",
    "metrics",
    "model",
    "optimizers",
    "presets",
    "state",
    "sweep",
    "theory",
    "train",
    "training",
]
