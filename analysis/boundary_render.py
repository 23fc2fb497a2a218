"""The E0-E2 regime section's text: `render` formats an `analysis.boundary.BoundaryResult` and
draws its figures (`analysis.figures.boundary_*`); `theorist_paragraph` says what holds, what
fails and what the simulation cannot decide.

    python -m analysis.boundary_render DIR [--out FOLDER] [--n-boot N]
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pandas as pd

from analysis import figures
from analysis.boundary import BAND, FIGURES, LEARNED, BoundaryResult, compute, width_differences


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
        parts.append(f"at {label} the collapse verdict is '{status.split(' by the plan')[0]}'"
                     f"{' (degenerate)' if rows.separated.any() else ''} (s50 from "
                     f"{rows.s50.iloc[0]:.2g} at d = {rows.dim.iloc[0]:g} to "
                     f"{rows.s50.iloc[-1]:.2g} at d = {rows.dim.iloc[-1]:g}), and by the "
                     f"post hoc s75 '{result.e0_verdicts75.get(label, '-')}' (s75 from "
                     f"{rows.s75.iloc[0]:.2g} to {rows.s75.iloc[-1]:.2g}, largest ratio CI "
                     f"[{rows.ratio75_low.min():.2f}, {rows.ratio75_high.max():.2f}])")  # fmt: skip
    text = (f"At {s['size']} size (n = {s['n_train']}, K = 2, GD on the Gram engine, eta sigma^2 d "
            f"= {s['lr_scale']:g}), " + "; ".join(parts) + ". ")  # fmt: skip
    beta = result.e1_beta
    for r in (beta[beta.contrast == "pruned"] if len(beta) else beta).itertuples():
        ctrl = beta[(beta.dim == r.dim) & (beta.contrast == "pruned - dense control")]
        text += (f"Mild pruning at d = {r.dim:g}, m = {r.width}: beta = {r.beta:+.2f} "
                 f"[{r.low:+.2f}, {r.high:+.2f}] (+1 would be the bound's d -> (1-p) d, 0 no "
                 "shift)")  # fmt: skip
        if len(ctrl):
            c = ctrl.iloc[0]
            text += (f"; beyond the dense network at the init scale the mask leaves: "
                     f"{c.beta:+.2f} [{c.low:+.2f}, {c.high:+.2f}]")
        if getattr(r, "separated", 0):
            text += f" (degenerate: {r.separated} of its s50's pinned to grid points)"
        for name, words in (("pruned (s75, post hoc)", "from s75 (post hoc)"),
                            ("pruned - dense control (s75, post hoc)", "beyond the control")):
            alt = beta[(beta.dim == r.dim) & (beta.width == r.width) & (beta.contrast == name)]
            if len(alt):
                a = alt.iloc[0]
                text += f"; {words}: {a.beta:+.2f} [{a.low:+.2f}, {a.high:+.2f}]"
        text += ". "
    for r in width_differences(beta).itertuples():
        text += (f"{'From s75 (post hoc), w' if 's75' in r.contrast else 'W'}idth {r.width} "
                 f"against 40 at d = {r.dim:g} ({r.seeds} seeds): beta(wide) - beta(40) = "
                 f"{r.beta:+.2f} [{r.low:+.2f}, {r.high:+.2f}]"
                 + (f" (degenerate: {r.separated} of its s50's pinned to grid points)"
                    if r.separated else "") + ". ")  # fmt: skip
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
             "factors (a finite grid of d cannot tell d from d log d within a factor 1.5); "
             "whether beta tends to +1 only at d, n or m far beyond the grid; whether the "
             "paper's *bound* improves with p while the measured boundary does not (a bound "
             "that is not tight can improve while the boundary moves the other way: beta "
             "measures the boundary, not the bound); and whether the paper's over-pruning regime "
             "(training accuracy 1, test at chance) exists at a width or d where mask "
             "combinatorics do not already explain the failures.")
    return text


def render(result: BoundaryResult, figures_dir, plan_commit: str = "?") -> str:
    """The section as markdown; its figures are saved as PNG in `figures_dir`. plan_commit:
    the plan's commit where the run record lacks it (runs made before it was recorded)."""
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
        s75_ci=_ci_text(result.e0.s75, result.e0.s75_low, result.e0.s75_high),
        ratio75_ci=_ci_text(result.e0.ratio75, result.e0.ratio75_low, result.e0.ratio75_high),
    )[["dim", "init", "init_scale", "seeds", "s50_ci", "ratio_ci", "separated", "s75_ci",
       "ratio75_ci", "level", "undefined", "capped"]]  # fmt: skip
    verdicts = pd.DataFrame([dataclasses.asdict(v) for v in result.verdicts])
    lines = [
        "## The claims in the theorems' form: E0-E2",
        "",
        f"Plan: `{s['plan']}` at commit `{s.get('plan_commit') or plan_commit}` (pre-declared, "
        "committed before its runs). "
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
        f"(plan): every ratio's CI inside [1/{BAND}, {BAND}]. separated: the cell's outcomes are "
        "separated on the score grid (no maximum-likelihood fit; s50 is then the separating "
        "grid point or bracket midpoint, and its bootstrap CI can be spuriously narrow). "
        "*Post hoc* (not in the plan): s75, the score where the seed-mean test accuracy rises "
        "through 0.75 (linear in log score between grid points), with the same bootstrap and "
        "ratio: with n_test = 1000 a run's test accuracy is almost a function of its score, so "
        "the binary outcome separates on a grid of factor 2 while the mean accuracy still "
        "resolves the boundary.",
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
        if "s75" in e1:
            e1 = e1.assign(s75_ci=_ci_text(e1.s75, e1.s75_low, e1.s75_high))
        lines += [
            "### E1: mild pruning as a shift of the boundary",
            "",
            "beta in log s50(p) - log s50(0) = beta log(1 - p) (least squares through 0 over "
            "p > 0); CI: paired whole-seed bootstrap (one resample for every p and the controls), "
            "Bonferroni over the d's (`level`). Controls: the dense network at sigma_0 sqrt(1-p) "
            "(and the paired difference), the runs whose every class keeps a live signal neuron "
            "(`excluded`: share of runs dropped), a wider m on its own seeds. `separated`: how "
            "many of the s50's behind a beta separate on the score grid (pinned to a grid "
            "point; then that beta's CI is degenerate). *Post hoc* (not in the plan): the same "
            "betas from s75, the score where the seed-mean test accuracy rises through 0.75.",
            "",
            _table(b.reindex(columns=["dim", "width", "contrast", "beta_ci", "level", "seeds",
                                      "undefined", "separated", "excluded"])),  # fmt: skip
            "",
            f"![shift]({FIGURES['shift']})",
            "",
            "<details><summary>s50 per p and curve</summary>",
            "",
            _table(e1.reindex(columns=["dim", "width", "curve", "prune_frac", "s50_ci",
                                       "separated", "s75_ci", "capped"])),  # fmt: skip
            "",
            "</details>",
            "",
        ]
    if len(result.e2):
        e2 = result.e2.assign(learned_live_ci=_ci_text(result.e2.learned_live,
                                                       result.e2.learned_live_low,
                                                       result.e2.learned_live_high,
                                                       "{:.2f}"))  # fmt: skip
        t = result.e2_threshold.assign(p_star_ci=_ci_text(result.e2_threshold.p_star,
                                                          result.e2_threshold.p_low,
                                                          result.e2_threshold.p_high,
                                                          "{:.3f}"))  # fmt: skip
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
    parser.add_argument("--plan-commit", default="?", help="the plan's commit (old run records)")
    args = parser.parse_args(argv)
    out = Path(args.out or Path(args.results) / "report")
    text = render(compute(args.results, args.n_boot), out, args.plan_commit)
    (out / "boundary.md").write_text(text + "\n")
    print(f"wrote {out / 'boundary.md'}")


if __name__ == "__main__":
    main()
