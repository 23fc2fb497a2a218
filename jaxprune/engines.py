"""The catalog of engines (`ENGINES`), the choice that `Config.engine='auto'` makes, and the
checks of a Config's named parts (engine, optimizer, mask) against the three catalogs
(`ENGINES`, `jaxprune.optimizers.OPTIMIZERS`, `jaxprune.masks.CRITERIA`).

Adding an engine is one `EngineKind` (`jaxprune.engine`) and `register_engine` of it; the planner,
the cost model and 'auto' ask the object, never its name (docs/extending.md).
"""

from __future__ import annotations

from jaxprune.config import Config, InvalidValue
from jaxprune.dense import DENSE
from jaxprune.engine import Cost, EngineKind, shared_cost
from jaxprune.gram import GRAM
from jaxprune.masks import CRITERIA
from jaxprune.optimizers import OPTIMIZERS

AUTO = "auto"  # Config.engine: the cheaper of the engines that support the Config

ENGINES: dict[str, EngineKind] = {}


def register_engine(kind: EngineKind) -> EngineKind:
    """Add `kind` to the catalog under its name (so `Config.engine` accepts it)."""
    if kind.name == AUTO:
        raise ValueError(
            f"an engine cannot be named {AUTO!r}: Config.engine uses it for the choice."
        )
    ENGINES[kind.name] = kind
    return kind


register_engine(DENSE)
register_engine(GRAM)


def costs(config: Config) -> dict[str, Cost]:
    """Estimated cost of one run of `config` by each engine that supports it: its own work and
    the measurements every engine shares (the masks, data draws and readout left out)."""
    shared = shared_cost(config)
    return {
        name: kind.cost(config) + shared
        for name, kind in ENGINES.items()
        if kind.supports(config) is None
    }


def resolve(config: Config) -> EngineKind:
    """The engine that trains `config`: ENGINES[config.engine], or for 'auto' the cheapest by
    `costs` of those that support it. A sweep resolves 'auto' once per group of runs
    (`jaxprune.grid`): everything after it reads the named engine."""
    if config.engine != AUTO:
        return ENGINES[config.engine]
    estimates = costs(config)
    return ENGINES[min(estimates, key=lambda name: estimates[name].seconds)]


def names(field: str) -> tuple[str, ...]:
    """The values `Config.<field>` accepts for the fields that name a catalog's entry: 'engine'
    ('auto' and `ENGINES`), 'optimizer' (`OPTIMIZERS`), 'mask' (`CRITERIA`)."""
    catalogs = {"engine": (AUTO, *ENGINES), "optimizer": tuple(OPTIMIZERS), "mask": tuple(CRITERIA)}
    return catalogs[field]


def check(config: Config) -> None:
    """Refuse a Config whose named parts do not go together (an optimizer that takes no
    minibatches with a batch_size, an engine that cannot train the optimizer): `InvalidValue`
    naming the field. Called by `Config` itself on construction."""
    optimizer = OPTIMIZERS[config.optimizer]
    if config.batch_size is not None and optimizer.full_batch_only:
        raise InvalidValue(
            "batch_size", config.batch_size,
            f"is invalid: optimizer={config.optimizer!r} needs None ({optimizer.full_batch_only}).",
            owner="Config",
        )  # fmt: skip
    supported = [name for name, kind in ENGINES.items() if kind.supports(config) is None]
    if config.engine not in (AUTO, *supported) or not supported:
        problem = ENGINES[config.engine].supports(config) if config.engine != AUTO else None
        others = " or ".join(repr(name) for name in (AUTO, *supported)) if supported else None
        raise InvalidValue(
            "engine", config.engine,
            f"is invalid: {problem or 'no engine supports this Config'}; use engine "
            f"{others or 'one that supports it'}.",
            owner="Config",
        )  # fmt: skip
