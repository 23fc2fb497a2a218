"""Data of the paper's model: a sparse class signal patch among Gaussian noise patches
(docs/concepts/model.md#data).

A data set is drawn in two layers. `draw_sample` takes every random variate of a seed's data set
from its key: labels, standard-normal noise rows, the uniforms that decide label flips. It knows
no Params. The Params floats only scale or threshold those draws: x = mu_norm * signal +
sigma_noise * noise, y = the flipped label where the flip uniform is < label_flip. So runs that
share a seed see the same underlying sample (paired comparisons). Under `vmap` over Params, the
draws stay unbatched: they are made once per seed and shared by every run of that seed.

Training never forms x. The class signal is 1-sparse, so its inner product with a filter is one
weight (`model.preactivations` gathers it), and the noise enters through one matrix product of
the shared standard rows with the filters of all runs at once. `dataset` gives the dense view
(x, y, noise) of docs/concepts/model.md#data, for inspection and for the reference model in the
tests.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from jaxprune.config import Config, Params


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Sample:
    """The Params-free random draws of n samples with Q noise patches each (Q = P - 1 for the
    'patches' layout, Q = 1 for 'additive', where noise and signal share the one patch).

    y_true: (n,) true labels. z: (n, Q, d) standard-normal noise rows (zero on the signal
    coordinates when config.noise_orthogonal). flip_uniform: (n,) in [0, 1): the label is flipped
    where it is < label_flip. other_label: (n,) the class a flipped label takes. signal_patch:
    (n,) the position of the signal patch among the P patches (the model is invariant to patch
    order, so only the dense view uses it).
    """

    y_true: jax.Array
    z: jax.Array
    flip_uniform: jax.Array
    other_label: jax.Array
    signal_patch: jax.Array


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Dataset:
    """The dense view of n samples of P patches of dimension d.

    x: (n, P, d) inputs. y: (n,) observed labels (after label noise). y_true: (n,) true labels.
    noise: (n, P, d) the Gaussian noise part of each patch (zero in the signal patch of the
    'patches' layout). noise_patch: (n, P) float, 1 where a patch carries noise.
    """

    x: jax.Array
    y: jax.Array
    y_true: jax.Array
    noise: jax.Array
    noise_patch: jax.Array


def num_noise_rows(config: Config) -> int:
    """Q: noise patches per sample, P - 1 ('patches') or 1 ('additive')."""
    return config.num_patches - 1 if config.layout == "patches" else 1


def signal_coordinates(config: Config) -> jax.Array:
    """Index of the coordinate that carries each class's signal, (K,) int."""
    if config.signal == "orthogonal":
        return jnp.arange(config.num_classes)
    return jnp.zeros(config.num_classes, dtype=jnp.int32)


def signal_signs(config: Config) -> jax.Array:
    """Sign of each class's signal on its coordinate, (K,): +1 (orthogonal), or -1, +1
    (antipodal)."""
    if config.signal == "orthogonal":
        return jnp.ones(config.num_classes)
    return jnp.array([-1.0, 1.0])


def signal_directions(config: Config) -> jax.Array:
    """Unit signal direction of each class, (K, d): e_k (orthogonal) or -e_0, +e_0 (antipodal)."""
    coords = signal_coordinates(config)
    directions = jnp.zeros((config.num_classes, config.dim))
    return directions.at[jnp.arange(config.num_classes), coords].set(signal_signs(config))


def draw_sample(config: Config, key: jax.Array, n: int) -> Sample:
    """The standard draws of n samples from `key` (pure; independent of Params).

    Coordinate-stable: sample i draws from fold_in(key, i) only (its label, flip, other label
    and signal position from fold_in of that by 0..3, its noise row q, a (d,) normal, from
    fold_in by 4 + q), so the first n' <= n samples, first d' <= d coordinates, are exactly
    the draws of n' samples at dim d'. A run padded into a larger bucket sees its own data.
    This needs `jax_threefry_partitionable` (on by default; `training.make_seed_runs` turns it
    on while it traces), under which `jax.random.normal(key, (d,))` is prefix-stable.
    """
    sample = draw_samples(config, key, n, lambda row_key: jax.random.normal(row_key, (config.dim,)))
    if config.noise_orthogonal:
        z = sample.z * jnp.ones(config.dim).at[signal_coordinates(config)].set(0.0)
        sample = dataclasses.replace(sample, z=z)
    return sample


def draw_samples(config: Config, key: jax.Array, n: int, draw_row) -> Sample:
    """n samples from `key` whose noise row q of sample i is draw_row(its key), stacked in
    z (n, Q, ...): the labels, flips and signal positions of `draw_sample` (the same keys),
    with noise rows of the caller's choice (`draw_sample`'s (d,) normals, or the projected test
    set's per-neuron normals, `jaxprune.evaluation`)."""
    num_classes, num_rows = config.num_classes, num_noise_rows(config)

    def one(index: jax.Array) -> Sample:
        k = jax.random.fold_in(key, index)
        part = functools.partial(jax.random.fold_in, k)
        rows = jax.vmap(lambda q: draw_row(part(4 + q)))(jnp.arange(num_rows))
        return Sample(
            y_true=jax.random.randint(part(0), (), 0, num_classes),
            z=rows,
            flip_uniform=jax.random.uniform(part(1), ()),
            other_label=jax.random.randint(part(2), (), 1, num_classes),
            signal_patch=jax.random.randint(part(3), (), 0, config.num_patches),
        )

    return jax.vmap(one)(jnp.arange(n))


def observed_labels(config: Config, sample: Sample, label_flip: jax.Array) -> jax.Array:
    """Observed labels (n,): y_true, replaced by another class with probability label_flip."""
    other = (sample.y_true + sample.other_label) % config.num_classes
    return jnp.where(sample.flip_uniform < label_flip, other, sample.y_true)


def dataset(config: Config, params: Params, sample: Sample) -> Dataset:
    """The dense inputs and observed labels that `params` makes of `sample`."""
    n, num_patches = sample.y_true.shape[0], config.num_patches
    signal = params.mu_norm * signal_directions(config)[sample.y_true]  # (n, d)
    if config.layout == "patches":
        is_signal = jax.nn.one_hot(sample.signal_patch, num_patches)  # (n, P)
        # Patch q holds noise row q (before the signal patch) or q - 1 (after it).
        position = jnp.arange(num_patches)[None, :]
        row = jnp.clip(position - (position > sample.signal_patch[:, None]), 0, num_patches - 2)
        z = jnp.take_along_axis(sample.z, row[..., None], axis=1)
        noise_patch = 1.0 - is_signal
        noise = params.sigma_noise * z * noise_patch[..., None]
        x = is_signal[..., None] * signal[:, None, :] + noise
    else:  # additive, P = 1
        noise_patch = jnp.ones((n, 1))
        noise = params.sigma_noise * sample.z
        x = signal[:, None, :] + noise
    y = observed_labels(config, sample, params.label_flip)
    return Dataset(x=x, y=y, y_true=sample.y_true, noise=noise, noise_patch=noise_patch)


def sample_dataset(config: Config, params: Params, key: jax.Array, n: int) -> Dataset:
    """Draw n samples of the model of docs/concepts/model.md#data as a dense Dataset (pure;
    vmappable over key and params)."""
    return dataset(config, params, draw_sample(config, key, n))
