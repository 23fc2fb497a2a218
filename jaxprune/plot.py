"""Phase diagrams from result frames: the seed-mean of a final measurement over two swept fields,
drawn on numeric axes.

A cell never averages silently over a field that varies in the results: every varying field is
an axis, a facet (one panel per value, seaborn's FacetGrid) or named in `mean_over`. Computing the
cells (`cell_stats`) is apart from drawing them (`phase_diagram`).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
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

CONTOUR_COLORS = ("red", "deepskyblue", "magenta")
MAX_TICKS = 12  # tick labels per axis; more grid values are labelled every k-th
MAX_ANNOTATED_CELLS = 150  # cells per panel above which values are not written in the cells
MAX_PANELS = 30  # facets beyond this are refused: put the field on an axis instead
CELL_FONT_SIZE = 7.0  # points: the value written in a cell, at most (smaller where a cell is)
CHAR_WIDTH = 0.62  # a digit's width per point of font size (DejaVu Sans)
LINE_HEIGHT = 1.25  # a line's height per point of font size
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


def _text(value) -> str:
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
        return self.coord(shown), [_text(v) for v in shown]


def _grid(stats: pd.DataFrame, column: str, xaxis: Axis, yaxis: Axis) -> np.ndarray:
    """(ny, nx) array of `column` of one panel's cell stats, NaN where a cell has no runs."""
    table = stats[column].unstack(xaxis.field)
    return table.reindex(index=yaxis.values, columns=xaxis.values).to_numpy(dtype=float)


def _draw_panel(ax, means, contour_fields, xaxis: Axis, yaxis: Axis, cmap, norm):
    """Draw one panel: cells of `means` (ny, nx) on numeric coordinates, values written in the
    cells when there are few, dashed contours of `contour_fields` ({column: ((ny, nx), levels)}).
    Returns the mesh and the cells' labels [(column, row, Text)] for `_fit_cell_labels`."""
    mesh = ax.pcolormesh(
        xaxis.edges, yaxis.edges, np.ma.masked_invalid(means), cmap=cmap, norm=norm
    )
    cx, cy = np.meshgrid(xaxis.coord(xaxis.values), yaxis.coord(yaxis.values))
    values = []  # (column, row, Text) of the values written in the cells
    if means.size <= MAX_ANNOTATED_CELLS:
        for (row, column), m in np.ndenumerate(means):
            if np.isfinite(m):
                r, g, b, _ = cmap(norm(m))
                color = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
                text = ax.text(
                    cx[row, column],
                    cy[row, column],
                    f"{m:.2f}",
                    ha="center",
                    va="center",
                    fontsize=CELL_FONT_SIZE,
                    color=color,
                )
                values.append((column, row, text))
    for i, (field, levels) in enumerate(contour_fields.values()):
        if min(field.shape) >= 2:  # a contour needs two values on each axis
            color = CONTOUR_COLORS[i % len(CONTOUR_COLORS)]
            ax.contour(
                cx,
                cy,
                np.ma.masked_invalid(field),
                levels=levels,
                colors=color,
                linestyles="--",
                linewidths=2,
            )
    for axis, set_ticks, set_label, lim in (
        (xaxis, ax.set_xticks, ax.set_xlabel, ax.set_xlim),
        (yaxis, ax.set_yticks, ax.set_ylabel, ax.set_ylim),
    ):
        coords, labels = axis.ticks()
        set_ticks(coords, labels, rotation=45 if axis is xaxis and len(coords) > 8 else 0)
        set_label(axis.title)
        lim(axis.edges[0], axis.edges[-1])
    return mesh, values


