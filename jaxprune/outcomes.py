"""Measurements of a trained run beyond its `Metrics`: per-class outcomes and the coefficients
of the proofs' signal-noise view, as pure functions of its states; and a seed's draws.

A run (config, params, seed) is deterministic: `training_set`, `test_set` and `initial_state`
give exactly the draws and pruned initialization its training used (the streams of
`jaxprune.state`), so a caller holding the final state (`jaxprune.train(..., return_state=True)`)
needs nothing else. Notation: K classes, m neurons per class, d dimensions, n training samples
with Q noise rows each, mu_k the class signal (mu_norm times its unit direction), xi_{i,q} =
sigma_noise z_{i,q} the training noise patches.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxprune import model
from jaxprune.config import Config, Dims, Params
from jaxprune.data import Sample, draw_sample, signal_coordinates
from jaxprune.evaluation import ProjectedTest, draw_test
from jaxprune.metrics import test_outputs
from jaxprune.state import TEST_STREAM, TRAIN_STREAM, RunState, init_state


def training_set(config: Config, seed: int) -> Sample:
    """The seed's training draws (n_train samples), as its training draws them."""
    key = jax.random.fold_in(jax.random.key(seed), TRAIN_STREAM)
    return draw_sample(config, key, config.n_train)


def test_set(config: Config, seed: int) -> Sample | ProjectedTest:
    """The seed's test set (n_test samples), explicit or projected as `config.test_eval`
    resolves (`jaxprune.evaluation.draw_test`): the one every run of the seed is measured on."""
    return draw_test(config, jax.random.fold_in(jax.random.key(seed), TEST_STREAM), config.n_test)


def initial_state(config: Config, params: Params, seed: int) -> RunState:
    """The run's pruned initial state (weights w(0) ⊙ M (K, m, d), mask, ...), as its training
    starts from it (`jaxprune.state.init_state` on the seed's key and training set)."""
    return init_state(config, params, jax.random.key(seed), training_set(config, seed))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ClassOutcomes:
    """Per class k, (K,) each. test_correct: the test samples of true class k predicted as k;
    test_samples: their number (`test_acc`: the fraction, NaN for a class without samples).
    signal_neurons: the class's neurons whose mask keeps its signal coordinate. live_neurons:
    those of them positive at init, <w_{k,r}(0) ⊙ M, mu_k> > 0 (with ReLU and noise orthogonal
    to the signals, the others are inactive on k's signal patch and never learn mu_k).
    signal_max: max_r <w_{k,r} ⊙ M, mu_k> / ||mu_k|| at the state measured."""

    test_correct: jax.Array
    test_samples: jax.Array
    signal_neurons: jax.Array
    live_neurons: jax.Array
    signal_max: jax.Array

    @property
    def test_acc(self) -> jax.Array:
        """(K,): accuracy on the test samples of true class k, NaN where it has none."""
        samples = self.test_samples
        return jnp.where(samples > 0, self.test_correct / jnp.maximum(samples, 1), jnp.nan)


def own_signal_alignment(config: Config, w_eff: jax.Array) -> jax.Array:
    """<w_{k,r}, mu_k> / ||mu_k|| of masked filters w_eff (K, m, d) with their own class's
    signal direction, (K, m)."""
    alignment = model.signal_alignment(config, w_eff)  # (K, m, K)
    return jnp.diagonal(alignment, axis1=0, axis2=2).T


def kept_signal(config: Config, mask: jax.Array) -> jax.Array:
    """(K, m) bool: whether the mask (K, m, d) of neuron (k, r) keeps class k's signal
    coordinate."""
    classes = jnp.arange(config.num_classes)
    return mask[classes, :, signal_coordinates(config)] > 0


def class_outcomes(
    config: Config,
    params: Params,
    state: RunState,
    initial: RunState,
    test: Sample | ProjectedTest,
    dims: Dims | None = None,
) -> ClassOutcomes:
    """The per-class outcomes (`ClassOutcomes`) of the run in `state`, started from `initial`
    (`initial_state`), measured on `test` (`test_set`; the same set its Metrics used, so the
    test_samples-weighted mean of test_acc is its test_acc_clean). dims: the run's own shape
    in a padded bucket (default: unpadded)."""
    dims = Dims.of(config) if dims is None else dims
    valid = model.neuron_valid(config, dims) > 0
    weight = model.prefix(config.n_test, dims.n_test)
    predicted = test_outputs(config, params, state, test, dims).argmax(-1)
    classes = jnp.arange(config.num_classes)
    member = (test.y_true[None, :] == classes[:, None]) * weight  # (K, n)
    correct = (member * (predicted[None, :] == classes[:, None])).sum(axis=1)
    count = member.sum(axis=1)
    kept = kept_signal(config, state.mask) & valid
    live = kept & (own_signal_alignment(config, initial.weights) > 0)
    alignment = jnp.where(valid, own_signal_alignment(config, state.weights), -jnp.inf)
    return ClassOutcomes(
        test_correct=correct.astype(jnp.int32),
        test_samples=count.astype(jnp.int32),
        signal_neurons=kept.sum(axis=1),
        live_neurons=live.sum(axis=1),
        signal_max=alignment.max(axis=1),
    )


def signal_coefficients(
    config: Config, params: Params, weights: jax.Array, initial_weights: jax.Array
) -> jax.Array:
    """gamma (K, m): <w_{k,r}(t) - w_{k,r}(0), mu_k> / ||mu_k||² of the masked filters
    weights (K, m, d) against the masked initial ones (K, m, d) (NaN where mu_norm = 0).

    With orthogonal signals and noise orthogonal to them, it is the Gram engine's
    `Coefficients.signal` on k's own coordinate times its sign and M_{k,r}, over mu_norm."""
    return own_signal_alignment(config, weights - initial_weights) / params.mu_norm


def noise_coefficients(
    config: Config,
    params: Params,
    weights: jax.Array,
    initial_weights: jax.Array,
    train: Sample,
    dims: Dims | None = None,
) -> jax.Array:
    """rho (K, m, n, Q): <w_{k,r}(t) - w_{k,r}(0), xi_{i,q}> / ||xi_{i,q}||² of the masked
    filters weights (K, m, d) against the masked initial ones, over the training noise patches
    xi = sigma_noise z (`training_set`; the norm over the run's own coordinates, `dims`).

    Over the Gram engine's `Coefficients.noise` a (K, m, n, Q) and the per-neuron masked Gram
    matrix G of the rows z, it is (G a)_{i,q} / (sigma_noise ||z_{i,q}||²) (plus the signal
    coordinates' share where the noise is not orthogonal to them)."""
    dim = config.dim if dims is None else dims.dim
    coordinate = model.prefix(config.dim, dim)
    norm2 = jnp.einsum("nqd,d->nq", train.z**2, coordinate)  # (n, Q)
    products = model.noise_preactivations(weights - initial_weights, train)  # (n, Q, K, m)
    rho = products / (params.sigma_noise * norm2[..., None, None])
    return jnp.moveaxis(rho, (2, 3), (0, 1))
