"""The pruning-criteria report: REPORT/criteria.md and its figures from `sweeps/criteria.py`.

    python analysis/criteria_report.py RESULTS [--report DIR]

RESULTS holds one sweep per criterion (subdirectories with a `_sweep.json`) and the script's
run.json. `compute` makes the numbers (criterion x p x ||mu||: test accuracy with t-based 95%
CIs from `jaxprune.stats`, signal_neurons, noise_max; per criterion the largest p up to which
it keeps the signal and holds its accuracy; the GraSP diagnosis of `analysis.grasp`);
`render` writes the markdown and figures from them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd

import jaxprune
from analysis import grasp
from jaxprune.stats import grouped_mean_ci

METRICS = ("test_acc", "signal_neurons", "noise_max", "train_acc")
# A criterion "keeps the signal" at p when the seed-mean of signal_neurons is at least this:
# on average at least one neuron per class keeps its class's signal coordinate.
KEEP_SIGNAL = 1.0
# It "holds its accuracy" at p when the seed-mean test accuracy is within this of its p = 0 value.
ACC_DROP = 0.05
GRASP_SEEDS = 16  # seeds of the GraSP diagnosis (initialization only, seconds)


@dataclasses.dataclass(frozen=True)
class CriteriaResult:
    """summary: per (criterion, mu_norm, prune_frac): seeds and, per metric, its mean and
    METRIC_ci (t-based 95% half-width). verdicts: per (criterion, mu_norm): p_signal,
    p_accuracy, acc_p0, acc_at_p_accuracy. grasp: the GraSP diagnosis (None when the sweep has
    no GraSP). config, run: the sweeps' Config and run record."""

    summary: pd.DataFrame
    verdicts: pd.DataFrame
    grasp: grasp.GraspDiagnosis | None
    config: dict
    run: dict


def load_criteria(results: Path) -> pd.DataFrame:
    """The final rows of every criterion's runs, with columns `criterion`, `mask`, `mask_scope`."""
    frames = []
    for spec in sorted(Path(results).glob("*/_sweep.json")):
        last = jaxprune.final(jaxprune.load(spec.parent))
        config = last.attrs["config"]
        mask, scope = config["mask"], config["mask_scope"]
        name = mask if mask in ("bernoulli", "structured") else f"{mask}/{scope}"
        frames.append(last.assign(criterion=name, mask=mask, mask_scope=scope))
    if not frames:
        raise FileNotFoundError(f"{results} holds no criterion sweeps (*/_sweep.json).")
    frame = pd.concat(frames, ignore_index=True)
    frame.attrs = dict(frames[0].attrs)
    return frame


def summarize(last: pd.DataFrame) -> pd.DataFrame:
    """One row per (criterion, mu_norm, prune_frac): seeds, and mean and CI of each metric."""
    keys = ["criterion", "mu_norm", "prune_frac"]
    parts = []
    for metric in METRICS:
        cells = grouped_mean_ci(last[metric], [last[k] for k in keys])
        parts.append(cells[["mean", "half_width"]].set_axis([metric, f"{metric}_ci"], axis=1))
    summary = pd.concat(parts, axis=1)
    summary.insert(0, "seeds", last.groupby(keys).size())
    return summary.reset_index()


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
        p_acc = largest_p_where(cells, cells.test_acc >= base - ACC_DROP)
        rows.append(
            {
                "criterion": criterion,
                "mu_norm": mu,
                "p_signal": largest_p_where(cells, cells.signal_neurons >= KEEP_SIGNAL),
                "p_accuracy": p_acc,
                "acc_p0": base,
                "acc_at_p_accuracy": cells.set_index("prune_frac").test_acc.get(p_acc, np.nan),
            }
        )
    return pd.DataFrame(rows)


def compute(results: Path, *, grasp_seeds: int = GRASP_SEEDS) -> CriteriaResult:
    results = Path(results)
    last = load_criteria(results)
    summary = summarize(last)
    config = last.attrs["config"]
    diagnosis = None
    if last["mask"].eq("grasp").any():
        cfg = jaxprune.Config(**{**config, "mask": "grasp", "loss_tol": config["loss_tol"]})
        params = jaxprune.Params(**last.attrs["base"])
        diagnosis = grasp.compute(
            cfg,
            params,
            grasp_seeds,
            prune_frac=0.5,
            mu_norms=tuple(sorted(last.mu_norm.unique())),
            test_acc=summary,
        )
    run_file = results / "run.json"
    return CriteriaResult(
        summary=summary,
        verdicts=verdicts(summary),
        grasp=diagnosis,
        config=config,
        run=json.loads(run_file.read_text()) if run_file.exists() else {},
    )


