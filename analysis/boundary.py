"""The regime section from `sweeps/regime_boundary.py`: E0, E1 and E2 of report/plan.md.

    result = compute("results/regime_boundary-quick")   # BoundaryResult: numbers and verdicts

`compute` reads the sweeps, `live.parquet` and `run.json` and computes every number with the
statistics of `analysis.stats` (logistic thresholds, whole-seed bootstrap replicates, percentile
CIs); `analysis.boundary_render` formats them and draws the figures of `analysis.figures`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

import jaxprune
from analysis.stats import (
    LEVEL,
    Verdict,
    first_crossings,
    fit_logistic_threshold,
    percentile_ci,
    rising_x50,
    seed_weights,
    threshold_replicates,
)
from jaxprune.experiment import invocation_table

LEARNED = 0.75  # a run has learned when its test accuracy is >= this (plan)
BAND = 1.5  # E0: s50(d) within a factor 1.5 of s50(10^3)
CHANCE = 0.5
FIGURES = {"collapse": "boundary_collapse.png", "shift": "boundary_shift.png",
           "over": "boundary_overprune.png"}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class BoundaryResult:
    """e0: per (d, init): s50 with its bootstrap CI, the ratio to d = 10^3 with its simultaneous
    CI, runs at the step cap, whether the point fit is separated, and (post hoc) s75 with its ratio;
    e0_curves: per (d, init, score): fraction learned; e0_verdicts: per init, the plan's verdict;
    e0_verdicts75: the same rule applied to s75 (post hoc); horizon: s50 at loss 0.01 against 0.1.
    e1: per (d, m, curve, p): s50; e1_beta: per (d, m, contrast): beta with its CI. e2: per
    (d, m, p): fitted fraction, test accuracy with its upper bound, learned fractions (all runs,
    runs with every class live);
    e2_threshold: per (d, m): p* of all runs and the predictions. verdicts: the report's table
    rows. setting, runs: what the text quotes; plan_commit: the plan's commit."""

    setting: dict
    e0: pd.DataFrame
    e0_curves: pd.DataFrame
    e0_verdicts: dict
    e0_verdicts75: dict
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
    wide = wide.reindex(index=np.sort(frame.seed.unique()), columns=values)
    return wide.index.to_numpy(), wide.to_numpy(dtype=float)


def _threshold(x, outcomes, weights) -> tuple[float, np.ndarray, bool]:
    """Point log-threshold of a cell, its replicates under `weights`, and whether the cell's
    outcomes separate on the grid (no maximum-likelihood fit: the point is a grid bracket's)."""
    finite = np.isfinite(outcomes)
    fit = fit_logistic_threshold(x, np.nansum(outcomes, 0), trials=finite.sum(0))
    return rising_x50(fit), threshold_replicates(x, outcomes, weights), not fit.estimable


def _accuracy(frame: pd.DataFrame, column: str, values) -> np.ndarray:
    """(seeds, len(values)) test accuracy of each seed's run at each value of `column`."""
    wide = frame.pivot_table(index="seed", columns=column, values="test_acc", aggfunc="first")
    return wide.reindex(index=np.sort(frame.seed.unique()), columns=values).to_numpy(dtype=float)


