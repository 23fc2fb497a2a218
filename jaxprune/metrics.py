"""Measurements of one run at one step (docs/concepts/model.md#measurements), as a pytree of
scalars."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxprune import model
from jaxprune.config import Config, Dims, Params
from jaxprune.data import Sample, observed_labels, signal_coordinates
from jaxprune.evaluation import ProjectedTest, test_noise_preactivations
from jaxprune.state import RunState


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Metrics:
    """One scalar per field for one run; a leading axis (T,) over logged steps in a history."""

    train_loss: jax.Array
    train_acc: jax.Array
    test_loss: jax.Array
    test_acc: jax.Array
    test_acc_clean: jax.Array
    signal_max: jax.Array
    noise_max: jax.Array
    signal_neurons: jax.Array
    density: jax.Array
    converged_step: jax.Array
    diverged: jax.Array


METRIC_NAMES = tuple(f.name for f in dataclasses.fields(Metrics))


def signal_max(alignment: jax.Array, neuron_valid: jax.Array) -> jax.Array:
    """Mean over classes k of max_r <w_{k,r} ⊙ M_{k,r}, mu_k> / ||mu_k|| over the run's own
    neurons (neuron_valid (K, m) is 0 for padding), from the masked filters' unit-signal
    alignments (K, m, K) (`model.signal_alignment`)."""
    own = jnp.diagonal(alignment, axis1=0, axis2=2)  # (m, K): filters of class k against mu_k
    return jnp.where(neuron_valid.T > 0, own, -jnp.inf).max(axis=0).mean()


def noise_max(
    train: Sample,
    y: jax.Array,
    noise_pre: jax.Array,
    sigma_noise: jax.Array,
    neuron_valid: jax.Array,
    sample_weight: jax.Array,
    coordinate_weight: jax.Array,
) -> jax.Array:
    """Mean over training noise patches (i, q) of max_r <w_{y_i,r} ⊙ M, xi_{i,q}> / ||xi_{i,q}||,
    given the observed labels y (n,) and noise_pre = `model.noise_preactivations(w_eff, train)`
    (n, Q, K, m). The max is over the run's own neurons (neuron_valid (K, m)), the mean over its
    own samples (sample_weight (n,)), the norm over its own coordinates (coordinate_weight
    (d,)): 0 marks a bucket's padding. The ratio does not depend on sigma_noise > 0; with
    sigma_noise = 0 there is no noise and it is 0."""
    best = jnp.where(neuron_valid > 0, noise_pre, -jnp.inf).max(axis=-1)  # (n, Q, K)
    proj = jnp.take_along_axis(best, y[:, None, None], axis=-1)[..., 0]  # own class, (n, Q)
    norm = jnp.sqrt(jnp.einsum("nqd,d->nq", train.z**2, coordinate_weight))
    ratio = jnp.where(norm > 0, proj / jnp.where(norm > 0, norm, 1.0), 0.0)
    mean = (ratio * sample_weight[:, None]).sum() / (sample_weight.sum() * ratio.shape[1])
    return jnp.where(sigma_noise > 0, mean, 0.0)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class FilterProducts:
    """What the measurements need of a run's masked filters w_eff (K, m, d), without them: an
    engine that never forms the filters (`jaxprune.gram`) computes these directly.

    train_noise: (n, Q, K, m) products with the training set's standard noise rows
    (`model.noise_preactivations`). test_noise: (n_test, Q, K, m) the same with the test set's,
    explicit or projected (`evaluation.test_noise_preactivations`). alignment: (K, m, K) the
    unit-signal alignments (`model.signal_alignment`). kept_signal: (K, m) the mask on each
    neuron's own class's signal coordinate. kept: () the mask's kept weights.
    """

    train_noise: jax.Array
    test_noise: jax.Array
    alignment: jax.Array
    kept_signal: jax.Array
    kept: jax.Array


def filter_products(
    config: Config, state: RunState, train: Sample, test: Sample | ProjectedTest
) -> FilterProducts:
    """The `FilterProducts` of the run in `state` (weights (K, m, d), mask (K, m, d))."""
    coords = signal_coordinates(config)
    return FilterProducts(
        train_noise=model.noise_preactivations(state.weights, train),
        test_noise=test_noise_preactivations(config, state.weights, test),
        alignment=model.signal_alignment(config, state.weights),
        kept_signal=state.mask[jnp.arange(config.num_classes), :, coords],
        kept=state.mask.sum(),
    )


def outputs(
    config: Config,
    params: Params,
    bias: jax.Array,
    sample: Sample | ProjectedTest,
    alignment: jax.Array,
    noise_pre: jax.Array,
    dims: Dims | None = None,
) -> jax.Array:
    """The network's outputs (n, K) on the inputs `params` makes of `sample`, given the masked
    filters' unit-signal alignments (K, m, K), their products with the sample's standard noise
    rows noise_pre (n, Q, K, m) and the biases (K, m); padded neurons (beyond `dims`) count in
    none."""
    pre = model.patch_preactivations(
        config, alignment, noise_pre, sample, params.mu_norm, params.sigma_noise
    )
    return model.readout(config, pre, bias, model.neuron_valid(config, dims))


def test_outputs(
    config: Config,
    params: Params,
    state: RunState,
    test: Sample | ProjectedTest,
    dims: Dims | None = None,
) -> jax.Array:
    """The network's outputs (n_test, K) on the test set, explicit or projected."""
    noise_pre = test_noise_preactivations(config, state.weights, test)
    alignment = model.signal_alignment(config, state.weights)
    return outputs(config, params, state.bias, test, alignment, noise_pre, dims)