def metric_table(summary: pd.DataFrame, metric: str, mu: float, digits: int = 2) -> str:
    """Markdown table of `metric` (mean ± 95% CI half-width) at one mu_norm: criteria x p."""
    cells = summary[summary.mu_norm == mu].copy()
    cells["cell"] = [
        f"{m:.{digits}f} ± {c:.{digits}f}" if np.isfinite(c) else f"{m:.{digits}f}"
        for m, c in zip(cells[metric], cells[f"{metric}_ci"], strict=True)
    ]
    table = cells.pivot(index="criterion", columns="prune_frac", values="cell")
    table.columns = [f"p = {p:g}" for p in table.columns]
    return table.to_markdown()


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
            ax.errorbar(
                x,
                rows[metric],
                yerr=rows[f"{metric}_ci"],
                label=criterion,
                color=colors(i % 10),
                linestyle="--" if criterion.endswith("/layer") else "-",
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
    axes[0].set_ylabel(f"{metric} (mean ± t-based 95% CI)")
    axes[-1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _verdict_lines(table: pd.DataFrame, width: int) -> list[str]:
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


def render(result: CriteriaResult, report: Path) -> str:
    """The report's markdown; its three figures are written into `report`."""
    summary, config, run = result.summary, result.config, result.run
    width = config["width"]
    figures = {
        "test_acc": "criteria_test_acc.png",
        "signal_neurons": "criteria_signal_neurons.png",
        "noise_max": "criteria_noise_max.png",
    }
    for metric, name in figures.items():
        reference = (lambda p: (1 - p) * width) if metric == "signal_neurons" else None
        plot_metric(summary, metric, report / name, reference)
    mus = sorted(summary.mu_norm.unique())
    size = run.get("size", "unknown")
    invocations = run.get("invocations", [])
    commands = "; ".join(
        f"`{i['command']}` ({i.get('wall_s', float('nan')):.0f} s on "
        f"{i.get('hardware', {}).get('cpu', '?')}, {i.get('hardware', {}).get('cpu_count', '?')} "
        f"cores, JAX {i.get('hardware', {}).get('jax_version', '?')} "
        f"{i.get('hardware', {}).get('backend', '?')})"
        for i in invocations
    )
    table = result.verdicts.pivot(
        index="criterion", columns="mu_norm", values=["p_signal", "p_accuracy"]
    )
    table.columns = [f"{name} (mu={mu:g})" for name, mu in table.columns]
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
        f"Commands: {commands or 'unknown'} (sweeps, including compilation).",
        "",
        f"Model: the yang2023 preset — K = {config['num_classes']}, P = "
        f"{config['num_patches']}, d = {config['dim']}, m = {width}, n = {config['n_train']}, "
        f"n_test = {config['n_test']}, {config['steps']} full-batch GD steps, orthogonal "
        "1-sparse signals with noise orthogonal to them; SynFlow with "
        f"{config['synflow_rounds']} rounds. {int(summary.seeds.min())} seeds per cell; ± is a "
        "t-based 95% CI half-width over seeds (`jaxprune.stats`). Runs of one seed share "
        "data, initialization and mask uniforms across p, ||mu|| and criteria.",
        "",
        "Criteria: `bernoulli` (random, the paper's), `structured` (random whole neurons), and "
        "magnitude |w0|, SNIP |w0 dL/dw|, GraSP (removes the largest -w0 Hg) and SynFlow "
        "(iterative, data-free), each ranking within every neuron (`/neuron`: round(p d) "
        "removed per neuron) or over the whole layer (`/layer`). With ReLU, SynFlow is "
        "magnitude pruning exactly (its objective is linear in |w| here), so their rows "
        "coincide. The initial weights are i.i.d., so magnitude's (and SynFlow's) "
        "`signal_neurons` equals random pruning's in expectation. `structured` removes "
        "round(p K m) neurons, all of them once p K m >= K m - 0.5.",
        "",
        "## Verdict",
        "",
        f"Rules: a criterion *keeps the signal* at p when the seed-mean of `signal_neurons` is "
        f">= {KEEP_SIGNAL:g}; *up to p* means at that p and every smaller p of the grid. "
        f"Random pruning keeps (1 - p) m = {width} (1 - p) on average. It *holds its accuracy* "
        f"up to p when the mean test accuracy stays within {ACC_DROP:g} of its p = 0 value. "
        "Keeping signal neurons is not enough: a kept signal weight must also be live (see "
        "'GraSP, explained').",
        "",
        *_verdict_lines(result.verdicts, width),
        "",
        table.to_markdown(),
    ]
    if result.grasp is not None:
        lines += ["", grasp.render(result.grasp)]
    sections = [
        ("Test accuracy", "test_acc", 2),
        ("signal_neurons: neurons per class keeping the signal coordinate", "signal_neurons", 1),
        ("noise_max: noise memorization", "noise_max", 3),
    ]
    for title, metric, digits in sections:
        lines += ["", f"## {title}", "", f"![{metric}]({figures[metric]})", ""]
        for mu in mus:
            lines += [f"||mu|| = {mu:g}:", "", metric_table(summary, metric, mu, digits), ""]
    return "\n".join(lines).rstrip() + "\n"


def write_report(results: Path, report: Path) -> Path:
    """Compute and render REPORT/criteria.md and its figures from the sweeps under `results`."""
    report = Path(report)
    report.mkdir(parents=True, exist_ok=True)
    path = report / "criteria.md"
    path.write_text(render(compute(results), report))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", help="the --out directory of sweeps/criteria.py")
    parser.add_argument("--report", default="report", help="report directory (default report/)")
    args = parser.parse_args()
    print(write_report(Path(args.results), Path(args.report)))


if __name__ == "__main__":
    main()