def _s75(x, accuracy: np.ndarray, weights) -> tuple[float, np.ndarray]:
    """Post hoc (not in the plan): the log score where the seed-mean test accuracy rises
    through LEARNED (linear in log score between grid points; NaN where the mean starts above
    it or never reaches it), and its whole-seed bootstrap replicates under `weights`. With
    n_test = 1000 a run's test accuracy is almost a function of its score, so *learned*
    separates on the grid and s50's logistic fit pins s50 to a grid point; the mean accuracy
    still resolves the boundary between grid points."""
    finite = np.isfinite(accuracy)
    resampled = (weights @ np.where(finite, accuracy, 0.0)) / (weights @ finite)
    means = np.vstack([np.nanmean(accuracy, axis=0), resampled])
    cross = first_crossings(x, means, LEARNED, below=False)
    cross = np.where(means[:, 0] >= LEARNED, np.nan, cross)
    return float(cross[0]), cross[1:]


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
            point, reps, separated = _threshold(x, out, weights)
            logs[(dim, label)] = (point, reps)
            point75, reps75 = _s75(x, _accuracy(cell, "mu_norm", meta["mus"]), weights)
            logs[(dim, label, "s75")] = (point75, reps75)
            rows.append(dict(dim=dim, init=label, init_scale=meta["scales"][label],
                             seeds=len(seeds),
                             s50=math.exp(point) if np.isfinite(point) else np.nan,
                             s50_low=math.exp(_ci(reps, LEVEL)[0]),
                             s50_high=math.exp(_ci(reps, LEVEL)[1]),
                             undefined=float(np.isnan(reps).mean()), separated=separated,
                             s75=math.exp(point75), s75_low=math.exp(_ci(reps75, LEVEL)[0]),
                             s75_high=math.exp(_ci(reps75, LEVEL)[1]),
                             capped=float((cell.converged_step < 0).mean())))  # fmt: skip
            for mu, group in cell.groupby("mu_norm"):
                curves.append(dict(dim=dim, init=label, score=score_of[mu],
                                   learned=float((group.test_acc >= LEARNED).mean())))  # fmt: skip
    e0 = pd.DataFrame(rows)
    first = e0.dim.min()
    ratios, verdicts, verdicts75 = [], {}, {}
    for label, group in e0.groupby("init"):
        if (first, label) not in logs:
            continue
        others = group[group.dim > first]
        level = 1 - (1 - LEVEL) / max(len(others), 1)  # Bonferroni over the d > 10^3
        for estimator, suffix in (("s50", ()), ("s75", ("s75",))):
            inside, outside = [], []
            for dim in group.dim:
                point = logs[(dim, label, *suffix)][0] - logs[(first, label, *suffix)][0]
                reps = logs[(dim, label, *suffix)][1] - logs[(first, label, *suffix)][1]
                low, high = _ci(reps, level)
                name = "ratio" if estimator == "s50" else "ratio75"
                ratios.append(dict(dim=dim, init=label, estimator=estimator,
                                   **{name: math.exp(point), f"{name}_low": math.exp(low),
                                      f"{name}_high": math.exp(high)}, level=level))  # fmt: skip
                if dim > first:
                    inside.append(math.log(1 / BAND) <= low and high <= math.log(BAND))
                    outside.append(high < math.log(1 / BAND) or low > math.log(BAND))
            (verdicts if estimator == "s50" else verdicts75)[label] = (
                "holds" if inside and all(inside) else "fails" if any(outside) else "not shown"
            )
    ratios = pd.DataFrame(ratios)
    for estimator, name in (("s50", "ratio"), ("s75", "ratio75")):
        columns = [name, f"{name}_low", f"{name}_high"]
        if len(ratios):
            part = ratios[ratios.estimator == estimator]
            part = part[["dim", "init", *columns] + (["level"] if name == "ratio" else [])]
            e0 = e0.merge(part, on=["dim", "init"], how="left")
        else:
            e0 = e0.assign(**dict.fromkeys(columns, np.nan))
    return e0, pd.DataFrame(curves), verdicts, verdicts75, logs


def _horizon(directory: Path, record: dict, logs: dict, n_boot: int) -> pd.DataFrame:
    rows = []
    for key, meta in record["sweeps"].items():
        if not key.startswith("h-d") or not (directory / key).exists():
            continue
        label, dim = next(iter(meta["inits"])), meta["dim"]
        last = _final(directory, key)
        _, out = _outcomes(last, "mu_norm", meta["mus"])
        weights = seed_weights(out.shape[0], n_boot, seed=dim + 1)
        point, reps, _ = _threshold(np.log(meta["scores"]), out, weights)
        base, base_reps = logs[(dim, label)]
        low, high = _ci(reps - base_reps, LEVEL)
        rows.append(dict(dim=dim, init=label, seeds=out.shape[0], s50_loss_001=math.exp(point),
                         s50_loss_01=math.exp(base), ratio=math.exp(point - base),
                         ratio_low=math.exp(low), ratio_high=math.exp(high),
                         capped=float((last.converged_step < 0).mean())))  # fmt: skip
    return pd.DataFrame(rows)


