"""The regime section from `sweeps/regime_boundary.py`: E0, E1 and E2 of report/plan.md.

    result = compute("results/regime_boundary-quick")   # BoundaryResult: numbers and verdicts
    text = render(result, "report")                     # markdown; figures saved there

    PYTHONPATH=. python -m analysis.boundary DIR [--out FOLDER] [--n-boot N]

`compute` reads the sweeps, `live.parquet` and `run.json` and computes every number with the
statistics of `analysis.stats` (logistic thresholds, whole-seed bootstrap replicates, percentile
CIs); `render` formats them and draws the figures of `analysis.figures`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

import jaxprune
from analysis import figures
from analysis.stats import (
    LEVEL,
    Verdict,
    fit_logistic_threshold,
    percentile_ci,
    rising_x50,
    seed_weights,
    threshold_replicates,
)
from sweeps.common import invocation_table

LEARNED = 0.75  # a run has learned when its test accuracy is >= this (plan)
BAND = 1.5  # E0: s50(d) within a factor 1.5 of s50(10^3)
CHANCE = 0.5
FIGURES = {"collapse": "boundary_collapse.png", "shift": "boundary_shift.png",
           "over": "boundary_overprune.png"}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class BoundaryResult:
    """e0: per (d, init): s50 with its bootstrap CI, the ratio to d = 10^3 with its simultaneous
    CI, runs at the step cap; e0_curves: per (d, init, score): fraction learned; e0_verdicts: per
    init, the plan's verdict; horizon: s50 at loss 0.01 against 0.1. e1: per (d, m, curve, p):
    s50; e1_beta: per (d, m, contrast): beta with its CI. e2: per (d, m, p): fitted fraction, test
    accuracy with its upper bound, learned fractions (all runs, runs with every class live);
    e2_threshold: per (d, m): p* of all runs and the predictions. verdicts: the report's table
    rows. setting, runs: what the text quotes; plan_commit: the plan's commit."""

    setting: dict
    e0: pd.DataFrame
    e0_curves: pd.DataFrame
    e0_verdicts: dict
    horizon: pd.DataFrame
    e1: pd.DataFrame
    e1_beta: pd.DataFrame
    e2: pd.DataFrame
    e2_threshold: pd.DataFrame
    verdicts: list[Verdict]
    runs: pd.DataFrame


def _final(directory: Path, key: str) -> pd.DataFrame:
    return jaxprune.final(jaxprune.load(directory / key))


def _outcomes(frame: pd.DataFrame, column: str, values) -> tuple[np.ndarray, np.ndarray]:
    """(seeds, learned (seeds, len(values))) of `frame` at each value of `column` (NaN where a
    run is missing or excluded)."""
    learned = frame.assign(learned=(frame.test_acc >= LEARNED).astype(float))
    learned.loc[frame.test_acc.isna(), "learned"] = np.nan
    wide = learned.pivot_table(index="seed", columns=column, values="learned", aggfunc="first")
    wide = wide.reindex(columns=values)
    return wide.index.to_numpy(), wide.to_numpy(dtype=float)


def _threshold(x, outcomes, weights) -> tuple[float, np.ndarray]:
    """Point log-threshold of a cell and its replicates under `weights`."""
    finite = np.isfinite(outcomes)
    point = rising_x50(
        fit_logistic_threshold(x, np.nansum(outcomes, 0), trials=finite.sum(0))
    )
    return point, threshold_replicates(x, outcomes, weights)


def _ci(replicates, level):
    low, high = percentile_ci(replicates, level)
    return float(low), float(high)


