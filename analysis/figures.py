"""The report's figures, each drawn from result frames and saved as a PNG.

Every function takes frames (or the tables of `stats`) and a path, and writes one readable figure:
labelled axes with units, legends and colour bars.

Length: the one figures module of the report (every section's figures) is longer than ~400
lines on purpose.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from jaxprune.cells import label  # noqa: E402
from jaxprune.plot import save_phase_diagram  # noqa: E402
from jaxprune.stats import grouped_mean_ci  # noqa: E402

DPI = 130


def _save(fig, path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def kou_heatmap(last: pd.DataFrame, boundary: pd.DataFrame, C: float, level: float, n: int, path):
    """Test-error heatmap over signal strength (x) and dimension (y), as in Kou et al. (2023),
    with the measured boundary (first ||mu|| whose mean error <= level, per d) and the fitted
    curve n ||mu||^4 = C d at that level."""
    table = last.groupby(["dim", "mu_norm"]).test_error.mean().unstack("mu_norm")
    mus, dims = table.columns.to_numpy(float), table.index.to_numpy(float)
    seeds = int(last.groupby(["dim", "mu_norm"]).size().min())
    dx = (mus[1] - mus[0]) / 2 if len(mus) > 1 else 0.5
    dy = (dims[1] - dims[0]) / 2 if len(dims) > 1 else 5
    fig, ax = plt.subplots(figsize=(7.5, 6))
    image = ax.imshow(
        table.to_numpy(),
        origin="lower",
        aspect="auto",
        cmap="viridis",
        vmin=0,
        vmax=0.5,
        extent=(mus[0] - dx, mus[-1] + dx, dims[0] - dy, dims[-1] + dy),
        interpolation="nearest",
    )
    fig.colorbar(image, ax=ax, label=f"test error (mean of {seeds} repeats)")
    ax.plot(
        boundary.mu_norm,
        boundary.dim,
        "o",
        color="white",
        markeredgecolor="black",
        markersize=4,
        label=f"measured boundary (mean error = {level:g})",
    )
    grid = np.linspace(max(mus[0], 1e-3), mus[-1], 400)
    curve = n * grid**4 / C
    keep = (curve >= dims[0] - dy) & (curve <= dims[-1] + dy)
    ax.plot(
        grid[keep],
        curve[keep],
        "--",
        color="red",
        linewidth=2,
        label=f"n ||mu||^4 = C d at level {level:g}, C = {C:.3g}",
    )
    ax.set_xlabel("signal strength ||mu|| (noise std sigma = 1)")
    ax.set_ylabel("dimension d")
    ax.set_title(f"Benign overfitting (kou2023 preset, n = {n}, p = 0): test error", fontsize=10)
    ax.legend(loc="upper left", fontsize=8, framealpha=0.9)
    _save(fig, path)


def _pruning_axis(ax, ps) -> None:
    """x axis for p up to 0.999: position -log10(1 - p), ticks labelled with p."""
    ps = np.asarray(sorted(set(ps)), float)
    ax.set_xticks(-np.log10(1 - ps))
    ax.set_xticklabels([f"{p:g}" for p in ps], rotation=60, fontsize=7)
    ax.set_xlabel("pruning fraction p (axis: -log10(1 - p))")


def mild_pruning(diffs: pd.DataFrame, path, *, panel: str = "sigma_init", line: str = "mu_norm"):
    """Top row: the paired difference of test accuracy to p = 0 over p, one panel per `panel`
    value, one line per `line` value, with 95% CIs (error bars). Bottom row: the seed-mean test
    accuracy itself (shared y axis), so that panels can be compared in absolute terms."""
    panels = sorted(diffs[panel].unique())
    fig, axes = plt.subplots(
        2, len(panels), figsize=(5.2 * len(panels), 7.6), squeeze=False, sharey="row"
    )
    colors = plt.cm.plasma(np.linspace(0, 0.85, diffs[line].nunique()))
    for col, value in enumerate(panels):
        top, bottom = axes[0, col], axes[1, col]
        part = diffs[diffs[panel] == value]
        for color, (level, rows) in zip(colors, part.groupby(line), strict=True):
            rows = rows.sort_values("prune_frac")
            xs = np.concatenate([[0.0], rows.prune_frac])
            ys = np.concatenate([[0.0], rows["diff"]])
            err = np.concatenate([[0.0], rows.half_width])
            name = f"{label(line)} = {level:g}"
            top.errorbar(
                xs, ys, yerr=err, marker="o", markersize=3, capsize=2, color=color, label=name
            )
            acc = np.concatenate([[rows.base.iloc[0]], rows.treated])
            bottom.plot(xs, acc, "o-", markersize=3, color=color, label=name)
        top.axhline(0, color="black", linewidth=0.8)
        top.set_ylabel("test acc(p) - test acc(0), paired by seed")
        n = int(part.n.min())
        top.set_title(f"{label(panel)} = {value:g}; {n} seeds, bars: 95% CI", fontsize=10)
        bottom.set_ylabel("test accuracy (mean over seeds)")
        bottom.set_title(f"{label(panel)} = {value:g}: absolute test accuracy", fontsize=10)
        for ax in (top, bottom):
            ax.set_xlabel("pruning fraction p")
            ax.grid(alpha=0.3)
            if col == 0:
                ax.legend(fontsize=7, loc="best")
    _save(fig, path)


def over_pruning(cells: pd.DataFrame, boundary: dict, path, *, chance: float):
    """Final training loss, test accuracy, signal_max and noise_max over p (log scale of 1 - p),
    one line per width m (seed mean with 95% CI bands); dashed verticals: the predicted p at
    which half the runs lose some class's signal (p_any_class_without_signal = 0.5)."""
    panels = [
        ("train_loss", "final training loss (cross-entropy)"),
        ("test_acc", "test accuracy"),
        ("signal_max", "signal_max (max_r <w_r, mu_k> / ||mu||)"),
        ("noise_max", "noise_max (max_r <w_r, xi> / ||xi||)"),
    ]
    widths = sorted(cells.width.unique())
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(widths)))
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.6))
    for ax, (column, title) in zip(axes, panels, strict=True):
        for color, m in zip(colors, widths, strict=True):
            rows = cells[cells.width == m].sort_values("prune_frac")
            x = -np.log10(1 - rows.prune_frac.to_numpy())
            ax.plot(x, rows[f"{column}_mean"], "o-", color=color, markersize=3, label=f"m = {m:g}")
            ax.fill_between(
                x, rows[f"{column}_low"], rows[f"{column}_high"], color=color, alpha=0.2
            )
            ax.axvline(-np.log10(1 - boundary[m]), color=color, linestyle="--", linewidth=1)
        if column == "test_acc":
            ax.axhline(chance, color="gray", linestyle=":", label="chance")
        if column == "train_loss":
            ax.set_yscale("log")
        _pruning_axis(ax, cells.prune_frac)
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8, title="width (dashed: predicted p*)", title_fontsize=8)
    fig.suptitle(
        "Over-pruning: seed means with 95% CI bands; dashed: p* where "
        "p_any_class_without_signal = 1 - (1 - p^m)^K = 0.5",
        fontsize=10,
    )
    _save(fig, path)