def _with_live(frame: pd.DataFrame, live: pd.DataFrame, experiment: str) -> pd.DataFrame:
    """`frame` (with dim and width columns) with column all_live: whether every class of the
    run keeps a live signal neuron (NaN where live.parquet has no row for the run)."""
    keys = ["dim", "width", "prune_frac", "seed"]
    if not len(live):
        return frame.assign(all_live=np.nan)
    runs = live[live.experiment == experiment]
    all_live = (runs.groupby(keys).live.min() >= 1).astype(float).rename("all_live")
    return frame.merge(all_live.reset_index(), on=keys, how="left")


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
    cells, betas = [], []
    for key, meta in pruned.items():
        dim, x, mus = meta["dim"], np.log(meta["scores"]), meta["mus"]
        last = _final(directory, key)
        control = _final(directory, f"{key}-control")
        ps = sorted(last.prune_frac.unique())
        seeds = np.sort(last.seed.unique())
        weights = seed_weights(len(seeds), n_boot, seed=dim + 2)  # one resample for every p

        def curve(frame, name, width=meta["width"], w=weights, logs75=None, dim=dim, x=x, mus=mus):
            logs = {}
            for p, cell in frame.groupby("prune_frac"):
                _, out = _outcomes(cell, "mu_norm", mus)
                point, reps, separated = _threshold(x, out, w)
                logs[p] = (point, reps)
                low, high = _ci(logs[p][1], level)
                row = dict(dim=dim, width=width, curve=name, prune_frac=p,
                           s50=math.exp(logs[p][0]), s50_low=math.exp(low),
                           s50_high=math.exp(high), separated=separated,
                           capped=float((cell.converged_step < 0).mean()))  # fmt: skip
                if logs75 is not None:  # post hoc: the mean-accuracy boundary s75
                    answered = cell.dropna(subset="test_acc")
                    logs75[p] = _s75(x, _accuracy(answered, "mu_norm", mus), w)
                    low, high = _ci(logs75[p][1], level)
                    row |= dict(s75=math.exp(logs75[p][0]), s75_low=math.exp(low),
                                s75_high=math.exp(high))  # fmt: skip
                cells.append(row)
            return logs

        sigma0 = meta["sigma_init"]
        dense = [last[last.prune_frac == 0]]
        for p in meta.get("control_p", record["sweeps"][f"{key}-control"]["control_p"]):
            shrunk = round(sigma0 * math.sqrt(1 - p), 12)
            dense.append(control[np.isclose(control.sigma_init, shrunk, rtol=1e-6)]
                         .assign(prune_frac=p))  # fmt: skip
        conditioned = _with_live(last.assign(dim=dim, width=meta["width"]), live, "E1")
        kept = conditioned.assign(test_acc=conditioned.test_acc.where(conditioned.all_live == 1))
        pruned75, dense75 = {}, {}
        logs = {
            "pruned": curve(last, "pruned", logs75=pruned75),
            "dense at sigma_0 sqrt(1-p)": curve(pd.concat(dense), "dense at sigma_0 sqrt(1-p)",
                                                logs75=dense75),  # fmt: skip
            "pruned, every class live": curve(kept, "pruned, every class live"),
        }
        beta = {name: _beta(lg, ps) for name, lg in logs.items()}
        beta["pruned - dense control"] = (
            beta["pruned"][0] - beta["dense at sigma_0 sqrt(1-p)"][0],
            beta["pruned"][1] - beta["dense at sigma_0 sqrt(1-p)"][1],
        )
        b75, d75 = _beta(pruned75, ps), _beta(dense75, ps)  # post hoc: from s75
        beta["pruned (s75, post hoc)"] = b75
        beta["dense at sigma_0 sqrt(1-p) (s75, post hoc)"] = d75
        beta["pruned - dense control (s75, post hoc)"] = (b75[0] - d75[0], b75[1] - d75[1])
        excluded = float((conditioned.all_live != 1).mean())
        here = pd.DataFrame([c for c in cells if c["dim"] == dim and c["width"] == meta["width"]])
        for name, (point, reps) in beta.items():
            low, high = _ci(reps, level)
            curves = {"pruned - dense control": ["pruned", "dense at sigma_0 sqrt(1-p)"]}.get(
                name, [name])  # the s50 curves behind this beta (none for the s75 ones)
            betas.append(dict(dim=dim, width=meta["width"], contrast=name, beta=point,
                              low=low, high=high, level=level, seeds=len(seeds),
                              undefined=float(np.isnan(reps).mean()),
                              separated=int(here[here.curve.isin(curves)].separated.sum()),
                              excluded=excluded if "live" in name else 0.0))  # fmt: skip
        wide_key = next((k for k, m in sweeps.items() if m.get("role") == "width control"
                         and m["dim"] == dim and (directory / k).exists()), None)  # fmt: skip
        if wide_key:
            wide = _final(directory, wide_key)
            wseeds = np.sort(wide.seed.unique())
            w = seed_weights(len(wseeds), n_boot, seed=dim + 3)
            wide_m = sweeps[wide_key]["width"]
            narrow75, wide75 = {}, {}
            narrow = curve(last[last.seed.isin(wseeds)], "pruned (width-control seeds)", w=w,
                           logs75=narrow75)  # fmt: skip
            # named after its beta contrast, as every curve is
            wide_logs = curve(wide, f"width {wide_m}", width=wide_m, w=w, logs75=wide75)
            mine = pd.DataFrame([c for c in cells if c["dim"] == dim and (
                c["curve"] == "pruned (width-control seeds)" or c["width"] == wide_m)])
            estimators = (("", (narrow, wide_logs)), (" (s75, post hoc)", (narrow75, wide75)))
            for tag, (nl, wl) in estimators:
                bw, bn = _beta(wl, ps), _beta(nl, ps)
                for name, (point, reps), which in (
                    (f"width {wide_m}{tag}", bw, mine.width == wide_m),
                    (f"width {wide_m} - width {meta['width']}{tag}",
                     (bw[0] - bn[0], bw[1] - bn[1]), mine.index >= 0),
                ):
                    low, high = _ci(reps, level)
                    separated = 0 if tag else int(mine[which].separated.sum())
                    betas.append(dict(dim=dim, width=wide_m, contrast=name, beta=point,
                                      low=low, high=high, level=level, seeds=len(wseeds),
                                      undefined=float(np.isnan(reps).mean()), excluded=0.0,
                                      separated=separated))  # fmt: skip
    return pd.DataFrame(cells), pd.DataFrame(betas)


