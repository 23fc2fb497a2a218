"""Expand a sweep's grid and seeds into runs, grouped by static Config (one compilation each).

Everything here is host-side NumPy and validates its input completely, so a bad grid is refused
before JAX sees it. Run order: Config fields of the grid outermost (in the grid's key order),
then Params fields (in key order), then seeds innermost.
"""

from __future__ import annotations

import dataclasses
import itertools
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from jaxprune.config import (
    CONFIG_FIELDS,
    PARAMS_FIELDS,
    Config,
    Params,
    check_params_values,
    validate_params,
)

MAX_SEED = 2**31 - 1


@dataclasses.dataclass(frozen=True)
class RunGroup:
    """The runs of a sweep that share one static Config.

    config: that Config. config_values: the grid's Config fields and their values in this group.
    params: Params whose leaves are float64 arrays (R,). seeds: int64 array (R,).
    """

    config: Config
    config_values: dict[str, Any]
    params: Params
    seeds: np.ndarray

    @property
    def num_runs(self) -> int:
        return len(self.seeds)


def _grid_values(name: str, values: Any) -> list:
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray, range)):
        raise ValueError(
            f"grid[{name!r}] = {values!r} is invalid: must be a non-empty sequence of values "
            f"(a list, tuple, range or 1-d array)."
        )
    values = list(np.asarray(values).tolist()) if isinstance(values, np.ndarray) else list(values)
    if not values:
        raise ValueError(f"grid[{name!r}] is empty: give at least one value.")
    if len(set(map(repr, values))) != len(values):
        raise ValueError(f"grid[{name!r}] = {values!r} is invalid: values must be distinct.")
    return values


def normalize_seeds(seeds: Any) -> np.ndarray:
    """Seeds as an int64 array: an int n means range(n); a sequence must be distinct ints in
    [0, 2**31 - 1]."""
    if isinstance(seeds, numbers.Integral) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ValueError(
                f"seeds = {seeds!r} is invalid: an int seeds means range(seeds), so >= 1."
            )
        seeds = range(int(seeds))
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, (Sequence, np.ndarray, range)):
        raise ValueError(f"seeds = {seeds!r} is invalid: give an int or a sequence of ints.")
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds is empty: give an int >= 1 or a non-empty sequence of ints.")
    for seed in seeds:
        if (
            isinstance(seed, bool)
            or not isinstance(seed, numbers.Integral)
            or not 0 <= seed <= MAX_SEED
        ):
            raise ValueError(f"seeds contains {seed!r}: seeds must be ints in [0, {MAX_SEED}].")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds = {seeds!r} is invalid: seeds must be distinct.")
    return np.asarray(seeds, dtype=np.int64)


def plan(
    config: Config, grid: Mapping[str, Any], seeds: Any, base: Params | None = None
) -> list[RunGroup]:
    """Validate a sweep's specification and expand it into groups of runs."""
    if not isinstance(config, Config):
        raise ValueError(f"config must be a jaxprune.Config, got {type(config).__name__}.")
    if not isinstance(grid, Mapping):
        raise ValueError(
            f"grid must be a mapping of field name to values, got {type(grid).__name__}."
        )
    base = validate_params(Params() if base is None else base)
    for name in PARAMS_FIELDS:
        if np.ndim(getattr(base, name)) != 0:
            raise ValueError(
                f"base.{name} = {getattr(base, name)!r} is invalid: must be a scalar; "
                f"put several values in the grid instead."
            )
    seeds = normalize_seeds(seeds)

    config_axes, params_axes = {}, {}
    for name, values in grid.items():
        if name in CONFIG_FIELDS:
            config_axes[name] = _grid_values(name, values)
        elif name in PARAMS_FIELDS:
            params_axes[name] = check_params_values(name, _grid_values(name, values)).tolist()
        else:
            raise ValueError(
                f"grid key {name!r} is no field: Params fields are {', '.join(PARAMS_FIELDS)}; "
                f"Config fields are {', '.join(CONFIG_FIELDS)}."
            )

    params_points = list(itertools.product(*params_axes.values()))  # [()] for no Params axes
    point_params = {
        name: np.asarray(
            [point[list(params_axes).index(name)] for point in params_points]
            if name in params_axes
            else [float(np.asarray(getattr(base, name)))] * len(params_points),
            dtype=np.float64,
        )
        for name in PARAMS_FIELDS
    }
    run_params = Params(**{k: np.repeat(v, len(seeds)) for k, v in point_params.items()})
    run_seeds = np.tile(seeds, len(params_points))

    groups = []
    for combo in itertools.product(*config_axes.values()):
        changes = dict(zip(config_axes, combo, strict=True))
        groups.append(RunGroup(config.replace(**changes), changes, run_params, run_seeds))
    return groups
