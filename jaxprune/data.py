"""Data of the paper's model: a sparse class signal patch among Gaussian noise patches.

Every random draw is a standard variate taken from the key; the Params floats only scale or
threshold it. So runs with the same seed and different Params see the same underlying sample
(paired comparisons), and `sample_dataset` is vmappable over both keys and params.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxprune.config import Config, Params


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Dataset:
    """n samples of P patches of dimension d.

    x: (n, P, d) inputs. y: (n,) observed labels (after label noise). y_true: (n,) true labels.
    noise: (n, P, d) the Gaussian noise part of each patch (zero in the signal patch of the
    'patches' layout). noise_patch: (n, P) float, 1 where a patch carries noise.
    """

    x: jax.Array
    y: jax.Array
    y_true: jax.Array
    noise: jax.Array
    noise_patch: jax.Array


def signal_directions(config: Config) -> jax.Array:
    """Unit signal direction of each class, (K, d): e_k (orthogonal) or -e_0, +e_0 (antipodal)."""
    num_classes, dim = config.num_classes, config.dim
    if config.signal == "orthogonal":
        return jnp.eye(num_classes, dim)
    return jnp.zeros((2, dim)).at[:, 0].set(jnp.array([-1.0, 1.0]))


def signal_coordinates(config: Config) -> jax.Array:
    """Index of the coordinate that carries each class's signal, (K,) int."""
    if config.signal == "orthogonal":
        return jnp.arange(config.num_classes)
    return jnp.zeros(config.num_classes, dtype=jnp.int32)


def sample_dataset(config: Config, params: Params, key: jax.Array, n: int) -> Dataset:
    """Draw n samples of the model of SPEC §2.1 (pure; vmappable over key and params)."""
    num_classes, num_patches, dim = config.num_classes, config.num_patches, config.dim
    k_label, k_patch, k_noise, k_flip, k_other = jax.random.split(key, 5)

    y_true = jax.random.randint(k_label, (n,), 0, num_classes)
    signal = params.mu_norm * signal_directions(config)[y_true]  # (n, d)

    z = jax.random.normal(k_noise, (n, num_patches, dim))
    if config.noise_orthogonal:
        signal_free = jnp.ones(dim).at[signal_coordinates(config)].set(0.0)
        z = z * signal_free
    noise = params.sigma_noise * z

    if config.layout == "patches":
        signal_patch = jax.random.randint(k_patch, (n,), 0, num_patches)
        is_signal = jax.nn.one_hot(signal_patch, num_patches)  # (n, P)
        noise_patch = 1.0 - is_signal
        noise = noise * noise_patch[..., None]
        x = is_signal[..., None] * signal[:, None, :] + noise
    else:  # additive, P = 1
        noise_patch = jnp.ones((n, 1))
        x = signal[:, None, :] + noise

    flip = jax.random.uniform(k_flip, (n,)) < params.label_flip
    other = (y_true + jax.random.randint(k_other, (n,), 1, num_classes)) % num_classes
    y = jnp.where(flip, other, y_true)
    return Dataset(x=x, y=y, y_true=y_true, noise=noise, noise_patch=noise_patch)
