"""Training invariants: pruned weights stay zero, determinism, loss_tol freezing, divergence."""

import jax
import numpy as np
import pandas as pd
import pytest

import jaxprune
from conftest import assert_same_runs
from jaxprune.metrics import METRIC_NAMES


@pytest.mark.parametrize(
    "mask", ["bernoulli", pytest.param("exact", marks=pytest.mark.slow)]  # a compile each
)
def test_pruned_weights_exactly_zero_after_training(tiny, tiny_params, mask):
    config = tiny.replace(mask=mask, bias=True, steps=40)  # 20 halved the loss before the
    # coordinate-stable draws; with them this seed needs 40 (0.718 -> 0.294; 0.416 at 20)
    frame, state = jaxprune.train(config, tiny_params.replace(prune_frac=0.6), 1, return_state=True)
    weights, mask_, bias = map(np.asarray, (state.weights, state.mask, state.bias))
    assert weights.shape == mask_.shape == (2, 4, 16) and bias.shape == (2, 4)
    assert (weights[mask_ == 0] == 0).all()
    assert (weights[mask_ == 1] != 0).all()  # kept weights did move and are not zero
    np.testing.assert_allclose(frame.density, mask_.mean())
    assert int(state.step) == config.steps
    assert frame.train_loss.iloc[-1] < 0.5 * frame.train_loss.iloc[0]  # it trained


def test_frame_rows_steps_and_columns(tiny, tiny_params):
    frame = jaxprune.train(tiny, tiny_params, 0)
    np.testing.assert_array_equal(frame.step, [0, 5, 10, 15, 20])
    odd = jaxprune.train(tiny.replace(steps=23), tiny_params, 0)
    np.testing.assert_array_equal(odd.step, [0, 5, 10, 15, 20, 23])
    pd.testing.assert_frame_equal(odd.iloc[:5], frame)  # logging does not change the run
    for column in (
        "seed",
        "step",
        *METRIC_NAMES,
        *jaxprune.theory.THEORY_COLUMNS,
        "prune_frac",
        "mu_norm",
        "sigma_noise",
        "sigma_init",
        "lr",
        "label_flip",
    ):
        assert column in frame.columns
    assert (frame.seed == 0).all() and (frame.prune_frac == 0.3).all()


def test_same_seed_same_numbers(tiny, tiny_params):
    a = jaxprune.train(tiny, tiny_params, 42)
    pd.testing.assert_frame_equal(a, jaxprune.train(tiny, tiny_params, 42), check_exact=True)
    b = jaxprune.train(tiny, tiny_params, 43)
    assert (a.train_loss.to_numpy()[1:] != b.train_loss.to_numpy()[1:]).all()


@pytest.mark.slow  # compiles its own Config (10-20 CPU s under load)
def test_measurements_of_initial_state(tiny, tiny_params):
    frame, state = jaxprune.train(tiny.replace(steps=5), tiny_params, 3, return_state=True)
    first = frame.iloc[0]
    signal_coord = np.asarray(state.mask)[[0, 1], :, [0, 1]]  # (K, m): class k keeps e_k?
    np.testing.assert_allclose(first.signal_neurons, signal_coord.sum(axis=1).mean())
    assert first.converged_step == -1 and not first.diverged
    assert first.test_acc == first.test_acc_clean  # no label noise


@pytest.mark.slow  # compiles its own Config
def test_signal_max_and_noise_max_against_numpy(tiny, tiny_params):
    """Recompute signal_max and noise_max of the final state from the run's own data."""
    config = tiny.replace(num_classes=3, dim=12)
    params = tiny_params.replace(label_flip=0.3)
    frame, state = jaxprune.train(config, params, 9, return_state=True)
    key = jax.random.key(9)
    train_set = jaxprune.data.sample_dataset(
        config, params, jax.random.fold_in(key, jaxprune.state.TRAIN_STREAM), 8
    )
    w = np.asarray(state.weights * state.mask)
    signal = np.mean([w[k, :, k].max() for k in range(3)])
    noise, y, is_noise = map(np.asarray, (train_set.noise, train_set.y, train_set.noise_patch))
    ratios = [
        (w[y[i]] @ noise[i, q]).max() / np.linalg.norm(noise[i, q])
        for i in range(8)
        for q in range(2)
        if is_noise[i, q]
    ]
    np.testing.assert_allclose(frame.signal_max.iloc[-1], signal, rtol=1e-5)
    np.testing.assert_allclose(frame.noise_max.iloc[-1], np.mean(ratios), rtol=1e-5)


@pytest.mark.slow  # compiles its own Config (10-20 CPU s under load)
def test_loss_tol_freezes_and_records_first_step(tiny, tiny_params):
    config = tiny.replace(steps=60, log_every=1, loss_tol=0.2)
    frame, state = jaxprune.train(config, tiny_params, 0, return_state=True)
    conv = int(frame.converged_step.iloc[-1])
    assert 0 < conv < 60
    losses = frame.set_index("step").train_loss
    assert losses[conv] <= 0.2 and (losses[: conv - 1] > 0.2).all()
    after = frame[frame.step >= conv]
    assert (after.train_loss == losses[conv]).all()  # frozen from then on
    assert (frame[frame.step < conv].converged_step == -1).all()
    # The frozen weights are those of a plain run stopped at that step.
    _, stopped = jaxprune.train(
        config.replace(steps=conv, loss_tol=None), tiny_params, 0, return_state=True
    )
    np.testing.assert_allclose(state.weights, stopped.weights, rtol=1e-6, atol=1e-9)


