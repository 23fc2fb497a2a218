"""Random pruning masks drawn at initialization, nested across the pruning fraction.

A run draws one uniform per first-layer weight from its mask key; the mask for fraction p is a
threshold of those uniforms. Two runs with the same seed and p1 < p2 therefore have
mask(p2) ⊆ mask(p1), and p stays a traced, vmappable float.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxprune.config import Config


def mask_uniforms(config: Config, key: jax.Array) -> jax.Array:
    """One Uniform(0, 1) score per first-layer weight, (K, m, d)."""
    return jax.random.uniform(key, (config.num_classes, config.width, config.dim))


def mask_from_uniforms(config: Config, uniforms: jax.Array, prune_frac: jax.Array) -> jax.Array:
    """Binary mask (K, m, d) in the uniforms' dtype that removes a fraction `prune_frac` of weights.

    'bernoulli': each weight kept independently with probability 1 - p (M = [U >= p]).
    'exact': the round(p * d) weights with the smallest uniforms of each neuron are removed.
    """
    if config.mask == "bernoulli":
        keep = uniforms >= prune_frac
    else:
        rank = jnp.argsort(jnp.argsort(uniforms, axis=-1), axis=-1)  # 0 = smallest, per neuron
        keep = rank >= jnp.round(prune_frac * config.dim)
    return keep.astype(uniforms.dtype)


def sample_mask(config: Config, key: jax.Array, prune_frac: jax.Array) -> jax.Array:
    """The run's mask, (K, m, d): `mask_from_uniforms` of the uniforms drawn from `key`."""
    return mask_from_uniforms(config, mask_uniforms(config, key), prune_frac)