def _e0(directory: Path, record: dict, n_boot: int):
    rows, curves, logs = [], [], {}
    keys = sorted((k for k in record["sweeps"] if k.startswith("e0-d")),
                  key=lambda k: record["sweeps"][k]["dim"])  # fmt: skip
    for key in keys:
        meta = record["sweeps"][key]
        last, dim = _final(directory, key), meta["dim"]
        score_of = dict(zip(meta["mus"], meta["scores"], strict=True))
        x = np.log(meta["scores"])
        seeds = np.sort(last.seed.unique())
        weights = seed_weights(len(seeds), n_boot, seed=dim)  # per d: independent draws
        for label, sigma in meta["inits"].items():
            cell = last[np.isclose(last.sigma_init, sigma, rtol=1e-6)]
            _, out = _outcomes(cell, "mu_norm", meta["mus"])
            point, reps = _threshold(x, out, weights)
            logs[(dim, label)] = (point, reps)
            rows.append(dict(dim=dim, init=label, init_scale=meta["scales"][label],
                             seeds=len(seeds), s50=math.exp(point) if np.isfinite(point) else np.nan,
                             s50_low=math.exp(_ci(reps, LEVEL)[0]), s50_high=math.exp(_ci(reps, LEVEL)[1]),
                             undefined=float(np.isnan(reps).mean()),
                             capped=float((cell.converged_step < 0).mean())))  # fmt: skip
            for mu, group in cell.groupby("mu_norm"):
                curves.append(dict(dim=dim, init=label, score=score_of[mu],
                                   learned=float((group.test_acc >= LEARNED).mean())))  # fmt: skip
    e0 = pd.DataFrame(rows)
    first = e0.dim.min()
    ratios, verdicts = [], {}
    for label, group in e0.groupby("init"):
        if (first, label) not in logs:
            continue
        others = group[group.dim > first]
        level = 1 - (1 - LEVEL) / max(len(others), 1)  # Bonferroni over the d > 10^3
        inside, outside = [], []
        for dim in group.dim:
            point = logs[(dim, label)][0] - logs[(first, label)][0]
            reps = logs[(dim, label)][1] - logs[(first, label)][1]
            low, high = _ci(reps, level)
            ratios.append(dict(dim=dim, init=label, ratio=math.exp(point),
                               ratio_low=math.exp(low), ratio_high=math.exp(high), level=level))  # fmt: skip
            if dim > first:
                inside.append(math.log(1 / BAND) <= low and high <= math.log(BAND))
                outside.append(high < math.log(1 / BAND) or low > math.log(BAND))
        verdicts[label] = (
            "holds" if inside and all(inside) else "fails" if any(outside) else "not shown"
        )
    e0 = e0.merge(pd.DataFrame(ratios), on=["dim", "init"], how="left")
    return e0, pd.DataFrame(curves), verdicts, logs


def _horizon(directory: Path, record: dict, logs: dict, n_boot: int) -> pd.DataFrame:
    rows = []
    for key, meta in record["sweeps"].items():
        if not key.startswith("h-d") or not (directory / key).exists():
            continue
        (label, sigma), dim = next(iter(meta["inits"].items())), meta["dim"]
        last = _final(directory, key)
        _, out = _outcomes(last, "mu_norm", meta["mus"])
        weights = seed_weights(out.shape[0], n_boot, seed=dim + 1)
        point, reps = _threshold(np.log(meta["scores"]), out, weights)
        base, base_reps = logs[(dim, label)]
        low, high = _ci(reps - base_reps, LEVEL)
        rows.append(dict(dim=dim, init=label, seeds=out.shape[0], s50_loss_001=math.exp(point),
                         s50_loss_01=math.exp(base), ratio=math.exp(point - base),
                         ratio_low=math.exp(low), ratio_high=math.exp(high),
                         capped=float((last.converged_step < 0).mean())))  # fmt: skip
    return pd.DataFrame(rows)


def _live_all(live: pd.DataFrame, experiment: str) -> pd.DataFrame:
    """Per run (dim, width, prune_frac, seed): whether every class keeps a live signal neuron."""
    runs = live[live.experiment == experiment]
    return (runs.groupby(["dim", "width", "prune_frac", "seed"]).live.min() >= 1).rename(
        "all_live").reset_index()  # fmt: skip


