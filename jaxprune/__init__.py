"""jaxprune: a JAX simulator of pruning at initialization in two-layer CNNs, for vmapped sweeps.

import jaxprune
config, params = jaxprune.presets.yang2023()
df = jaxprune.sweep(config, {"prune_frac": [0.0, 0.5, 0.9], "mu_norm": [1.0, 4.0]}, seeds=8)
jaxprune.final(df).groupby(["prune_frac", "mu_norm"]).test_acc.mean()

The package imports its modules (and JAX) on first use of a name (PEP 562), so that
`jaxprune --help` and `--version` answer at once.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING

from jaxprune import cache

# Version policy: the version changes whenever results can change (a draw, a step, a measurement
# or a column), and every sweep records it; resuming a sweep computed by another version is
# refused (docs/output.md).
__version__ = "0.2.0"

if TYPE_CHECKING:  # the public names for static readers (type checkers, the API reference)
    from jaxprune import (  # noqa: F401
        cache,
        data,
        engines,
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
    )  # fmt: skip
    from jaxprune.config import Config, Params  # noqa: F401 (for type checkers and mkdocstrings)
    from jaxprune.engines import register_engine  # noqa: F401
    from jaxprune.masks import register_criterion  # noqa: F401
    from jaxprune.optimizers import register_optimizer  # noqa: F401
    from jaxprune.results import final, load  # noqa: F401
    from jaxprune.runner import sweep, train  # noqa: F401
    from jaxprune.state import RunState  # noqa: F401

# The public names and the modules that define them, imported on first use.
_NAMES = {
    "Config": "config",
    "Params": "config",
    "RunState": "state",
    "final": "results",
    "load": "results",
    "sweep": "runner",
    "train": "runner",
    "register_engine": "engines",
    "register_optimizer": "optimizers",
    "register_criterion": "masks",
}
_MODULES = ("cache", "data", "engines", "evaluation", "masks", "metrics", "model",
            "optimizers", "outcomes", "presets", "state", "theory", "training")  # fmt: skip

__all__ = sorted([*_NAMES, *_MODULES])


if "jax" in sys.modules:  # the persistent compilation cache, before anything compiles
    cache.configure()


def __getattr__(name: str):
    cache.configure()
    if name in _NAMES:
        value = getattr(importlib.import_module(f"jaxprune.{_NAMES[name]}"), name)
    else:
        try:
            value = importlib.import_module(f"jaxprune.{name}")
        except ModuleNotFoundError as missing:
            if missing.name != f"jaxprune.{name}":
                raise
            raise AttributeError(f"module 'jaxprune' has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
