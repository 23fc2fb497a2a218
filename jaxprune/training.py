"""One training run as a pure function: sample, prune, masked (minibatch) gradient steps of the
run's optimizer, measure (docs/concepts/model.md#training).

`make_run(config)` returns `run(params, seed) -> (history, final_state)`. It is written for one
run; the sweep vmaps it over the Params of runs that share a seed, so everything drawn from the
seed (data, test set, initial weights, mask uniforms, minibatch indices) is drawn once and
shared, and the noise enters as one matrix product for all of those runs (see
`jaxprune.data`). The Python control flow depends on `config` only.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxprune import gram, model
from jaxprune.config import Config, Dims, Params
from jaxprune.data import Sample, draw_sample
from jaxprune.engine import Engine, resolve
from jaxprune.metrics import Metrics, measure
from jaxprune.optimizers import minibatch, minibatch_indices, optimizer
from jaxprune.state import (
    BATCH_STREAM,
    TEST_STREAM,
    TRAIN_STREAM,
    RunState,
    init_state,
    settle,
    step_unless_frozen,
)


def gd_step(
    config: Config, params: Params, train: Sample, state: RunState, dims: Dims | None = None
) -> RunState:
    """One masked step of config.optimizer on the training set that `params` makes of `train`
    (the full training draws, or this step's minibatch when config.batch_size is set).

    The weights are kept equal to W ⊙ M: the loss is taken at them, its gradient masked, and the
    optimizer's update masked, so pruned weights stay exactly zero whatever the optimizer. For
    'gd' this is W <- W - lr * grad_W L(W ⊙ M) ⊙ M. A frozen run is returned unchanged but for
    its step count; a run whose full-batch loss reaches loss_tol records the step and freezes (a
    minibatch loss cannot: see `make_run`); a non-finite loss or update marks it diverged.
    dims: the run's own shape in a padded bucket (default: unpadded)."""
    loss, (grad_w, grad_b) = jax.value_and_grad(model.sample_loss, argnums=(2, 3))(
        config, params, state.weights, state.bias, train, dims
    )
    (step_w, step_b), opt_state = optimizer(config, params.lr).update(
        (grad_w * state.mask, grad_b), state.opt_state, (state.weights, state.bias)
    )
    return step_unless_frozen(
        config,
        state,
        loss,
        opt_state,
        full_loss=config.batch_size is None,
        weights=state.weights + step_w * state.mask,
        bias=state.bias + step_b,
    )


def make_dense_engine(
    config: Config, key: jax.Array, train: Sample, points: Params, dims: Dims
) -> Engine:
    """The dense engine (`jaxprune.engine.Engine`) of the runs `points` (leaves (R,)) of the
    seed whose root key is `key` and training draws `train`, with their own shapes `dims`
    (leaves (R,)) in the bucket `config`: `init_state`, then `gd_step` on the filters."""

    def step(states: RunState, indices) -> RunState:
        batch = train if indices is None else minibatch(train, indices)
        update = jax.vmap(lambda params, dims, state: gd_step(config, params, batch, state, dims))
        return update(points, dims, states)

    initial = jax.vmap(lambda params, dims: init_state(config, params, key, train, dims))(
        points, dims
    )
    return Engine(initial=initial, step=step, run_state=lambda states: states)


def make_seed_runs(config: Config):
    """Factory: the pure function that trains the runs of one seed.

    runs(points, dims, seed) -> (history, states): `points` is Params with leaves (R,), `dims`
    the runs' own shapes, Dims with int leaves (R,), each at most `config`'s (the bucket: see
    `jaxprune.grid`), `seed` an int scalar; `history` is Metrics with leaves (R, T) over
    `config.logged_steps()`, `states` the final RunStates with a leading axis (R,), padded to
    the bucket's shape (padding pruned and zero).

    Every draw is made at the bucket's shape and is coordinate-stable (see
    `data.draw_sample`, `model.neuron_draws`), so a run equals the same run drawn alone at its
    own shape; padded coordinates, neurons and samples are masked out of the network, the loss
    and every measurement. Every matrix product runs at config.matmul_precision. With
    config.batch_size set, dims.n_train must equal config.n_train (minibatches are drawn from
    all n_train samples).

    The R runs share the seed's draws (data, test set, initial weights, mask uniforms and
    minibatch indices: none depends on Params), so they are drawn once and the runs' steps are
    vmapped over the points with the draws unbatched: the noise enters as one matrix product
    for all R runs. The steps run in `while_loop`s that end once every run is frozen (converged
    to loss_tol, or diverged), checked at every step: a frozen run no longer changes, so the
    measurements it skips equal its last one and are filled in from it, and a sweep with
    loss_tol costs what its slowest run needs, not the step cap. The loop's counters are shared
    by the runs (not batched), so step t's minibatch stays one gather for all of them.

    With config.batch_size set, step t uses the minibatch `optimizers.minibatch_indices` draws
    from fold_in(key(seed), BATCH_STREAM) and t. loss_tol then applies to the full training loss
    at the logged measurements: a run freezes at the first logged step whose training loss is
    <= loss_tol, and records it as converged_step.

    The steps are those of the engine `engine.resolve(config)`: `make_dense_engine`, or
    `gram.make_engine`; either way the measurements are taken on the run's `RunState`.
    """
    make_engine = gram.make_engine if resolve(config) == "gram" else make_dense_engine
    full_blocks, rest = divmod(config.steps, config.log_every)
    num_logs = len(config.logged_steps())

    def runs(points: Params, dims: Dims, seed: jax.Array) -> tuple[Metrics, RunState]:
        with (
            jax.default_matmul_precision(config.matmul_precision),
            jax.threefry_partitionable(True),
        ):
            return seed_runs(points, dims, seed)

    def seed_runs(points: Params, dims: Dims, seed: jax.Array) -> tuple[Metrics, RunState]:
        key = jax.random.key(seed)
        train = draw_sample(config, jax.random.fold_in(key, TRAIN_STREAM), config.n_train)
        test = draw_sample(config, jax.random.fold_in(key, TEST_STREAM), config.n_test)
        batch_key = jax.random.fold_in(key, BATCH_STREAM)
        engine = make_engine(config, key, train, points, dims)

        def log(points: Params, states):
            """Measure, and settle the states with the measurement (a run whose loss reached
            loss_tol, or turned non-finite, is frozen from this step)."""
            run_states = engine.run_state(states)
            metrics = jax.vmap(
                lambda params, dims, state: measure(config, params, state, train, test, dims)
            )(points, dims, run_states)
            settled = jax.vmap(
                lambda state, loss: settle(config, state, loss, state.weights, state.bias)
            )(run_states, metrics.train_loss)
            outcome = dict(converged_step=settled.converged_step, diverged=settled.diverged)
            return dataclasses.replace(states, **outcome), dataclasses.replace(metrics, **outcome)

        def step(carry: tuple[jax.Array, RunState]) -> tuple[jax.Array, RunState]:
            t, states = carry
            indices = None
            if config.batch_size is not None:
                indices = minibatch_indices(config, batch_key, t)
            return t + 1, engine.step(states, indices)

        def advance(states: RunState, start: jax.Array, length: int) -> RunState:
            """Steps start, ..., start + length - 1, or fewer once every run is frozen."""

            def going(carry: tuple[jax.Array, RunState]) -> jax.Array:
                t, states = carry
                return (t < start + length) & ~states.frozen.all()

            return jax.lax.while_loop(going, step, (start, states))[1]

        def block(carry: tuple[jax.Array, RunState, Metrics]):
            logged, states, history = carry
            start = (logged - 1) * config.log_every
            states, metrics = log(points, advance(states, start, config.log_every))
            history = jax.tree.map(lambda h, v: h.at[:, logged].set(v), history, metrics)
            return logged + 1, states, history

        def unfinished(carry: tuple[jax.Array, RunState, Metrics]) -> jax.Array:
            logged, states, _ = carry
            return (logged <= full_blocks) & ~states.frozen.all()

        states = engine.initial
        states, first = log(points, states)
        history = jax.tree.map(lambda v: jnp.zeros(v.shape + (num_logs,), v.dtype), first)
        history = jax.tree.map(lambda h, v: h.at[:, 0].set(v), history, first)
        logged, states, history = jax.lax.while_loop(
            unfinished, block, (jnp.int32(1), states, history)
        )
        # Every run is frozen: the measurements it skipped equal its last one.
        skipped = jnp.arange(num_logs) >= logged
        history = jax.tree.map(
            lambda h: jnp.where(skipped, jax.lax.dynamic_slice_in_dim(h, logged - 1, 1, 1), h),
            history,
        )
        if rest:
            start = jnp.int32(full_blocks * config.log_every)
            states, last = log(points, advance(states, start, rest))
            history = jax.tree.map(lambda h, v: h.at[:, -1].set(v), history, last)
        states = engine.run_state(states)
        steps = jnp.full_like(states.step, config.steps)
        return history, dataclasses.replace(states, step=steps)

    return runs


def make_run(config: Config):
    """Factory: the pure single-run function for `config`, `make_seed_runs` of one point.

    run(params, seed) -> (history, state): `params` holds scalar leaves, `seed` is an int scalar;
    `history` is Metrics with a leading axis (T,) over `config.logged_steps()`, `state` the final
    RunState.
    """
    runs = make_seed_runs(config)

    def run(params: Params, seed: jax.Array) -> tuple[Metrics, RunState]:
        one = jax.tree.map(lambda v: jnp.asarray(v)[None], (params, Dims.of(config)))
        history, states = runs(*one, seed)
        return jax.tree.map(lambda v: v[0], (history, states))

    return run
