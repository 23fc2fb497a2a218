"""Gradient flow (`Config.optimizer = 'flow'`): the limit lr -> 0 of full-batch GD at fixed
time t = lr * steps, solved by diffrax's adaptive Tsit5 solver.

GD moves a run's variables y (the filters and biases for the dense engine, the coefficients
and biases for the Gram engine: `Engine.variables`) by y <- y - lr grad L(y), masked. As lr -> 0
with t = lr * step held fixed, its iterates tend to the solution of dy/dt = -grad L(y). This
module integrates that ODE in GD-equivalent steps s = t / lr (dy/ds = -lr grad L(y)), so a
Config and Params describe a GD run and its flow limit alike: the flow run integrates to s =
config.steps (time lr * steps) and is logged at the GD run's logged steps.

Solver: Tsit5 (explicit Runge-Kutta 5(4), 6 gradient evaluations per step, first-same-as-last)
with a PID step-size controller (relative and absolute tolerances `Config.flow_rtol`,
`flow_atol`). The ODE is not stiff where GD is stable (lr below 2 / the loss's curvature), so an
explicit solver takes steps of many GD steps; its step is limited by accuracy, not stability.
Under `vmap` over runs each run has its own step sizes and event.

`loss_tol` is an event: the solve stops at the time s* where the run's training loss equals
loss_tol (root found on the solver's dense output), the run is frozen from then (as under GD),
converged_step = ceil(s*) and converged_time = lr * s*. A run whose solve needs more than
`Config.flow_max_steps` solver steps between two logged steps stops where it got to and is
flagged `solver_failed`, frozen from then.

Pruned weights stay exactly zero: their gradient is masked to exactly 0 (dense engine), or
they are outside the coefficients' span (Gram engine).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import diffrax
import jax
import optimistix as optx

from jaxprune.config import Config, Dims, Params
from jaxprune.engine import Engine

# Relative precision of the event time s* (the root finder's tolerance, relative to s*).
EVENT_RTOL = 1e-6


def solve(config: Config, engine: Engine, start: jax.Array, end: jax.Array):
    """solve(params, dims, constants, state) -> (state, stop, reached, failed) for one run:
    its gradient flow from GD-equivalent step `start` to `end` (scalars), on the variables
    `engine.variables` of its engine state `state`. stop: the step s at which the solve ended
    (end, the event's time s*, or where the solver gave up); reached: its loss reached
    loss_tol at stop (the event); failed: the solver hit flow_max_steps."""
    solver = diffrax.Tsit5()
    controller = diffrax.PIDController(rtol=config.flow_rtol, atol=config.flow_atol)

    def one(params: Params, dims: Dims, constants: Any, state: Any):
        def gradient(y: dict) -> tuple[jax.Array, dict]:
            return engine.gradient(params, dims, constants, dataclasses.replace(state, **y))

        def objective(y: dict) -> jax.Array:
            return gradient(y)[0]

        def velocity(s: jax.Array, y: dict, args: None) -> dict:
            return jax.tree.map(lambda g: -params.lr * g, gradient(y)[1])

        event = None
        if config.loss_tol is not None:
            event = diffrax.Event(
                lambda t, y, args, **kwargs: objective(y) - config.loss_tol,
                root_finder=optx.Newton(rtol=EVENT_RTOL, atol=EVENT_RTOL * end),
            )
        y0 = {name: getattr(state, name) for name in engine.variables}
        solution = diffrax.diffeqsolve(
            diffrax.ODETerm(velocity),
            solver,
            t0=start,
            t1=end,
            dt0=None,
            y0=y0,
            saveat=diffrax.SaveAt(t1=True),
            stepsize_controller=controller,
            max_steps=config.flow_max_steps,
            event=event,
            throw=False,
        )
        y1 = jax.tree.map(lambda v: v[-1], solution.ys)
        reached = solution.result == diffrax.RESULTS.event_occurred
        failed = ~reached & (solution.result != diffrax.RESULTS.successful)
        return dataclasses.replace(state, **y1), solution.ts[-1], reached, failed

    return one