def dynamics(frame: pd.DataFrame, path):
    """signal_max, noise_max and test accuracy over GD steps for each p: thin lines per seed,
    thick the seed mean."""
    ps = sorted(frame.prune_frac.unique())
    colors = ["tab:blue", "tab:orange", "tab:red", "tab:green", "tab:purple"]
    panels = [
        ("signal_max", "signal_max: max_r <w_r, mu_k> / ||mu|| (feature learning)"),
        ("noise_max", "noise_max: max_r <w_r, xi> / ||xi|| (noise memorization)"),
        ("test_acc", "test accuracy"),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.4))
    for ax, (column, title) in zip(axes, panels, strict=True):
        for color, p in zip(colors, ps, strict=False):
            part = frame[frame.prune_frac == p]
            for _, run in part.groupby("seed"):
                ax.plot(run.step, run[column], color=color, alpha=0.25, linewidth=0.7)
            mean = part.groupby("step")[column].mean()
            ax.plot(mean.index, mean.to_numpy(), color=color, linewidth=2.5, label=f"p = {p:g}")
        ax.set_xlabel("GD step")
        ax.set_ylabel(title, fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, title="thin: seeds, thick: mean", title_fontsize=8)
    _save(fig, path)


def slopes(rows: pd.DataFrame, group: list[str], path):
    """Forest plot of the primary contrast per group: the paired slope of test accuracy over
    p in [0, 0.5] of the pruned runs, of their matched dense controls and the excess (pruned
    minus control), each with its 95% CI; filled markers: Holm-adjusted p <= 0.05."""
    rows = rows.sort_values(group, ascending=False).reset_index(drop=True)
    series = [
        ("slope", "pruned", "tab:blue"),
        ("control_slope", "dense control, sigma_0 sqrt(1-p)", "tab:orange"),
        ("excess", "excess: pruned - control", "tab:green"),
    ]
    series = [s for s in series if s[0] in rows]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) * len(series) / 2 + 2))
    y = np.arange(len(rows))
    for i, (name, title, color) in enumerate(series):
        offset = (i - (len(series) - 1) / 2) * 0.22
        est, low, high = rows[name], rows[f"{name}_low"], rows[f"{name}_high"]
        significant = rows[f"{name}_p_holm"] <= 0.05
        ax.errorbar(
            est, y + offset, xerr=[est - low, high - est], fmt="none", ecolor=color, capsize=2
        )
        ax.scatter(
            est,
            y + offset,
            s=22,
            zorder=3,
            label=title,
            facecolors=[color if sig else "white" for sig in significant],
            edgecolors=color,
        )
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels(
        [
            ", ".join(
                f"{label(g)} = {r[g]:g}" if not isinstance(r[g], str) else str(r[g]) for g in group
            )
            for _, r in rows.iterrows()
        ],
        fontsize=7,
    )
    ax.set_xlabel("slope of test accuracy over p in [0, 0.5], per unit p (paired by seed, 95% CI)")
    ax.set_title("Mild pruning: primary contrast; filled: Holm-adjusted p <= 0.05", fontsize=10)
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3, axis="x")
    _save(fig, path)


