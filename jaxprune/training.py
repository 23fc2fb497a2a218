"""The training of a seed's runs as one pure function: init, a `lax.scan` over the logged
blocks, the history it returns (docs/concepts/model.md#training).

`make_seed_runs(config)` returns `runs(points, dims, seed) -> (history, states)`, which trains
the R runs (Params `points`) of one seed: they share the seed's draws (data, test set, initial
weights, mask uniforms, minibatch indices), drawn once, and their steps are vmapped over the
points. `runner.sweep` maps it over the seeds of a chunk; `runner.train` jits it for one run.
`make_run(config)` is the same for one run (scalar Params). The steps are those of an engine
(`jaxprune.engines.resolve`: `jaxprune.dense`, `gd_step` on the filters, or `jaxprune.gram`).
The Python control flow depends on `config` only.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from jaxprune import cache, engines, flow
from jaxprune.config import Config, Dims, Params
from jaxprune.data import Sample, draw_sample
from jaxprune.engine import Engine
from jaxprune.evaluation import draw_test
from jaxprune.metrics import FilterProducts, Metrics, filter_products, measure
from jaxprune.optimizers import OPTIMIZERS, minibatch_indices
from jaxprune.state import (
    BATCH_STREAM,
    TEST_STREAM,
    TRAIN_STREAM,
    RunState,
    settle,
)

# Every compiled path imports this module: the persistent compilation cache is set up first.
cache.configure()


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Outcome:
    """How the runs' training ended so far, beyond their states (leaves (R,)).

    converged_at: float32, the GD-equivalent step at which the run's training loss reached
    loss_tol (under 'flow' the event's time s*, under the other optimizers converged_step), or
    NaN. solver_failed: bool, the 'flow' solver hit Config.flow_max_steps (False otherwise)."""

    converged_at: jax.Array
    solver_failed: jax.Array


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class History(Metrics):
    """What the training loop logs: every `Metrics` field, then converged_time (lr x
    Outcome.converged_at: the time t at which the loss reached loss_tol, NaN before) and
    solver_failed (`Outcome`); leaves (R, T) over `Config.logged_steps()` for R runs."""

    converged_time: jax.Array
    solver_failed: jax.Array


HISTORY_NAMES = tuple(f.name for f in dataclasses.fields(History))


def make_gd_advance(config: Config, engine: Engine, key: jax.Array, points: Params, dims: Dims):
    """advance(states, outcome, start, length) -> (states, outcome): the runs' optimizer steps
    start, ..., start + length - 1 (`engine.step`), or fewer once every run is frozen (a
    `while_loop` checked at every step). The step counter is shared by the runs (not batched),
    so step t's minibatch (`optimizers.minibatch_indices` from fold_in(key, BATCH_STREAM) and
    t) is one gather for all of them."""
    batch_key = jax.random.fold_in(key, BATCH_STREAM)

    def step(carry: tuple[jax.Array, Any]) -> tuple[jax.Array, Any]:
        t, states = carry
        indices = None
        if config.batch_size is not None:
            indices = minibatch_indices(config, batch_key, t)
        return t + 1, engine.step(states, indices)

    def advance(states: Any, outcome: Outcome, start: jax.Array, length: int):
        def going(carry: tuple[jax.Array, Any]) -> jax.Array:
            t, states = carry
            return (t < start + length) & ~states.frozen.all()

        return jax.lax.while_loop(going, step, (start, states))[1], outcome

    return advance


def make_flow_advance(config: Config, engine: Engine, key: jax.Array, points: Params, dims: Dims):
    """advance(states, outcome, start, length) -> (states, outcome): each run's gradient flow
    from GD-equivalent step `start` to start + length (`flow.solve`, vmapped over the runs,
    each with its own solver steps), or to its loss_tol event, where it freezes with
    converged_step = ceil(s*); a run the solver cannot finish is flagged solver_failed and
    frozen. Frozen runs keep their state; once all are frozen nothing is solved (`lax.cond`).
    Every run's step becomes start + length."""

    def advance(states: Any, outcome: Outcome, start: jax.Array, length: int):
        active = ~(states.frozen | outcome.solver_failed)
        return jax.lax.cond(
            active.any(), solve, lambda *_: (states, outcome), states, outcome, start, length
        )

    def solve(states: Any, outcome: Outcome, start: jax.Array, length: int):
        end = start + length
        one = flow.solve(config, engine, start.astype(jnp.float32), end.astype(jnp.float32))
        solved, stop, reached, failed = jax.vmap(one)(points, dims, engine.constants, states)
        active = ~(states.frozen | outcome.solver_failed)

        def keep(new: jax.Array, old: jax.Array) -> jax.Array:
            return jnp.where(active.reshape(active.shape + (1,) * (new.ndim - 1)), new, old)

        reached &= active
        states = dataclasses.replace(
            states,
            **{n: keep(getattr(solved, n), getattr(states, n)) for n in engine.variables},
            step=jnp.full_like(states.step, end),
            converged_step=jnp.where(
                reached, jnp.ceil(stop).astype(states.step.dtype), states.converged_step
            ),
        )
        outcome = Outcome(
            converged_at=jnp.where(reached, stop, outcome.converged_at),
            solver_failed=outcome.solver_failed | (active & failed),
        )
        return states, outcome

    return advance