def p_for_q(width: int, q: float) -> float:
    """The p at which a given class keeps no live signal neuron with probability q."""
    return 2 * q ** (1 / width) - 1


def _e2(directory: Path, record: dict, live: pd.DataFrame, n_boot: int):
    sweeps = {k: m for k, m in record["sweeps"].items()
              if m.get("experiment") == "E2" and (directory / k).exists()}  # fmt: skip
    groups = sorted({(m["dim"], m["width"]) for m in sweeps.values()})
    cells, thresholds = [], []
    for dim, width in groups:
        keys = [k for k, m in sweeps.items() if (m["dim"], m["width"]) == (dim, width)]
        last = pd.concat([_final(directory, k).assign(dim=dim, width=width) for k in keys])
        last = _with_live(last, live, "E2")
        ps = np.sort(last.prune_frac.unique())
        seeds = np.sort(last.seed.unique())
        weights = seed_weights(len(seeds), n_boot, seed=dim + width)
        level = 1 - (1 - LEVEL) / len(ps)  # Bonferroni over the p's of this (d, m)
        acc = last.pivot_table(index="seed", columns="prune_frac", values="test_acc")
        acc = acc.reindex(index=seeds, columns=ps)
        means = (weights @ np.nan_to_num(acc.to_numpy())) / weights.sum(1, keepdims=True)
        upper = np.percentile(means, 100 * level, axis=0)  # one-sided
        ok = (last.test_acc >= LEARNED).astype(float).where(last.all_live == 1)
        live_acc = last.assign(ok=ok)
        live_tab = live_acc.pivot_table(index="seed", columns="prune_frac", values="ok",
                                        dropna=False)  # fmt: skip
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
                              all_live=float((cell.all_live == 1).mean()),
                              learned_live=float(live_tab[p].mean()),
                              learned_live_low=float(frac_low[i]),
                              learned_live_high=float(frac_high[i])))  # fmt: skip
        x = np.log1p(-ps)
        _, out = _outcomes(last, "prune_frac", list(ps))
        point, reps, _ = _threshold(x, out, weights)
        t_level = 1 - (1 - LEVEL) / len(groups)  # Bonferroni over the (d, m) pairs
        low, high = _ci(reps, t_level)
        thresholds.append(dict(dim=dim, width=width, p_star=1 - math.exp(point),
                               p_low=1 - math.exp(high), p_high=1 - math.exp(low), level=t_level,
                               p_run=p_for_q(width, 1 - 1 / math.sqrt(2)),
                               p_live=p_for_q(width, 0.5), seeds=len(seeds)))  # fmt: skip
    return pd.DataFrame(cells), pd.DataFrame(thresholds)