def phase(frame, path, *, x, y, contours, title, vmin=None):
    """A jaxprune phase diagram (seed-mean heatmap with theory contours; cells where every run
    is `in_regime` outlined). Contours need at least two values on each axis (matplotlib's
    contour raises on a 1-row field), so a grid with a single row or column is drawn without."""
    if frame[x].nunique() < 2 or frame[y].nunique() < 2:
        contours = None
    save_phase_diagram(
        frame,
        path,
        x=x,
        y=y,
        value="test_acc",
        contours=contours,
        title=title,
        vmin=vmin,
        outline="in_regime" if "in_regime" in frame else None,
    )


def boundary_collapse(e0: pd.DataFrame, curves: pd.DataFrame, band: float, path):
    """E0: left, the fraction of unpruned runs that learned against the benign score, one line
    per (d, init); then s50 against d per init scale with its 95% seed-bootstrap CI, and the
    band [s50(10^3) / band, band s50(10^3)] of the plan's pass rule per init; where e0 has it,
    the same for the post hoc s75 (the mean-accuracy boundary) in a third panel."""
    inits = sorted(e0.init.unique())
    colors = dict(zip(inits, plt.cm.tab10(np.arange(len(inits))), strict=True))
    styles = dict(zip(sorted(e0.dim.unique()), ["-", "--", ":", "-."] * 3, strict=False))
    estimators = ["s50"] + (["s75"] if "s75" in e0 and e0.s75.notna().any() else [])
    fig, axes = plt.subplots(1, 1 + len(estimators), figsize=(5.5 * (1 + len(estimators)), 4))
    left = axes[0]
    for (dim, init), group in curves.groupby(["dim", "init"]):
        group = group.sort_values("score")
        left.plot(group.score, group.learned, styles[dim], marker="o", ms=3, color=colors[init],
                  label=f"{init}, d = {dim:g}")  # fmt: skip
    left.set_xscale("log")
    left.axhline(0.5, color="grey", lw=0.8)
    left.set_xlabel("benign score n ||mu||^4 / (sigma^4 d)")
    left.set_ylabel("fraction of runs learned (test acc >= 0.75)")
    left.legend(fontsize=6, ncol=2)
    for ax, name in zip(axes[1:], estimators, strict=True):
        for init, group in e0.groupby("init"):
            group = group.sort_values("dim")
            value, low, high = group[name], group[f"{name}_low"], group[f"{name}_high"]
            ax.errorbar(group.dim, value, yerr=[value - low, high - value], marker="o",
                        capsize=3, color=colors[init], label=init)  # fmt: skip
            first = value.iloc[0]
            ax.fill_between(group.dim, first / band, first * band, color=colors[init], alpha=0.12)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("dimension d")
        ax.set_ylabel(f"{name} (95% seed-bootstrap CI)")
        title = "s50 (plan)" if name == "s50" else "s75: mean test acc = 0.75 (post hoc)"
        ax.set_title(f"{title}; shaded: within x{band:g} of d = 10^3", fontsize=9)
        ax.legend(fontsize=8, title="sigma_0 sigma sqrt(d)", title_fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
    _save(fig, path)


def boundary_shift(e1: pd.DataFrame, beta: pd.DataFrame, path):
    """E1: log s(p) - log s(0) against log(1 - p) per curve (pruned, dense control, runs with
    every class live, the width control), with the fitted beta lines and the reference slopes
    +1 and 0; left the plan's s50, right the post hoc s75 (for the curves that have it)."""
    has75 = "s75" in e1 and e1.s75.notna().any()
    fig, axes = plt.subplots(1, 2 if has75 else 1, figsize=(13 if has75 else 6.5, 4.5),
                             squeeze=False, sharey=True)  # fmt: skip
    for ax, col, tag in zip(axes[0], ("s50", "s75"), ("", " (s75, post hoc)"), strict=False):
        groups = e1.groupby(["dim", "width", "curve"])
        for i, ((dim, width, curve), group) in enumerate(groups):
            group = group.sort_values("prune_frac")
            if group[col].isna().any():
                continue
            base = group[col].iloc[0]
            x = np.log1p(-group.prune_frac)
            y = np.log(group[col] / base)
            yerr = [y - np.log(group[f"{col}_low"] / base),
                    np.log(group[f"{col}_high"] / base) - y]  # fmt: skip
            color = plt.cm.tab10(i % 10)
            ax.errorbar(x + 0.004 * i, y, yerr=yerr, marker="o", capsize=2, color=color,
                        ls="none", label=f"{curve}, d = {dim:g}, m = {width}")  # fmt: skip
            row = beta[(beta.dim == dim) & (beta.width == width) & (beta.contrast == curve + tag)]
            if len(row):
                grid = np.linspace(x.min(), 0, 10)
                ax.plot(grid, row.beta.iloc[0] * grid, color=color, lw=1)
        grid = np.linspace(np.log(0.5), 0, 10)
        ax.plot(grid, grid, "k--", lw=0.8, label="beta = +1 (bound's d -> (1-p) d)")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel("log(1 - p)")
        ax.set_title("s50 (the plan's)" if col == "s50" else "s75 (post hoc)", fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("log s(p) - log s(0)  (CI per point, not adjusted)")
    _save(fig, path)


def boundary_overprune(e2: pd.DataFrame, thresholds: pd.DataFrame, path):
    """E2: per (d, m), the fraction of runs that learned and of runs with training accuracy 1
    over p, the learned fraction among runs whose every class keeps a live signal neuron (with
    its simultaneous CI); dashed: fitted p*, dotted: p_run and p_live."""
    groups = list(e2.groupby(["dim", "width"]))
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 3.8), squeeze=False)
    for ax, ((dim, width), cell) in zip(axes[0], groups, strict=True):
        cell = cell.sort_values("prune_frac")
        ax.plot(cell.prune_frac, cell.learned, "o-", label="learned (all runs)")
        ax.plot(cell.prune_frac, cell.fit, "s:", label="training accuracy 1")
        ax.errorbar(cell.prune_frac, cell.learned_live, yerr=[
            cell.learned_live - cell.learned_live_low, cell.learned_live_high - cell.learned_live],
            marker="^", capsize=2, ls="--", label="learned, every class live")  # fmt: skip
        ax.plot(cell.prune_frac, cell.test_acc, "x-", color="grey", label="mean test accuracy")
        t = thresholds[(thresholds.dim == dim) & (thresholds.width == width)].iloc[0]
        if np.isfinite(t.p_star):
            ax.axvline(t.p_star, color="k", ls="--", lw=0.8)
        ax.axvline(t.p_run, color="tab:red", ls=":", lw=1)
        ax.axvline(t.p_live, color="tab:purple", ls=":", lw=1)
        ax.set_title(f"d = {dim:g}, m = {width}; red: p_run, purple: p_live", fontsize=9)
        ax.set_xlabel("pruning fraction p")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("fraction of runs / accuracy")
    axes[0][0].legend(fontsize=7)
    _save(fig, path)