def _beta(logs: dict, ps) -> tuple[float, np.ndarray]:
    """beta = sum x y / sum x^2 with x = log(1 - p), y = log s50(p) - log s50(0), p > 0."""
    x = np.log1p(-np.asarray([p for p in ps if p > 0]))
    point = np.array([logs[p][0] - logs[0.0][0] for p in ps if p > 0])
    reps = np.stack([logs[p][1] - logs[0.0][1] for p in ps if p > 0], axis=-1)
    return float(point @ x / (x @ x)), reps @ x / (x @ x)


def _e1(directory: Path, record: dict, live: pd.DataFrame, n_boot: int):
    sweeps = {k: m for k, m in record["sweeps"].items() if m.get("experiment") == "E1"}
    pruned = {k: m for k, m in sweeps.items() if m.get("role") == "pruned"}
    level = 1 - (1 - LEVEL) / max(len(pruned), 1)  # Bonferroni over the d's
    live_runs = _live_all(live, "E1") if len(live) else pd.DataFrame()
    cells, betas = [], []
    for key, meta in pruned.items():
        dim, x, mus = meta["dim"], np.log(meta["scores"]), meta["mus"]
        last = _final(directory, key)
        control = _final(directory, f"{key}-control")
        ps = sorted(last.prune_frac.unique())
        seeds = np.sort(last.seed.unique())
        weights = seed_weights(len(seeds), n_boot, seed=dim + 2)  # one resample for every p

        def curve(frame, name, width=meta["width"], w=weights):
            logs = {}
            for p, cell in frame.groupby("prune_frac"):
                _, out = _outcomes(cell, "mu_norm", mus)
                logs[p] = _threshold(x, out, w)
                low, high = _ci(logs[p][1], level)
                cells.append(dict(dim=dim, width=width, curve=name, prune_frac=p,
                                  s50=math.exp(logs[p][0]), s50_low=math.exp(low),
                                  s50_high=math.exp(high),
                                  capped=float((cell.converged_step < 0).mean())))  # fmt: skip
            return logs

        sigma0 = meta["sigma_init"]
        dense = [last[last.prune_frac == 0]]
        for p in meta.get("control_p", record["sweeps"][f"{key}-control"]["control_p"]):
            shrunk = round(sigma0 * math.sqrt(1 - p), 12)
            dense.append(control[np.isclose(control.sigma_init, shrunk, rtol=1e-6)]
                         .assign(prune_frac=p))  # fmt: skip
        tagged = last.assign(dim=dim, width=meta["width"])
        conditioned = (
            tagged.merge(live_runs, on=["dim", "width", "prune_frac", "seed"], how="left")
            if len(live_runs) else tagged.assign(all_live=True)
        )  # fmt: skip
        kept = conditioned.assign(test_acc=conditioned.test_acc.where(conditioned.all_live == True))  # noqa: E712
        logs = {
            "pruned": curve(last, "pruned"),
            "dense at sigma_0 sqrt(1-p)": curve(pd.concat(dense), "dense at sigma_0 sqrt(1-p)"),
            "pruned, every class live": curve(kept, "pruned, every class live"),
        }
        beta = {name: _beta(lg, ps) for name, lg in logs.items()}
        beta["pruned - dense control"] = (
            beta["pruned"][0] - beta["dense at sigma_0 sqrt(1-p)"][0],
            beta["pruned"][1] - beta["dense at sigma_0 sqrt(1-p)"][1],
        )
        excluded = float((conditioned.all_live != True).mean())  # noqa: E712
        for name, (point, reps) in beta.items():
            low, high = _ci(reps, level)
            betas.append(dict(dim=dim, width=meta["width"], contrast=name, beta=point,
                              low=low, high=high, level=level, seeds=len(seeds),
                              undefined=float(np.isnan(reps).mean()),
                              excluded=excluded if "live" in name else 0.0))  # fmt: skip
        wide_key = next((k for k, m in sweeps.items() if m.get("role") == "width control"
                         and m["dim"] == dim and (directory / k).exists()), None)  # fmt: skip
        if wide_key:
            wide = _final(directory, wide_key)
            wseeds = np.sort(wide.seed.unique())
            w = seed_weights(len(wseeds), n_boot, seed=dim + 3)
            narrow = curve(last[last.seed.isin(wseeds)], "pruned (width-control seeds)", w=w)
            wide_logs = curve(wide, "pruned", width=sweeps[wide_key]["width"], w=w)
            bw, bn = _beta(wide_logs, ps), _beta(narrow, ps)
            for name, (point, reps) in ((f"width {sweeps[wide_key]['width']}", bw),
                                        (f"width {sweeps[wide_key]['width']} - width {meta['width']}",
                                         (bw[0] - bn[0], bw[1] - bn[1]))):  # fmt: skip
                low, high = _ci(reps, level)
                betas.append(dict(dim=dim, width=sweeps[wide_key]["width"], contrast=name,
                                  beta=point, low=low, high=high, level=level, seeds=len(wseeds),
                                  undefined=float(np.isnan(reps).mean()), excluded=0.0))  # fmt: skip
    return pd.DataFrame(cells), pd.DataFrame(betas)