def _e1_verdict(e1_beta, contrast: str, label: str) -> list[Verdict]:
    """The E1 row of the verdict table for the beta of `contrast` (one per d)."""
    primary = e1_beta[e1_beta.contrast == contrast] if len(e1_beta) else e1_beta
    out = []
    if len(primary):
        signs = ["helps" if r.low > 0 else "harms" if r.high < 0 else "not shown"
                 for r in primary.itertuples()]  # fmt: skip
        status = ("holds" if all(s == "helps" for s in signs) else
                  "fails (pruning moves the boundary the wrong way)" if "harms" in signs
                  else "not shown")  # fmt: skip
        separated = int(primary.separated.sum()) if "separated" in primary else 0
        if separated:
            status += (f" by the plan's rule, but degenerate: {separated} of the s50's behind "
                       "it separate on the grid (pinned to grid points); see beta from s75")
        out.append(Verdict(
            claim=f"E1 ({label}): mild pruning moves the benign boundary (beta > 0)",
            old="fails at d <= 10^4; not shown above", new=status,
            control="dense at sigma_0 sqrt(1-p); every class live; wider m",
            evidence="; ".join(f"d = {r.dim:g}: beta {r.beta:+.2f} [{r.low:+.2f}, {r.high:+.2f}]"
                               for r in primary.itertuples()) +
            " (paired whole-seed bootstrap, Bonferroni over d)",
            figure=FIGURES["shift"]))  # fmt: skip
    return out


def width_differences(e1_beta: pd.DataFrame) -> pd.DataFrame:
    """The rows of `e1_beta` that compare the width control with the main width: beta(wide) -
    beta(40), from s50 and (post hoc) from s75."""
    return e1_beta[e1_beta.contrast.str.contains(" - width ")] if len(e1_beta) else e1_beta


def _width_verdict(e1_beta, size) -> list[Verdict]:
    """The width control's rows: beta(wide) - beta(40) on the wide run's seeds (plan: pass if its
    CI contains 0), and the same from s75 (post hoc)."""
    out = []
    for r in width_differences(e1_beta).itertuples():
        post_hoc = "post hoc" in r.contrast
        status = "holds" if r.low <= 0 <= r.high else "fails (beta depends on the width)"
        if r.separated:
            status += (f" by the plan's rule, but degenerate: {r.separated} of the s50's behind "
                       "it (per p and width) separate on the grid; see beta from s75")
        wide_name = f"width {r.width}" + (" (s75, post hoc)" if post_hoc else "")
        wide = e1_beta[(e1_beta.dim == r.dim) & (e1_beta.contrast == wide_name)].iloc[0]
        out.append(Verdict(
            claim=f"E1 ({size}{', post hoc: beta from s75' if post_hoc else ''}): beta does "
                  f"not depend on the width (m = {r.width} against 40, d = {r.dim:g})",
            old="-", new=status, control="the m = 40 runs of the same seeds",
            evidence=f"beta(m = {r.width}) - beta(m = 40) = {r.beta:+.2f} [{r.low:+.2f}, "
                     f"{r.high:+.2f}]; beta(m = {r.width}) = {wide.beta:+.2f} [{wide.low:+.2f}, "
                     f"{wide.high:+.2f}] ({r.seeds} seeds, paired whole-seed bootstrap, "
                     "Bonferroni over d as in E1)",
            figure=FIGURES["shift"]))  # fmt: skip
    return out


