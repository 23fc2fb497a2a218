"""Optimizers and minibatches: momentum and Adam against a direct optax loop on the dense model,
pruned weights exactly zero, minibatch indices shared by the runs of a seed, and loss_tol on the
full training loss under minibatch SGD."""

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxprune
from jaxprune import Params, model
from jaxprune.config import Dims
from jaxprune.data import dataset, draw_sample
from jaxprune.optimizers import MOMENTUM, minibatch_indices
from jaxprune.state import BATCH_STREAM, TRAIN_STREAM, init_state
from jaxprune.training import make_seed_runs


def direct_optax_loop(config, params, seed):
    """The run's weights after config.steps steps of a plain optax loop on the dense inputs:
    gradient of the masked loss, masked update (no loss_tol)."""
    key = jax.random.key(seed)
    sample = draw_sample(config, jax.random.fold_in(key, TRAIN_STREAM), config.n_train)
    data = dataset(config, params, sample)
    state = init_state(config, params, key, sample)
    tx = {
        "momentum": optax.sgd(params.lr, momentum=MOMENTUM),
        "adam": optax.adam(params.lr),
        "gd": optax.sgd(params.lr),
    }[config.optimizer]
    w, b, mask = state.weights, state.bias, state.mask
    opt_state = tx.init((w, b))

    @jax.jit
    def step(w, b, opt_state, t):
        x, y = data.x, data.y
        if config.batch_size is not None:
            idx = minibatch_indices(config, jax.random.fold_in(key, BATCH_STREAM), t)
            x, y = x[idx], y[idx]
        grads = jax.grad(model.loss, argnums=(1, 2))(config, w, b, mask, x, y)
        updates, opt_state = tx.update(grads, opt_state, (w, b))
        return w + updates[0] * mask, b + updates[1], opt_state

    for t in range(config.steps):
        w, b, opt_state = step(w, b, opt_state, t)
    return w, b


@pytest.mark.slow  # a compile per optimizer and an op-by-op optax loop (~23 CPU s under load)
@pytest.mark.parametrize(
    "optimizer,batch_size,lr",
    [("momentum", None, 0.2), ("adam", 3, 0.05)],
)
def test_optimizer_matches_optax_loop_and_keeps_pruned_weights_zero(
    tiny, tiny_params, optimizer, batch_size, lr
):
    config = tiny.replace(optimizer=optimizer, batch_size=batch_size, bias=True, steps=12)
    params = tiny_params.replace(prune_frac=0.6, lr=lr)
    frame, state = jaxprune.train(config, params, 5, return_state=True)
    weights, mask = np.asarray(state.weights), np.asarray(state.mask)
    assert (weights[mask == 0] == 0).all() and (weights[mask == 1] != 0).all()
    assert frame.train_loss.iloc[-1] < frame.train_loss.iloc[0]
    w, b = direct_optax_loop(config, params, 5)
    np.testing.assert_allclose(weights, w, rtol=2e-4, atol=1e-6)
    np.testing.assert_allclose(state.bias, b, rtol=2e-4, atol=1e-6)
    leaves = jax.tree.leaves(state.opt_state)
    assert len(leaves) == {"gd": 0, "momentum": 2, "adam": 5}[optimizer]


def test_minibatch_indices_depend_on_seed_and_step_only(tiny):
    config = tiny.replace(batch_size=3)
    key = jax.random.fold_in(jax.random.key(2), BATCH_STREAM)
    steps = np.asarray(jax.vmap(lambda t: minibatch_indices(config, key, t))(jnp.arange(50)))
    assert steps.shape == (50, 3) and steps.min() >= 0 and steps.max() < config.n_train
    assert all(len(set(row)) == 3 for row in steps)  # distinct samples within a step
    assert len({tuple(row) for row in steps}) > 10  # and fresh ones from step to step
    np.testing.assert_array_equal(np.bincount(steps.ravel(), minlength=8) > 0, True)
    other = jax.random.fold_in(jax.random.key(3), BATCH_STREAM)
    assert (np.asarray(minibatch_indices(config, other, 0)) != steps[0]).any() or (
        np.asarray(minibatch_indices(config, other, 1)) != steps[1]
    ).any()


def test_minibatch_is_shared_by_the_runs_of_a_seed(tiny):
    """For the runs of one seed (as the sweep runs them), the minibatch gather of the noise rows
    is unbatched: one gather per seed and step, not one per run."""
    config = tiny.replace(batch_size=3, optimizer="momentum", steps=2, log_every=2)
    points = jax.tree.map(lambda v: jnp.full((5,), v, jnp.float32), Params())
    dims = jax.tree.map(lambda v: jnp.full((5,), v), Dims.of(config))
    jaxpr = jax.make_jaxpr(make_seed_runs(config))(points, dims, jnp.int32(1))
    q, d = config.num_patches - 1, config.dim

    def gathers(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "gather":
                yield eqn.invars[0].aval.shape, eqn.outvars[0].aval.shape
            for sub in jax.extend.core.jaxprs_in_params(eqn.params):
                yield from gathers(sub)

    noise = [(a, o) for a, o in gathers(jaxpr.jaxpr) if a[-2:] == (q, d)]
    assert ((config.n_train, q, d), (3, q, d)) in noise
    assert all(len(a) == 3 for a, _ in noise)  # never a (runs, n, Q, d) operand


@pytest.mark.slow  # compiles its own Config
def test_minibatch_loss_tol_applies_to_the_full_loss_at_logged_steps(tiny, tiny_params):
    config = tiny.replace(batch_size=4, steps=60, log_every=4, loss_tol=0.1)
    frame, state = jaxprune.train(config, tiny_params.replace(lr=2.0), 0, return_state=True)
    conv = int(frame.converged_step.iloc[-1])
    assert conv > 0 and conv % 4 == 0 and conv == int(state.converged_step)
    losses = frame.set_index("step").train_loss
    assert losses[conv] <= 0.1 and (losses[losses.index < conv] > 0.1).all()
    assert (losses[losses.index >= conv] == losses[conv]).all()  # frozen from then on
