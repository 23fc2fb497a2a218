"""The two-layer CNN with a fixed second layer (docs/concepts/model.md#network).

    F_k(W, x) = scale * sum_r reduce_q act(<w_{k,r} ⊙ M_{k,r}, x_q> + b_{k,r})

Filters are shared across patches; the second layer is fixed (+scale for the filters of class k).
`logits` is the network on dense inputs x. Training uses `preactivations`, which gives the same
inner products from a seed's standard draws without forming x (see `jaxprune.data`), then
`readout`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxprune.config import Config, Dims, Params
from jaxprune.data import Sample, observed_labels, signal_directions


def prefix(size: int, count: jax.Array) -> jax.Array:
    """Float (size,): 1 on the first `count` entries, 0 on the rest (padding of a bucket)."""
    return (jnp.arange(size) < count).astype(jnp.float32)


def neuron_valid(config: Config, dims: Dims | None = None) -> jax.Array:
    """(K, m) float: 1 for the run's own neurons r < dims.width, 0 for padded ones."""
    width = config.width if dims is None else dims.width
    return jnp.broadcast_to(prefix(config.width, width), (config.num_classes, config.width))


def weight_valid(config: Config, dims: Dims | None = None) -> jax.Array:
    """(K, m, d) float: 1 for the run's own weights (own neuron, own coordinate), else 0."""
    dim = config.dim if dims is None else dims.dim
    return neuron_valid(config, dims)[..., None] * prefix(config.dim, dim)


def neuron_draws(config: Config, key: jax.Array, draw) -> jax.Array:
    """draw(key) of shape (d,) for each neuron (k, r) from fold_in(fold_in(key, k), r), stacked
    (K, m, d): neuron (k, r) gets the same draws whatever the width and dim it is padded to."""

    def one(k: jax.Array, r: jax.Array) -> jax.Array:
        return draw(jax.random.fold_in(jax.random.fold_in(key, k), r))

    classes, neurons = jnp.meshgrid(
        jnp.arange(config.num_classes), jnp.arange(config.width), indexing="ij"
    )
    return jax.vmap(jax.vmap(one))(classes, neurons)


def init_normals(config: Config, key: jax.Array) -> jax.Array:
    """The standard normals (K, m, d) that init='normal' scales by sigma_init (`init_weights`)."""
    return neuron_draws(
        config, key, lambda k: jax.random.normal(jax.random.fold_in(k, 0), (config.dim,))
    )


def init_weights(
    config: Config, params: Params, key: jax.Array, dims: Dims | None = None
) -> tuple[jax.Array, jax.Array]:
    """Initial (w (K, m, d), b (K, m)): w ~ N(0, sigma_init^2) and b = 0 ('normal'), or w, b ~
    U(+-1/sqrt(d)) with the run's own d ('uniform_fan_in'). b is zero when config.bias is False.
    Neuron (k, r) draws from its own key (`neuron_draws`); padding (beyond `dims`) is zero."""
    dim = config.dim if dims is None else dims.dim
    if config.init == "normal":
        w = params.sigma_init * init_normals(config, key)
        b = jnp.zeros(w.shape[:2])
    else:
        bound = 1.0 / jnp.sqrt(jnp.asarray(dim, jnp.float32))

        def draw(k: jax.Array) -> jax.Array:  # (d + 1,): the weights, then the bias
            w_k = jax.random.uniform(jax.random.fold_in(k, 0), (config.dim,))
            b_k = jax.random.uniform(jax.random.fold_in(k, 1), (1,))
            return jnp.concatenate([w_k, b_k])

        uniforms = bound * (2.0 * neuron_draws(config, key, draw) - 1.0)
        w, b = uniforms[..., :-1], uniforms[..., -1]
    if not config.bias:
        b = jnp.zeros_like(b)
    return w * weight_valid(config, dims), b * neuron_valid(config, dims)


def activation(config: Config, z: jax.Array) -> jax.Array:
    """The elementwise activation named by config.activation."""
    if config.activation == "relu":
        return jax.nn.relu(z)
    if config.activation == "relu_pow":
        return jax.nn.relu(z) ** config.act_power
    return jnp.where(z >= 0, z, config.leaky_slope * z)


def readout(
    config: Config, pre: jax.Array, b: jax.Array, neuron_valid: jax.Array | None = None
) -> jax.Array:
    """Network outputs (n, K) from the filters' inner products with the patches, pre
    (n, P, K, m), and the biases b (K, m) (ignored unless config.bias). neuron_valid (K, m)
    (default all ones) is 0 for padded neurons: they add nothing, and 'mean' scales by the
    run's own width (its sum over a class)."""
    if config.bias:
        pre = pre + b
    act = activation(config, pre)
    per_filter = act.sum(axis=1) if config.patch_reduce == "sum" else act.mean(axis=1)  # (n, K, m)
    if neuron_valid is None:
        out, width = per_filter.sum(axis=-1), config.width
    else:
        out, width = (per_filter * neuron_valid).sum(axis=-1), neuron_valid[0].sum()
    return out / width if config.output_scale == "mean" else out


