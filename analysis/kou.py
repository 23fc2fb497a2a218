"""Section 1: the benign-overfitting heatmap of Kou et al. (ICML 2023), compute and render.

`compute` reads `sweeps/kou2023_heatmap.py`'s results and fits the benign/harmful boundary at a
range of error levels (seed-bootstrap CIs, d and d log d side by side); `render` draws the
heatmap and writes the markdown section from the result alone.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

import jaxprune
from analysis import figures
from analysis.stats import Verdict, boundary_fits, boundary_points

# Error levels that define the boundary, between the label-noise floor (0.1) and chance (0.5).
LEVELS = (0.2, 0.25, 0.3, 0.35, 0.4)
REFERENCE_LEVEL = 0.3  # the old report's single level (midway)


@dataclasses.dataclass(frozen=True)
class KouResult:
    """fits: one row per level (`analysis.stats.boundary_fits`). last: the final rows (with
    test_error), for the figure. boundary: the points at REFERENCE_LEVEL. setting: the
    Config/Params values the text quotes. verdicts: the restated claims."""

    fits: pd.DataFrame
    last: pd.DataFrame
    boundary: pd.DataFrame
    setting: dict
    n_boot: int
    verdicts: list[Verdict]


def compute(directory: Path, *, n_boot: int = 1000) -> KouResult:
    frame = jaxprune.load(Path(directory) / "heatmap")
    last = jaxprune.final(frame)
    last["test_error"] = 1 - last.test_acc
    cfg, base = frame.attrs["config"], frame.attrs["base"]
    n, sigma = cfg["n_train"], base["sigma_noise"]
    fits = boundary_fits(last, LEVELS, n_train=n, sigma_noise=sigma, n_boot=n_boot)
    setting = {
        "n": n,
        "sigma": sigma,
        "flip": base["label_flip"],
        "steps": cfg["steps"],
        "width": cfg["width"],
        "dims": (int(last.dim.min()), int(last.dim.max()), int(last.dim.nunique())),
        "mus": (float(last.mu_norm.min()), float(last.mu_norm.max()), last.mu_norm.nunique()),
        "seeds": int(last.groupby(["dim", "mu_norm"]).size().min()),
        "runs": len(last),
    }
    return KouResult(
        fits=fits,
        last=last,
        boundary=boundary_points(last, REFERENCE_LEVEL).dropna(),
        setting=setting,
        n_boot=n_boot,
        verdicts=_verdicts(fits),
    )


def _verdicts(fits: pd.DataFrame) -> list[Verdict]:
    ok = fits.dropna(subset=["exponent_d"])
    if ok.empty:
        return []
    covers = (ok.exponent_d_low <= 0.25) & (0.25 <= ok.exponent_d_high)
    covers_log = (ok.exponent_dlogd_low <= 0.25) & (0.25 <= ok.exponent_dlogd_high)
    span = f"{ok.exponent_d.min():.3f} to {ok.exponent_d.max():.3f}"
    c_span = f"{ok.C_d.min():.3g} to {ok.C_d.max():.3g}"
    exponent = Verdict(
        claim="Kou et al.: boundary ||mu||_b ∝ d^0.25",
        old="fails (exponent 0.296 [0.281, 0.311] at level 0.3)",
        new=(
            "not rejected at any level (0.25 inside every CI)"
            if covers.all()
            else "retracted: depends on the level"
            if covers.any() or (ok.exponent_d.min() < 0.25 < ok.exponent_d.max())
            else "fails at every level"
        ),
        control="error level; d log d alternative",
        evidence=f"exponent over d {span} across levels {ok.level.min():g}-{ok.level.max():g} "
        f"(0.25 inside the bootstrap CI at {int(covers.sum())} of {len(ok)} levels); over "
        f"d log d {ok.exponent_dlogd.min():.3f} to {ok.exponent_dlogd.max():.3f} (0.25 inside "
        f"at {int(covers_log.sum())}); RMS log-residual of n mu^4 ∝ d "
        f"{ok.rms_d.mean():.3f} vs ∝ d log d {ok.rms_dlogd.mean():.3f} (mean over levels)",
        figure="kou2023_heatmap.png",
    )
    constant = Verdict(
        claim="Kou et al.: boundary constant C in n ||mu||^4 = C sigma^4 d",
        old="C = 1.03 [0.98, 1.07] at level 0.3",
        new="retracted as a single number: C depends on the level",
        control="error level",
        evidence=f"C from {c_span} over levels {ok.level.min():g}-{ok.level.max():g} "
        f"(ratio {ok.C_d.max() / ok.C_d.min():.0f}x)",
        figure="kou2023_heatmap.png",
    )
    return [exponent, constant]


def _ci(row, name, fmt=".3f") -> str:
    return f"{row[name]:{fmt}} [{row[f'{name}_low']:{fmt}}, {row[f'{name}_high']:{fmt}}]"


def render(result: KouResult, figures_dir: Path) -> str:
    s = result.setting
    text = [
        "## 1. Benign overfitting heatmap (Kou et al., ICML 2023)",
        "",
        "**Claim (Kou et al.).** In the unpruned two-layer ReLU CNN, the test error is near the "
        "label-noise floor when n ||mu||^4 >~ C sigma^4 d (benign overfitting) and near chance "
        "when n ||mu||^4 <~ C sigma^4 d (harmful overfitting).",
        "",
        f"Setting: `kou2023` preset, p = 0, n = {s['n']}, sigma = {s['sigma']:g}, "
        f"{s['flip']:g} label flips, {s['steps']} GD steps, m = {s['width']} filters per class; "
        f"grid {s['dims'][2]} dimensions ({s['dims'][0]}-{s['dims'][1]}) x {s['mus'][2]} signal "
        f"strengths ({s['mus'][0]:g}-{s['mus'][1]:g}) x {s['seeds']} repeats = {s['runs']} "
        "trainings.",
        "",
    ]
    fits = result.fits.dropna(subset=["exponent_d"])
    if fits.empty:
        return "\n".join([*text, "Too few dimensions reach a boundary level; no fit."])
    ref = fits.iloc[np.argmin(np.abs(fits.level.to_numpy() - REFERENCE_LEVEL))]
    figures.kou_heatmap(
        result.last,
        result.boundary,
        ref.C_d,
        REFERENCE_LEVEL,
        s["n"],
        figures_dir / "kou2023_heatmap.png",
    )
    table = pd.DataFrame(
        {
            "error level": fits.level,
            "dims crossing": fits.points,
            "exponent over d": fits.apply(_ci, axis=1, name="exponent_d"),
            "exponent over d log d": fits.apply(_ci, axis=1, name="exponent_dlogd"),
            "C (d)": fits.apply(_ci, axis=1, name="C_d", fmt=".3g"),
            "C (d log d)": fits.apply(_ci, axis=1, name="C_dlogd", fmt=".3g"),
            "RMS log-residual, d": fits.rms_d.round(3),
            "RMS log-residual, d log d": fits.rms_dlogd.round(3),
        }
    )
    text += [
        "![Kou et al. heatmap](kou2023_heatmap.png)",
        "",
        "Boundary at an error level: for each d, the first ||mu|| (linearly interpolated) at "
        "which the seed-mean test error falls to the level. The exponent is the least-squares "
        "slope of log ||mu||_b over log d (or log(d log d)); the claim predicts 1/4 for d, and "
        "the d log d law is the alternative with a log factor. C is the geometric mean of "
        "n ||mu||_b^4 / (sigma^4 d) (or d log d); the RMS log-residual measures how well each "
        "fixed-exponent law fits (smaller is better). Brackets: seed-bootstrap 95% percentile "
        f"CIs ({result.n_boot} resamples of whole seeds, so dimensions that share a seed stay "
        "together; the old report's per-row CIs treated them as independent).",
        "",
        table.to_markdown(index=False),
        "",
    ]
    for verdict in result.verdicts:
        text += [f"**{verdict.claim}: {verdict.new}.** {verdict.evidence}.", ""]
    return "\n".join(text)