def _fit_cell_labels(ax, labels, xaxis: Axis, yaxis: Axis) -> None:
    """Size each cell's value label to its cell as the Axes is finally laid out: at most
    CELL_FONT_SIZE points, upright when that is larger (a narrow cell, such as p = 0 and 0.2 on a
    log(1 - p) axis), so that no label spills into its neighbours'. A label is centred on its
    grid value, which need not be its cell's centre: its room is twice the distance to the nearer
    edge."""
    box = ax.get_position()  # in figure fractions
    width, height = ax.figure.get_size_inches() * 72  # points

    def room(axis: Axis, length: float) -> np.ndarray:  # points, per grid value
        edges, at = axis.edges, axis.coord(axis.values)
        nearer = np.minimum(at - edges[:-1], edges[1:] - at)
        return 2 * nearer / np.ptp(edges) * length

    across, up = room(xaxis, box.width * width), room(yaxis, box.height * height)
    for column, row, text in labels:
        length = CHAR_WIDTH * len(text.get_text())  # text length per point of font size
        flat = min(CELL_FONT_SIZE, 0.9 * across[column] / length, 0.9 * up[row] / LINE_HEIGHT)
        upright = min(CELL_FONT_SIZE, 0.9 * up[row] / length, 0.9 * across[column] / LINE_HEIGHT)
        text.set_rotation(90 if upright > flat else 0)
        text.set_fontsize(max(flat, upright))


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
            last[field] = last[field].map(_text)
    xaxis, yaxis = Axis.of(x, last[x], log1mp), Axis.of(y, last[y], log1mp)
    panels = []
    for panel in [None] if facet is None else Axis.of(facet, last[facet]).values:
        rows = last if facet is None else last[last[facet] == panel]
        fields = {
            c: (_grid(cell_stats(rows, x, y, c), "mean", xaxis, yaxis), levels)
            for c, levels in contours.items()
        }
        title = None if facet is None else f"{facet} = {_text(panel)}"
        panels.append(Panel(panel, title, cell_stats(rows, x, y, value), fields))
    return last, xaxis, yaxis, panels


