"""The two-layer CNN with a fixed second layer (SPEC §2.2).

    F_k(W, x) = scale * sum_r reduce_q act(<w_{k,r} ⊙ M_{k,r}, x_q> + b_{k,r})

Filters are shared across patches; the second layer is fixed (+scale for the filters of class k).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxprune.config import Config, Params


def init_weights(config: Config, params: Params, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Initial (w (K, m, d), b (K, m)): w ~ N(0, sigma_init^2) and b = 0 ('normal'), or w, b ~
    U(+-1/sqrt(d)) ('uniform_fan_in'). b is zero when config.bias is False."""
    shape = (config.num_classes, config.width, config.dim)
    k_w, k_b = jax.random.split(key)
    if config.init == "normal":
        w = params.sigma_init * jax.random.normal(k_w, shape)
        b = jnp.zeros(shape[:2])
    else:
        bound = 1.0 / jnp.sqrt(config.dim)
        w = jax.random.uniform(k_w, shape, minval=-bound, maxval=bound)
        b = jax.random.uniform(k_b, shape[:2], minval=-bound, maxval=bound)
    if not config.bias:
        b = jnp.zeros_like(b)
    return w, b


def activation(config: Config, z: jax.Array) -> jax.Array:
    """The elementwise activation named by config.activation."""
    if config.activation == "relu":
        return jax.nn.relu(z)
    if config.activation == "relu_pow":
        return jax.nn.relu(z) ** config.act_power
    return jnp.where(z >= 0, z, config.leaky_slope * z)


def logits(config: Config, w: jax.Array, b: jax.Array, mask: jax.Array, x: jax.Array) -> jax.Array:
    """Network outputs F(W ⊙ M, x), (n, K), for filters w (K, m, d), biases b (K, m), mask
    (K, m, d) and inputs x (n, P, d). b is ignored unless config.bias."""
    pre = jnp.einsum("npd,kmd->npkm", x, w * mask)
    if config.bias:
        pre = pre + b
    act = activation(config, pre)
    per_filter = act.sum(axis=1) if config.patch_reduce == "sum" else act.mean(axis=1)  # (n, K, m)
    out = per_filter.sum(axis=-1)
    return out / config.width if config.output_scale == "mean" else out


def cross_entropy(logits_: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy of logits (n, K) against integer labels (n,)."""
    return optax.softmax_cross_entropy_with_integer_labels(logits_, labels).mean()


def loss(
    config: Config, w: jax.Array, b: jax.Array, mask: jax.Array, x: jax.Array, y: jax.Array
) -> jax.Array:
    """Training objective L(W ⊙ M): mean cross-entropy over the samples (x (n, P, d), y (n,))."""
    return cross_entropy(logits(config, w, b, mask, x), y)