# The superseded regime section (sweeps/theory_regime.py): seaborn grids.
def _save_grid(grid: sns.FacetGrid, path) -> None:
    """Save a seaborn grid (120 dpi, tight), decades only on log axes."""
    for ax in grid.axes.flat:
        if ax.get_xscale() == "log":  # label the decades only: minor labels collide
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    grid.figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(grid.figure)


def _errorbars(data, x, y, low, high, color=None, label=None, **_):
    data = data.sort_values(x)
    yerr = [data[y] - data[low], data[high] - data[y]]
    plt.errorbar(data[x], data[y], yerr=yerr, color=color, label=label, marker="o", ms=3, capsize=2)


def regime_mild(mild: pd.DataFrame, path) -> None:
    """Paired differences over p: to p = 0, to the matched-init control, of the control alone."""
    contrasts = (
        ("prune", "pruned - dense"),
        ("control", "pruned - init control"),
        ("init", "init control - dense"),
    )
    long = pd.concat(
        mild.assign(
            contrast=label,
            diff=mild[f"diff_{name}"],
            low=mild[f"{name}_low"],
            high=mild[f"{name}_high"],
        )
        for name, label in contrasts
    )
    grid = sns.FacetGrid(
        long, col="dim", row="contrast", hue="score", height=2.2, aspect=1.3,
        margin_titles=True, palette="viridis",
    )  # fmt: skip
    grid.map_dataframe(_errorbars, x="prune_frac", y="diff", low="low", high="high")
    grid.refline(y=0, color="grey", lw=0.8)
    grid.set_titles(row_template="{row_name}", col_template="d = {col_name}")
    grid.set_axis_labels("pruning fraction p", "test accuracy difference")
    grid.add_legend(title="benign score")
    _save_grid(grid, path)


