"""The pruning-criteria report: REPORT/criteria.md and its figures from `sweeps/criteria.py`.

    python analysis/criteria_report.py RESULTS [--report DIR]

RESULTS holds one sweep per criterion (subdirectories with a `_sweep.json`). The report gives,
by criterion x p x ||mu||, the final test accuracy with its 95% CI, `signal_neurons` (neurons
per class whose mask keeps the class's signal coordinate) and `noise_max` (noise
memorization), and a verdict computed from the data: up to which p each criterion keeps the
signal coordinate, and up to which p it holds its test accuracy.

The small statistics helpers are here (self-contained): a cell's mean and its normal-
approximation 95% CI half-width (1.96 standard errors over seeds), and the verdict rules.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

import jaxprune

RUN_FILE = "_criteria.json"
METRICS = ("test_acc", "signal_neurons", "noise_max", "train_acc")
Z95 = 1.96
# A criterion "keeps the signal" at p when the seed-mean of signal_neurons is at least this:
# on average at least one neuron per class keeps its class's signal coordinate.
KEEP_SIGNAL = 1.0
# It "holds its accuracy" at p when the seed-mean test accuracy is within this of its p = 0 value.
ACC_DROP = 0.05


def mean_ci(values: pd.Series) -> tuple[float, float]:
    """Mean and normal-approximation 95% CI half-width (1.96 SEM) of one cell's seed values."""
    values = values.to_numpy(dtype=np.float64)
    if len(values) < 2:
        return float(values.mean()), float("nan")
    return float(values.mean()), float(Z95 * values.std(ddof=1) / np.sqrt(len(values)))


def load_criteria(results: Path) -> pd.DataFrame:
    """The final rows of every criterion's runs, with columns `criterion`, `mask`, `mask_scope`."""
    frames = []
    for spec in sorted(results.glob("*/_sweep.json")):
        last = jaxprune.final(jaxprune.load(spec.parent))
        config = last.attrs["config"]
        mask, scope = config["mask"], config["mask_scope"]
        name = mask if mask in ("bernoulli", "structured") else f"{mask}/{scope}"
        frames.append(last.assign(criterion=name, mask=mask, mask_scope=scope))
    if not frames:
        raise FileNotFoundError(f"{results} holds no criterion sweeps (*/_sweep.json).")
    frame = pd.concat(frames, ignore_index=True)
    frame.attrs = {"config": frames[0].attrs["config"], **frames[0].attrs}
    return frame


def summarize(last: pd.DataFrame) -> pd.DataFrame:
    """One row per (criterion, mu_norm, prune_frac): seeds, and mean and CI of each metric."""
    rows = []
    keys = ["criterion", "mu_norm", "prune_frac"]
    for key, cell in last.groupby(keys, sort=False):
        row = dict(zip(keys, key, strict=True), seeds=len(cell))
        for metric in METRICS:
            row[metric], row[f"{metric}_ci"] = mean_ci(cell[metric])
        rows.append(row)
    return pd.DataFrame(rows).sort_values(keys, kind="stable").reset_index(drop=True)


def largest_p_where(cells: pd.DataFrame, ok: pd.Series) -> float:
    """The largest p of `cells` (one criterion and mu_norm, sorted by p) such that `ok` holds at
    it and at every smaller p; NaN when it fails already at the smallest."""
    failing = ~ok.to_numpy()
    upto = np.argmax(failing) if failing.any() else len(failing)
    return float(cells.prune_frac.iloc[upto - 1]) if upto else float("nan")


def verdicts(summary: pd.DataFrame) -> pd.DataFrame:
    """Per (criterion, mu_norm): p_signal, the largest p up to which signal_neurons >= 1 on
    average, and p_accuracy, the largest p up to which the test accuracy is within ACC_DROP of
    its p = 0 value (with the accuracies there)."""
    rows = []
    for (criterion, mu), cells in summary.groupby(["criterion", "mu_norm"], sort=False):
        cells = cells.sort_values("prune_frac")
        base = cells.test_acc.iloc[0]
        p_signal = largest_p_where(cells, cells.signal_neurons >= KEEP_SIGNAL)
        p_acc = largest_p_where(cells, cells.test_acc >= base - ACC_DROP)
        rows.append(
            {
                "criterion": criterion,
                "mu_norm": mu,
                "p_signal": p_signal,
                "p_accuracy": p_acc,
                "acc_p0": base,
                "acc_at_p_accuracy": cells.set_index("prune_frac").test_acc.get(p_acc, np.nan),
            }
        )
    return pd.DataFrame(rows)


