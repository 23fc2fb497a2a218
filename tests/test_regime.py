"""sweeps/theory_regime.py and analysis/regime.py: the logistic threshold fit on data with a
known threshold, the paired slopes, the proofs' coefficients against a direct dense computation,
the per-class outcomes against the run's own measurements, and the --smoke script with
compute/render end to end (into their own folders)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest

import jaxprune
from analysis import regime, regime_render, stats
from jaxprune import model
from jaxprune.data import sample_dataset
from jaxprune.state import TRAIN_STREAM, init_state
from sweeps import theory_regime

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------- statistics
def test_logistic_threshold_recovers_a_known_p_star():
    """Outcomes drawn from sigmoid(b (log(1-p) - log(1-p*))) with p* = 0.85: over 200 draws the
    fitted threshold is unbiased, within 0.02 of p*, and its 95% Wald interval covers the truth
    in 90-99% of the draws (the interval is calibrated, not just wide)."""
    p_star, b = 0.85, 3.0
    p = np.repeat([0.0, 0.5, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98], 400)
    x, truth = np.log1p(-p), math.log1p(-p_star)
    prob = 1 / (1 + np.exp(-b * (x - truth)))
    fits = [
        stats.fit_logistic_threshold(x, np.random.default_rng(i).random(len(p)) < prob)
        for i in range(200)
    ]
    assert all(f.estimable and f.n == len(p) for f in fits)
    errors = np.array([f.x50 - truth for f in fits])
    assert abs(errors.mean()) < 0.005
    assert np.abs(1 - np.exp([f.x50 for f in fits]) - p_star).max() < 0.02
    assert np.median([f.b for f in fits]) == pytest.approx(b, rel=0.05)
    coverage = np.mean([f.x50_low < truth < f.x50_high for f in fits])
    assert 0.9 <= coverage <= 0.99


def test_logistic_threshold_with_separated_outcomes_gives_the_bracket():
    x = np.log1p(-np.array([0.0, 0.5, 0.8, 0.9, 0.95]))
    y = np.array([1, 1, 1, 0, 0])
    fit = stats.fit_logistic_threshold(x, y)
    assert not fit.estimable and math.isnan(fit.a)
    assert (fit.x50_low, fit.x50_high) == (x[3], x[2])  # between p = 0.9 (fail), 0.8 (learn)
    all_learned = stats.fit_logistic_threshold(x, np.ones(5))
    assert not all_learned.estimable and all_learned.x50_high == math.inf


def test_logistic_threshold_only_where_the_curve_falls_through_half_in_the_range():
    """Outcomes that do not decline with p (learned at 95% everywhere, the few failures at
    p = 0) give an estimable fit whose x50 is an extrapolation outside the data, or a curve
    that rises with p: no threshold. A decline through 1/2 inside the grid is one."""
    p = np.repeat([0.0, 0.5, 0.8, 0.9, 0.95], 100)
    x = np.log1p(-p)
    flat = np.ones(len(p))
    flat[[0, 1, 2, 3, 4, 150, 250]] = 0  # failures at p = 0 (5), 0.5 and 0.8
    fit = stats.fit_logistic_threshold(x, flat)
    assert fit.estimable and not fit.rises_through_half()
    assert not fit.x_min <= fit.x50 <= fit.x_max or fit.b <= 0
    declining = np.random.default_rng(0).random(len(p)) < 1 / (1 + np.exp(-4 * (x + 1.5)))
    fit = stats.fit_logistic_threshold(x, declining)
    assert fit.rises_through_half() and 0.6 < 1 - math.exp(fit.x50) < 0.9
    assert (fit.x_min, fit.x_max) == (x.min(), x.max())


def test_mild_verdict_names_where_it_fails_and_where_nothing_is_shown():
    """Negative slopes at the smallest d's and intervals covering 0 above: 'fails' there,
    'not shown' above; all covering 0: not shown; one positive: holds only in a region."""

    def slopes(*intervals):
        rows = [
            dict(dim=d, prune=(lo + hi) / 2, prune_low=lo, prune_high=hi, init=0.0,
                 beyond_init=(lo + hi) / 2, beyond_init_low=lo, beyond_init_high=hi)
            for d, (lo, hi) in zip([1000, 3000, 10000], intervals, strict=True)
        ]  # fmt: skip
        return pd.DataFrame(rows)

    def verdict(*intervals):
        return regime._mild_verdict(slopes(*intervals), 0.5, 0.95)

    status, text = verdict((-0.2, -0.1), (-0.1, -0.01), (-0.05, 0.05))
    assert status == "fails at d <= 3000 (pruning lowers accuracy); not shown above"
    assert "at no d does pruning gain beyond that control" in text
    status, _ = verdict((-0.05, 0.05), (-0.1, -0.01), (-0.05, 0.05))
    assert status == "fails at 1 of 3 d; not shown at the others"
    assert verdict(*[(-0.05, 0.05)] * 3)[0].startswith("not shown")
    assert verdict(*[(-0.2, -0.1)] * 3)[0].startswith("fails:")
    status, _ = verdict((-0.2, -0.1), (0.01, 0.1), (-0.05, 0.05))
    assert status == "holds only in a region"


def test_paired_slopes_average_the_per_seed_slopes():
    """Per seed, acc = c_seed + s_seed p at two signal strengths: the slope's mean over seeds is
    mean(s_seed) with the t interval of jaxprune.stats.mean_ci."""
    slopes = np.array([0.1, -0.05, 0.2, 0.0])
    rows = [
        {"seed": seed, "mu_norm": mu, "prune_frac": p, "test_acc": 0.7 + mu * 0.01 + s * p}
        for seed, s in enumerate(slopes)
        for mu in (1.0, 2.0)
        for p in (0.0, 0.25, 0.5)
    ]
    mean, low, high, n = stats.paired_slopes(pd.DataFrame(rows), "test_acc")
    expected = jaxprune.stats.mean_ci(slopes)
    assert n == 4
    np.testing.assert_allclose([mean, low, high], expected[:3], atol=1e-12)


# ---------------------------------------------------------------------------- coefficients
TINY = dict(dim=40, n_train=4, width=3, n_test=20, steps=5, log_every=5)


@pytest.mark.slow  # trains and compiles its own runs
def test_coefficients_against_a_direct_dense_computation():
    """gamma and rho from `theory_regime.coefficients` equal the projections of w(t) - w(0)
    onto the dense signal and noise patches, with w(t) from plain dense GD on the dense loss."""
    config, params = jaxprune.presets.yang2023()
    config = config.replace(**TINY, loss_tol=None).replace(width=8)
    params = params.replace(prune_frac=0.3, mu_norm=2.0, lr=0.5, sigma_init=0.05)
    seed, steps = 3, 7
    c = theory_regime.coefficients(config, params, seed, steps, [0.3, 0.6])
    c = {name: v[0] for name, v in c.items()}  # the run at p = 0.3, as params has it

    key = jax.random.key(seed)
    data = sample_dataset(config, params, jax.random.fold_in(key, TRAIN_STREAM), config.n_train)
    start = init_state(config, params, key)
    w, b, mask = start.weights, start.bias, start.mask
    grad = jax.grad(model.loss, argnums=1)
    for _ in range(steps):
        w = w - params.lr * grad(config, w, b, mask, data.x, data.y) * mask
    delta = np.asarray(w - start.weights, dtype=np.float64)

    # the signal patch of sample i holds mu_{y_i}; mu_k = mu_norm e_k
    mu = params.mu_norm * np.eye(config.num_classes, config.dim)
    gamma = np.einsum("kmd,kd->km", delta, mu) / params.mu_norm**2
    noise = np.asarray(data.noise).sum(axis=1)  # (n, d): the one noise patch of each sample
    rho = np.einsum("kmd,nd->kmn", delta, noise) / (noise**2).sum(axis=1)
    np.testing.assert_allclose(c["gamma"], gamma, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(c["rho"][..., 0], rho, rtol=1e-3, atol=1e-6)
    np.testing.assert_array_equal(c["y"], np.asarray(data.y))
    assert np.abs(gamma).max() > 1e-4 and np.abs(rho).max() > 1e-4  # they did move

    # and the run's own signal_max after t steps is w(0)'s alignment plus gamma ||mu||
    frame = jaxprune.train(config.replace(steps=steps, log_every=steps), params, seed)
    w0_align = np.einsum("kmd,kd->km", np.asarray(start.weights), np.eye(2, config.dim))
    signal_max = (w0_align + c["gamma"] * params.mu_norm).max(axis=1).mean()
    assert frame.signal_max.iloc[-1] == pytest.approx(signal_max, rel=1e-4)


@pytest.mark.slow  # trains and compiles its own runs
def test_class_outcomes_agree_with_the_run():
    """The per-class accuracies, weighted by class size, give the run's test_acc; the realised
    per-class signal neurons average to its signal_neurons; and a class without a live signal
    neuron (kept, positive at init) ends with no positive weight on its signal coordinate
    (class_signal <= 0: the ReLU filter never learned it), one with a live neuron above 0."""
    config, params = jaxprune.presets.yang2023()
    config = config.replace(**TINY)
    params = params.replace(mu_norm=3.0)
    rows = []
    for seed in range(4):
        both = theory_regime.class_outcomes(config, params, seed, [0.3, 0.6])  # one call
        for p, one in both.groupby("prune_frac"):
            frame = jaxprune.train(config, params.replace(prune_frac=p), seed)
            assert len(one) == config.num_classes
            weighted = (one.class_test_acc * one.class_test_samples).sum() / config.n_test
            assert weighted == pytest.approx(frame.test_acc.iloc[-1], abs=1e-6)
            assert one.signal_neurons_class.mean() == pytest.approx(frame.signal_neurons.iloc[-1])
            assert one.class_test_samples.sum() == config.n_test
            assert one.converged_step.iloc[0] == frame.converged_step.iloc[-1]
            rows.append(one)
    rows = pd.concat(rows)
    assert (rows.signal_neurons_live <= rows.signal_neurons_class).all()
    dead = rows[rows.signal_neurons_live == 0]
    assert len(dead) and (dead.class_signal <= 0).all()
    assert (rows[rows.signal_neurons_live >= 1].class_signal > 0).all()


# ---------------------------------------------------------------------------- smoke
@pytest.fixture(scope="session")  # once per worker (conftest: grouped)
def smoke(tmp_path_factory):
    base = tmp_path_factory.mktemp("regime")
    out, figures = base / "results", base / "figures"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "sweeps/theory_regime.py", "--smoke", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = regime.compute(out)
    return out, figures, result, regime_render.render(result, figures)


@pytest.mark.slow  # theory_regime.py at smoke size, in a subprocess
def test_smoke_script_writes_every_pass(smoke):
    out, _, _, _ = smoke
    s = theory_regime.SIZES["smoke"]
    record = json.loads((out / "run.json").read_text())
    assert record["size"] == "smoke" and record["script"] == "sweeps/theory_regime.py"
    expected = {f"mild-d{d}" for d in s["dims"]}
    expected |= {f"overprune-d{d}" for d in s["over_dims"]} | {"classes", "coefficients"}
    assert set(record["sweeps"]) == expected
    classes = pd.read_parquet(out / "classes.parquet")
    assert len(classes) == len(s["over_dims"]) * len(s["over_p"]) * s["seeds"] * 2
    coef = pd.read_parquet(out / "coefficients.parquet")
    assert len(coef) == len(s["dyn_dims"]) * len(s["dyn_p"]) * s["dyn_seeds"] * len(s["dyn_steps"])
    mild = jaxprune.final(jaxprune.load(out / f"mild-d{s['dims'][0]}"))
    d = s["dims"][0]
    assert mild.sigma_init.iloc[0] == pytest.approx(theory_regime.INIT_SCALE / math.sqrt(d))
    assert mild.lr.iloc[0] == pytest.approx(theory_regime.LR_SCALE / d)
    assert sorted(mild.prune_frac.unique()) == s["mild_p"]
    # the matched controls in the same sweep: dense at sigma_0 sqrt(1 - p) for each p > 0
    sigma0 = theory_regime.INIT_SCALE / math.sqrt(d)
    control = mild[~np.isclose(mild.sigma_init, sigma0, rtol=1e-6, atol=0)]
    assert (control.prune_frac == 0).all()
    np.testing.assert_allclose(
        sorted(control.sigma_init.unique(), reverse=True),
        [sigma0 * math.sqrt(1 - p) for p in s["mild_p"] if p],
        rtol=1e-4,
    )
    assert len(mild) == len(s["scores"]) * (2 * len(s["mild_p"]) - 1) * s["seeds"]


@pytest.mark.slow  # theory_regime.py at smoke size, in a subprocess
def test_smoke_compute_and_render(smoke):
    out, figures, result, text = smoke
    s = theory_regime.SIZES["smoke"]
    assert list(result.regime.d) == s["dims"]
    assert result.regime["d / n^2"].iloc[0] == pytest.approx(s["dims"][0] / 64)
    assert result.mild_status.startswith(("holds", "fails", "not shown"))
    assert set(result.slopes.dim) == set(s["dims"]) and (result.slopes.seeds == s["seeds"]).all()
    # prune = init + beyond_init, seed by seed, so the mean slopes add up
    np.testing.assert_allclose(
        result.slopes.prune, result.slopes.init + result.slopes.beyond_init, atol=1e-9
    )
    assert set(result.threshold.condition) == {
        "all classes",
        "class keeps >= 1 signal neuron",
        "class keeps >= 1 live signal neuron",
    }
    assert result.threshold.p_live.iloc[0] == pytest.approx(2 * 0.5 ** (1 / 5) - 1)
    assert result.fitted.fit.between(0, 1).all()
    for name in regime.FIGURES.values():
        assert (figures / name).stat().st_size > 1000
        assert f"({name})" in text
    assert "## The claims in the theorems' regime" in text
    quote = regime_render.summary(result)  # the report's paragraph for a theorist, from the fields
    assert f"d = {s['dims'][0]} to {s['dims'][-1]}" in quote
    assert f"mild pruning raises test accuracy {result.mild_status}:" in quote
    assert f"Over-pruning {result.over_status}:" in quote and f"{s['seeds']} seeds" in quote
    assert not any(p.name.endswith(".png") for p in out.iterdir())  # figures only where asked


def test_live_signal_prediction_against_the_package_draws():
    """At p = p_live(m), ((1+p)/2)^m = 1/2: over 400 seeds of the package's own init and mask
    draws, about half of the classes have no live signal neuron (kept, positive at init)."""
    config, params = jaxprune.presets.yang2023()
    config = config.replace(dim=8, width=5)
    p = regime.p_live(config.width)
    assert ((1 + p) / 2) ** config.width == pytest.approx(0.5)
    params = params.replace(prune_frac=p)
    keys = jax.vmap(jax.random.key)(np.arange(400))
    states = jax.vmap(lambda key: init_state(config, params, key))(keys)
    classes = np.arange(config.num_classes)
    w0 = np.asarray(states.weights)[:, classes, :, classes]  # (K, seeds, m): own coordinate
    kept = np.asarray(states.mask)[:, classes, :, classes]
    none_live = ~((kept > 0) & (w0 > 0)).any(axis=-1)
    assert abs(none_live.mean() - 0.5) < 0.06  # 800 classes: sd 0.018
