"""Measurements of one run at one step (SPEC §2.5), as a pytree of scalars."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxprune import model
from jaxprune.config import Config
from jaxprune.data import Dataset, signal_coordinates, signal_directions
from jaxprune.state import RunState, settle


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


def signal_max(config: Config, w_eff: jax.Array) -> jax.Array:
    """Mean over classes k of max_r <w_{k,r} ⊙ M_{k,r}, mu_k> / ||mu_k||; w_eff is (K, m, d)."""
    alignment = jnp.einsum("kmd,kd->km", w_eff, signal_directions(config))
    return alignment.max(axis=1).mean()


def noise_max(w_eff: jax.Array, train: Dataset) -> jax.Array:
    """Mean over training noise patches (i, q) of max_r <w_{y_i,r} ⊙ M, xi_{i,q}> / ||xi_{i,q}||."""
    best = jnp.einsum("npd,kmd->npkm", train.noise, w_eff).max(axis=-1)  # (n, P, K)
    proj = jnp.take_along_axis(best, train.y[:, None, None], axis=-1)[..., 0]  # own class, (n, P)
    norm = jnp.linalg.norm(train.noise, axis=-1)
    ratio = jnp.where(norm > 0, proj / jnp.where(norm > 0, norm, 1.0), 0.0)
    return (ratio * train.noise_patch).sum() / jnp.maximum(train.noise_patch.sum(), 1.0)


def measure(config: Config, state: RunState, train: Dataset, test: Dataset) -> Metrics:
    """All measurements of one run in `state` (weights (K, m, d), bias (K, m), mask (K, m, d)).

    converged_step and diverged are the state's record, settled with this measurement (see
    `jaxprune.state.settle`): a loss that reaches loss_tol, or a non-finite loss or weight, counts
    from the step it is first measured.
    """
    w, b, mask = state.weights, state.bias, state.mask
    train_logits = model.logits(config, w, b, mask, train.x)
    test_logits = model.logits(config, w, b, mask, test.x)
    train_loss = model.cross_entropy(train_logits, train.y)
    test_pred = test_logits.argmax(-1)
    w_eff = w * mask
    coords = signal_coordinates(config)
    kept_signal = mask[jnp.arange(config.num_classes), :, coords]  # (K, m)
    settled = settle(config, state, train_loss, w, b)
    return Metrics(
        train_loss=train_loss,
        train_acc=(train_logits.argmax(-1) == train.y).mean(),
        test_loss=model.cross_entropy(test_logits, test.y),
        test_acc=(test_pred == test.y).mean(),
        test_acc_clean=(test_pred == test.y_true).mean(),
        signal_max=signal_max(config, w_eff),
        noise_max=noise_max(w_eff, train),
        signal_neurons=kept_signal.sum(axis=1).mean(),
        density=mask.mean(),
        converged_step=settled.converged_step,
        diverged=settled.diverged,
    )
