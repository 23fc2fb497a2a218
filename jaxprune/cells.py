"""What a phase diagram shows, computed (`jaxprune.plot` draws it): the fields a result frame
sweeps, the refusal of a diagram that would average silently over a varying field, the cells'
seed means with their CIs, the axes' values and scales, one Panel per facet and the caption.

A cell never averages silently over a field that varies in the results: every varying field is
an axis, a facet (one panel per value) or named in `mean_over`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from jaxprune.config import InvalidValue, Option
from jaxprune.results import final, run_id_columns
from jaxprune.stats import LEVEL, ci_half_width

LABELS = {
    "prune_frac": "pruning fraction p",
    "mu_norm": "signal strength ||mu||",
    "sigma_noise": "noise std sigma",
    "sigma_init": "init std sigma_0",
    "lr": "learning rate",
    "label_flip": "label-flip probability",
    "dim": "dimension d",
    "width": "width m (neurons per class)",
    "n_train": "training samples n",
    "num_classes": "classes K",
    "test_acc": "test accuracy",
    "test_acc_clean": "test accuracy (true labels)",
    "train_acc": "training accuracy",
    "train_loss": "training loss",
    "test_loss": "test loss",
}

MAX_TICKS = 12  # tick labels per axis; more grid values are labelled every k-th
MAX_PANELS = 30  # facets beyond this are refused: put the field on an axis instead
LOG_SPAN = 100.0  # a positive axis whose values span this factor or more is drawn on a log scale


def label(column: str) -> str:
    """Axis label of a result column."""
    return LABELS.get(column, column)


def swept_fields(frame: pd.DataFrame) -> list[str]:
    """The Params and Config fields of a result frame: what a sweep's grid can vary (not the
    seed or the run index)."""
    return [c for c in run_id_columns(frame) if c not in ("run", "seed")]


def varying_fields(frame: pd.DataFrame) -> dict[str, int]:
    """The swept fields that take several values in `frame`, with their number of values."""
    counts = {c: frame[c].nunique(dropna=False) for c in swept_fields(frame)}
    return {c: n for c, n in counts.items() if n > 1}


def as_fields(fields: str | Sequence[str] | None) -> tuple[str, ...]:
    """Field names from None, one name, a comma-separated list, or a sequence of those."""
    if fields is None:
        return ()
    items = [fields] if isinstance(fields, str) else list(fields)
    return tuple(dict.fromkeys(f.strip() for item in items for f in str(item).split(",") if f))


def check_choices(
    frame: pd.DataFrame,
    x: str,
    y: str,
    value: str,
    *,
    facet: str | None = None,
    mean_over: Sequence[str] = (),
    contours: Mapping[str, Sequence[float]] | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    log1mp: bool = False,
) -> None:
    """Refuse a phase diagram of `frame` that names unknown columns or would average silently
    over a field that varies and is on no axis (ValueError naming the fields and the remedy)."""
    fields = swept_fields(frame)
    identity = {*run_id_columns(frame), "seed", "step", "time", "run"}  # time: lr x step
    measured = [  # numbers, and flags such as `diverged` (a cell shows their fraction)
        c for c in frame.columns if c not in identity and pd.api.types.is_numeric_dtype(frame[c])
    ]
    for name, field in (("x", x), ("y", y)):
        if field not in fields:
            raise InvalidValue(
                name, field,
                f"is not a swept field of the results: choose one of {', '.join(fields)}.",
            )  # fmt: skip
    if x == y:
        raise InvalidValue("x", x, "is invalid: it equals {0}; the axes must be two fields.",
                           Option("y"))  # fmt: skip
    if value not in measured:
        raise InvalidValue(
            "value", value,
            f"is not a measurement in the results: choose one of {', '.join(measured)}.",
        )  # fmt: skip
    named = ([("facet", facet)] if facet is not None else []) + [
        ("mean_over", f) for f in mean_over
    ]
    for name, field in named:
        if field not in fields:
            raise InvalidValue(
                name, field,
                f"is not a swept field of the results: choose one of {', '.join(fields)}.",
            )  # fmt: skip
        if field in (x, y) or (name == "mean_over" and field == facet):
            raise InvalidValue(name, field, f"is invalid: {field} is drawn already.")
    if facet in fields and frame[facet].nunique(dropna=False) > MAX_PANELS:
        raise InvalidValue(
            "facet", facet,
            f"is invalid: it takes {frame[facet].nunique(dropna=False)} values, more panels "
            f"than {MAX_PANELS}; put it on an axis or average over it.",
        )  # fmt: skip
    for column, levels in (contours or {}).items():
        if column not in measured:
            raise ValueError(
                f"contour column {column!r} is not a measurement in the results: choose one of "
                f"{', '.join(measured)}."
            )
        if not levels or not all(_finite_number(v) for v in levels):
            raise ValueError(f"contour levels of {column!r} = {levels!r}: give finite numbers.")
    for name, bound in (("vmin", vmin), ("vmax", vmax)):
        if bound is not None and not _finite_number(bound):
            raise InvalidValue(name, bound, "is invalid: must be a finite number.")
    if vmin is not None and vmax is not None and vmin >= vmax:
        raise InvalidValue("vmin", vmin, f"is invalid: must be below {{0}} ({vmax!r}).",
                           Option("vmax"))  # fmt: skip
    if log1mp and "prune_frac" not in (x, y):
        raise InvalidValue("log1mp", True, "is invalid: prune_frac is on no axis.")
    pooled = {f: n for f, n in varying_fields(frame).items() if f not in (x, y, facet, *mean_over)}
    if pooled:
        raise _pooling_error(pooled, facet, mean_over)


def _pooling_error(
    pooled: dict[str, int], facet: str | None, mean_over: Sequence[str]
) -> InvalidValue:
    """The refusal to average silently over the fields `pooled` (name -> number of values)."""
    names = list(pooled)
    described = [f"{f} ({pooled[f]} values)" for f in names]
    several = len(names) > 1
    listed = f"{', '.join(described[:-1])} and {described[-1]}" if several else described[0]
    them, verb, be = ("them", "vary", "are") if several else ("it", "varies", "is")
    options = [Option("mean_over", ",".join([*mean_over, *names]))]
    remedies = ["{0} to average on purpose"]
    if facet is None:
        options.append(Option("facet", names[0], verb=""))
        rest = ""
        if several:
            options.append(Option("mean_over", ",".join([*mean_over, *names[1:]]), verb=""))
            rest = " (with {2})"
        remedies.append("{1}" + rest + " for one panel per value")
    return InvalidValue(
        None,
        None,
        f"{listed} {verb} in the results but {be} on no axis, so each cell would average over "
        f"{them}: {', '.join(remedies)}, or put {them} on an axis.",
        *options,
    )


def _numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def _finite_number(value) -> bool:
    return (
        isinstance(value, (int, float, np.number))
        and not isinstance(value, bool)
        and (math.isfinite(value))
    )


def cell_stats(last: pd.DataFrame, x: str, y: str, value: str) -> pd.DataFrame:
    """Per cell (y, x) of final rows `last` (see `jaxprune.final`): the mean of `value`
    over seeds, the half-width of its t-based 95% CI (`jaxprune.stats`) and the seeds n.
    Runs that share a seed within a cell (the fields of `mean_over`) are averaged first, so
    the CI is over seeds, paired across them."""
    per_seed = last.groupby([y, x, "seed"], sort=False)[value].mean().unstack("seed")
    values = per_seed.to_numpy(dtype=float)  # (cells, seeds), NaN where a seed lacks the cell
    half_width = ci_half_width(values, axis=1, level=LEVEL)  # NaN for a one-seed cell
    return pd.DataFrame(
        {
            "mean": np.nanmean(values, axis=1),
            "half_width": half_width,
            "n": np.isfinite(values).sum(1),
        },
        index=per_seed.index,
    )


def value_text(value) -> str:
    """A grid value as a tick or panel label."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "None"  # an optional Config field left unset (NaN once read from parquet)
    number = isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_))
    return f"{value:g}" if number else str(value)


