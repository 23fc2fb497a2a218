"""Phase diagrams from result frames: the seed-mean of a final measurement over two swept fields,
drawn on numeric axes (seaborn's FacetGrid for facets). What is drawn is computed apart, in
`jaxprune.cells` (the cells, axes, panels and caption); this module draws it.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from jaxprune.cells import (
    Axis,
    as_fields,
    caption,
    cell_grid,
    cell_stats,
    check_choices,
    diagram_cells,
    label,
)

CONTOUR_COLORS = ("red", "deepskyblue", "magenta")
MAX_ANNOTATED_CELLS = 150  # cells per panel above which values are not written in the cells
CELL_FONT_SIZE = 7.0  # points: the value written in a cell, at most (smaller where a cell is)
CHAR_WIDTH = 0.62  # a digit's width per point of font size (DejaVu Sans)
LINE_HEIGHT = 1.25  # a line's height per point of font size


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
        means = cell_grid(panel.stats, "mean", xaxis, yaxis)
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
            inside = cell_grid(cell_stats(rows, x, y, outline), "mean", xaxis, yaxis) == 1.0
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
