"""Per-class outcomes and the proofs' coefficients (`jaxprune.outcomes`) against the run's own
Metrics, explicit computations and the Gram engine's coefficients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxprune
from jaxprune import gram, outcomes
from jaxprune.data import dataset, signal_coordinates, signal_signs

CONFIG = jaxprune.Config(
    num_classes=3, num_patches=3, dim=40, width=4, n_train=9, n_test=60, steps=30, log_every=30
)
PARAMS = jaxprune.Params(prune_frac=0.5, mu_norm=1.5, sigma_noise=0.8, sigma_init=0.2, lr=0.5)


@pytest.mark.parametrize(
    "changes,flip",
    [({"test_eval": "draw"}, 0.0),
     pytest.param({"test_eval": "projected"}, 0.2, marks=pytest.mark.slow),  # a Config of its own
     pytest.param({"signal": "antipodal", "num_classes": 2, "noise_orthogonal": False,
                   "test_eval": "projected"}, 0.0, marks=pytest.mark.slow)],
)  # fmt: skip
def test_class_outcomes_against_the_runs_metrics(changes, flip):
    """The class accuracies weighted by their test samples give the run's test_acc_clean (the
    same test set: exactly); the kept signal neurons average to its signal_neurons; live ones
    are the kept ones with <w(0), mu_k> > 0, computed here from the mask and init directly."""
    config, params = CONFIG.replace(**changes), PARAMS.replace(label_flip=flip)
    seed = 3
    frame, state = jaxprune.train(config, params, seed, return_state=True)
    last = frame.iloc[-1]
    initial = outcomes.initial_state(config, params, seed)
    test = outcomes.test_set(config, seed)
    result = outcomes.class_outcomes(config, params, state, initial, test)
    counts = np.asarray(result.test_samples)
    assert counts.sum() == config.n_test and (counts > 0).all()
    weighted = float((np.asarray(result.test_acc) * counts).sum() / config.n_test)
    assert weighted == pytest.approx(float(last.test_acc_clean), abs=1e-6)
    assert 0 < weighted < 1 or config.signal == "antipodal"
    assert float(np.mean(result.signal_neurons)) == pytest.approx(float(last.signal_neurons))
    classes = np.arange(config.num_classes)
    coords = np.asarray(signal_coordinates(config))
    kept = np.asarray(state.mask)[classes, :, coords] > 0  # (K, m)
    w0 = np.asarray(initial.weights)[classes, :, coords] * np.asarray(signal_signs(config))[:, None]
    np.testing.assert_array_equal(result.signal_neurons, kept.sum(axis=1))
    np.testing.assert_array_equal(result.live_neurons, (kept & (w0 > 0)).sum(axis=1))
    assert (np.asarray(result.live_neurons) < np.asarray(result.signal_neurons)).any()
    np.testing.assert_array_equal(initial.mask, state.mask)  # the run's own initialization


@pytest.mark.slow  # compiles dense and Gram runs of its own (about 14 s)
def test_coefficients_against_explicit_patches_and_the_gram_engine():
    """gamma and rho from the library against their definitions on the dense data (float64
    numpy), and against the Gram engine's coefficients: gamma = sign M beta / mu_norm and
    rho = (G a) / (sigma ||z||²) with G the per-neuron masked Gram matrix of the noise rows."""
    config, params, seed = CONFIG.replace(engine="gram"), PARAMS, 5
    _, state = jaxprune.train(config, params, seed, return_state=True)
    initial = outcomes.initial_state(config, params, seed)
    train = outcomes.training_set(config, seed)
    gamma = np.asarray(outcomes.signal_coefficients(config, params, state.weights, initial.weights))
    rho = np.asarray(outcomes.noise_coefficients(config, params, state.weights, initial.weights,
                                                 train))  # fmt: skip
    delta = np.asarray(state.weights, np.float64) - np.asarray(initial.weights, np.float64)
    dense = dataset(config, params, train)
    mu = params.mu_norm * np.eye(config.dim)[: config.num_classes]  # (K, d): mu_k
    np.testing.assert_allclose(
        gamma, np.einsum("kmd,kd->km", delta, mu) / params.mu_norm**2, rtol=1e-5, atol=1e-7
    )
    xi = np.asarray(dense.noise, np.float64)  # (n, P, d), zero in the signal patch
    noise_patch = np.asarray(dense.noise_patch) > 0
    # the noise patches in position order are the rows q = 0, 1, ... (see `data.dataset`)
    patches = xi[noise_patch].reshape(config.n_train, -1, config.dim)  # (n, Q, d)
    explicit = np.einsum("kmd,nqd->kmnq", delta, patches) / (patches**2).sum(-1)
    np.testing.assert_allclose(rho, explicit, rtol=2e-4, atol=1e-6)
    coefficients = state.coefficients
    k = np.arange(config.num_classes)
    mask_c = np.asarray(state.mask)[k, :, k]
    beta = np.asarray(coefficients.signal)[k, :, k]  # (K, m): own coordinate
    np.testing.assert_allclose(gamma, mask_c * beta / params.mu_norm, rtol=1e-5, atol=1e-7)
    z = train.z.reshape(-1, config.dim)
    g = gram.masked_gram(z, state.mask)  # (K, m, nQ, nQ)
    a = coefficients.noise.reshape(config.num_classes, config.width, -1)
    norm2 = jnp.sum(z**2, axis=-1)
    from_gram = jnp.einsum("kmij,kmj->kmi", g, a) / (params.sigma_noise * norm2)
    np.testing.assert_allclose(rho.reshape(from_gram.shape), from_gram, rtol=2e-4, atol=1e-6)
    assert np.abs(rho).max() > 1e-3 and np.abs(gamma).max() > 1e-3  # training moved them


@pytest.mark.slow  # compiles runs of its own (about 9 s)
def test_draws_are_the_runs_own():
    """training_set and test_set are the draws the run's Metrics were computed on: measuring
    the final state on them reproduces its final train_loss and test_loss."""
    config, params, seed = CONFIG.replace(test_eval="projected"), PARAMS, 2
    frame, state = jaxprune.train(config, params, seed, return_state=True)
    metrics = jaxprune.metrics.measure(
        config, params, state, outcomes.training_set(config, seed), outcomes.test_set(config, seed)
    )
    last = frame.iloc[-1]
    assert float(metrics.train_loss) == pytest.approx(float(last.train_loss), rel=1e-5)
    assert float(metrics.test_loss) == pytest.approx(float(last.test_loss), rel=1e-5)
    assert float(metrics.test_acc) == pytest.approx(float(last.test_acc), abs=1e-6)
    jax.block_until_ready(metrics)