@dataclasses.dataclass(frozen=True)
class Axis:
    """The grid values of `field` and where they are drawn. Numbers are sorted and drawn at
    coordinates of `scale` ("linear", "log": log10 v, "log1m": -log10(1 - v)); other values
    (options, booleans, None) are categories in run order ("category": positions 0, 1, ...).
    Each cell spans the midpoints to its neighbours."""

    field: str
    values: np.ndarray
    scale: str

    @staticmethod
    def of(field: str, column: pd.Series, log1mp: bool = False) -> Axis:
        if not (_numeric(column) and column.notna().all()):
            return Axis(field, np.asarray(pd.unique(column), dtype=object), "category")
        values = np.unique(column.to_numpy(dtype=float))
        if log1mp and field == "prune_frac":
            scale = "log1m"
        elif values[0] > 0 and values[-1] / values[0] >= LOG_SPAN:
            scale = "log"
        else:
            scale = "linear"
        return Axis(field, values, scale)

    def coord(self, values) -> np.ndarray:
        if self.scale == "category":
            return pd.Index(self.values).get_indexer(list(values)).astype(float)
        v = np.asarray(values, dtype=float)
        if self.scale == "log":
            return np.log10(v)
        return -np.log10(1.0 - v) if self.scale == "log1m" else v

    @property
    def edges(self) -> np.ndarray:
        """(len(values) + 1,) cell edges in coordinates: midpoints between neighbours, the ends
        half a neighbouring gap out (half a unit for a single value)."""
        c = self.coord(self.values)
        if len(c) == 1:
            return np.array([c[0] - 0.5, c[0] + 0.5])
        mid = (c[1:] + c[:-1]) / 2
        return np.concatenate([[2 * c[0] - mid[0]], mid, [2 * c[-1] - mid[-1]]])

    @property
    def title(self) -> str:
        suffix = {"log": " (log scale)", "log1m": " (log scale of 1 - p)"}
        return label(self.field) + suffix.get(self.scale, "")

    def ticks(self) -> tuple[np.ndarray, list[str]]:
        """Tick coordinates and labels: the grid values, every k-th when there are many."""
        shown = self.values[:: math.ceil(len(self.values) / MAX_TICKS)]
        return self.coord(shown), [value_text(v) for v in shown]


