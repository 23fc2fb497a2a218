"""One training run as a pure function: sample, prune, masked full-batch GD, measure (SPEC §2.4).

`make_run(config)` returns `run(params, seed) -> (history, final_state)`. It is written for one
run; the sweep vmaps it over the Params of runs that share a seed, so everything drawn from the
seed (data, test set, initial weights, mask uniforms) is drawn once and shared, and the noise
enters as one matrix product for all of those runs (see `jaxprune.data`). The Python control
flow depends on `config` only.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxprune import model
from jaxprune.config import Config, Params
from jaxprune.data import Sample, draw_sample
from jaxprune.metrics import Metrics, measure
from jaxprune.state import TEST_STREAM, TRAIN_STREAM, RunState, init_state, settle


def gd_step(config: Config, params: Params, train: Sample, state: RunState) -> RunState:
    """One masked full-batch GD step W <- W - lr * grad_W L(W ⊙ M) on the training set that
    `params` makes of `train`. The weights are kept equal to W ⊙ M, so the loss is taken at them
    and its gradient masked. A frozen run is returned unchanged but for its step count; a run
    whose loss reaches loss_tol records the step and freezes; a non-finite loss or update marks
    it diverged."""
    loss, (grad_w, grad_b) = jax.value_and_grad(model.sample_loss, argnums=(2, 3))(
        config, params, state.weights, state.bias, train
    )
    lr = params.lr
    new_w, new_b = state.weights - lr * (grad_w * state.mask), state.bias - lr * grad_b
    settled = settle(config, state, loss, new_w, new_b)
    update = ~settled.frozen
    return dataclasses.replace(
        settled,
        weights=jnp.where(update, new_w, state.weights),
        bias=jnp.where(update, new_b, state.bias),
        step=state.step + 1,
    )


def make_run(config: Config):
    """Factory: the pure single-run function for `config`.

    run(params, seed) -> (history, state): `params` holds scalar leaves, `seed` is an int scalar;
    `history` is Metrics with a leading axis (T,) over `config.logged_steps()`, `state` the final
    RunState.

    The blocks of log_every steps run in a `while_loop` that ends early once the run is frozen
    (converged to loss_tol, or diverged): a frozen run no longer changes, so each measurement it
    skips equals its last one and is filled in from it. Under vmap the loop runs until every
    run of the batch is frozen or done, so a sweep with loss_tol costs what its slowest run
    needs, not the step cap.
    """

    def run(params: Params, seed: jax.Array) -> tuple[Metrics, RunState]:
        key = jax.random.key(seed)
        train = draw_sample(config, jax.random.fold_in(key, TRAIN_STREAM), config.n_train)
        test = draw_sample(config, jax.random.fold_in(key, TEST_STREAM), config.n_test)

        def log(state: RunState) -> tuple[RunState, Metrics]:
            """Measure, and settle the state with the measurement (a run whose loss reached
            loss_tol, or turned non-finite, is frozen from this step)."""
            metrics = measure(config, params, state, train, test)
            state = dataclasses.replace(
                state, converged_step=metrics.converged_step, diverged=metrics.diverged
            )
            return state, metrics

        def step(state: RunState, _) -> tuple[RunState, None]:
            return gd_step(config, params, train, state), None

        def advance(state: RunState, length: int) -> RunState:
            return jax.lax.scan(step, state, length=length)[0]

        full_blocks, rest = divmod(config.steps, config.log_every)
        num_logs = len(config.logged_steps())

        def block(carry: tuple[jax.Array, RunState, Metrics]):
            logged, state, history = carry
            state, metrics = log(advance(state, config.log_every))
            history = jax.tree.map(lambda h, v: h.at[logged].set(v), history, metrics)
            return logged + 1, state, history

        def unfinished(carry: tuple[jax.Array, RunState, Metrics]) -> jax.Array:
            logged, state, _ = carry
            return (logged <= full_blocks) & ~state.frozen

        state, first = log(init_state(config, params, key))
        history = jax.tree.map(lambda v: jnp.zeros(num_logs, v.dtype).at[0].set(v), first)
        logged, state, history = jax.lax.while_loop(unfinished, block, (1, state, history))
        # A frozen run's skipped measurements equal its last one.
        skipped = jnp.arange(num_logs) >= logged
        history = jax.tree.map(lambda h: jnp.where(skipped, h[logged - 1], h), history)
        if rest:
            state, last = log(advance(state, rest))
            history = jax.tree.map(lambda h, v: h.at[-1].set(v), history, last)
        return history, dataclasses.replace(state, step=jnp.asarray(config.steps, jnp.int32))

    return run
