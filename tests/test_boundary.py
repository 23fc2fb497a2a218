"""sweeps/regime_boundary.py and analysis/boundary.py (E0-E2 of report/plan.md): the threshold
replicates on data with a known threshold, beta on thresholds with a known shift, the live-neuron
threshold against the package's draws, and the --smoke script with compute/render end to end."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import jaxprune
from analysis import boundary, boundary_render, stats
from jaxprune.state import init_state
from sweeps import regime_boundary

ROOT = Path(__file__).resolve().parents[1]


def test_seed_weights_resample_whole_seeds():
    weights = stats.seed_weights(7, 4000, seed=3)
    assert weights.shape == (4000, 7) and (weights.sum(1) == 7).all()
    # each seed is drawn 7 * 1/7 = 1 time per resample on average (sd 0.93 / sqrt(4000))
    np.testing.assert_allclose(weights.mean(0), 1.0, atol=0.07)
    np.testing.assert_array_equal(weights, stats.seed_weights(7, 4000, seed=3))


def test_threshold_replicates_cover_a_known_threshold():
    """Outcomes drawn from P(learned) = sigmoid(4 (log s - log 0.5)) for 64 seeds at 8 scores:
    the point threshold is near log 0.5 and the 95% bootstrap CI covers it."""
    rng = np.random.default_rng(0)
    x = np.log(2.0 ** np.arange(-4, 4))
    prob = 1 / (1 + np.exp(-4 * (x - math.log(0.5))))
    outcomes = (rng.random((64, len(x))) < prob).astype(float)
    point = stats.rising_x50(
        stats.fit_logistic_threshold(x, outcomes.sum(0), trials=np.full(len(x), 64))
    )
    reps = stats.threshold_replicates(x, outcomes, stats.seed_weights(64, 300, seed=1))
    low, high = stats.percentile_ci(reps)
    assert abs(point - math.log(0.5)) < 0.15
    assert low < math.log(0.5) < high and high - low < 0.6
    # the count likelihood is the per-outcome one
    flat = stats.fit_logistic_threshold(np.repeat(x[None], 64, 0).ravel(), outcomes.ravel())
    assert point == pytest.approx(flat.x50, abs=1e-4)


def test_rising_x50_takes_a_separated_bracket_and_refuses_a_falling_curve():
    x = np.log([0.25, 0.5, 1.0, 2.0])
    separated = stats.fit_logistic_threshold(x, [0, 0, 3, 3], trials=[3, 3, 3, 3])
    assert stats.rising_x50(separated) == pytest.approx((x[1] + x[2]) / 2)
    falling = stats.fit_logistic_threshold(x, [3, 2, 1, 0], trials=[3, 3, 3, 3])
    assert math.isnan(stats.rising_x50(falling))


def test_s75_interpolates_the_mean_accuracy_and_resamples_seeds():
    """s75 (post hoc): the log score where the seed-mean test accuracy rises through 0.75,
    linear between grid points; NaN where the mean starts above 0.75 or never reaches it; a
    bootstrap replicate is the same crossing of the resampled mean."""
    x = np.log([0.25, 0.5, 1.0, 2.0])
    accuracy = np.array([[0.6, 0.7, 0.8, 0.9], [0.6, 0.72, 0.84, 0.9]])  # mean 0.6, .71, .82, .9
    weights = np.array([[2, 0], [0, 2], [1, 1]])
    point, reps = boundary._s75(x, accuracy, weights)
    np.testing.assert_allclose(point, x[1] + (0.75 - 0.71) / (0.82 - 0.71) * (x[2] - x[1]))
    np.testing.assert_allclose(reps, [x[1] + 0.5 * (x[2] - x[1]),
                                      x[1] + (0.03 / 0.12) * (x[2] - x[1]), point])  # fmt: skip
    assert math.isnan(boundary._s75(x, accuracy + 0.2, weights)[0])  # starts above 0.75
    assert math.isnan(boundary._s75(x, accuracy - 0.2, weights)[0])  # never reaches it


def test_beta_recovers_a_known_shift():
    """s50(p) = s50(0) (1 - p)^beta exactly, in the point and in every replicate."""
    ps = [0.0, 0.1, 0.3, 0.5]
    for beta in (1.0, 0.0, -0.7):
        logs = {p: (math.log(0.4) + beta * math.log1p(-p),
                    np.full(5, math.log(0.4) + beta * math.log1p(-p))) for p in ps}  # fmt: skip
        point, reps = boundary._beta(logs, ps)
        assert point == pytest.approx(beta, abs=1e-12)
        np.testing.assert_allclose(reps, beta, atol=1e-12)


@pytest.mark.slow  # compiles Configs of its own (the fast tier keeps the module's others)
def test_p_live_against_the_package_draws():
    """At p_live(m), a class keeps no live signal neuron with probability 1/2: over 600 seeds of
    the package's init and mask draws (`regime_boundary.live_neurons`), about half of them."""
    config, params = jaxprune.presets.yang2023()
    config = config.replace(dim=8, width=10)
    p = regime_boundary.p_live(config.width)
    assert ((1 + p) / 2) ** config.width == pytest.approx(0.5)
    assert boundary.p_for_q(10, 0.5) == pytest.approx(p)
    params = params.replace(prune_frac=p)
    counts = np.stack([regime_boundary.live_neurons(config, params, s) for s in range(600)])
    none = (counts == 0).mean()
    assert abs(none - 0.5) < 4 * math.sqrt(0.25 / 1200)
    # a live neuron is kept by the mask: never more live than kept signal neurons
    state = init_state(config, params, jax.random.key(0))
    kept = np.asarray(state.mask)[[0, 1], :, [0, 1]].sum(1)
    assert (regime_boundary.live_neurons(config, params, 0) <= kept).all()