def p_for_q(width: int, q: float) -> float:
    """The p at which a given class keeps no live signal neuron with probability q."""
    return 2 * q ** (1 / width) - 1


def _e2(directory: Path, record: dict, live: pd.DataFrame, n_boot: int):
    sweeps = {k: m for k, m in record["sweeps"].items()
              if m.get("experiment") == "E2" and (directory / k).exists()}  # fmt: skip
    groups = sorted({(m["dim"], m["width"]) for m in sweeps.values()})
    live_runs = _live_all(live, "E2") if len(live) else pd.DataFrame()
    cells, thresholds = [], []
    for dim, width in groups:
        keys = [k for k, m in sweeps.items() if (m["dim"], m["width"]) == (dim, width)]
        last = pd.concat([_final(directory, k).assign(dim=dim, width=width) for k in keys])
        last = last.merge(live_runs, on=["dim", "width", "prune_frac", "seed"], how="left")
        ps = np.sort(last.prune_frac.unique())
        seeds = np.sort(last.seed.unique())
        weights = seed_weights(len(seeds), n_boot, seed=dim + width)
        level = 1 - (1 - LEVEL) / len(ps)  # Bonferroni over the p's of this (d, m)
        acc = last.pivot_table(index="seed", columns="prune_frac", values="test_acc")
        acc = acc.reindex(index=seeds, columns=ps)
        means = (weights @ np.nan_to_num(acc.to_numpy())) / weights.sum(1, keepdims=True)
        upper = np.percentile(means, 100 * level, axis=0)  # one-sided
        live_acc = last.assign(ok=(last.test_acc >= LEARNED).astype(float).where(last.all_live == True))  # noqa: E712
        live_tab = live_acc.pivot_table(index="seed", columns="prune_frac", values="ok", dropna=False)
        live_tab = live_tab.reindex(index=seeds, columns=ps)
        finite = np.isfinite(live_tab.to_numpy())
        k = weights @ np.nan_to_num(live_tab.to_numpy())
        n = weights @ finite
        with np.errstate(invalid="ignore", divide="ignore"):
            frac_low, frac_high = percentile_ci(k / n, level)
        for i, p in enumerate(ps):
            cell = last[last.prune_frac == p]
            cells.append(dict(dim=dim, width=width, prune_frac=p, runs=len(cell),
                              fit=float((cell.train_acc >= 1).mean()),
                              capped=float((cell.converged_step < 0).mean()),
                              test_acc=float(cell.test_acc.mean()), test_acc_upper=float(upper[i]),
                              learned=float((cell.test_acc >= LEARNED).mean()),
                              all_live=float((cell.all_live == True).mean()),  # noqa: E712
                              learned_live=float(live_tab[p].mean()),
                              learned_live_low=float(frac_low[i]),
                              learned_live_high=float(frac_high[i])))  # fmt: skip
        x = np.log1p(-ps)
        _, out = _outcomes(last, "prune_frac", list(ps))
        point, reps = _threshold(x, out, weights)
        t_level = 1 - (1 - LEVEL) / len(groups)  # Bonferroni over the (d, m) pairs
        low, high = _ci(reps, t_level)
        thresholds.append(dict(dim=dim, width=width, p_star=1 - math.exp(point),
                               p_low=1 - math.exp(high), p_high=1 - math.exp(low), level=t_level,
                               p_run=p_for_q(width, 1 - 1 / math.sqrt(2)),
                               p_live=p_for_q(width, 0.5), seeds=len(seeds)))  # fmt: skip
    return pd.DataFrame(cells), pd.DataFrame(thresholds)


