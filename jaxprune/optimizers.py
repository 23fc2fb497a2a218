"""The optimizers of a run (`Config.optimizer`), as optax transformations with a traced learning
rate, and the minibatches of minibatch SGD.

'gd' is plain gradient descent (the paper's), 'momentum' heavy-ball SGD with momentum MOMENTUM,
'adam' Adam with optax's defaults (b1 = 0.9, b2 = 0.999, eps = 1e-8); 'flow' (gradient flow) is
solved by `jaxprune.flow`, with no optax state. The learning rate is the
run's `Params.lr`, a traced scalar, so it stays vmappable. With `Config.batch_size` = B, each
step uses B distinct training samples drawn afresh from fold_in(fold_in(key(seed), BATCH_STREAM),
step): the same for every run of a seed, whatever its Params.
"""

from __future__ import annotations

import jax
import optax

from jaxprune.config import Config
from jaxprune.data import Sample

MOMENTUM = 0.9
# Pairs of copies of the trained parameters an optimizer keeps besides them and their
# gradient: o = 1 moment for momentum, 2 for Adam; for flow, Tsit5's 7 stages, its error
# estimate and the dense output an event's root finder interpolates (about 10 copies).
PARAMETER_COPIES = {"gd": 0, "momentum": 1, "adam": 2, "flow": 5}


def optimizer(config: Config, lr: jax.Array) -> optax.GradientTransformation:
    """The optax transformation of config.optimizer with learning rate `lr` (a traced scalar).
    Its state for 'gd' has no leaves. 'flow' takes no optax steps (`jaxprune.flow` integrates
    the gradient): its state is that of 'gd', empty."""
    if config.optimizer in ("gd", "flow"):
        return optax.sgd(lr)
    if config.optimizer == "momentum":
        return optax.sgd(lr, momentum=MOMENTUM)
    if config.optimizer == "adam":
        return optax.adam(lr)
    raise ValueError(f"Config.optimizer = {config.optimizer!r} has no optax transformation.")


def minibatch_indices(config: Config, key: jax.Array, step: jax.Array) -> jax.Array:
    """The batch_size distinct training-sample indices of step `step`, (B,) int, from `key` (the
    run's batch key: Params-free)."""
    step_key = jax.random.fold_in(key, step)
    return jax.random.choice(step_key, config.n_train, (config.batch_size,), replace=False)


def minibatch(train: Sample, indices: jax.Array) -> Sample:
    """The samples `indices` (B,) of the training draws `train`, as a Sample of B samples."""
    return jax.tree.map(lambda leaf: leaf[indices], train)
