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

from jaxprune import derived as derived_lib
from jaxprune import engines
from jaxprune.config import (
    CONFIG_FIELDS,
    PARAMS_FIELDS,
    SHAPE_FIELDS,
    Config,
    Dims,
    InvalidValue,
    Params,
    check_params_values,
    normalize_config_value,
    validate_params,
)

MAX_SEED = 2**31 - 1
# Config fields a derived expression may use: the numeric ones.
NUMERIC_CONFIG_FIELDS = tuple(
    f.name
    for f in dataclasses.fields(Config)
    if f.type.split("|")[0].strip() in ("int", "float")
)
BUCKETINGS = ("auto", "one", "each")
PADDING_SLACK = 1.25


@dataclasses.dataclass(frozen=True)
class RunGroup:
    """The runs of a sweep that share one static Config.

    config: that Config (for shape fields, the bucket: the largest value of the group), with
    the engine that trains it named ('auto' resolved by `jaxprune.engines.resolve`).
    config_values: the grid's Config fields other than shape fields, and their values in this
    group. points: Params whose leaves are float64 arrays (N,), one entry per point (the
    group's shape values x the Params grid). dims: each point's own shape, Dims of int64 arrays
    (N,). shape_axes: the shape fields the grid varies (the frame's per-run columns). seeds:
    int64 array (S,). The group's runs are every (point, seed), points outermost.
    first_run: the index of the group's first run in the sweep's run order; run (point i, seed
    j) is first_run + i S + j (`run_ids`; derived, not stored: memory stays independent of the
    run count).
    variables: the grid's variables (axes that are no field, used by derived expressions),
    float64 arrays (N,), written as columns.
    """

    config: Config
    config_values: dict[str, Any]
    points: Params
    seeds: np.ndarray
    first_run: int
    dims: Dims
    shape_axes: tuple[str, ...] = ()
    variables: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    @property
    def num_points(self) -> int:
        return len(self.points.prune_frac)

    @property
    def num_runs(self) -> int:
        return self.num_points * len(self.seeds)

    def run_ids(self, points: slice, seeds: slice) -> np.ndarray:
        """The `run` column of the runs points x seeds (int64 (P S,), points outermost)."""
        point = np.arange(points.start, points.stop, dtype=np.int64)[:, None]
        seed = np.arange(seeds.start, seeds.stop, dtype=np.int64)[None, :]
        return (self.first_run + point * len(self.seeds) + seed).ravel()


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
    items = _field_values(name, items, name)
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
            raise InvalidValue(
                "seeds", seeds, "is invalid: an int seeds means range(seeds), so >= 1."
            )
        seeds = range(int(seeds))
    items = _as_list(seeds)
    if items is None:
        raise InvalidValue("seeds", seeds, "is invalid: give an int or a sequence of ints.")
    if not items:
        raise ValueError("seeds is empty: give an int >= 1 or a non-empty sequence of ints.")
    for seed in items:
        integer = isinstance(seed, numbers.Integral) and not isinstance(seed, bool)
        if not (integer and 0 <= seed <= MAX_SEED):
            raise ValueError(f"seeds contains {seed!r}: seeds must be ints in [0, {MAX_SEED}].")
    if len(set(items)) != len(items):
        raise InvalidValue("seeds", items, "is invalid: seeds must be distinct.")
    return np.asarray(items, dtype=np.int64)


def axis_fields(key: str | tuple) -> tuple[str, ...]:
    """The fields of a grid key: 'prune_frac' -> ('prune_frac',); a zipped axis, ('dim',
    'n_train') or 'dim,n_train' -> ('dim', 'n_train')."""
    names = key if isinstance(key, tuple) else str(key).split(",")
    return tuple(str(name).strip() for name in names)


def _kind(name: str) -> str:
    if name in SHAPE_FIELDS:
        return "shape"
    return "config" if name in CONFIG_FIELDS else "point"


def _zipped_values(key: str, fields: tuple[str, ...], values: Any) -> list[list]:
    """The values of a zipped axis: a non-empty sequence of distinct tuples, one value per
    field, each checked as that field's value."""
    rows = None if isinstance(values, (str, bytes, Mapping)) else values
    try:
        rows = [list(row) for row in rows]
    except TypeError:
        rows = None
    if not rows or any(len(row) != len(fields) or isinstance(row, str) for row in rows):
        raise ValueError(
            f"grid[{key!r}] = {values!r} is invalid: a zipped axis takes a non-empty sequence "
            f"of {len(fields)}-tuples, one value of {', '.join(fields)} each."
        )
    columns = [_field_values(name, [row[i] for row in rows], key) for i, name in enumerate(fields)]
    tuples = [list(t) for t in zip(*columns, strict=True)]
    if len({tuple(t) for t in tuples}) != len(tuples):
        raise ValueError(f"grid[{key!r}] = {tuples!r} is invalid: tuples must be distinct.")
    return tuples