def _verdicts(e0, e0_verdicts, e0_verdicts75, e1_beta, e2, e2_threshold, size) -> list[Verdict]:
    out = []
    for label, status in e0_verdicts.items():
        rows = e0[e0.init == label]
        separated = int(rows.separated.sum())
        out.append(Verdict(
            claim=f"E0 ({size}): the benign boundary collapses on n mu^4/(sigma^4 d) at {label}",
            old="fails (at sigma_0 sigma sqrt(d) = 0.1)",
            new=status + (f" by the plan's rule, but degenerate: at {separated} of {len(rows)} d "
                          "the outcomes separate on the grid (s50 pinned to a grid point, its "
                          "CI a point); see s75" if separated else ""),
            control="-",
            evidence="s50(d)/s50(10^3): " + "; ".join(
                f"d = {r.dim:g}: {r.ratio:.2f} [{r.ratio_low:.2f}, {r.ratio_high:.2f}]"
                for r in rows.itertuples() if r.dim > rows.dim.min()) +
            f" (seed bootstrap, Bonferroni over {max(len(rows) - 1, 1)} d; band x{BAND})",
            figure=FIGURES["collapse"]))  # fmt: skip
    for label, status in e0_verdicts75.items():
        rows = e0[e0.init == label]
        out.append(Verdict(
            claim=f"E0 ({size}, post hoc: s75, the mean-accuracy boundary) at {label}",
            old="-", new=status, control="-",
            evidence="s75(d)/s75(10^3): " + "; ".join(
                f"d = {r.dim:g}: {r.ratio75:.2f} [{r.ratio75_low:.2f}, {r.ratio75_high:.2f}]"
                for r in rows.itertuples() if r.dim > rows.dim.min()) +
            " (same bootstrap, family and band)", figure=FIGURES["collapse"]))  # fmt: skip
    for contrast, tag in (("pruned", ""), ("pruned (s75, post hoc)", ", post hoc: beta from s75")):
        out += _e1_verdict(e1_beta, contrast, f"{size}{tag}")
    out += _width_verdict(e1_beta, size)
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
    e0, curves, e0_verdicts, e0_verdicts75, logs = _e0(directory, record, n_boot)
    horizon = _horizon(directory, record, logs, n_boot)
    e1, e1_beta = _e1(directory, record, live, n_boot)
    e2, e2_threshold = _e2(directory, record, live, n_boot)
    any_meta = next(iter(record["sweeps"].values()))
    setting = {k: any_meta.get(k) for k in ("n_train", "sigma_noise", "lr_scale", "learned",
                                            "optimizer", "engine", "test_eval", "plan",
                                            "plan_commit")}  # fmt: skip
    commits = [m.get("plan_commit") for m in record["sweeps"].values() if m.get("plan_commit")]
    setting["plan_commit"] = ", ".join(dict.fromkeys(commits)) or None  # one per amendment run
    setting |= {"size": record["size"], "n_boot": n_boot}
    verdicts = _verdicts(e0, e0_verdicts, e0_verdicts75, e1_beta, e2, e2_threshold, record["size"])
    return BoundaryResult(setting, e0, curves, e0_verdicts, e0_verdicts75, horizon, e1, e1_beta,
                          e2, e2_threshold, verdicts, invocation_table(record))  # fmt: skip