@pytest.mark.slow  # compiles its own Config (10-20 CPU s under load)
def test_early_exit_of_frozen_runs_changes_no_number(tiny, tiny_params):
    """A run trained alone stops once it converges; inside a sweep whose other run never
    converges, the loop goes on and the run stays frozen: the histories are the same."""
    config = tiny.replace(steps=200, log_every=10, loss_tol=0.3)
    frame = jaxprune.sweep(config, {"lr": [0.5, 1e-4]}, seeds=[3], base=tiny_params, progress=False)
    last = jaxprune.final(frame)
    assert 0 < last.converged_step.iloc[0] < 150 and last.converged_step.iloc[1] == -1
    alone = jaxprune.train(config, tiny_params.replace(lr=0.5), 3)
    assert_same_runs(alone, frame[frame.lr == 0.5])
    skipped = alone[alone.step > last.converged_step.iloc[0] + config.log_every]
    assert len(skipped) >= 3 and (skipped.train_loss == skipped.train_loss.iloc[0]).all()


@pytest.mark.slow  # compiles its own Config (10-20 CPU s under load)
def test_divergence_is_flagged_and_isolated(tiny, tiny_params):
    config = tiny.replace(activation="relu_pow", act_power=4.0)
    frame = jaxprune.sweep(config, {"lr": [0.5, 1e30]}, seeds=2, progress=False)
    last = jaxprune.final(frame)
    assert last[last.lr == 1e30].diverged.all() and not last[last.lr == 0.5].diverged.any()
    assert last[last.lr == 0.5].train_loss.map(np.isfinite).all()
    alone = jaxprune.sweep(config, {"lr": [0.5]}, seeds=2, progress=False)
    assert_same_runs(frame[frame.lr == 0.5], alone)


@pytest.mark.slow  # compiles its own Config (10-20 CPU s under load)
def test_antipodal_signal_max_uses_the_class_sign(tiny, tiny_params):
    config = tiny.replace(signal="antipodal", noise_orthogonal=False)
    frame, state = jaxprune.train(config, tiny_params, 2, return_state=True)
    w = np.asarray(state.weights * state.mask)
    expected = np.mean([(-w[0, :, 0]).max(), w[1, :, 0].max()])  # -e_0 for class 0, +e_0 for 1
    np.testing.assert_allclose(frame.signal_max.iloc[-1], expected, rtol=1e-5)
    assert frame.signal_max.iloc[-1] > 5 * abs(frame.signal_max.iloc[0])  # the signal is learned


@pytest.mark.slow  # compiles its own Config (10-20 CPU s under load)
def test_label_noise_test_accuracy(tiny, tiny_params):
    """A strong signal is learned despite 30% flipped labels: the clean accuracy is near 1 and
    the accuracy against observed labels near 0.7, within a binomial band for n_test = 2000."""
    config = tiny.replace(n_test=2000, n_train=40, steps=40)
    params = tiny_params.replace(mu_norm=8.0, label_flip=0.3, prune_frac=0.0)
    last = jaxprune.final(jaxprune.train(config, params, 0)).iloc[0]
    assert last.test_acc_clean > 0.98
    band = 4.5 * np.sqrt(0.3 * 0.7 / 2000) + (1 - last.test_acc_clean)
    assert abs(last.test_acc - 0.7) <= band


@pytest.mark.slow  # compiles its own Config (10-20 CPU s under load)
def test_fewer_steps_than_log_every(tiny, tiny_params):
    frame = jaxprune.train(tiny.replace(steps=3, log_every=10), tiny_params, 0)
    np.testing.assert_array_equal(frame.step, [0, 3])
    assert frame.train_loss.iloc[1] < frame.train_loss.iloc[0]


@pytest.mark.slow  # compiles its own Config (10-20 CPU s under load)
def test_convergence_at_step_zero_and_at_the_last_step(tiny, tiny_params):
    frame, state = jaxprune.train(tiny.replace(loss_tol=10.0), tiny_params, 0, return_state=True)
    assert (frame.converged_step == 0).all() and int(state.converged_step) == 0
    assert (frame.train_loss == frame.train_loss.iloc[0]).all()  # never moved
    # Converging on the last step: the frame and the returned state agree.
    config = tiny.replace(steps=60, log_every=1, loss_tol=0.2)
    conv = int(jaxprune.train(config, tiny_params, 0).converged_step.iloc[-1])
    frame, state = jaxprune.train(config.replace(steps=conv), tiny_params, 0, return_state=True)
    assert frame.converged_step.iloc[-1] == conv == int(state.converged_step)


@pytest.mark.slow  # compiles its own Config (10-20 CPU s under load)
def test_divergence_is_flagged_from_the_first_measurement(tiny, tiny_params):
    """An input so large that the loss is non-finite at initialization: flagged on row 0, and
    the run's weights stay the finite initial ones."""
    config = tiny.replace(activation="relu_pow", act_power=4.0)
    params = tiny_params.replace(mu_norm=1e12)
    frame, state = jaxprune.train(config, params, 0, return_state=True)
    assert not np.isfinite(frame.train_loss.iloc[0])
    assert frame.diverged.all() and bool(state.diverged)
    _, initial = jaxprune.train(config.replace(steps=1), params, 0, return_state=True)
    assert np.isfinite(np.asarray(state.weights)).all()
    np.testing.assert_array_equal(state.weights, initial.weights)
