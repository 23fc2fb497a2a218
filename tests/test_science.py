"""The science scripts and their statistics: sweeps/kou2023_heatmap.py and sweeps/paper_claims.py
at --smoke size (into a tmp dir), analysis/report.py on their results (into its own folder), and
analysis/stats.py on synthetic data with known answers."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

import jaxprune
from analysis import grasp, mild, stats
from jaxprune import experiment
from jaxprune.stats import mean_ci

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="session")  # once per worker (conftest: grouped)
def smoke(tmp_path_factory):
    """Both scripts at --smoke size, then the smoke report on their results."""
    base = tmp_path_factory.mktemp("science")
    kou, claims, report = base / "kou", base / "claims", base / "report" / "smoke"
    _run("sweeps/kou2023_heatmap.py", "--smoke", "--out", str(kou))
    _run("sweeps/paper_claims.py", "--smoke", "--out", str(claims))
    _run(
        "analysis/report.py",
        *("--size", "smoke", "--kou", str(kou), "--claims", str(claims), "--out", str(report)),
    )
    return kou, claims, report


# ---------------------------------------------------------------------------- smoke runs
@pytest.mark.slow  # the science scripts at smoke size, in subprocesses
def test_kou_smoke_grid_and_columns(smoke):
    from sweeps import kou2023_heatmap

    kou, _, _ = smoke
    dims, mus, seeds = kou2023_heatmap.SIZES["smoke"]
    last = jaxprune.final(jaxprune.load(kou / "heatmap"))
    assert len(last) == len(dims) * len(mus) * seeds
    assert sorted(last.dim.unique()) == dims
    assert sorted(last.mu_norm.unique()) == mus
    assert set(last.prune_frac) == {0.0}
    for column in ("seed", "test_acc", "signal_max", "benign_score", "regime_step", "in_regime"):
        assert column in last.columns
    record = json.loads((kou / "run.json").read_text())
    assert record["size"] == "smoke"
    (invocation,) = record["invocations"]
    assert invocation["command"].startswith("python sweeps/kou2023_heatmap.py --smoke")
    assert invocation["wall_s"] > 0 and invocation["hardware"]["cpu_count"] >= 1


@pytest.mark.slow  # the science scripts at smoke size, in subprocesses
def test_claims_smoke_sweeps_and_controls(smoke):
    from sweeps.paper_claims import control_inits

    _, claims, _ = smoke
    record = json.loads((claims / "run.json").read_text())
    assert record["size"] == "smoke"
    keys = set(record["sweeps"])
    assert {"mild", "mild-control", "overprune", "overprune-control", "phase_mu"} <= keys
    assert any(k.startswith("regime-") and k.endswith("-control") for k in keys)
    last = jaxprune.final(jaxprune.load(claims / "mild"))
    control = jaxprune.final(jaxprune.load(claims / "mild-control"))
    assert set(control.prune_frac) == {0.0} and set(control.seed) == set(last.seed)
    expected = control_inits(sorted(last.sigma_init.unique()), sorted(last.prune_frac.unique()))
    np.testing.assert_allclose(sorted(control.sigma_init.unique()), expected, rtol=1e-6)
    # every pruned run finds its matched control: same seed and ||mu||, sigma_0 sqrt(1 - p)
    matched = stats.with_controls(last, control)
    assert len(matched) == (last.prune_frac > 0).sum() and matched.control_value.notna().all()


@pytest.mark.slow  # the science scripts at smoke size, in subprocesses
def test_resume_skips_finished_sweeps(smoke):
    """Re-running the same command resumes: nothing is recomputed, the record grows a row."""
    kou, _, _ = smoke
    before = sorted(p.stat().st_mtime_ns for p in (kou / "heatmap").glob("part-*.parquet"))
    _run("sweeps/kou2023_heatmap.py", "--smoke", "--out", str(kou))
    after = sorted(p.stat().st_mtime_ns for p in (kou / "heatmap").glob("part-*.parquet"))
    assert before == after
    first, again = json.loads((kou / "run.json").read_text())["invocations"]
    assert all(s["trained"] == s["runs"] > 0 for s in first["sweeps"].values())
    assert all(s["trained"] == 0 for s in again["sweeps"].values())
    table = experiment.invocation_table(json.loads((kou / "run.json").read_text()))
    assert list(table["runs trained"]) == [sum(s["runs"] for s in first["sweeps"].values()), 0]


@pytest.mark.slow  # the science scripts at smoke size, in subprocesses
def test_report_files(smoke):
    _, _, report = smoke
    text = (report / "report.md").read_text()
    for heading in ("Summary of verdicts", "Mild pruning", "Over-pruning", "Phase diagrams"):
        assert heading in text
    assert "Result size: smoke" in text and "Primary contrast" in text
    assert "| claim" in text and "old verdict" in text  # the restated verdicts, as a table
    for name in (
        "mild_pruning",
        "mild_slopes",
        "over_pruning",
        "phase_p_mu",
        "phase_p_width",
        "dynamics",
        "regime",
    ):
        png = report / f"{name}.png"
        assert png.exists() and png.stat().st_size > 10_000, name
        assert f"({name}.png)" in text


@pytest.mark.slow  # the science scripts at smoke size, in subprocesses
def test_report_size_folder_and_missing_results(smoke, tmp_path, monkeypatch):
    """--size smoke writes report/smoke/ under the working directory, never report/; without
    results the command prints one line and no traceback."""
    from analysis import report

    kou, claims, _ = smoke
    monkeypatch.chdir(tmp_path)
    report.main(["--size", "smoke", "--kou", str(kou), "--claims", str(claims)])
    assert (tmp_path / "report" / "smoke" / "report.md").exists()
    assert not (tmp_path / "report" / "report.md").exists()
    done = _run(
        "analysis/report.py",
        "--size",
        "smoke",
        "--kou",
        "/nonexistent/a",
        "--claims",
        "/nonexistent/b",
        check=False,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "no results" in done.stderr


# ---------------------------------------------------------------------------- statistics
def test_mean_ci_matches_scipy():
    x = np.array([0.61, 0.64, 0.59, 0.70, 0.66, 0.63, 0.58, 0.69])
    mean, low, high, n = mean_ci(x)
    ref = scipy_stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=scipy_stats.sem(x))
    assert n == 8 and mean == pytest.approx(x.mean())
    np.testing.assert_allclose([low, high], ref, rtol=1e-12)
    _, low99, high99, _ = mean_ci(x, level=0.99)
    assert low99 < low and high99 > high


def test_holm_known_answer():
    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan])
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4 x 0.005, 3 x 0.01, 2 x 0.03, 1 x 0.04, running max
    np.testing.assert_allclose(stats.holm(p), [0.03, 0.06, 0.06, 0.02, np.nan])
    cells = stats.add_holm(pd.DataFrame({"diff": [0.1, 0.2, -0.1, -0.3], "pvalue": p[:4]}))
    assert cells.verdict.tolist() == ["better", "no change", "no change", "worse"]


def test_paired_differences_by_seed():
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
    test = scipy_stats.ttest_rel(base + shift, base)
    half = scipy_stats.t.ppf(0.975, 4) * shift.std(ddof=1) / np.sqrt(5)
    assert row["n"] == 5 and row["diff"] == pytest.approx(shift.mean())
    assert row["ci_low"] == pytest.approx(shift.mean() - half)
    assert row["pvalue"] == pytest.approx(test.pvalue)
    assert row["base"] == pytest.approx(base.mean())


def _runs(seeds, sigma, p, acc):
    return [
        {"seed": s, "mu_norm": 1.0, "sigma_init": sigma, "prune_frac": p, "test_acc": a}
        for s, a in zip(seeds, acc, strict=True)
    ]


def _swept(rows: list[dict], **config) -> pd.DataFrame:
    """Final rows as `jaxprune.load` gives them: Params columns, the Config in attrs."""
    frame = pd.DataFrame(rows)
    frame.attrs["config"] = dataclasses.asdict(jaxprune.Config(**config))
    return frame


def test_control_differences_match_init_scale():
    """A pruned run at (sigma_0 = 1, p = 0.75) is paired with the dense run of its seed at
    sigma_0 sqrt(1 - p) = 0.5, not with another init scale."""
    seeds = np.arange(4)
    pruned = _swept(
        _runs(seeds, 1.0, 0.0, [0.6] * 4) + _runs(seeds, 1.0, 0.75, [0.70, 0.72, 0.71, 0.69])
    )
    control = _swept(
        _runs(seeds, 0.5, 0.0, [0.68, 0.70, 0.70, 0.68]) + _runs(seeds, 0.8, 0.0, [0.0] * 4)
    )
    (row,) = stats.control_differences(pruned, control, by=["sigma_init"]).to_dict("records")
    assert row["n"] == 4 and row["prune_frac"] == 0.75
    assert row["diff"] == pytest.approx(np.mean([0.02, 0.02, 0.01, 0.01]))
    assert row["base"] == pytest.approx(0.69)


def _setting(dim: int, pruned_acc: float, control_acc: float):
    """One setting's pruned sweep (p = 0.75 at sigma_0 = 1) and its control sweep (dense at
    sigma_0 = 0.5), 3 seeds, Config dim = `dim`, as `jaxprune.load` gives them."""
    seeds = np.arange(3)
    return (
        _swept(_runs(seeds, 1.0, 0.75, [pruned_acc] * 3), dim=dim),
        _swept(_runs(seeds, 0.5, 0.0, [control_acc] * 3), dim=dim),
    )


def test_with_controls_pairs_each_setting_with_its_own_controls():
    """Two settings that differ only in a Config field (dim), stacked as a section stacks its
    sweeps: every pruned run takes the control of its own setting (0.6 for d = 100, 0.9 for
    d = 200), never the other's. The old matching (seed and Params columns only) gave both
    settings the first setting's controls."""
    (a, ca), (b, cb) = _setting(100, 0.7, 0.6), _setting(200, 0.8, 0.9)
    for first, second in ((ca, cb), (cb, ca)):  # either order of the stacked controls
        control = pd.concat([stats.config_columns(first), stats.config_columns(second)])
        # each setting as loaded (its Config in attrs only) against both settings' controls
        assert (stats.with_controls(a, control).control_value == 0.6).all()
        assert (stats.with_controls(b, control).control_value == 0.9).all()
    pruned = pd.concat([stats.config_columns(a), stats.config_columns(b)], ignore_index=True)
    matched = stats.with_controls(pruned, control)
    assert len(matched) == 6
    own = matched.set_index("dim").control_value
    assert (own.loc[100] == 0.6).all() and (own.loc[200] == 0.9).all()
    diffs = stats.control_differences(pruned, control, by=["dim"])
    np.testing.assert_allclose(diffs.sort_values("dim")["diff"], [0.1, -0.1], atol=1e-12)