def _plan_commit(record: dict) -> str:
    return record.get("plan_commit", "")


def _verdicts(e0, e0_verdicts, e1_beta, e2, e2_threshold, size) -> list[Verdict]:
    out = []
    for label, status in e0_verdicts.items():
        rows = e0[e0.init == label]
        out.append(Verdict(
            claim=f"E0 ({size}): the benign boundary collapses on n mu^4/(sigma^4 d) at {label}",
            old="fails (at sigma_0 sigma sqrt(d) = 0.1)", new=status, control="-",
            evidence="s50(d)/s50(10^3): " + "; ".join(
                f"d = {r.dim:g}: {r.ratio:.2f} [{r.ratio_low:.2f}, {r.ratio_high:.2f}]"
                for r in rows.itertuples() if r.dim > rows.dim.min()) +
            f" (seed bootstrap, Bonferroni over {max(len(rows) - 1, 1)} d; band x{BAND})",
            figure=FIGURES["collapse"]))  # fmt: skip
    primary = e1_beta[e1_beta.contrast == "pruned"]
    if len(primary):
        signs = ["helps" if r.low > 0 else "harms" if r.high < 0 else "not shown"
                 for r in primary.itertuples()]  # fmt: skip
        status = ("holds" if all(s == "helps" for s in signs) else
                  "fails (pruning moves the boundary the wrong way)" if "harms" in signs
                  else "not shown")  # fmt: skip
        out.append(Verdict(
            claim=f"E1 ({size}): mild pruning moves the benign boundary (beta > 0)",
            old="fails at d <= 10^4; not shown above", new=status,
            control="dense at sigma_0 sqrt(1-p); every class live; wider m",
            evidence="; ".join(f"d = {r.dim:g}: beta {r.beta:+.2f} [{r.low:+.2f}, {r.high:+.2f}]"
                               for r in primary.itertuples()) +
            " (paired whole-seed bootstrap, Bonferroni over d)", figure=FIGURES["shift"]))  # fmt: skip
    for r in e2_threshold.itertuples():
        cells = e2[(e2.dim == r.dim) & (e2.width == r.width)]
        shown_a = cells[(cells.fit >= 0.95) & (cells.test_acc_upper <= CHANCE + 0.05)]
        shown_b = cells[cells.learned_live_high < 0.5]
        out.append(Verdict(
            claim=f"E2 ({size}): over-pruning at d = {r.dim:g}, m = {r.width}",
            old="not shown",
            new=("holds (a)" if len(shown_a) else "not shown (a)") + "; " +
                ("threshold beyond combinatorics shown (b)" if len(shown_b)
                 else "no failure beyond combinatorics shown (b)"),
            control="runs whose every class keeps a live signal neuron",
            evidence=f"p* = {r.p_star:.3f} [{r.p_low:.3f}, {r.p_high:.3f}] against p_run = "
                     f"{r.p_run:.3f}, p_live = {r.p_live:.3f}; largest p: fitted "
                     f"{cells.fit.iloc[-1]:.0%}, test acc {cells.test_acc.iloc[-1]:.2f} "
                     f"(upper {cells.test_acc_upper.iloc[-1]:.2f})",
            figure=FIGURES["over"]))  # fmt: skip
    return out


