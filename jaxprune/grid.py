"""Expand a sweep's grid and seeds into runs, grouped by static Config (one compilation each).

Everything here is host-side NumPy and validates its input completely, so a bad grid is refused
before JAX sees it. Run order: Config fields of the grid outermost (in the grid's key order),
then Params fields (in key order), then seeds innermost.
"""

from __future__ import annotations

import dataclasses
import itertools
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np

from jaxprune.config import (
    CONFIG_FIELDS,
    PARAMS_FIELDS,
    Config,
    Params,
    check_params_values,
    normalize_config_value,
    validate_params,
)

MAX_SEED = 2**31 - 1


@dataclasses.dataclass(frozen=True)
class RunGroup:
    """The runs of a sweep that share one static Config.

    config: that Config. config_values: the grid's Config fields and their values in this group.
    points: Params whose leaves are float64 arrays (N,), one entry per point of the Params grid.
    seeds: int64 array (S,). The group's runs are every (point, seed), points outermost.
    runs: int64 array (N, S): each run's index in the sweep's run order (the `run` column).
    """

    config: Config
    config_values: dict[str, Any]
    points: Params
    seeds: np.ndarray
    runs: np.ndarray

    @property
    def num_points(self) -> int:
        return len(self.points.prune_frac)

    @property
    def num_runs(self) -> int:
        return self.num_points * len(self.seeds)


def _as_list(values: Any) -> list | None:
    """A 1-d sequence of scalars (list, tuple, range, NumPy or JAX array, pandas Series) as a list
    of plain Python values; None for anything else (a string, a mapping, a scalar, nesting)."""
    if isinstance(values, (str, bytes, Mapping)):
        return None
    try:
        items = list(values)
    except TypeError:
        return None
    if any(np.ndim(item) != 0 for item in items):
        return None
    return [item.item() if hasattr(item, "item") else item for item in items]


def _grid_values(name: str, values: Any) -> list:
    """The values of one grid axis, normalized and checked: a non-empty 1-d sequence of valid,
    distinct values of the field `name`."""
    items = _as_list(values)
    if items is None:
        raise ValueError(
            f"grid[{name!r}] = {values!r} is invalid: must be a non-empty 1-d sequence of "
            f"values (a list, tuple, range or 1-d array)."
        )
    if not items:
        raise ValueError(f"grid[{name!r}] is empty: give at least one value.")
    if name in PARAMS_FIELDS:
        items = check_params_values(name, items).tolist()
    else:
        items = [normalize_config_value(name, item) for item in items]
    if len(set(items)) != len(items):
        raise ValueError(f"grid[{name!r}] = {items!r} is invalid: values must be distinct.")
    first = {}  # float32 value -> the first grid value that rounds to it
    for item in items:
        if isinstance(item, float):  # runs compute in float32: distinct there, or the same run
            key = float(np.float32(item))
            if key in first:
                raise ValueError(
                    f"grid[{name!r}] holds {first[key]!r} and {item!r}, the same float32 "
                    f"({np.float32(item)!s}), the precision runs compute in: values must be "
                    f"distinct in float32."
                )
            first[key] = item
    return items


def normalize_seeds(seeds: Any) -> np.ndarray:
    """Seeds as an int64 array (R,): an int n means range(n); a sequence must hold distinct ints
    in [0, 2**31 - 1]."""
    if isinstance(seeds, numbers.Integral) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ValueError(
                f"seeds = {seeds!r} is invalid: an int seeds means range(seeds), so >= 1."
            )
        seeds = range(int(seeds))
    items = _as_list(seeds)
    if items is None:
        raise ValueError(f"seeds = {seeds!r} is invalid: give an int or a sequence of ints.")
    if not items:
        raise ValueError("seeds is empty: give an int >= 1 or a non-empty sequence of ints.")
    for seed in items:
        integer = isinstance(seed, numbers.Integral) and not isinstance(seed, bool)
        if not (integer and 0 <= seed <= MAX_SEED):
            raise ValueError(f"seeds contains {seed!r}: seeds must be ints in [0, {MAX_SEED}].")
    if len(set(items)) != len(items):
        raise ValueError(f"seeds = {items!r} is invalid: seeds must be distinct.")
    return np.asarray(items, dtype=np.int64)


def normalize_grid(grid: Mapping[str, Any]) -> dict[str, list]:
    """The grid checked and with plain Python values: field name -> list of distinct values."""
    if not isinstance(grid, Mapping):
        raise ValueError(
            f"grid must be a mapping of field name to values, got {type(grid).__name__}."
        )
    for name in grid:
        if name not in CONFIG_FIELDS and name not in PARAMS_FIELDS:
            raise ValueError(
                f"grid key {name!r} is no field: Params fields are {', '.join(PARAMS_FIELDS)}; "
                f"Config fields are {', '.join(CONFIG_FIELDS)}."
            )
    return {name: _grid_values(name, values) for name, values in grid.items()}


def plan(
    config: Config, grid: dict[str, list], seeds: np.ndarray, base: Params | None = None
) -> list[RunGroup]:
    """Expand a sweep into groups of runs, one group per static Config.

    grid: as returned by `normalize_grid`; seeds: as returned by `normalize_seeds`;
    base: values of the Params fields not in the grid (default Params()).
    """
    if not isinstance(config, Config):
        raise ValueError(f"config must be a jaxprune.Config, got {type(config).__name__}.")
    base = validate_params(Params() if base is None else base)
    for name in PARAMS_FIELDS:
        if np.ndim(getattr(base, name)) != 0:
            raise ValueError(
                f"base.{name} = {getattr(base, name)!r} is invalid: must be a scalar; "
                f"put several values in the grid instead."
            )

    config_axes = {name: values for name, values in grid.items() if name in CONFIG_FIELDS}
    params_axes = {name: values for name, values in grid.items() if name in PARAMS_FIELDS}

    # Params points in product order; fields not in the grid take the base value.
    points = list(itertools.product(*params_axes.values()))  # [()] without Params axes
    columns = dict(zip(params_axes, zip(*points, strict=True), strict=True)) if params_axes else {}
    point_params = Params(
        **{
            name: np.asarray(columns.get(name, [getattr(base, name)] * len(points)), np.float64)
            for name in PARAMS_FIELDS
        }
    )
    groups = []
    for combo in itertools.product(*config_axes.values()):
        changes = dict(zip(config_axes, combo, strict=True))
        first = len(groups) * len(points) * len(seeds)
        runs = first + np.arange(len(points) * len(seeds), dtype=np.int64)
        groups.append(
            RunGroup(
                config.replace(**changes),
                changes,
                point_params,
                seeds,
                runs.reshape(len(points), len(seeds)),
            )
        )
    return groups