def test_with_controls_never_pairs_across_configs():
    """A control sweep of another Config (dim 200 against dim 100, read from attrs) matches no
    pruned run; stacked frames that lost their Config are refused, not mispaired."""
    (a, _), (_, cb) = _setting(100, 0.7, 0.6), _setting(200, 0.8, 0.9)
    assert stats.with_controls(a, cb).control_value.isna().all()
    (a, ca), (b, cb) = _setting(100, 0.7, 0.6), _setting(200, 0.8, 0.9)
    stacked = pd.concat([a.assign(setting="a"), b.assign(setting="b")], ignore_index=True)
    stacked_control = pd.concat([ca.assign(setting="a"), cb.assign(setting="b")])
    stacked.attrs, stacked_control.attrs = {}, {}
    with pytest.raises(ValueError, match="does not record Config field"):
        stats.with_controls(stacked, stacked_control)


def test_seed_slopes_and_primary_contrast():
    """acc = a_seed + b p exactly: every seed's slope is b; pooled over ||mu|| as well."""
    rng = np.random.default_rng(0)
    offsets, b = rng.uniform(0.5, 0.8, 6), 0.04
    rows = [
        {"seed": s, "mu_norm": mu, "prune_frac": p, "test_acc": a + b * p + 0.1 * mu}
        for s, a in enumerate(offsets)
        for mu in (1.0, 2.0)
        for p in (0.0, 0.25, 0.5, 0.9)  # p = 0.9 is not mild: left out of the slope
    ]
    frame = pd.DataFrame(rows)
    frame.loc[frame.prune_frac == 0.9, "test_acc"] = 0.0
    slopes = stats.seed_slopes(frame)
    np.testing.assert_allclose(slopes, b, rtol=1e-9)
    assert stats.contrast(slopes)["diff"] == pytest.approx(b)
    # the verdict logic on constructed primary contrasts
    row = pd.Series({"slope": 0.05, "slope_p_holm": 0.01, "excess": 0.0, "excess_p_holm": 0.9})
    assert mild.group_verdict(row)[0] == "retracted: an init-scale effect"
    row["excess"], row["excess_p_holm"] = 0.04, 0.01
    assert mild.group_verdict(row)[0] == "holds beyond the init-scale control"
    row["slope"] = -0.05
    assert mild.group_verdict(row)[0] == "fails: pruning lowers accuracy"