def logits(
    config: Config,
    w: jax.Array,
    b: jax.Array,
    mask: jax.Array,
    x: jax.Array,
    neuron_valid: jax.Array | None = None,
) -> jax.Array:
    """Network outputs F(W ⊙ M, x), (n, K), for filters w (K, m, d), biases b (K, m), mask
    (K, m, d) and dense inputs x (n, P, d) (neuron_valid: see `readout`)."""
    return readout(config, jnp.einsum("npd,kmd->npkm", x, w * mask), b, neuron_valid)


def signal_alignment(config: Config, w_eff: jax.Array) -> jax.Array:
    """<w_{k,r}, mu_c> / ||mu_c|| of the masked filters w_eff (K, m, d) with every class's unit
    signal direction c, (K, m, K)."""
    return jnp.einsum("kmd,cd->kmc", w_eff, signal_directions(config))


def noise_preactivations(w_eff: jax.Array, sample: Sample) -> jax.Array:
    """<w_{k,r}, z_{i,q}> of the masked filters w_eff (K, m, d) with the standard noise rows,
    (n, Q, K, m). Under vmap over runs that share `sample` this is one matrix product."""
    return jnp.einsum("nqd,kmd->nqkm", sample.z, w_eff)


def preactivations(
    config: Config,
    w_eff: jax.Array,
    sample: Sample,
    mu_norm: jax.Array,
    sigma_noise: jax.Array,
    noise_pre: jax.Array | None = None,
) -> jax.Array:
    """<w_{k,r} ⊙ M_{k,r}, x_{i,q}>, (n, P, K, m), for masked filters w_eff (K, m, d) and the
    inputs that mu_norm and sigma_noise make of `sample`, without forming them.

    The signal patch mu_norm * mu_y / ||mu_y|| meets a filter through `signal_alignment`; the
    noise patches meet it through `noise_preactivations` (pass them as noise_pre when they are
    already computed). Patch order does not change the network (its
    patch reduction is symmetric), so the signal patch comes first ('patches'), or is added to
    the noise of the single patch ('additive').
    """
    if noise_pre is None:
        noise_pre = noise_preactivations(w_eff, sample)
    alignment = signal_alignment(config, w_eff)
    return patch_preactivations(config, alignment, noise_pre, sample, mu_norm, sigma_noise)


def patch_preactivations(
    config: Config,
    alignment: jax.Array,
    noise_pre: jax.Array,
    sample: Sample,
    mu_norm: jax.Array,
    sigma_noise: jax.Array,
) -> jax.Array:
    """The pre-activations (n, P, K, m) of `preactivations`, from the filters' unit-signal
    alignments (K, m, K) (`signal_alignment`) and their products with the standard noise rows
    (n, Q, K, m) (`noise_preactivations`); the Gram engine computes both without filters."""
    signal = mu_norm * jnp.moveaxis(alignment[:, :, sample.y_true], -1, 0)  # (n, K, m)
    noise = sigma_noise * noise_pre  # (n, Q, K, m)
    if config.layout == "patches":
        return jnp.concatenate([signal[:, None], noise], axis=1)
    return signal[:, None] + noise


def cross_entropy(
    logits_: jax.Array, labels: jax.Array, sample_weight: jax.Array | None = None
) -> jax.Array:
    """Mean softmax cross-entropy of logits (n, K) against integer labels (n,); with
    sample_weight (n,) (1 for the run's own samples, 0 for padding) the weighted mean."""
    losses = optax.softmax_cross_entropy_with_integer_labels(logits_, labels)
    if sample_weight is None:
        return losses.mean()
    return (losses * sample_weight).sum() / sample_weight.sum()


def loss(
    config: Config, w: jax.Array, b: jax.Array, mask: jax.Array, x: jax.Array, y: jax.Array
) -> jax.Array:
    """Training objective L(W ⊙ M): mean cross-entropy over the samples (x (n, P, d), y (n,))."""
    return cross_entropy(logits(config, w, b, mask, x), y)


def sample_loss(
    config: Config,
    params: Params,
    w_eff: jax.Array,
    b: jax.Array,
    sample: Sample,
    dims: Dims | None = None,
) -> jax.Array:
    """The same objective on the inputs and observed labels that `params` makes of `sample`, for
    masked filters w_eff (K, m, d) (the training path: no dense x). With `dims`, only the run's
    own neurons and its first dims.n_train samples count (the rest is a bucket's padding)."""
    pre = preactivations(config, w_eff, sample, params.mu_norm, params.sigma_noise)
    y = observed_labels(config, sample, params.label_flip)
    n_train = sample.y_true.shape[0] if dims is None else dims.n_train
    weight = prefix(sample.y_true.shape[0], n_train)
    return cross_entropy(readout(config, pre, b, neuron_valid(config, dims)), y, weight)
