"""One training run as a pure function: sample, prune, masked full-batch GD, measure (SPEC §2.4).

`make_run(config)` returns `run(params, seed) -> (history, final_state)`. It is written for one
run and vmapped over runs by the sweep; the Python control flow depends on `config` only.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxprune import model
from jaxprune.config import Config, Params
from jaxprune.data import Dataset, sample_dataset
from jaxprune.masks import sample_mask
from jaxprune.metrics import Metrics, measure

# Every random draw of a run comes from fold_in(key(seed), stream): never from its batch position.
TRAIN_STREAM, TEST_STREAM, INIT_STREAM, MASK_STREAM = 0, 1, 2, 3


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class RunState:
    """State of one run. weights: (K, m, d) first-layer filters, kept equal to weights ⊙ mask.
    bias: (K, m) (zero and untrained unless config.bias). mask: (K, m, d) in {0, 1}. step: GD
    steps taken. converged_step: first step whose training loss was <= loss_tol, else -1.
    diverged: a non-finite loss or weight occurred. A converged or diverged run is frozen: its
    weights no longer change."""

    weights: jax.Array
    bias: jax.Array
    mask: jax.Array
    step: jax.Array
    converged_step: jax.Array
    diverged: jax.Array

    @property
    def frozen(self) -> jax.Array:
        return (self.converged_step >= 0) | self.diverged


def init_state(config: Config, params: Params, key: jax.Array) -> RunState:
    """Pruned initial state of the run whose root key is `key`."""
    mask = sample_mask(config, jax.random.fold_in(key, MASK_STREAM), params.prune_frac)
    weights, bias = model.init_weights(config, params, jax.random.fold_in(key, INIT_STREAM))
    return RunState(
        weights=weights * mask,
        bias=bias,
        mask=mask,
        step=jnp.zeros((), jnp.int32),
        converged_step=jnp.full((), -1, jnp.int32),
        diverged=jnp.zeros((), bool),
    )


def gd_step(config: Config, lr: jax.Array, train: Dataset, state: RunState) -> RunState:
    """One masked full-batch GD step W <- W - lr * grad_W L(W ⊙ M) (the gradient is zero off the
    mask). A frozen run is returned unchanged but for its step count; a run whose loss reaches
    loss_tol records the step and freezes; a non-finite loss or update marks it diverged."""
    loss, (grad_w, grad_b) = jax.value_and_grad(model.loss, argnums=(1, 2))(
        config, state.weights, state.bias, state.mask, train.x, train.y
    )
    new_w, new_b = state.weights - lr * grad_w, state.bias - lr * grad_b
    finite = jnp.isfinite(loss) & jnp.isfinite(new_w).all() & jnp.isfinite(new_b).all()
    reached = loss <= config.loss_tol if config.loss_tol is not None else jnp.zeros((), bool)
    active = ~state.frozen
    update = active & finite & ~reached
    return RunState(
        weights=jnp.where(update, new_w, state.weights),
        bias=jnp.where(update, new_b, state.bias),
        mask=state.mask,
        step=state.step + 1,
        converged_step=jnp.where(active & finite & reached, state.step, state.converged_step),
        diverged=state.diverged | (active & ~finite),
    )


def make_run(config: Config):
    """Factory: the pure single-run function for `config`.

    run(params, seed) -> (history, state): `params` holds scalar leaves, `seed` is an int scalar;
    `history` is Metrics with a leading axis (T,) over `config.logged_steps()`, `state` the final
    RunState.
    """

    def run(params: Params, seed: jax.Array) -> tuple[Metrics, RunState]:
        key = jax.random.key(seed)
        train = sample_dataset(
            config, params, jax.random.fold_in(key, TRAIN_STREAM), config.n_train
        )
        test = sample_dataset(config, params, jax.random.fold_in(key, TEST_STREAM), config.n_test)

        def log(state: RunState) -> Metrics:
            return measure(config, state, train, test)

        def step(state: RunState, _) -> tuple[RunState, None]:
            return gd_step(config, params.lr, train, state), None

        def advance(state: RunState, length: int) -> RunState:
            return jax.lax.scan(step, state, length=length)[0]

        def block(state: RunState, _) -> tuple[RunState, Metrics]:
            state = advance(state, config.log_every)
            return state, log(state)

        state = init_state(config, params, key)
        history = [jax.tree.map(lambda v: v[None], log(state))]
        full_blocks, rest = divmod(config.steps, config.log_every)
        state, logged = jax.lax.scan(block, state, length=full_blocks)
        history.append(logged)
        if rest:
            state = advance(state, rest)
            history.append(jax.tree.map(lambda v: v[None], log(state)))
        return jax.tree.map(lambda *parts: jnp.concatenate(parts), *history), state

    return run
