"""Phase diagrams from result frames: the seed-mean of a final measurement over two swept axes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from jaxprune.results import final
from jaxprune.stats import ci_half_width

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


def label(column: str) -> str:
    """Axis label of a result column."""
    return LABELS.get(column, column)


def cell_table(last: pd.DataFrame, x: str, y: str, value: str) -> pd.DataFrame:
    """Seed-mean of `value` over final rows `last` (see `jaxprune.final`), as a (y, x) table
    with y decreasing downwards, as a phase diagram is read."""
    return last.groupby([y, x])[value].mean().unstack(x).sort_index(ascending=False)


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
    outline: str | None = None,
):
    """Draw the seed-mean of final `value` over (x, y) as an annotated heatmap.

    Grid values are shown as evenly spaced categories, so log-like grids read well; the
    caption gives the seeds per cell and the largest 95% confidence half-width. `contours`
    maps a column (a theory column, say) to levels drawn as dashed lines over the cells.
    `outline` names a boolean column (such as the theory column `in_regime`): the cells where
    it holds for every run are outlined. Returns the matplotlib Axes.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns
    from matplotlib.lines import Line2D

    last = final(frame)
    table = cell_table(last, x, y, value)
    cells = last.groupby([y, x])[value]
    runs = int(cells.size().min())
    ci = float(cells.agg(lambda v: ci_half_width(v.to_numpy())).max())  # t-based, jaxprune.stats
    if ax is None:
        width, height = max(7.0, 1.5 + 0.75 * table.shape[1]), max(4.5, 1.5 + 0.5 * table.shape[0])
        _, ax = plt.subplots(figsize=(width, height))
    accuracy = value.endswith("acc") or "_acc" in value
    sns.heatmap(
        table,
        ax=ax,
        annot=True,
        fmt=".2f",
        cmap="viridis",
        vmin=0.0 if vmin is None and accuracy else vmin,
        vmax=1.0 if vmax is None and accuracy else vmax,
        cbar_kws={"label": f"{label(value)} (mean over seeds)"},
        annot_kws={"fontsize": 8},
        xticklabels=[f"{v:g}" for v in table.columns],
        yticklabels=[f"{v:g}" for v in table.index],
    )
    ax.set_xlabel(label(x))
    ax.set_ylabel(label(y))
    heading = title or f"{label(value)} over {label(x)} x {label(y)}"
    caption = f"{runs} seeds per cell; largest 95% CI half-width of a cell mean: {ci:.3f}"
    ax.set_title(f"{heading}\n{caption}", fontsize=10)
    handles = []
    for i, (column, levels) in enumerate((contours or {}).items()):
        field = cell_table(last, x, y, column).reindex(index=table.index, columns=table.columns)
        xs, ys = np.meshgrid(np.arange(field.shape[1]) + 0.5, np.arange(field.shape[0]) + 0.5)
        color = CONTOUR_COLORS[i % len(CONTOUR_COLORS)]
        ax.contour(
            xs,
            ys,
            field.to_numpy(dtype=float),
            levels=sorted(levels),
            colors=color,
            linestyles="--",
            linewidths=2,
        )
        handles.append(
            Line2D(
                [],
                [],
                color=color,
                linestyle="--",
                linewidth=2,
                label=f"{column} = {', '.join(f'{v:g}' for v in sorted(levels))}",
            )
        )
    if outline is not None:
        from matplotlib.patches import Rectangle

        inside = cell_table(last, x, y, outline).reindex(index=table.index, columns=table.columns)
        for i, j in zip(*np.nonzero(inside.to_numpy(dtype=float) == 1.0), strict=True):
            ax.add_patch(Rectangle((j, i), 1, 1, fill=False, edgecolor="white", linewidth=2.5))
        cells = int((inside.to_numpy(dtype=float) == 1.0).sum())
        handles.append(
            Line2D(
                [],
                [],
                marker="s",
                markerfacecolor="none",
                markeredgecolor="black",
                linestyle="none",
                label=f"outlined: {outline} in every run ({cells} cells)",
            )
        )
    if handles:
        ax.legend(
            handles=handles,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.12),
            ncol=2,
            fontsize=8,
            frameon=False,
        )
    return ax


def save_phase_diagram(frame: pd.DataFrame, path, **kwargs) -> None:
    """`phase_diagram` written to an image file (PNG, PDF, ... by the path's suffix)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = phase_diagram(frame, **kwargs)
    ax.figure.tight_layout()
    ax.figure.savefig(path, dpi=150)
    plt.close(ax.figure)