def test_init_scales_and_score():
    init = regime_boundary.Init("c", 1.0)
    d = 10_000
    sigma0 = init.sigma_init(d)
    assert sigma0 * math.sqrt(d) == pytest.approx(math.sqrt(regime_boundary.N_TRAIN / d))
    assert regime_boundary.Init("fixed", 0.1).sigma_init(d) * math.sqrt(d) == pytest.approx(0.1)
    mu = regime_boundary.mu_for_score(2.0, d)
    assert regime_boundary.N_TRAIN * mu**4 / d == pytest.approx(2.0, rel=1e-5)


def test_e0_runs_only_at_the_dims_the_requested_experiments_need():
    full = regime_boundary.SIZES["full"]
    assert regime_boundary.e0_dims_needed(full, {"H"}) == []
    assert regime_boundary.e0_dims_needed(full, {"W"}) == [10000]
    assert regime_boundary.e0_dims_needed(full, {"E2"}) == [10000, 100000]
    assert regime_boundary.e0_dims_needed(full, {"E1", "W"}) == [10000, 100000, 1000000]
    assert regime_boundary.e0_dims_needed(full, {"E0", "H"}) == full["e0_dims"]
    only_1e4 = {**full, "e0_dims": [10000], "e1_dims": [10000], "e2_dims": [10000]}  # --dims
    assert regime_boundary.e0_dims_needed(only_1e4, {"E0", "E1", "E2", "W", "H"}) == [10000]


@pytest.mark.slow
def test_smoke_script_compute_and_render(tmp_path):
    out = tmp_path / "results"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "sweeps/regime_boundary.py", "--smoke", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    s = regime_boundary.SIZES["smoke"]
    record = json.loads((out / "run.json").read_text())
    assert {f"e0-d{d}" for d in s["e0_dims"]} <= set(record["sweeps"])
    result = boundary.compute(out, n_boot=20)
    assert set(result.e0.dim) == set(s["e0_dims"]) and set(result.e0_verdicts) == {
        "c=1", "fixed=0.1"}  # fmt: skip
    assert set(result.e1_beta.contrast) >= {
        "pruned",
        "dense at sigma_0 sqrt(1-p)",
        "pruned - dense control",
        "pruned, every class live",
    }
    width = [c for c in result.e1_beta.contrast if " - width " in c]
    assert len(width) == 2 and sum("s75" in c for c in width) == 1  # plan's s50 and post hoc s75
    assert sum("does not depend on the width" in v.claim for v in result.verdicts) == 2
    assert "status" not in result.runs  # the invocation finished
    live = json.loads((out / "run.json").read_text())["sweeps"]["live"]
    assert "purpose" in live
    text = boundary_render.render(result, tmp_path / "figures")
    for name in boundary.FIGURES.values():
        assert (tmp_path / "figures" / name).stat().st_size > 1000 and f"({name})" in text
