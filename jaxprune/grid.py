"""Expand a sweep's grid and seeds into runs, grouped by static Config (one compilation each).

Everything here is host-side NumPy and validates its input completely, so a bad grid is refused
before JAX sees it. Run order: groups in the order of the grid's Config fields (outermost, in
the grid's key order); in a group, its shape values (in key order), then Params fields (in key
order), then seeds innermost.

Shape buckets. The shape fields (`dim`, `width`, `n_train`, `n_test`) do not each need their
own compilation: runs of different shapes share a group whose Config holds the largest shape
(the bucket) and carry their own shape as traced ints (`config.Dims`); their padding is masked
so that a run equals the same run trained alone at its own shape (see `training`). The values
of each shape field are cut into buckets by `shape_buckets`: with buckets='auto' (default),
greedily over the sorted values, a bucket grows while its padded cost (its largest value times
its number of values) stays within PADDING_SLACK (25%) of its unpadded cost (the sum of its
values): the cost of a run is linear in each shape field, so for a grid over one shape field
the padded FLOPs of every bucket are within 25% of its runs' own. With several shape fields
each is bucketed on its own (the product of their slacks bounds the waste). buckets='one' puts
all values of a field in one bucket, 'each' gives every value its own (one compilation per
value, as without buckets). With Config.batch_size set, n_train is never bucketed (every value
its own): the minibatches are drawn from all n_train samples.
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
    SHAPE_FIELDS,
    Config,
    Dims,
    Params,
    check_params_values,
    normalize_config_value,
    validate_params,
)

MAX_SEED = 2**31 - 1
BUCKETINGS = ("auto", "one", "each")
PADDING_SLACK = 1.25


@dataclasses.dataclass(frozen=True)
class RunGroup:
    """The runs of a sweep that share one static Config.

    config: that Config (for shape fields, the bucket: the largest value of the group).
    config_values: the grid's Config fields other than shape fields, and their values in this
    group. points: Params whose leaves are float64 arrays (N,), one entry per point (the
    group's shape values x the Params grid). dims: each point's own shape, Dims of int64 arrays
    (N,). shape_axes: the shape fields the grid varies (the frame's per-run columns). seeds:
    int64 array (S,). The group's runs are every (point, seed), points outermost.
    runs: int64 array (N, S): each run's index in the sweep's run order (the `run` column).
    """

    config: Config
    config_values: dict[str, Any]
    points: Params
    seeds: np.ndarray
    runs: np.ndarray
    dims: Dims
    shape_axes: tuple[str, ...] = ()

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


def check_buckets(buckets: Any) -> str:
    """Refuse a `buckets` option that is none of BUCKETINGS."""
    if not isinstance(buckets, str) or buckets not in BUCKETINGS:
        raise ValueError(
            f"buckets = {buckets!r} is invalid: must be one of {', '.join(map(repr, BUCKETINGS))}."
        )
    return buckets


def shape_buckets(values: list[int], buckets: str = "auto") -> list[list[int]]:
    """The values of one shape field cut into buckets (each a list in the values' order), the
    buckets in order of their largest value; see the module docstring for the rule."""
    check_buckets(buckets)
    if buckets == "each":
        return [[v] for v in sorted(values)]
    if buckets == "one":
        return [list(values)]
    cuts: list[list[int]] = []
    for value in sorted(values):
        current = cuts[-1] if cuts else None
        if current and value * (len(current) + 1) <= PADDING_SLACK * (sum(current) + value):
            current.append(value)
        else:
            cuts.append([value])
    order = {v: i for i, v in enumerate(values)}
    return [sorted(cut, key=order.__getitem__) for cut in cuts]


def plan(
    config: Config,
    grid: dict[str, list],
    seeds: np.ndarray,
    base: Params | None = None,
    buckets: str = "auto",
) -> list[RunGroup]:
    """Expand a sweep into groups of runs, one group per static Config (shape fields padded into
    buckets, see the module docstring).

    grid: as returned by `normalize_grid`; seeds: as returned by `normalize_seeds`;
    base: values of the Params fields not in the grid (default Params()); buckets: 'auto',
    'one' or 'each'.
    """
    if not isinstance(config, Config):
        raise ValueError(f"config must be a jaxprune.Config, got {type(config).__name__}.")
    check_buckets(buckets)
    base = validate_params(Params() if base is None else base)
    for name in PARAMS_FIELDS:
        if np.ndim(getattr(base, name)) != 0:
            raise ValueError(
                f"base.{name} = {getattr(base, name)!r} is invalid: must be a scalar; "
                f"put several values in the grid instead."
            )

    config_axes = {name: values for name, values in grid.items() if name in CONFIG_FIELDS}
    params_axes = {name: values for name, values in grid.items() if name in PARAMS_FIELDS}
    # Every combination of the grid's Config values must make a valid Config on its own.
    for combo in itertools.product(*config_axes.values()):
        config.replace(**dict(zip(config_axes, combo, strict=True)))

    # Params points in product order; fields not in the grid take the base value.
    points = list(itertools.product(*params_axes.values()))  # [()] without Params axes
    columns = dict(zip(params_axes, zip(*points, strict=True), strict=True)) if params_axes else {}
    point_params = {
        name: np.asarray(columns.get(name, [getattr(base, name)] * len(points)), np.float64)
        for name in PARAMS_FIELDS
    }
    # Config axes: a shape field's values in buckets, any other field's values one by one.
    shape_axes = tuple(name for name in config_axes if name in SHAPE_FIELDS)
    axis_blocks = {}
    for name, values in config_axes.items():
        if name not in SHAPE_FIELDS:
            axis_blocks[name] = [[v] for v in values]
        elif name == "n_train" and config.batch_size is not None:
            axis_blocks[name] = shape_buckets(values, "each")
        else:
            axis_blocks[name] = shape_buckets(values, buckets)

    groups = []
    for blocks in itertools.product(*axis_blocks.values()):
        block_of = dict(zip(config_axes, blocks, strict=True))
        changes = {name: max(block) if name in SHAPE_FIELDS else block[0]
                   for name, block in block_of.items()}  # fmt: skip
        shapes = list(itertools.product(*(block_of[name] for name in shape_axes)))
        own = {name: [dict(zip(shape_axes, s, strict=True))[name] for s in shapes]
               for name in shape_axes}  # fmt: skip
        group_config = config.replace(**changes)
        dims = Dims(
            **{
                name: np.repeat(
                    np.asarray(own.get(name, [getattr(group_config, name)] * len(shapes))),
                    len(points),
                ).astype(np.int64)
                for name in SHAPE_FIELDS
            }
        )
        group_points = Params(**{name: np.tile(v, len(shapes)) for name, v in point_params.items()})
        values = {name: v for name, v in changes.items() if name not in SHAPE_FIELDS}
        first = sum(group.num_runs for group in groups)  # runs numbered in group order
        runs = first + np.arange(len(shapes) * len(points) * len(seeds), dtype=np.int64)
        runs = runs.reshape(len(shapes) * len(points), len(seeds))
        groups.append(RunGroup(group_config, values, group_points, seeds, runs, dims, shape_axes))
    return groups