def _cell(mean: float, ci: float, digits: int = 2) -> str:
    return f"{mean:.{digits}f} ± {ci:.{digits}f}" if np.isfinite(ci) else f"{mean:.{digits}f}"


def metric_table(summary: pd.DataFrame, metric: str, mu: float, digits: int = 2) -> str:
    """Markdown table of `metric` (mean ± 95% CI) at one mu_norm: criteria x p."""
    cells = summary[summary.mu_norm == mu]
    fracs = sorted(cells.prune_frac.unique())
    lines = [
        "| criterion | " + " | ".join(f"p = {p:g}" for p in fracs) + " |",
        "|---|" + "---|" * len(fracs),
    ]
    for criterion, rows in cells.groupby("criterion", sort=False):
        rows = rows.set_index("prune_frac")
        values = [_cell(rows.at[p, metric], rows.at[p, f"{metric}_ci"], digits) for p in fracs]
        lines.append(f"| {criterion} | " + " | ".join(values) + " |")
    return "\n".join(lines)


def plot_metric(summary: pd.DataFrame, metric: str, path: Path, reference=None) -> None:
    """One panel per mu_norm: `metric` (mean, 95% CI bars) against p for every criterion, on
    evenly spaced p categories; `reference(p)` is drawn dashed when given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mus = sorted(summary.mu_norm.unique())
    fracs = sorted(summary.prune_frac.unique())
    position = {p: i for i, p in enumerate(fracs)}
    fig, axes = plt.subplots(1, len(mus), figsize=(4.2 * len(mus), 3.8), sharey=True)
    axes = np.atleast_1d(axes)
    criteria = list(dict.fromkeys(summary.criterion))
    colors = plt.get_cmap("tab10")
    for ax, mu in zip(axes, mus, strict=True):
        for i, criterion in enumerate(criteria):
            rows = summary[(summary.mu_norm == mu) & (summary.criterion == criterion)]
            rows = rows.sort_values("prune_frac")
            x = rows.prune_frac.map(position) + 0.04 * (i - len(criteria) / 2)
            style = "--" if criterion.endswith("/layer") else "-"
            ax.errorbar(
                x,
                rows[metric],
                yerr=rows[f"{metric}_ci"],
                label=criterion,
                color=colors(i % 10),
                linestyle=style,
                marker="o",
                markersize=3,
                capsize=2,
                linewidth=1,
            )
        if reference is not None:
            ax.plot(range(len(fracs)), [reference(p) for p in fracs], "k:", label="random (1-p)m")
        ax.set_xticks(range(len(fracs)), [f"{p:g}" for p in fracs])
        ax.set_xlabel("pruning fraction p")
        ax.set_title(f"||mu|| = {mu:g}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"{metric} (mean ± 95% CI)")
    axes[-1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _verdict_text(table: pd.DataFrame, width: int) -> list[str]:
    """Sentences, one per criterion, from the verdict table."""
    lines = []
    for criterion, rows in table.groupby("criterion", sort=False):
        worst, best = rows.p_signal.min(), rows.p_signal.max()
        keep = (
            f"keeps the signal coordinate (signal_neurons >= {KEEP_SIGNAL:g} of m = {width}) "
            + (
                "at no p of the grid for some ||mu||"
                if np.isnan(worst)
                else f"up to p = {worst:g} at every ||mu||"
            )
            + (f" (up to p = {best:g} at some)" if best != worst and np.isfinite(best) else "")
        )
        accuracy = ", ".join(
            f"||mu|| = {r.mu_norm:g}: p <= {r.p_accuracy:g} ({r.acc_p0:.2f} at p = 0, "
            f"{r.acc_at_p_accuracy:.2f} there)"
            for r in rows.itertuples()
        )
        lines.append(
            f"- **{criterion}** {keep}; test accuracy within {ACC_DROP:g} of p = 0 for {accuracy}."
        )
    return lines


def write_report(results: Path, report: Path) -> Path:
    """Write report/criteria.md and its three figures from the sweeps under `results`."""
    results, report = Path(results), Path(report)
    report.mkdir(parents=True, exist_ok=True)
    last = load_criteria(results)
    summary = summarize(last)
    table = verdicts(summary)
    config = last.attrs["config"]
    width = config["width"]
    run_file = results / RUN_FILE
    run = json.loads(run_file.read_text()) if run_file.exists() else {}
    figures = {
        "test_acc": "criteria_test_acc.png",
        "signal_neurons": "criteria_signal_neurons.png",
        "noise_max": "criteria_noise_max.png",
    }
    plot_metric(summary, "test_acc", report / figures["test_acc"])
    plot_metric(
        summary,
        "signal_neurons",
        report / figures["signal_neurons"],
        reference=lambda p: (1 - p) * width,
    )
    plot_metric(summary, "noise_max", report / figures["noise_max"])

    mus = sorted(summary.mu_norm.unique())
    seeds = int(summary.seeds.min())
    size = run.get("size", "unknown")
    lines = [
        "# Pruning criteria in the paper's model",
        "",
        f"Size: **{size}**"
        + (
            " (a reduced grid: few seeds per cell, so the CIs are wide; the full run is "
            "`python sweeps/criteria.py`)."
            if size != "full"
            else "."
        ),
        f"Command: `{run.get('command', '?')}`; wall time {run.get('wall_s', float('nan')):.0f} s "
        f"(sweeps, including compilation; the report is extra) on {run.get('hardware', '?')}.",
        "",
        f"Model: the yang2023 preset — K = {config['num_classes']}, P = {config['num_patches']}, "
        f"d = {config['dim']}, m = {width}, n = {config['n_train']}, n_test = "
        f"{config['n_test']}, {config['steps']} full-batch GD steps, orthogonal 1-sparse signals "
        f"with noise orthogonal to them; SynFlow with {config['synflow_rounds']} rounds. "
        f"{seeds} seeds per cell; ± is a 95% CI half-width (1.96 standard errors over seeds). "
        "Runs of one seed share data, initialization and mask uniforms across p, ||mu|| and "
        "criteria.",
        "",
        "Criteria: `bernoulli` (random, the paper's), `structured` (random whole neurons), and "
        "magnitude |w0|, SNIP |w0 dL/dw|, GraSP (removes the largest -w0 Hg) and SynFlow "
        "(iterative, data-free), each ranking within every neuron (`/neuron`: round(p d) "
        "removed per neuron) or over the whole layer (`/layer`). With ReLU, SynFlow is magnitude "
        "pruning exactly (its objective is linear in |w| here), so their rows coincide. The "
        "initial weights are i.i.d., so magnitude's (and SynFlow's) `signal_neurons` equals "
        "random pruning's in expectation: a difference between them is seed noise. `structured` "
        "removes round(p K m) neurons, all of them once p K m >= K m - 0.5.",
        "",
        "## Verdict",
        "",
        f"Rules: a criterion *keeps the signal* at p when the seed-mean of `signal_neurons` is "
        f">= {KEEP_SIGNAL:g} (at least one neuron per class keeps its signal coordinate, on "
        f"average); *up to p* means at that p and every smaller p of the grid. Random pruning "
        f"keeps (1 - p) m = {width} (1 - p) on average. It *holds its accuracy* up to p when the "
        f"mean test accuracy stays within {ACC_DROP:g} of its p = 0 value.",
        "",
        *_verdict_text(table, width),
        "",
        "| criterion | "
        + " | ".join(f"p_signal (mu={m:g})" for m in mus)
        + " | "
        + " | ".join(f"p_accuracy (mu={m:g})" for m in mus)
        + " |",
        "|---|" + "---|" * (2 * len(mus)),
    ]
    for criterion, rows in table.groupby("criterion", sort=False):
        rows = rows.set_index("mu_norm")
        cells = [f"{rows.at[m, 'p_signal']:g}" for m in mus]
        cells += [f"{rows.at[m, 'p_accuracy']:g}" for m in mus]
        lines.append(f"| {criterion} | " + " | ".join(cells) + " |")
    sections = [
        ("Test accuracy", "test_acc", 2),
        ("signal_neurons: neurons per class keeping the signal coordinate", "signal_neurons", 1),
        ("noise_max: noise memorization", "noise_max", 3),
    ]
    for title, metric, digits in sections:
        lines += ["", f"## {title}", "", f"![{metric}]({figures[metric]})", ""]
        for mu in mus:
            lines += [f"||mu|| = {mu:g}:", "", metric_table(summary, metric, mu, digits), ""]
    path = report / "criteria.md"
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", help="the --out directory of sweeps/criteria.py")
    parser.add_argument("--report", default="report", help="report directory (default report/)")
    args = parser.parse_args()
    print(write_report(Path(args.results), Path(args.report)))


if __name__ == "__main__":
    main()
