"""The state of one run, its pruned initialization, and the rule that freezes it."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from jaxprune import model
from jaxprune.config import Config, Dims, Params
from jaxprune.data import Sample
from jaxprune.masks import mask_uniforms, prune_mask
from jaxprune.optimizers import optimizer

# Every random draw of a run comes from fold_in(key(seed), stream): never from its batch position.
TRAIN_STREAM, TEST_STREAM, INIT_STREAM, MASK_STREAM, BATCH_STREAM = 0, 1, 2, 3, 4


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class RunState:
    """State of one run. weights: (K, m, d) first-layer filters, kept equal to weights ⊙ mask.
    bias: (K, m) (zero and untrained unless config.bias). mask: (K, m, d) in {0, 1}. step:
    optimizer steps taken. converged_step: first step whose training loss was <= loss_tol, else
    -1. diverged: a non-finite loss or weight occurred. opt_state: the optax state of
    config.optimizer for the parameters (weights, bias) (no leaves for 'gd'). A converged or
    diverged run is frozen: its weights and optimizer state no longer change. coefficients:
    None, or for a run trained by the Gram engine its `jaxprune.gram.Coefficients`."""

    weights: jax.Array
    bias: jax.Array
    mask: jax.Array
    step: jax.Array
    converged_step: jax.Array
    diverged: jax.Array
    opt_state: Any
    coefficients: Any = None

    @property
    def frozen(self) -> jax.Array:
        return (self.converged_step >= 0) | self.diverged


def init_state(
    config: Config,
    params: Params,
    key: jax.Array,
    train: Sample | None = None,
    dims: Dims | None = None,
) -> RunState:
    """Pruned initial state of the run whose root key is `key`: its initial weights, the mask of
    config.mask chosen from them (see `jaxprune.masks.prune_mask`) and a fresh optimizer state.
    train: the run's training draws, which the criteria 'snip' and 'grasp' need. dims: the
    run's own shape inside a padded bucket (default: unpadded); its padding is pruned."""
    weights, bias = model.init_weights(config, params, jax.random.fold_in(key, INIT_STREAM), dims)
    uniforms = mask_uniforms(config, jax.random.fold_in(key, MASK_STREAM))
    mask = prune_mask(config, params, uniforms, weights, bias, train, dims)
    weights = weights * mask
    return RunState(
        weights=weights,
        bias=bias,
        mask=mask,
        step=jnp.zeros((), jnp.int32),
        converged_step=jnp.full((), -1, jnp.int32),
        diverged=jnp.zeros((), bool),
        opt_state=optimizer(config, params.lr).init((weights, bias)),
    )


def settle(
    config: Config,
    state: RunState,
    loss: jax.Array,
    *weights: jax.Array,
    full_loss: bool = True,
) -> RunState:
    """`state` with its outcome brought up to date, given its training loss and the weights it
    holds or is about to take: a run not yet frozen whose loss reaches loss_tol records this
    step as converged_step; one whose loss or weights are not all finite is marked diverged.
    With full_loss=False, `loss` is a minibatch loss: it can mark divergence, not convergence."""
    finite = jnp.isfinite(loss)
    for array in weights:
        finite &= jnp.isfinite(array).all()
    active = ~state.frozen
    if config.loss_tol is None or not full_loss:
        reached = jnp.zeros((), bool)
    else:
        reached = active & finite & (loss <= config.loss_tol)
    return dataclasses.replace(
        state,
        converged_step=jnp.where(reached, state.step, state.converged_step),
        diverged=state.diverged | (active & ~finite),
    )


def step_unless_frozen(
    config: Config, state: Any, loss: jax.Array, opt_state: Any, full_loss: bool, **new: jax.Array
) -> Any:
    """`state` one optimizer step on, for either engine: settled (`settle`) with its `loss` and
    the parameters it is about to take, `new` (field name -> value, e.g. weights=, bias=), which
    it takes, with `opt_state`, unless it is now frozen; its step count goes up either way."""
    settled = settle(config, state, loss, *new.values(), full_loss=full_loss)
    update = ~settled.frozen

    def keep(value: jax.Array, old: jax.Array) -> jax.Array:
        return jnp.where(update, value, old)

    return dataclasses.replace(
        settled,
        **{name: keep(value, getattr(state, name)) for name, value in new.items()},
        opt_state=jax.tree.map(keep, opt_state, state.opt_state),
        step=state.step + 1,
    )
