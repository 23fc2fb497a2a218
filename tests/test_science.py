"""The science scripts and their statistics: sweeps/kou2023_heatmap.py, sweeps/paper_claims.py
(each at --smoke size, into a tmp dir), analysis/report.py on their results, and analysis/stats.py
on synthetic frames with known answers."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "analysis"))

import stats  # noqa: E402

import jaxprune  # noqa: E402


def _run(*args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """Both scripts at --smoke size, then the report on their results."""
    base = tmp_path_factory.mktemp("science")
    kou, claims, report = base / "kou", base / "claims", base / "report"
    _run("sweeps/kou2023_heatmap.py", "--smoke", "--out", str(kou))
    _run("sweeps/paper_claims.py", "--smoke", "--out", str(claims))
    _run("analysis/report.py", "--kou", str(kou), "--claims", str(claims), "--out", str(report))
    return kou, claims, report


# ---------------------------------------------------------------------------- smoke runs
def test_kou_smoke_grid_and_columns(smoke):
    kou, _, _ = smoke
    sys.path.insert(0, str(ROOT / "sweeps"))
    import kou2023_heatmap

    dims, mus, seeds = kou2023_heatmap.SIZES["smoke"]
    last = jaxprune.final(jaxprune.load(kou / "heatmap"))
    assert len(last) == len(dims) * len(mus) * seeds
    assert sorted(last.dim.unique()) == dims
    assert sorted(last.mu_norm.unique()) == mus
    assert set(last.prune_frac) == {0.0}
    for column in ("seed", "test_acc", "train_loss", "signal_max", "noise_max", "benign_score"):
        assert column in last.columns
    record = json.loads((kou / "run.json").read_text())
    assert record["size"] == "smoke"
    (invocation,) = record["invocations"]
    assert invocation["command"].startswith("python sweeps/kou2023_heatmap.py --smoke")
    assert invocation["wall_s"] > 0 and invocation["hardware"]["cpu_count"] >= 1


def test_claims_smoke_sweeps(smoke):
    _, claims, _ = smoke
    record = json.loads((claims / "run.json").read_text())
    assert record["size"] == "smoke"
    keys = set(record["sweeps"])
    assert {"mild", "overprune", "phase_mu", "dynamics"} <= keys
    assert any(k.startswith("regime-") for k in keys)
    mild = jaxprune.load(claims / "mild")
    assert mild.attrs["config"]["loss_tol"] > 0  # trained until loss_tol
    last = jaxprune.final(mild)
    assert {0.0, 0.5} <= set(last.prune_frac)
    assert "converged_step" in last.columns
    over = jaxprune.final(jaxprune.load(claims / "overprune"))
    assert over.prune_frac.max() == pytest.approx(0.999)
    for column in ("train_loss", "test_acc", "signal_max", "noise_max"):
        assert over[column].notna().all()
    dyn = jaxprune.load(claims / "dynamics")
    assert dyn.step.nunique() >= 3  # a curve over steps, not one point
    assert sorted(dyn.prune_frac.unique()) == pytest.approx([0.0, 0.5, 0.95])


def test_resume_skips_finished_sweeps(smoke):
    """Re-running the same command resumes: nothing is recomputed, the record grows a row."""
    kou, _, _ = smoke
    before = sorted(p.stat().st_mtime_ns for p in (kou / "heatmap").glob("part-*.parquet"))
    _run("sweeps/kou2023_heatmap.py", "--smoke", "--out", str(kou))
    after = sorted(p.stat().st_mtime_ns for p in (kou / "heatmap").glob("part-*.parquet"))
    assert before == after
    assert len(json.loads((kou / "run.json").read_text())["invocations"]) == 2


def test_report_files(smoke):
    _, _, report = smoke
    text = (report / "report.md").read_text()
    for heading in ("Benign overfitting", "Mild pruning", "Over-pruning", "Phase diagrams"):
        assert heading in text
    assert "Dynamics" in text and "Result size: smoke" in text and "Verdict" in text
    for name in (
        "kou2023_heatmap",
        "mild_pruning",
        "over_pruning",
        "phase_p_mu",
        "phase_p_width",
        "dynamics",
        "regime",
    ):
        png = report / f"{name}.png"
        assert png.exists() and png.stat().st_size > 10_000, name
        assert f"({name}.png)" in text


# ---------------------------------------------------------------------------- statistics
def test_t_quantile():
    assert stats.t_quantile(1) == pytest.approx(12.7062)
    assert stats.t_quantile(9) == pytest.approx(2.2622)
    # the expansion beyond the table continues it smoothly and tends to the normal quantile
    assert stats.t_quantile(31) == pytest.approx(2.0395, abs=2e-4)
    assert stats.t_quantile(60) == pytest.approx(2.0003, abs=2e-4)
    assert stats.t_quantile(120) == pytest.approx(1.9799, abs=2e-4)
    assert stats.t_quantile(math.inf) == pytest.approx(1.959964, abs=1e-6)
    with pytest.raises(ValueError):
        stats.t_quantile(0)


def test_paired_differences_by_seed():
    # 5 seeds; p = 0.5 adds a seed-specific shift to the p = 0 value of the same seed.
    seeds = np.arange(5)
    base = np.array([0.6, 0.7, 0.8, 0.65, 0.75])
    shift = np.array([0.02, 0.04, 0.01, 0.03, 0.05])
    rows = [
        {"seed": s, "prune_frac": 0.0, "mu_norm": 1.0, "test_acc": b}
        for s, b in zip(seeds, base, strict=True)
    ]
    rows += [
        {"seed": s, "prune_frac": 0.5, "mu_norm": 1.0, "test_acc": b + d}
        for s, b, d in zip(seeds, base, shift, strict=True)
    ]
    rows += [{"seed": 9, "prune_frac": 0.5, "mu_norm": 1.0, "test_acc": 0.0}]  # no partner
    frame = pd.DataFrame(rows).sample(frac=1, random_state=0)  # order must not matter
    (row,) = stats.paired_differences(frame, by=["mu_norm"]).to_dict("records")
    half = 2.7764 * shift.std(ddof=1) / np.sqrt(5)  # t_{0.975, 4}
    assert row["n"] == 5 and row["prune_frac"] == 0.5 and row["mu_norm"] == 1.0
    assert row["diff"] == pytest.approx(shift.mean())
    assert row["ci_low"] == pytest.approx(shift.mean() - half)
    assert row["ci_high"] == pytest.approx(shift.mean() + half)
    assert row["base"] == pytest.approx(base.mean())
    assert row["treated"] == pytest.approx((base + shift).mean())
    # Unpaired, the between-seed spread of the base would swamp the shift: pairing removes it.
    assert half < 2.7764 * base.std(ddof=1) / np.sqrt(5)


def test_fit_boundary_constant_recovers_c():
    n, c = 20, 37.0
    dims = np.arange(100, 1100, 10)
    mu = (c * dims / n) ** 0.25
    fit = stats.fit_boundary_constant(mu, dims, n)
    assert fit.C == pytest.approx(c) and fit.points == len(dims)
    assert fit.rel_spread == pytest.approx(0, abs=1e-9)


def test_boundary_from_synthetic_heatmap_recovers_c():
    """A heatmap whose mean error falls from 0.5 to 0.1 across n mu^4 = C d: the measured
    boundary at level 0.3 and the fit give C back (up to the interpolation on a 0.1 grid)."""
    n, c = 20, 150.0
    dims = np.arange(100, 1100, 50)
    mus = np.round(np.arange(0, 10, 0.1), 1)
    d, m = np.meshgrid(dims, mus, indexing="ij")
    score = np.log(n * np.maximum(m, 1e-9) ** 4 / (c * d))
    error = 0.1 + 0.4 / (1 + np.exp(3 * score))  # 0.3 exactly at n mu^4 = C d
    frame = pd.DataFrame({"dim": d.ravel(), "mu_norm": m.ravel(), "test_error": error.ravel()})
    boundary = stats.boundary_points(frame, 0.3)
    assert len(boundary) == len(dims)
    np.testing.assert_allclose(boundary.mu_norm, (c * dims / n) ** 0.25, rtol=0.02)
    fit = stats.fit_boundary_constant(boundary.mu_norm, boundary.dim, n)
    assert fit.C == pytest.approx(c, rel=0.03)
    law = stats.fit_power_law(boundary.dim, boundary.mu_norm)
    assert law.ci_low <= 0.25 <= law.ci_high or law.slope == pytest.approx(0.25, abs=0.01)


def test_first_crossing():
    assert stats.first_crossing([0, 1, 2], [0.5, 0.4, 0.2], 0.3) == pytest.approx(1.5)
    assert stats.first_crossing([2, 0, 1], [0.2, 0.5, 0.4], 0.3) == pytest.approx(1.5)
    assert math.isnan(stats.first_crossing([0, 1], [0.5, 0.4], 0.3))
    assert stats.first_crossing([0, 1], [0.5, 0.9], 0.7, below=False) == pytest.approx(0.5)


def test_verdicts():
    def diffs(values):
        return pd.DataFrame(
            [
                {"mu_norm": mu, "prune_frac": p, "diff": d, "ci_low": lo, "ci_high": hi}
                for mu, p, d, lo, hi in values
            ]
        )

    better = (1.0, 0.3, 0.02, 0.01, 0.03)
    worse = (2.0, 0.3, -0.02, -0.03, -0.01)
    null = (2.0, 0.3, 0.0, -0.01, 0.01)
    assert stats.mild_pruning_verdict(diffs([better]), by=["mu_norm"]).status == "holds"
    assert stats.mild_pruning_verdict(diffs([worse, null]), by=["mu_norm"]).status == "fails"
    mixed = stats.mild_pruning_verdict(diffs([better, worse]), by=["mu_norm"])
    assert mixed.status == "holds only in a region" and "mu_norm = 1" in mixed.text
    # p beyond p_max is not mild: it cannot make the claim hold
    far = (1.0, 0.9, 0.05, 0.04, 0.06)
    assert stats.mild_pruning_verdict(diffs([far, null]), by=["mu_norm"]).status == "fails"

    cells = pd.DataFrame(
        {
            "width": [2, 2, 5, 5],
            "prune_frac": [0.0, 0.9, 0.0, 0.9],
            "train_acc": [1.0, 1.0, 1.0, 1.0],
            "test_ci_high": [1.0, 0.53, 1.0, 0.9],
        }
    )
    over = stats.over_pruning_verdict(cells, chance=0.5)
    assert over.status == "holds only in a region" and "m = 2: p in {0.9}" in over.text
    assert stats.over_pruning_verdict(cells[cells.width == 2], chance=0.5).status == "holds"
    assert stats.over_pruning_verdict(cells[cells.width == 5], chance=0.5).status == "fails"