def test_bootstrap_reproducible_from_seed():
    values = np.random.default_rng(1).normal(size=(10, 3, 4))
    a = stats.seed_bootstrap(values, lambda t: t.sum(axis=1), n_boot=50, seed=7)
    b = stats.seed_bootstrap(values, lambda t: t.sum(axis=1), n_boot=50, seed=7)
    c = stats.seed_bootstrap(values, lambda t: t.sum(axis=1), n_boot=50, seed=8)
    assert a.shape == (50, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def _heatmap(law, c, seeds=4, noise=0.0):
    """A synthetic heatmap whose mean error falls from 0.5 to 0.1 across n mu^4 = C law(d)."""
    n = 20
    dims = np.arange(100, 1100, 100)
    mus = np.round(np.arange(0, 10, 0.05), 2)
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(seeds):
        d, m = np.meshgrid(dims, mus, indexing="ij")
        score = np.log(n * np.maximum(m, 1e-9) ** 4 / (c * law(d)))
        error = 0.1 + 0.4 / (1 + np.exp(3 * score)) + noise * rng.normal(size=d.shape)
        rows.append(
            pd.DataFrame(
                {"seed": seed, "dim": d.ravel(), "mu_norm": m.ravel(), "test_error": error.ravel()}
            )
        )
    return pd.concat(rows), n, c


def test_boundary_fits_recover_the_law():
    frame, n, c = _heatmap(lambda d: d, 150.0)
    (row,) = stats.boundary_fits(frame, [0.3], n_train=n, n_boot=20).to_dict("records")
    assert row["points"] == 10
    assert row["exponent_d"] == pytest.approx(0.25, abs=0.005)
    assert row["C_d"] == pytest.approx(c, rel=0.03)
    assert row["rms_d"] < row["rms_dlogd"]
    frame, n, c = _heatmap(lambda d: d * np.log(d), 20.0, noise=0.01)
    fits = stats.boundary_fits(frame, [0.25, 0.3], n_train=n, n_boot=50, seed=3)
    assert (fits.exponent_dlogd - 0.25).abs().max() < 0.01
    assert (fits.rms_dlogd < fits.rms_d).all()
    assert (fits.exponent_dlogd_low <= fits.exponent_dlogd).all()
    assert (fits.exponent_dlogd <= fits.exponent_dlogd_high).all()


def test_first_crossing():
    assert stats.first_crossing([0, 1, 2], [0.5, 0.4, 0.2], 0.3) == pytest.approx(1.5)
    assert stats.first_crossing([2, 0, 1], [0.2, 0.5, 0.4], 0.3) == pytest.approx(1.5)
    assert np.isnan(stats.first_crossing([0, 1], [0.5, 0.4], 0.3))
    assert stats.first_crossing([0, 1], [0.5, 0.9], 0.7, below=False) == pytest.approx(0.5)
    table = np.array([[0.5, 0.4, 0.2], [0.2, 0.1, 0.1]])
    np.testing.assert_allclose(stats.first_crossings([0, 1, 2], table, 0.3), [1.5, 0.0])


# ---------------------------------------------------------------------------- GraSP
@pytest.mark.slow  # compiles GraSP (about 6 s)
def test_grasp_keeps_only_dead_signal_weights():
    """In the paper's model GraSP removes every live (w0 > 0) signal weight first and keeps
    dead ones; random pruning keeps live ones; SNIP keeps no dead one."""
    config = jaxprune.Config(dim=100, width=8, n_train=20, n_test=20, steps=5, log_every=5)
    params = jaxprune.Params(prune_frac=0.5, mu_norm=4.0)
    seeds = jax.numpy.arange(6)
    measured = {}
    for mask in ("bernoulli", "snip", "grasp"):
        cfg = config.replace(mask=mask)
        measure = jax.jit(jax.vmap(lambda s, c=cfg: grasp._measure(c, params, s)))
        measured[mask] = {k: float(np.mean(v)) for k, v in measure(seeds).items()}
    assert measured["grasp"]["kept"] > 1 and measured["grasp"]["live"] == 0
    assert measured["grasp"]["grasp_live_positive"] == 1.0
    assert measured["bernoulli"]["live"] > 0.5
    assert (
        measured["snip"]["dead"] == 0 and measured["snip"]["live"] > measured["bernoulli"]["live"]
    )


def test_phase_diagram_outlines_in_regime_cells():
    """plot.phase_diagram(outline='in_regime') outlines exactly the cells where every run is
    in regime (here: p = 0.5 at both ||mu||; p = 0 at ||mu|| = 2 in one seed only: not)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.patches import Rectangle

    from jaxprune.plot import phase_diagram

    rows = [
        {"seed": s, "step": 10, "prune_frac": p, "mu_norm": mu, "test_acc": 0.7,
         "in_regime": p == 0.5 or (mu == 2.0 and s == 0)}
        for s in (0, 1) for p in (0.0, 0.5) for mu in (1.0, 2.0)
    ]  # fmt: skip
    ax = phase_diagram(pd.DataFrame(rows), outline="in_regime")
    boxes = [patch for patch in ax.patches if isinstance(patch, Rectangle) and not patch.fill]
    # cells span midpoints: p in {0, 0.5} -> x edges -0.25, 0.25, 0.75; ||mu|| in {1, 2} -> y
    # edges 0.5, 1.5, 2.5. Outlined: the p = 0.5 column only.
    assert sorted((b.get_x(), b.get_y()) for b in boxes) == [(0.25, 0.5), (0.25, 1.5)]