def normalize_grid(grid: Mapping[str, Any], variables: tuple[str, ...] = ()) -> dict[str, list]:
    """The grid checked and with plain Python values: axis key -> list of distinct values. A key
    is a field (or one of `variables`, names that derived expressions use), or a zipped axis of
    several: a tuple of names or a comma-joined string ('dim,n_train'), whose values are tuples
    (lists in the result, under the comma-joined key). A zipped axis holds Params fields and
    variables, or shape fields, or other Config fields, never a mix."""
    if not isinstance(grid, Mapping):
        raise ValueError(
            f"grid must be a mapping of field name to values, got {type(grid).__name__}."
        )
    normalized, seen = {}, set()
    for key, values in grid.items():
        fields = axis_fields(key)
        for name in fields:
            if name not in CONFIG_FIELDS and name not in PARAMS_FIELDS and name not in variables:
                raise ValueError(
                    f"grid key {name!r} is no field: Params fields are "
                    f"{', '.join(PARAMS_FIELDS)}; Config fields are {', '.join(CONFIG_FIELDS)}"
                    + (f"; derived expressions use {', '.join(variables)}." if variables else ".")
                )
            if name in seen:
                raise ValueError(f"grid key {key!r} is invalid: {name} is in the grid twice.")
            seen.add(name)
        if len({_kind(name) for name in fields}) > 1:
            raise ValueError(
                f"grid key {key!r} is invalid: a zipped axis holds Params fields (and derived "
                f"expressions' variables), or shape fields ({', '.join(SHAPE_FIELDS)}), or "
                f"other Config fields, not a mix."
            )
        if len(fields) == 1:
            normalized[fields[0]] = _grid_values(fields[0], values)
        else:
            joined = ",".join(fields)
            normalized[joined] = _zipped_values(joined, fields, values)
    return normalized


def normalize_derived(derived: Any, grid: Any) -> dict[str, str]:
    """A sweep's derived expressions checked against its grid (see `jaxprune.derived`)."""
    keys = grid if isinstance(grid, Mapping) else {}
    names = tuple(name for key in keys for name in axis_fields(key))
    return derived_lib.normalize(derived, PARAMS_FIELDS, NUMERIC_CONFIG_FIELDS, names)


def variables_of(derived: dict[str, str]) -> tuple[str, ...]:
    """The names derived expressions use that are no field: the grid's variables."""
    used = [n for t, text in derived.items() for n in derived_lib.names(derived_lib.parse(t, text))]
    fields = (*CONFIG_FIELDS, *PARAMS_FIELDS)
    return tuple(dict.fromkeys(n for n in used if n not in fields))


def _variable_values(name: str, items: list) -> list:
    """The values of a grid variable (no field: a name derived expressions use): numbers."""
    for item in items:
        number = isinstance(item, numbers.Real) and not isinstance(item, bool)
        if not (number and np.isfinite(item)):
            raise ValueError(
                f"grid[{name!r}] holds {item!r}: a derived expressions' variable takes finite "
                f"numbers."
            )
    return [float(item) for item in items]


def _field_values(name: str, items: list, key: str) -> list:
    """Values of one field (or variable) checked alone; errors name the grid key."""
    if name in PARAMS_FIELDS:
        return check_params_values(name, items).tolist()
    if name in CONFIG_FIELDS:
        return [normalize_config_value(name, item) for item in items]
    return _variable_values(name, items)


def check_buckets(buckets: Any) -> str:
    """Refuse a `buckets` option that is none of BUCKETINGS."""
    if not isinstance(buckets, str) or buckets not in BUCKETINGS:
        raise ValueError(
            f"buckets = {buckets!r} is invalid: must be one of {', '.join(map(repr, BUCKETINGS))}."
        )
    return buckets


def shape_buckets(values: list, buckets: str = "auto") -> list[list]:
    """The values of one shape axis cut into buckets (each a list in the values' order), the
    buckets in order of their largest value; see the module docstring for the rule. A zipped
    shape axis's values are lists (one value per field): a run's cost is the product of its
    fields, a bucket's padded cost its number of values times the product of their maxima."""

    def cost(value) -> float:
        return float(np.prod(value))

    def padded(bucket: list) -> float:
        if not isinstance(bucket[0], list):
            return max(bucket) * len(bucket)
        return float(np.prod(np.max(np.asarray(bucket), axis=0))) * len(bucket)

    check_buckets(buckets)
    ordered = sorted(values, key=cost)
    if buckets == "each":
        return [[v] for v in ordered]
    if buckets == "one":
        return [list(values)]
    cuts: list[list] = []
    for value in ordered:
        current = cuts[-1] if cuts else None
        if current and padded([*current, value]) <= PADDING_SLACK * (
            sum(map(cost, current)) + cost(value)
        ):
            current.append(value)
        else:
            cuts.append([value])
    order = {repr(v): i for i, v in enumerate(values)}
    return [sorted(cut, key=lambda v: order[repr(v)]) for cut in cuts]