def cell_grid(stats: pd.DataFrame, column: str, xaxis: Axis, yaxis: Axis) -> np.ndarray:
    """(ny, nx) array of `column` of one panel's cell stats, NaN where a cell has no runs."""
    table = stats[column].unstack(xaxis.field)
    return table.reindex(index=yaxis.values, columns=xaxis.values).to_numpy(dtype=float)


def caption(
    frame: pd.DataFrame,
    stats: pd.DataFrame,
    mean_over: Sequence[str],
    last: pd.DataFrame,
    num_cells: int,
) -> str:
    """Seeds per cell, what a cell averages, the largest 95% CI half-width, the empty cells of
    `num_cells`, and PARTIAL with the run counts when `frame.attrs` says the results are
    incomplete (runs_present < runs_total)."""
    low, high = int(stats.n.min()), int(stats.n.max())
    seeds = (
        f"{low}-{high} seeds per cell" if low < high else f"{low} seed{'s' * (low > 1)} per cell"
    )
    if mean_over:
        counts = " x ".join(f"{last[f].nunique()} {f}" for f in mean_over)
        seeds += f", each the mean over {counts}"
    half = stats.half_width.to_numpy(dtype=float)
    ci = (
        f"largest {LEVEL:.0%} CI half-width of a cell mean: {np.nanmax(half):.3f}"
        if np.isfinite(half).any()
        else "no CI (one seed per cell)"
    )
    parts = [seeds, ci]
    if len(stats) < num_cells:
        parts.append(f"{num_cells - len(stats)} of {num_cells} cells empty")
    present, total = frame.attrs.get("runs_present"), frame.attrs.get("runs_total")
    if present is not None and total is not None and present < total:
        parts.insert(0, f"PARTIAL: {present} of {total} runs")
    return "; ".join(parts)


@dataclasses.dataclass(frozen=True)
class Panel:
    """One panel of a phase diagram: its facet `value` and `title` (None without facets), the
    `stats` of its cells (`cell_stats`) and its contour fields {column: ((ny, nx) cell means,
    levels)}."""

    value: object
    title: str | None
    stats: pd.DataFrame
    contours: dict


def diagram_cells(
    frame: pd.DataFrame,
    x: str,
    y: str,
    value: str,
    facet: str | None,
    contours: Mapping[str, list[float]],
    log1mp: bool = False,
) -> tuple[pd.DataFrame, Axis, Axis, list[Panel]]:
    """What a phase diagram draws, computed: the final rows (options, booleans and None as
    labels), the two axes and one Panel per facet value (one Panel without `facet`)."""
    last = final(frame)
    for field in (x, y, facet):  # options, booleans, None: compared and shown as their labels
        if field is not None and Axis.of(field, last[field]).scale == "category":
            last[field] = last[field].map(value_text)
    xaxis, yaxis = Axis.of(x, last[x], log1mp), Axis.of(y, last[y], log1mp)
    panels = []
    for panel in [None] if facet is None else Axis.of(facet, last[facet]).values:
        rows = last if facet is None else last[last[facet] == panel]
        fields = {
            c: (cell_grid(cell_stats(rows, x, y, c), "mean", xaxis, yaxis), levels)
            for c, levels in contours.items()
        }
        title = None if facet is None else f"{facet} = {value_text(panel)}"
        panels.append(Panel(panel, title, cell_stats(rows, x, y, value), fields))
    return last, xaxis, yaxis, panels
