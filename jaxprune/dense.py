"""The dense engine (`Config.engine='dense'`): the runs' (K, m, d) filters stepped by
`gd_step`, with any optimizer, and what it declares to the planner (`DENSE`: its cost and
memory; see `jaxprune.engine` for the model).
"""

from __future__ import annotations

import jax

from jaxprune import model
from jaxprune.config import Config, Dims, Params
from jaxprune.data import Sample, num_noise_rows
from jaxprune.engine import BYTES_PER_WORD, Cost, Engine, EngineKind
from jaxprune.masks import CRITERIA
from jaxprune.optimizers import OPTIMIZERS, minibatch, optimizer
from jaxprune.state import RunState, init_state, step_unless_frozen


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


def make_engine(
    config: Config, key: jax.Array, train: Sample, points: Params, dims: Dims
) -> Engine:
    """The dense engine (`jaxprune.engine.Engine`) of the runs `points` (leaves (R,)) of the
    seed whose root key is `key` and training draws `train`, with their own shapes `dims`
    (leaves (R,)) in the bucket `config`: `init_state`, then `gd_step` on the filters (for
    gradient flow: the masked gradient in the filters and biases)."""

    def step(states: RunState, indices) -> RunState:
        batch = train if indices is None else minibatch(train, indices)
        update = jax.vmap(lambda params, dims, state: gd_step(config, params, batch, state, dims))
        return update(points, dims, states)

    def gradient(params: Params, dims: Dims, constants: None, state: RunState):
        """The full-batch loss L(W ⊙ M) of one run's state and the direction of a 'gd' step,
        {'weights': M ⊙ grad_W L, 'bias': grad_b L}."""
        loss, (grad_w, grad_b) = jax.value_and_grad(model.sample_loss, argnums=(2, 3))(
            config, params, state.weights, state.bias, train, dims
        )
        return loss, {"weights": grad_w * state.mask, "bias": grad_b}

    initial = jax.vmap(lambda params, dims: init_state(config, params, key, train, dims))(
        points, dims
    )
    return Engine(
        initial=initial,
        step=step,
        run_state=lambda states: states,
        variables=("weights", "bias"),
        constants=None,
        gradient=gradient,
    )


def cost(config: Config) -> Cost:
    """One run's steps: S (4 b Q d K m FLOPs + (6 + 2 o) K m d words), S gradient evaluations
    (`Optimizer.evaluations`) and o the optimizer's moments."""
    optimizer = OPTIMIZERS[config.optimizer]
    neurons = config.num_classes * config.width
    batch = config.n_train if config.batch_size is None else config.batch_size
    steps = optimizer.evaluations(config)
    return Cost(
        steps * 4 * batch * num_noise_rows(config) * config.dim * neurons,
        steps * (6 + 2 * optimizer.moments) * neurons * config.dim * BYTES_PER_WORD,
    )


def run_words(config: Config) -> float:
    """The filters and their gradient (2 K m d), 2 more copies per optimizer moment, and the
    mask criterion's scores (`Criterion.score_copies`)."""
    copies = 2 + 2 * OPTIMIZERS[config.optimizer].moments + CRITERIA[config.mask].score_copies
    return copies * config.num_classes * config.width * config.dim


DENSE = EngineKind("dense", make_engine, cost, run_words)
