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
    """

    def run(params: Params, seed: jax.Array) -> tuple[Metrics, RunState]:
        key = jax.random.key(seed)
        train = draw_sample(config, jax.random.fold_in(key, TRAIN_STREAM), config.n_train)
        test = draw_sample(config, jax.random.fold_in(key, TEST_STREAM), config.n_test)

        def log(state: RunState) -> Metrics:
            return measure(config, params, state, train, test)

        def step(state: RunState, _) -> tuple[RunState, None]:
            return gd_step(config, params, train, state), None

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
        history = jax.tree.map(lambda *parts: jnp.concatenate(parts), *history)
        # The last measurement settles the final state (no GD step follows to do it).
        state = dataclasses.replace(
            state, converged_step=history.converged_step[-1], diverged=history.diverged[-1]
        )
        return history, state

    return run