def measure(
    config: Config,
    params: Params,
    state: RunState,
    train: Sample,
    test: Sample | ProjectedTest,
    dims: Dims | None = None,
    products: FilterProducts | None = None,
) -> Metrics:
    """All measurements of one run in `state` (weights (K, m, d), equal to weights ⊙ mask, bias
    (K, m), mask (K, m, d)), on the data `params` makes of the `train` and `test` draws (`test`
    explicit, or projected onto the filters: `jaxprune.evaluation`). dims:
    the run's own shape inside a padded bucket (default: unpadded); padded neurons, samples
    and coordinates count in no measurement. products: the filters' `FilterProducts`, when the
    engine has them (then `state` needs only bias, converged_step and diverged); by default
    `filter_products` of `state`.

    It only observes: converged_step and diverged are the state's record as it stands (the
    training loop settles the state with this measurement; see `jaxprune.training`).
    """
    dims = Dims.of(config) if dims is None else dims
    if products is None:
        products = filter_products(config, state, train, test)
    valid = model.neuron_valid(config, dims)
    train_weight = model.prefix(config.n_train, dims.n_train)
    test_weight = model.prefix(config.n_test, dims.n_test)

    def mean(values: jax.Array, weight: jax.Array) -> jax.Array:
        return (values * weight).sum() / weight.sum()

    def logits(sample: Sample | ProjectedTest, noise_pre: jax.Array) -> jax.Array:
        return outputs(config, params, state.bias, sample, products.alignment, noise_pre, dims)

    train_y = observed_labels(config, train, params.label_flip)
    test_y = observed_labels(config, test, params.label_flip)
    train_logits = logits(train, products.train_noise)
    test_logits = logits(test, products.test_noise)
    train_loss = model.cross_entropy(train_logits, train_y, train_weight)
    test_pred = test_logits.argmax(-1)
    own_weights = config.num_classes * dims.width * dims.dim
    return Metrics(
        train_loss=train_loss,
        train_acc=mean(train_logits.argmax(-1) == train_y, train_weight),
        test_loss=model.cross_entropy(test_logits, test_y, test_weight),
        test_acc=mean(test_pred == test_y, test_weight),
        test_acc_clean=mean(test_pred == test.y_true, test_weight),
        signal_max=signal_max(products.alignment, valid),
        noise_max=noise_max(
            train,
            train_y,
            products.train_noise,
            params.sigma_noise,
            valid,
            train_weight,
            model.prefix(config.dim, dims.dim),
        ),
        signal_neurons=products.kept_signal.sum(axis=1).mean(),
        density=products.kept / own_weights,
        converged_step=state.converged_step,
        diverged=state.diverged,
    )
