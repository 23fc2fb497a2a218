"""The engines that train a run (`Config.engine`): their interface, their cost model, and the
choice that 'auto' makes.

Both engines compute the same masked training (SPEC §2.4). 'dense' steps the (K, m, d) filters;
'gram' (`jaxprune.gram`) steps their coefficients over the training patches with per-neuron
masked Gram matrices. Per run, with K classes, m neurons, n samples (b per step), Q noise rows
per sample, d dimensions, S steps, L measurements, n_test test samples, B = n Q + C Gram rows
(C = K signal coordinates, or 1 for antipodal signals), T = n Q (n Q + 1) / 2 distinct noise
pairs and o = 0, 1 optimizer moments ('gd', 'momentum'):

    dense:  S (4 b Q d K m FLOPs + (6 + 2 o) K m d words)          steps: two products; the
                                                                    filters' elementwise passes
    gram:   2 T d K m + 2 n Q d K m FLOPs + K m d words             forming G (d-blocked GEMM)
            + S (2 B² K m FLOPs + B² K m words)                     steps: one Gram product
            + L (2 n Q d K m FLOPs + 3 K m d words)                 rebuilding w at each log
    both:   L (2 (n + n_test) Q d K m FLOPs + 2 K m d words)        the measurements

A word is 4 bytes. Time = FLOPs / FLOP_RATE + bytes / BYTE_RATE, rates calibrated on a 2-core
CPU (benchmarks/profile.py: products at ~150 GFLOP/s, the filters' elementwise passes at ~20
GB/s); an accelerator has a similar balance of the two, so the choice, which depends only on
their ratio, is the same there. 'auto' takes the engine of the lower time, 'dense' where 'gram'
cannot train the Config (optimizer 'adam'). At large d, where formation dominates the Gram side,
dense/gram FLOPs (the common measurements left out) tend to 4 S b Q / (nQ (nQ + 1) + 2 nQ (1 +
L)), about 4 S / (n + 3 + 2 L) with a full batch and Q = 1 (78 for S = 1000, n = 50, L = 2);
the issue's rougher 2 S / (n P) counts the n P patches and no symmetry of G.

Under 'flow' S is the number of gradient evaluations: FLOW_EVALUATIONS_PER_STEP per solver
step, of `flow_solver_steps` steps (measured per GD-equivalent step, scaled by the
tolerance).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

from jaxprune.config import Config
from jaxprune.data import num_noise_rows
from jaxprune.optimizers import PARAMETER_COPIES

FLOP_RATE = 1.5e11  # FLOP/s of the products
# Gradient evaluations per solver step of 'flow' (Tsit5: 7 stages, the first the last's) and
# solver steps (accepted and rejected) per GD-equivalent step at the default tolerance:
# measured 10,000 to 34,000 for 8,000 GD-equivalent steps in the theory_regime setting at
# d = 1000, p = 0, 0.5, 0.9 (ReLU's kinks, where the gradient jumps, hold the steps short).
FLOW_EVALUATIONS_PER_STEP = 6
FLOW_SOLVER_STEPS_PER_STEP = 2.5
BYTE_RATE = 2.0e10  # bytes/s of the elementwise passes
BYTES_PER_WORD = 4


class Engine(NamedTuple):
    """How an engine trains the R runs of one seed (made by a factory that closes over the
    seed's draws, the runs' Params and whatever per-run constants the engine keeps out of the
    loops' carry).

    initial: the runs' pruned initial states (leaves (R, ...)), with `frozen`, `step`,
    `converged_step` and `diverged` as `jaxprune.state.RunState` has them. step(states,
    indices) -> states: one step of config.optimizer of every run, on the training set
    (indices (B,) of the minibatch, or None for the full batch). run_state(states) ->
    RunState (R, ...): the runs as the dense engine holds them (weights (K, m, d) ...), for
    the measurements and for the caller.

    For gradient flow (`jaxprune.flow`), per run: variables, the names of the state's fields
    that training moves (e.g. ('weights', 'bias')); constants, the engine's per-run constants
    (leaves (R, ...), or None); gradient(params, dims, constants, state) -> (loss, direction):
    the full-batch training loss of one run's state and the direction (a dict over
    `variables`) that a 'gd' step moves them against, variables <- variables - lr direction
    (masked: pruned weights get none).
    """

    initial: Any
    step: Callable[[Any, Any], Any]
    run_state: Callable[[Any], Any]
    variables: tuple[str, ...]
    constants: Any
    gradient: Callable[[Any, Any, Any, Any], Any]


@dataclasses.dataclass(frozen=True)
class Cost:
    """FLOPs and bytes of one run; `seconds` at the calibrated rates."""

    flops: float
    bytes: float

    @property
    def seconds(self) -> float:
        return self.flops / FLOP_RATE + self.bytes / BYTE_RATE


def gram_rows(config: Config) -> int:
    """B: the rows of a neuron's Gram matrix, n Q noise rows and the C signal coordinates."""
    signals = config.num_classes if config.signal == "orthogonal" else 1
    return config.n_train * num_noise_rows(config) + signals


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


def costs(config: Config) -> dict[str, Cost]:
    """Estimated cost of one run of `config` by each engine (see the module docstring); the
    masks, data draws and readout, the same for both, are left out."""
    k, m, d, n = config.num_classes, config.width, config.dim, config.n_train
    q = num_noise_rows(config)
    batch = n if config.batch_size is None else config.batch_size
    steps, logs = config.steps, len(config.logged_steps())
    if config.optimizer == "flow":  # a gradient evaluation costs what a GD step does
        steps = FLOW_EVALUATIONS_PER_STEP * flow_solver_steps(config)
    moments = PARAMETER_COPIES[config.optimizer]
    neurons, rows = k * m, gram_rows(config)
    pairs = n * q * (n * q + 1) / 2
    patches = config.num_patches
    measure = Cost(  # forward products, then the readout's elementwise work on (n, P, K, m)
        logs * 2 * (n + config.n_test) * q * d * neurons,
        logs * (2 * neurons * d + 6 * (n + config.n_test) * patches * neurons) * BYTES_PER_WORD,
    )
    readout = steps * 4 * batch * patches * neurons * BYTES_PER_WORD  # each step's, both engines
    dense = Cost(
        steps * 4 * batch * q * d * neurons,
        steps * (6 + 2 * moments) * neurons * d * BYTES_PER_WORD + readout,
    )
    gram = Cost(
        2 * pairs * d * neurons
        + 2 * n * q * d * neurons
        + steps * 2 * rows**2 * neurons
        + logs * 2 * n * q * d * neurons,
        (neurons * d + steps * rows**2 * neurons + logs * 3 * neurons * d) * BYTES_PER_WORD
        + readout,
    )
    return {
        "dense": Cost(dense.flops + measure.flops, dense.bytes + measure.bytes),
        "gram": Cost(gram.flops + measure.flops, gram.bytes + measure.bytes),
    }


def resolve(config: Config) -> str:
    """The engine that trains `config`: config.engine, or for 'auto' the cheaper by `costs`
    ('dense' when the optimizer is 'adam', which 'gram' cannot train)."""
    if config.engine != "auto":
        return config.engine
    if config.optimizer == "adam":
        return "dense"
    estimate = costs(config)
    return "gram" if estimate["gram"].seconds < estimate["dense"].seconds else "dense"