def engine_products(
    config: Config, engine: Engine, states: Any, train: Sample, test: Any
) -> FilterProducts:
    """The runs' `metrics.FilterProducts` (leaves (R, ...)): the engine's own
    (`Engine.products`), or those of the filters it rebuilds (`Engine.run_state`)."""
    if engine.products is not None:
        return engine.products(states, test)
    return jax.vmap(lambda state: filter_products(config, state, train, test))(
        engine.run_state(states)
    )


def make_seed_runs(config: Config):
    """Factory: the pure function that trains the runs of one seed.

    runs(points, dims, seed) -> (history, states): `points` is Params with leaves (R,), `dims`
    the runs' own shapes, Dims with int leaves (R,), each at most `config`'s (the bucket: see
    `jaxprune.grid`), `seed` an int scalar; `history` is a `History` (Metrics and the runs'
    outcome) with leaves (R, T) over `config.logged_steps()`, `states` the final RunStates
    with a leading axis (R,), padded to the bucket's shape (padding pruned and zero).

    A run, top to bottom:

    1. Init. The seed's draws (training set, test set, initial weights, mask uniforms,
       minibatch indices) depend on no Params, so the R runs share them: drawn once, with
       the runs' steps vmapped over the points and the draws unbatched (the noise enters as
       one matrix product for all R runs). The engine `engines.resolve(config)`
       (`jaxprune.dense` or `jaxprune.gram`) prunes the initial weights.
    2. Log step 0, then the loop: a `lax.scan` over the config.steps // config.log_every
       blocks; a block advances the runs log_every steps and logs them. Under 'gd',
       'momentum' and 'adam' the advance is `make_gd_advance` (a `while_loop` of steps that
       stops once every run is frozen, i.e. converged to loss_tol or diverged); under 'flow'
       it is `make_flow_advance` (the ODE solved to the block's end or the loss_tol event).
       Once every run is frozen a block advances nothing, so a sweep with loss_tol steps as
       far as its slowest run needs, not the step cap; its logs are still measured (a frozen
       run's measurement equals its last). (Skipping them by `lax.cond` would save the
       measurements but changes how XLA compiles them on CPU, and with it their last bits.)
       A trailing partial block of config.steps % config.log_every steps ends the loop.
    3. Log: `metrics.measure` of every run from its filters' products (`engine_products`:
       the engine's own, or those of the filters `engine.run_state` rebuilds); the runs are
       then settled with the measured training loss (a run whose loss reached loss_tol, or
       turned non-finite, is frozen from this step).
    4. Return: the history is what the loop returns, the logs stacked over the logged steps;
       the final states, as the dense engine holds them, with step = config.steps.

    Every draw is made at the bucket's shape and is coordinate-stable (see
    `data.draw_sample`, `model.neuron_draws`), so a run equals the same run drawn alone at its
    own shape; padded coordinates, neurons and samples are masked out of the network, the loss
    and every measurement. Every matrix product runs at config.matmul_precision.

    With config.batch_size set, step t uses the minibatch `optimizers.minibatch_indices` draws
    from fold_in(key(seed), BATCH_STREAM) and t, and dims.n_train must equal config.n_train.
    loss_tol then applies to the full training loss at the logged measurements: a run freezes
    at the first logged step whose training loss is <= loss_tol, and records it as
    converged_step. With full batches a run freezes at the first step whose loss is <=
    loss_tol (`state.step_unless_frozen`), or under 'flow' at the event.
    """
    make_engine = engines.resolve(config).make
    make_advance = make_flow_advance if OPTIMIZERS[config.optimizer].flow else make_gd_advance
    blocks, rest = divmod(config.steps, config.log_every)
    starts = jnp.arange(blocks, dtype=jnp.int32) * config.log_every

    def runs(points: Params, dims: Dims, seed: jax.Array) -> tuple[History, RunState]:
        with (
            jax.default_matmul_precision(config.matmul_precision),
            jax.threefry_partitionable(True),
        ):
            # 1. Init: the seed's draws and the runs' pruned initial states.
            key = jax.random.key(seed)
            train = draw_sample(config, jax.random.fold_in(key, TRAIN_STREAM), config.n_train)
            test = draw_test(config, jax.random.fold_in(key, TEST_STREAM), config.n_test)
            engine = make_engine(config, key, train, points, dims)
            advance = make_advance(config, engine, key, points, dims)
            outcome = Outcome(
                converged_at=jnp.full(points.lr.shape, jnp.nan, jnp.float32),
                solver_failed=jnp.zeros(points.lr.shape, bool),
            )

            def log(states: Any, outcome: Outcome) -> tuple[Any, Outcome, History]:
                """3. Measure the runs, then settle them with the measured training loss."""
                products = engine_products(config, engine, states, train, test)
                metrics = jax.vmap(
                    lambda params, dims, state, products: measure(
                        config, params, state, train, test, dims, products
                    )
                )(points, dims, states, products)
                states = jax.vmap(
                    lambda state, loss: settle(
                        config, state, loss, *(getattr(state, v) for v in engine.variables)
                    )
                )(states, metrics.train_loss)
                ended = dict(converged_step=states.converged_step, diverged=states.diverged)
                converged = jnp.isnan(outcome.converged_at) & (states.converged_step >= 0)
                outcome = dataclasses.replace(
                    outcome,
                    converged_at=jnp.where(
                        converged, states.converged_step.astype(jnp.float32), outcome.converged_at
                    ),
                )
                measured = {f.name: getattr(metrics, f.name) for f in dataclasses.fields(metrics)}
                history = History(
                    **{**measured, **ended},
                    converged_time=points.lr * outcome.converged_at,
                    solver_failed=outcome.solver_failed,
                )
                return states, outcome, history

            def block(carry: tuple[Any, Outcome, History], start: jax.Array, length: int):
                """Advance `length` steps from `start` (nothing once every run is frozen), log."""
                states, outcome, _ = carry
                logged = log(*advance(states, outcome, start, length))
                return logged, logged[-1]

            # 2. The loop: step 0, the full blocks, the partial one.
            carry = log(engine.initial, outcome)
            first = carry[-1]
            carry, logs = jax.lax.scan(
                lambda carry, start: block(carry, start, config.log_every), carry, starts
            )
            logs = [jax.tree.map(lambda v: v[None], first), logs]
            if rest:
                carry, last = block(carry, jnp.int32(blocks * config.log_every), rest)
                logs.append(jax.tree.map(lambda v: v[None], last))

            # 4. Return: the history (R, T) and the final states.
            history = jax.tree.map(lambda *v: jnp.moveaxis(jnp.concatenate(v), 0, 1), *logs)
            states = engine.run_state(carry[0])
            steps = jnp.full_like(states.step, config.steps)
            return history, dataclasses.replace(states, step=steps)

    return runs


def make_run(config: Config):
    """Factory: the pure single-run function for `config`, `make_seed_runs` of one point.

    run(params, seed) -> (history, state): `params` holds scalar leaves, `seed` is an int scalar;
    `history` is a `History` with a leading axis (T,) over `config.logged_steps()`, `state` the
    final RunState.
    """
    runs = make_seed_runs(config)

    def run(params: Params, seed: jax.Array) -> tuple[History, RunState]:
        one = jax.tree.map(lambda v: jnp.asarray(v)[None], (params, Dims.of(config)))
        history, states = runs(*one, seed)
        return jax.tree.map(lambda v: v[0], (history, states))

    return run