def phase_diagram(
    frame: pd.DataFrame,
    x: str = "prune_frac",
    y: str = "mu_norm",
    value: str = "test_acc",
    *,
    contours: Mapping[str, Sequence[float]] | None = None,
    ax=None,
    title: str | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    facet: str | None = None,
    mean_over: str | Sequence[str] | None = None,
    log1mp: bool = False,
    outline: str | None = None,
):
    """Draw the seed-mean of the final `value` over (x, y) as a heatmap on numeric axes.

    Each cell spans the midpoints to its neighbours; an axis of positive values spanning a
    factor of 100 or more is drawn on a log scale, and `log1mp` draws p = prune_frac on a
    log(1 - p) scale. Every other field that varies in `frame` must be `facet` (one panel per
    value, seaborn's FacetGrid, one colour scale) or in `mean_over` (names or a comma list:
    averaged within a seed first); otherwise this raises ValueError naming them. `contours`
    maps a column (a theory column, say) to levels drawn as dashed lines. The caption gives the
    seeds per cell, the largest 95% CI half-width and, for incomplete results, PARTIAL.
    `outline` names a boolean column (the theory column `in_regime`, say): the cells where it
    holds in every run are outlined. Returns the matplotlib Axes, or the FacetGrid with `facet`.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns
    from matplotlib.colors import Normalize
    from matplotlib.lines import Line2D

    mean_over = as_fields(mean_over)
    check_choices(
        frame,
        x,
        y,
        value,
        facet=facet,
        mean_over=mean_over,
        contours=contours,
        vmin=vmin,
        vmax=vmax,
        log1mp=log1mp,
    )
    if facet is not None and ax is not None:
        raise ValueError("ax is invalid with facet: a faceted diagram draws its own figure.")
    if outline is not None and outline not in frame.columns:
        raise ValueError(f"outline = {outline!r} is not a column of the results.")
    contours = {c: sorted(float(v) for v in levels) for c, levels in (contours or {}).items()}
    last, xaxis, yaxis, panels = diagram_cells(frame, x, y, value, facet, contours, log1mp)
    stats = pd.concat([panel.stats for panel in panels])
    if contours and (len(xaxis.values) < 2 or len(yaxis.values) < 2):
        warnings.warn("contours need two values on each axis: drawn without them", stacklevel=2)
        contours = {}
    accuracy = value.endswith("acc") or "_acc" in value
    norm = Normalize(
        vmin=(0.0 if accuracy else np.nanmin(stats["mean"])) if vmin is None else vmin,
        vmax=(1.0 if accuracy else np.nanmax(stats["mean"])) if vmax is None else vmax,
    )
    cmap = plt.get_cmap("viridis")
    cells = (len(xaxis.values), len(yaxis.values))
    size = (min(12.0, max(6.5, 2.0 + 0.7 * cells[0])), min(9.0, max(4.5, 1.5 + 0.45 * cells[1])))
    if facet is None:
        if ax is None:
            _, ax = plt.subplots(figsize=size)
        figure, target, panel_axes = ax.figure, ax, [ax]
    else:
        target = sns.FacetGrid(
            pd.DataFrame({facet: [panel.value for panel in panels]}),
            col=facet,
            col_order=[panel.value for panel in panels],
            col_wrap=min(len(panels), 3),
            height=size[1] * 0.8,
            aspect=size[0] / size[1],
        )
        figure, panel_axes = target.figure, list(target.axes.flat)
    cell_labels = []
    for axes, panel in zip(panel_axes, panels, strict=False):
        means = _grid(panel.stats, "mean", xaxis, yaxis)
        mesh, labels = _draw_panel(axes, means, panel.contours, xaxis, yaxis, cmap, norm)
        cell_labels.append((axes, labels))
        if panel.title is not None:
            axes.set_title(panel.title, fontsize=9)
    if facet is not None:
        target.set_axis_labels(xaxis.title, yaxis.title)
    figure.colorbar(mesh, ax=panel_axes, label=f"{label(value)}, cell mean")
    for axes, labels in cell_labels:  # the colour bar took its room: the cells' final sizes
        _fit_cell_labels(axes, labels, xaxis, yaxis)
    heading = title or f"{label(value)} over {label(x)} x {label(y)}"
    num_cells = len(panels) * len(xaxis.values) * len(yaxis.values)
    text = f"{heading}\n{caption(frame, stats, mean_over, last, num_cells)}"
    if facet is None:
        ax.set_title(text, fontsize=10)
    else:
        figure.suptitle(text, fontsize=10, y=1.0, va="bottom")
    handles = [
        Line2D(
            [],
            [],
            color=CONTOUR_COLORS[i % len(CONTOUR_COLORS)],
            linestyle="--",
            linewidth=2,
            label=f"{column} = {', '.join(f'{v:g}' for v in levels)}",
        )
        for i, (column, levels) in enumerate(contours.items())
    ]
    if outline is not None:
        for axes, panel in zip(panel_axes, panels, strict=False):
            rows = last if facet is None else last[last[facet] == panel.value]
            inside = _grid(cell_stats(rows, x, y, outline), "mean", xaxis, yaxis) == 1.0
            _outline_cells(axes, inside, xaxis, yaxis)
        handles.append(
            Line2D(
                [],
                [],
                marker="s",
                markerfacecolor="none",
                markeredgecolor="black",
                linestyle="none",
                label=f"outlined: {outline} in every run",
            )
        )
    if handles:  # below the panel, or below the figure's panels
        (ax if facet is None else figure).legend(
            handles=handles,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.15) if facet is None else (0.5, -0.01),
            ncol=2,
            fontsize=8,
            frameon=False,
        )
    return target


def _outline_cells(ax, inside: np.ndarray, xaxis: Axis, yaxis: Axis) -> None:
    """Outline the cells (ny, nx) where `inside` is True, in white."""
    from matplotlib.patches import Rectangle

    xe, ye = xaxis.edges, yaxis.edges
    for i, j in zip(*np.nonzero(inside), strict=True):
        ax.add_patch(
            Rectangle(
                (xe[j], ye[i]),
                xe[j + 1] - xe[j],
                ye[i + 1] - ye[i],
                fill=False,
                edgecolor="white",
                linewidth=2.5,
            )
        )


def save_phase_diagram(frame: pd.DataFrame, path, **kwargs) -> None:
    """`phase_diagram` written to an image file (PNG, PDF, ... by the path's suffix)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = phase_diagram(frame, **kwargs).figure
    figure.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(figure)