def compute(results_dir, n_boot: int = 1000) -> BoundaryResult:
    """Every number of the section from `results_dir` (the output of sweeps/regime_boundary.py)."""
    directory = Path(results_dir)
    record = json.loads((directory / "run.json").read_text())
    live_path = directory / "live.parquet"
    live = pd.read_parquet(live_path) if live_path.exists() else pd.DataFrame()
    e0, curves, e0_verdicts, logs = _e0(directory, record, n_boot)
    horizon = _horizon(directory, record, logs, n_boot)
    e1, e1_beta = _e1(directory, record, live, n_boot)
    e2, e2_threshold = _e2(directory, record, live, n_boot)
    any_meta = next(iter(record["sweeps"].values()))
    setting = {k: any_meta.get(k) for k in ("n_train", "sigma_noise", "lr_scale", "learned",
                                            "optimizer", "engine", "test_eval", "plan")}  # fmt: skip
    setting |= {"size": record["size"], "n_boot": n_boot}
    verdicts = _verdicts(e0, e0_verdicts, e1_beta, e2, e2_threshold, record["size"])
    return BoundaryResult(setting, e0, curves, e0_verdicts, horizon, e1, e1_beta, e2,
                          e2_threshold, verdicts, invocation_table(record))  # fmt: skip


def _table(frame: pd.DataFrame, floatfmt: str = ".3g") -> str:
    """DataFrame.to_markdown, dimensions written in full (not as 1e+03)."""
    whole = {c: frame[c].map(lambda v: f"{v:.0f}") for c in ("dim",) if c in frame}
    return frame.assign(**whole).to_markdown(index=False, floatfmt=floatfmt)


def _ci_text(mean, low, high, fmt="{:.3g}") -> list[str]:
    return [f"{fmt.format(m)} [{fmt.format(lo)}, {fmt.format(hi)}]"
            for m, lo, hi in zip(mean, low, high, strict=True)]  # fmt: skip


def theorist_paragraph(result: BoundaryResult) -> str:
    """What holds, what fails, what the simulation cannot decide: from the result's fields."""
    s, e0 = result.setting, result.e0
    parts = []
    for label, status in result.e0_verdicts.items():
        rows = e0[(e0.init == label)]
        parts.append(f"at {label} the collapse {status} (s50 from {rows.s50.iloc[0]:.2g} at "
                     f"d = {rows.dim.iloc[0]:g} to {rows.s50.iloc[-1]:.2g} at d = "
                     f"{rows.dim.iloc[-1]:g})")  # fmt: skip
    text = (f"At {s['size']} size (n = {s['n_train']}, K = 2, GD on the Gram engine, eta sigma^2 d "
            f"= {s['lr_scale']:g}), " + "; ".join(parts) + ". ")  # fmt: skip
    beta = result.e1_beta
    for r in beta[beta.contrast == "pruned"].itertuples():
        ctrl = beta[(beta.dim == r.dim) & (beta.contrast == "pruned - dense control")]
        text += (f"Mild pruning at d = {r.dim:g}, m = {r.width}: beta = {r.beta:+.2f} "
                 f"[{r.low:+.2f}, {r.high:+.2f}] (+1 would be the bound's d -> (1-p) d, 0 no "
                 "shift)")  # fmt: skip
        if len(ctrl):
            c = ctrl.iloc[0]
            text += (f"; beyond the dense network at the init scale the mask leaves: "
                     f"{c.beta:+.2f} [{c.low:+.2f}, {c.high:+.2f}]")
        text += ". "
    for r in result.e2_threshold.itertuples():
        cells = result.e2[(result.e2.dim == r.dim) & (result.e2.width == r.width)]
        top = cells.iloc[-1]
        text += (f"Over-pruning at d = {r.dim:g}, m = {r.width}: runs fail from p* = "
                 f"{r.p_star:.3f} [{r.p_low:.3f}, {r.p_high:.3f}], against {r.p_run:.3f} where "
                 f"half the runs have a class with no live signal neuron (p_live = {r.p_live:.3f} "
                 f"per class); at p = {top.prune_frac:.3f}, {top.fit:.0%} of runs fit their "
                 f"training set and test at {top.test_acc:.2f} (95% upper bound "
                 f"{top.test_acc_upper:.2f}); runs whose classes all keep a live neuron learn at "
                 f"a rate of {cells.learned_live.min():.2f} or more at every p. ")  # fmt: skip
    text += ("What the simulation cannot decide: the theorems' constants and logarithmic "
             "factors (a finite grid of d cannot tell d from d log d within a factor 1.5), "
             "whether the shift beta tends to +1 only at d or n far beyond the grid, and whether "
             "the paper's over-pruning regime (training accuracy 1, test at chance) exists at a "
             "width or d where mask combinatorics do not already explain failure.")
    return text


