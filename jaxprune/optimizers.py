"""The optimizers of a run (`Config.optimizer`): small objects that declare themselves, in one
catalog (`OPTIMIZERS`), and the minibatches of minibatch SGD (docs/extending.md adds one).

'gd' is plain gradient descent (the paper's), 'momentum' heavy-ball SGD with momentum MOMENTUM,
'adam' Adam with optax's defaults (b1 = 0.9, b2 = 0.999, eps = 1e-8), all optax transformations
of a traced learning rate (the run's `Params.lr`, so it stays vmappable); 'flow' (gradient flow)
is solved by `jaxprune.flow`, with no optax steps. With `Config.batch_size` = B, each step uses B
distinct training samples drawn afresh from fold_in(fold_in(key(seed), BATCH_STREAM), step): the
same for every run of a seed, whatever its Params.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import optax

from jaxprune.config import Config
from jaxprune.data import Sample

MOMENTUM = 0.9
# Gradient evaluations per solver step of 'flow' (Tsit5: 7 stages, the first the last's) and
# solver steps (accepted and rejected) per GD-equivalent step at the default tolerance:
# measured 10,000 to 34,000 for 8,000 GD-equivalent steps in the theory_regime setting at
# d = 1000, p = 0, 0.5, 0.9 (ReLU's kinks, where the gradient jumps, hold the steps short).
FLOW_EVALUATIONS_PER_STEP = 6
FLOW_SOLVER_STEPS_PER_STEP = 2.5


def optimizer_steps(config: Config) -> float:
    """Gradient evaluations of a run of a stepping optimizer: one per step."""
    return float(config.steps)


def flow_solver_steps(config: Config) -> float:
    """Estimated solver steps (accepted and rejected) of one 'flow' run:
    FLOW_SOLVER_STEPS_PER_STEP per GD-equivalent step at the default tolerance, growing like
    1 / flow_rtol (as measured: ReLU's kinks make the solver's error first order in its step
    where a pre-activation crosses 0), a few more per logged block (each restarts the step-size
    control), never more than flow_max_steps per block."""
    blocks = len(config.logged_steps()) - 1
    rate = FLOW_SOLVER_STEPS_PER_STEP * Config().flow_rtol / config.flow_rtol
    estimate = rate * config.steps + 4 * blocks
    return min(estimate, config.flow_max_steps * blocks)


def flow_evaluations(config: Config) -> float:
    """Gradient evaluations of a 'flow' run: FLOW_EVALUATIONS_PER_STEP per solver step."""
    return FLOW_EVALUATIONS_PER_STEP * flow_solver_steps(config)


@dataclasses.dataclass(frozen=True)
class Optimizer:
    """An optimizer, as the library asks it.

    name: its `Config.optimizer` value. transform(lr) -> optax.GradientTransformation of a
    traced learning rate (for 'flow', whose steps `jaxprune.flow` takes, the empty one of
    'gd'). moments: pairs of copies of the trained parameters it keeps besides them and their
    gradient (memory model: 1 for momentum, 2 for Adam, about 5 for flow's stages, error
    estimate and dense output). evaluations(config): gradient evaluations of one run (cost
    model). linear: its update is a fixed linear combination of past gradients, so it stays in
    their span (what the Gram engine needs). full_batch_only: why it takes only the full batch
    (refusing a batch_size), or None. flow: it is a continuous-time limit, integrated by
    `jaxprune.flow` instead of stepped."""

    name: str
    transform: Callable[[jax.Array], optax.GradientTransformation]
    moments: int
    evaluations: Callable[[Config], float] = optimizer_steps
    linear: bool = True
    full_batch_only: str | None = None
    flow: bool = False


OPTIMIZERS: dict[str, Optimizer] = {}


def register_optimizer(optimizer: Optimizer) -> Optimizer:
    """Add `optimizer` to the catalog under its name (so `Config.optimizer` accepts it)."""
    OPTIMIZERS[optimizer.name] = optimizer
    return optimizer


GD = register_optimizer(Optimizer("gd", optax.sgd, moments=0))
MOMENTUM_SGD = register_optimizer(
    Optimizer("momentum", lambda lr: optax.sgd(lr, momentum=MOMENTUM), moments=1)
)
# Adam rescales each weight by its own second moment: its update leaves the gradients' span.
ADAM = register_optimizer(Optimizer("adam", optax.adam, moments=2, linear=False))
FLOW = register_optimizer(
    Optimizer(
        "flow",
        optax.sgd,
        moments=5,
        evaluations=flow_evaluations,
        full_batch_only="gradient flow is the full-batch limit of 'gd'",
        flow=True,
    )
)


def optimizer(config: Config, lr: jax.Array) -> optax.GradientTransformation:
    """The optax transformation of config.optimizer with learning rate `lr` (a traced scalar).
    Its state for 'gd' (and 'flow') has no leaves."""
    return OPTIMIZERS[config.optimizer].transform(lr)


def minibatch_indices(config: Config, key: jax.Array, step: jax.Array) -> jax.Array:
    """The batch_size distinct training-sample indices of step `step`, (B,) int, from `key` (the
    run's batch key: Params-free)."""
    step_key = jax.random.fold_in(key, step)
    return jax.random.choice(step_key, config.n_train, (config.batch_size,), replace=False)


def minibatch(train: Sample, indices: jax.Array) -> Sample:
    """The samples `indices` (B,) of the training draws `train`, as a Sample of B samples."""
    return jax.tree.map(lambda leaf: leaf[indices], train)