def _product_columns(axes: dict[str, list]) -> dict[str, list]:
    """The Cartesian product of axes (first key outermost) as columns, one per field: a zipped
    axis 'a,b' gives columns a and b."""
    rows = list(itertools.product(*axes.values()))  # [()] without axes
    columns: dict[str, list] = {}
    for position, key in enumerate(axes):
        fields = axis_fields(key)
        for i, name in enumerate(fields):
            columns[name] = [row[position][i] if len(fields) > 1 else row[position] for row in rows]
    return columns, len(rows)


def plan(
    config: Config,
    grid: dict[str, list],
    seeds: np.ndarray,
    base: Params | None = None,
    buckets: str = "auto",
    derived: dict[str, str] | None = None,
) -> list[RunGroup]:
    """Expand a sweep into groups of runs, one group per static Config (shape fields padded into
    buckets, see the module docstring).

    grid: as returned by `normalize_grid`; seeds: as returned by `normalize_seeds`;
    base: values of the Params fields not in the grid (default Params()); buckets: 'auto',
    'one' or 'each'; derived: Params field -> expression (see `jaxprune.derived`), computed
    for each run from its own fields (and checked like any Params value).
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
    derived = derived or {}
    trees = {target: derived_lib.parse(target, text) for target, text in derived.items()}

    kinds = {key: _kind(axis_fields(key)[0]) for key in grid}
    config_axes = {key: values for key, values in grid.items() if kinds[key] != "point"}
    point_axes = {key: values for key, values in grid.items() if kinds[key] == "point"}
    # Every combination of the grid's Config values must make a valid Config on its own.
    combos, _ = _product_columns(config_axes)
    for row in zip(*combos.values(), strict=True):
        config.replace(**dict(zip(combos, row, strict=True)))

    # Points in product order; Params fields not in the grid take the base value.
    columns, num_points = _product_columns(point_axes)
    variables = {n: np.asarray(v, np.float64) for n, v in columns.items() if n not in PARAMS_FIELDS}
    point_params = {
        name: np.asarray(columns.get(name, [getattr(base, name)] * num_points), np.float64)
        for name in PARAMS_FIELDS
    }
    # Config axes: a shape axis's values in buckets, any other axis's values one by one.
    shape_keys = [key for key in config_axes if kinds[key] == "shape"]
    shape_axes = tuple(name for key in shape_keys for name in axis_fields(key))
    axis_blocks = {}
    for key, values in config_axes.items():
        if kinds[key] != "shape":
            axis_blocks[key] = [[v] for v in values]
        elif "n_train" in axis_fields(key) and config.batch_size is not None:
            axis_blocks[key] = shape_buckets(values, "each")
        else:
            axis_blocks[key] = shape_buckets(values, buckets)

    groups = []
    for blocks in itertools.product(*axis_blocks.values()):
        block_of = dict(zip(config_axes, blocks, strict=True))
        changes = {}
        for key, block in block_of.items():
            fields = axis_fields(key)
            rows = [value if len(fields) > 1 else [value] for value in block]
            for i, name in enumerate(fields):
                changes[name] = max(r[i] for r in rows) if name in SHAPE_FIELDS else rows[0][i]
        shapes, num_shapes = _product_columns({key: block_of[key] for key in shape_keys})
        group_config = config.replace(**changes)
        # 'auto' is resolved here, once per group: the planner and the training read the name.
        group_config = group_config.replace(engine=engines.resolve(group_config).name)
        dims = Dims(
            **{
                name: np.repeat(
                    np.asarray(shapes.get(name, [getattr(group_config, name)] * num_shapes)),
                    num_points,
                ).astype(np.int64)
                for name in SHAPE_FIELDS
            }
        )
        group_points = {name: np.tile(v, num_shapes) for name, v in point_params.items()}
        group_variables = {name: np.tile(v, num_shapes) for name, v in variables.items()}
        if trees:
            group_points.update(_derive(trees, derived, group_config, group_points,
                                        group_variables, dims))  # fmt: skip
        values = {name: v for name, v in changes.items() if name not in SHAPE_FIELDS}
        first = sum(group.num_runs for group in groups)  # runs numbered in group order
        groups.append(
            RunGroup(group_config, values, Params(**group_points), seeds, first, dims,
                     shape_axes, group_variables)  # fmt: skip
        )
    return groups


def _derive(trees, derived, config: Config, points: dict, variables: dict, dims: Dims) -> dict:
    """The derived Params fields of a group's points (N,), from each point's own fields (its own
    shape, not its bucket's), checked like any Params value."""
    values = {
        name: getattr(config, name)
        for name in CONFIG_FIELDS
        if isinstance(getattr(config, name), numbers.Real)
        and not isinstance(getattr(config, name), bool)
    }
    values.update({name: getattr(dims, name).astype(np.float64) for name in SHAPE_FIELDS})
    values.update(points)
    values.update(variables)
    out = {}
    for target, tree in trees.items():
        result = np.broadcast_to(derived_lib.evaluate(tree, values), points[target].shape)
        try:
            out[target] = check_params_values(target, result).copy()
        except ValueError as bad:
            raise ValueError(f"derived[{target!r}] = {derived[target]!r} gives {bad}") from None
    return out
