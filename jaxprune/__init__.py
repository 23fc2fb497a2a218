"""jaxprune: a JAX simulator of pruning at initialization in two-layer CNNs, for vmapped sweeps.

import jaxprune
config, params = jaxprune.presets.yang2023()
df = jaxprune.sweep(config, {"prune_frac": [0.0, 0.5, 0.9], "mu_norm": [1.0, 4.0]}, seeds=8)
jaxprune.final(df).groupby(["prune_frac", "mu_norm"]).test_acc.mean()
"""

__version__ = "0.1.0"

from jaxprune import cache

# The persistent compilation cache, before anything compiles (see `jaxprune.cache`).
cache.configure()

from jaxprune import (  # noqa: E402 (after the cache's set-up)
    data,
    evaluation,
    masks,
    metrics,
    model,
    optimizers,
    outcomes,
    presets,
    state,
    theory,
    training,
)
from jaxprune.config import Config, Params  # noqa: E402
from jaxprune.results import final, load  # noqa: E402
from jaxprune.runner import sweep, train  # noqa: E402
from jaxprune.state import RunState  # noqa: E402

__all__ = [
    "Config",
    "Params",
    "RunState",
    "cache",
    "data",
    "evaluation",
    "final",
    "load",
    "masks",
    "metrics",
    "model",
    "optimizers",
    "outcomes",
    "presets",
    "state",
    "sweep",
    "theory",
    "train",
    "training",
]