def render(result: BoundaryResult, figures_dir) -> str:
    """The section as markdown; its figures are saved as PNG in `figures_dir`."""
    out = Path(figures_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures.boundary_collapse(result.e0, result.e0_curves, BAND, out / FIGURES["collapse"])
    if len(result.e1):
        figures.boundary_shift(result.e1, result.e1_beta, out / FIGURES["shift"])
    if len(result.e2):
        figures.boundary_overprune(result.e2, result.e2_threshold, out / FIGURES["over"])
    s = result.setting
    e0 = result.e0.assign(
        s50_ci=_ci_text(result.e0.s50, result.e0.s50_low, result.e0.s50_high),
        ratio_ci=_ci_text(result.e0.ratio, result.e0.ratio_low, result.e0.ratio_high),
    )[["dim", "init", "init_scale", "seeds", "s50_ci", "ratio_ci", "level", "undefined", "capped"]]
    verdicts = pd.DataFrame([dataclasses.asdict(v) for v in result.verdicts])
    lines = [
        f"Plan: `{s['plan']}` (pre-declared; its commit is cited in the report's provenance). "
        f"Runs: `sweeps/regime_boundary.py` at **{s['size']}** size, optimizer "
        f"`{s['optimizer']}`, engine `{s['engine']}`, test evaluation `{s['test_eval']}`; a run "
        f"has learned when its test accuracy is >= {LEARNED}; CIs are percentile intervals of "
        f"{s['n_boot']} whole-seed bootstrap resamples.",
        "",
        _table(verdicts[["claim", "new", "control", "evidence"]]),
        "",
        "**For a theorist.** " + theorist_paragraph(result),
        "",
        "### E0: can the benign boundary collapse (p = 0)",
        "",
        "s50: the benign score n ||mu||^4 / (sigma^4 d) where half the runs learn (logistic fit "
        "in log score), 95% seed-bootstrap CI; ratio: s50(d) / s50(10^3) with its CI "
        "simultaneous over the d > 10^3 of the init (Bonferroni, `level`); undefined: share of "
        "replicates without a threshold; capped: share of runs stopped at the step cap. Pass "
        f"(plan): every ratio's CI inside [1/{BAND}, {BAND}].",
        "",
        _table(e0),
        "",
        f"![collapse]({FIGURES['collapse']})",
        "",
    ]
    if len(result.horizon):
        h = result.horizon.assign(ratio_ci=_ci_text(result.horizon.ratio, result.horizon.ratio_low,
                                                    result.horizon.ratio_high))  # fmt: skip
        lines += ["Horizon: s50 trained to loss 0.01 against loss 0.1 (same d and init):", "",
                  _table(h.drop(columns=["ratio", "ratio_low", "ratio_high"])), ""]  # fmt: skip
    if len(result.e1_beta):
        b = result.e1_beta.assign(beta_ci=_ci_text(result.e1_beta.beta, result.e1_beta.low,
                                                   result.e1_beta.high, "{:+.2f}"))  # fmt: skip
        e1 = result.e1.assign(s50_ci=_ci_text(result.e1.s50, result.e1.s50_low, result.e1.s50_high))
        lines += [
            "### E1: mild pruning as a shift of the boundary",
            "",
            "beta in log s50(p) - log s50(0) = beta log(1 - p) (least squares through 0 over "
            "p > 0); CI: paired whole-seed bootstrap (one resample for every p and the controls), "
            "Bonferroni over the d's (`level`). Controls: the dense network at sigma_0 sqrt(1-p) "
            "(and the paired difference), the runs whose every class keeps a live signal neuron "
            "(`excluded`: share of runs dropped), a wider m on its own seeds.",
            "",
            _table(b[["dim", "width", "contrast", "beta_ci", "level", "seeds", "undefined",
                      "excluded"]]),  # fmt: skip
            "",
            f"![shift]({FIGURES['shift']})",
            "",
            "<details><summary>s50 per p and curve</summary>",
            "",
            _table(e1[["dim", "width", "curve", "prune_frac", "s50_ci", "capped"]]),
            "",
            "</details>",
            "",
        ]
    if len(result.e2):
        e2 = result.e2.assign(learned_live_ci=_ci_text(result.e2.learned_live,
                                                       result.e2.learned_live_low,
                                                       result.e2.learned_live_high, "{:.2f}"))  # fmt: skip
        t = result.e2_threshold.assign(p_star_ci=_ci_text(result.e2_threshold.p_star,
                                                          result.e2_threshold.p_low,
                                                          result.e2_threshold.p_high, "{:.3f}"))  # fmt: skip
        lines += [
            "### E2: over-pruning near the live-neuron threshold",
            "",
            "Per p: fit = share of runs with training accuracy 1; test_acc_upper = one-sided "
            "seed-bootstrap upper bound of the mean test accuracy, Bonferroni over the p's; "
            "learned_live = share of runs that learned among runs whose every class keeps a "
            "live signal neuron (all_live = their share), simultaneous CI over the p's. "
            "Contrast (a): fit >= 95% and test_acc_upper <= 0.55; (b): learned_live's CI below "
            "0.5.",
            "",
            _table(e2[["dim", "width", "prune_frac", "runs", "fit", "capped", "test_acc",
                       "test_acc_upper", "learned", "all_live", "learned_live_ci"]]),  # fmt: skip
            "",
            "p* (logistic in log(1 - p) of *learned*, seed bootstrap, Bonferroni over the (d, m) "
            "pairs) against p_run (half the runs have a class without a live signal neuron) and "
            "p_live (a given class has none with probability 1/2):",
            "",
            _table(t[["dim", "width", "seeds", "p_star_ci", "level", "p_run", "p_live"]], ".3f"),
            "",
            f"![over-pruning]({FIGURES['over']})",
            "",
        ]
    lines += ["Runs:", "", _table(result.runs), ""]
    return "\n".join(lines)


def main(argv=None) -> None:
    """python -m analysis.boundary DIR [--out FOLDER]: FOLDER/boundary.md and its figures."""
    parser = argparse.ArgumentParser(description="The regime section from E0-E2.")
    parser.add_argument("results", nargs="?", default="results/regime_boundary-quick")
    parser.add_argument("--out", default=None, help="folder for boundary.md (default DIR/report)")
    parser.add_argument("--n-boot", type=int, default=1000)
    args = parser.parse_args(argv)
    out = Path(args.out or Path(args.results) / "report")
    text = render(compute(args.results, args.n_boot), out)
    (out / "boundary.md").write_text(text + "\n")
    print(f"wrote {out / 'boundary.md'}")


if __name__ == "__main__":
    main()