def regime_threshold(classes: pd.DataFrame, threshold: pd.DataFrame, path) -> None:
    """Fraction of classes that learned over p, by whether the class keeps a live signal
    neuron; dashed: the fitted p* of all classes; dotted: the mask-and-signs prediction."""
    frame = classes.assign(
        keeps=np.where(classes.signal_neurons_live >= 1, "keeps >= 1 live", "keeps no live")
    )
    grid = sns.FacetGrid(frame, col="dim", hue="keeps", height=2.6, aspect=1.2)
    grid.map_dataframe(sns.lineplot, x="prune_frac", y="learned", marker="o", errorbar=None)
    grid.set_axis_labels("pruning fraction p", "fraction of classes learned")
    grid.set_titles(col_template="d = {col_name}")
    for ax, dim in zip(grid.axes.flat, grid.col_names, strict=True):
        row = threshold[(threshold.dim == dim) & (threshold.condition == "all classes")].iloc[0]
        if np.isfinite(row.p_star):
            ax.axvline(row.p_star, color="k", ls="--", lw=0.8)
        ax.axvline(row.p_live, color="grey", ls=":", lw=0.8)
    grid.add_legend(title="signal neurons")
    _save_grid(grid, path)


def regime_collapse(unpruned: pd.DataFrame, path) -> None:
    """Unpruned test accuracy (mean and t interval over seeds, `jaxprune.stats`) against the
    benign score, without and with a log d factor."""
    cells = grouped_mean_ci(unpruned.test_acc, [unpruned.dim, unpruned.score]).reset_index()
    cells = cells.assign(
        low=cells["mean"] - cells.half_width, high=cells["mean"] + cells.half_width
    )
    long = pd.concat(
        [
            cells.assign(variable="n mu^4 / (sigma^4 d)", x=cells.score),
            cells.assign(variable="n mu^4 / (sigma^4 d log d)", x=cells.score / np.log(cells.dim)),
        ]
    )
    grid = sns.FacetGrid(
        long, col="variable", hue="dim", height=3, aspect=1.2, sharex=False, palette="viridis"
    )
    grid.map_dataframe(_errorbars, x="x", y="mean", low="low", high="high")
    grid.set(xscale="log")
    grid.set_axis_labels("", "test accuracy (p = 0)")
    grid.set_titles("{col_name}")
    grid.add_legend(title="d")
    _save_grid(grid, path)


def regime_coefficients(coefficients: pd.DataFrame, path) -> None:
    """gamma and rho over steps, as multiples of the predicted linear growth."""
    long = pd.concat(
        [
            coefficients.assign(coefficient="gamma / (eta t / m)", ratio=coefficients.gamma_ratio),
            coefficients.assign(
                coefficient="rho / (eta (1-p) t / (n m))", ratio=coefficients.rho_ratio
            ),
        ]
    )
    grid = sns.FacetGrid(
        long, col="prune_frac", row="coefficient", hue="dim", height=2.4, aspect=1.2,
        sharey="row", margin_titles=True, palette="viridis",
    )  # fmt: skip
    grid.map_dataframe(sns.lineplot, x="step", y="ratio", marker="o", errorbar=None)
    grid.set(xscale="log")
    grid.set_titles(row_template="{row_name}", col_template="p = {col_name}")
    grid.set_axis_labels("GD step t", "measured / predicted")
    grid.add_legend(title="d")
    _save_grid(grid, path)
