"""What an engine is (`Config.engine`): the functions it gives the training loop (`Engine`), what
it declares to the planner (`EngineKind`: its name, what it supports, its cost and memory
models), and the cost model's shared parts. The engines are `jaxprune.dense` and
`jaxprune.gram`, in the catalog `jaxprune.engines` (docs/extending.md adds one).

Both engines compute the same masked training (docs/concepts/model.md#training). Per run, with K
classes, m neurons, n samples (b per step), Q noise rows per sample, d dimensions, S gradient
evaluations (`Optimizer.evaluations`: the steps, or flow's solver stages), L measurements,
n_test test samples, B = n Q + C Gram rows (C = K signal coordinates, or 1 for antipodal
signals), T = n Q (n Q + 1) / 2 distinct noise pairs and o optimizer moments:

    dense:  S (4 b Q d K m FLOPs + (6 + 2 o) K m d words)          steps: two products; the
                                                                    filters' elementwise passes
    gram:   2 T d K m + 2 n Q d K m FLOPs + K m d words             forming G (d-blocked GEMM)
            + S (2 B² K m FLOPs + B² K m words)                     steps: one Gram product
            + L (2 n Q d K m FLOPs + 3 K m d words)                 w's d-blocks at each log
    both:   L (2 (n + n_test) Q d K m FLOPs + 2 K m d words)        the measurements
            + S (4 b P K m words)                                   each step's readout

A word is 4 bytes. Time = FLOPs / FLOP_RATE + bytes / BYTE_RATE, rates calibrated on a 2-core
CPU (benchmarks/profile.py: products at ~150 GFLOP/s, the filters' elementwise passes at ~20
GB/s); an accelerator has a similar balance of the two, so the choice, which depends only on
their ratio, is the same there. 'auto' takes the engine of the lower time among those that
support the Config (`jaxprune.engines.resolve`). At large d, where formation dominates the Gram
side, dense/gram FLOPs (the common measurements left out) tend to 4 S b Q / (nQ (nQ + 1) + 2 nQ
(1 + L)), about 4 S / (n + 3 + 2 L) with a full batch and Q = 1 (78 for S = 1000, n = 50, L = 2).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

from jaxprune.config import Config
from jaxprune.data import num_noise_rows
from jaxprune.optimizers import OPTIMIZERS

FLOP_RATE = 1.5e11  # FLOP/s of the products
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

    products(states, test) -> `metrics.FilterProducts` (leaves (R, ...)): what the
    measurements need of the runs' filters, for an engine that has it without forming them
    (`jaxprune.gram`); None: the measurements use the filters `run_state` rebuilds.
    """

    initial: Any
    step: Callable[[Any, Any], Any]
    run_state: Callable[[Any], Any]
    variables: tuple[str, ...]
    constants: Any
    gradient: Callable[[Any, Any, Any, Any], Any]
    products: Callable[[Any, Any], Any] | None = None


@dataclasses.dataclass(frozen=True)
class Cost:
    """FLOPs and bytes of one run; `seconds` at the calibrated rates."""

    flops: float
    bytes: float

    @property
    def seconds(self) -> float:
        return self.flops / FLOP_RATE + self.bytes / BYTE_RATE

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.flops + other.flops, self.bytes + other.bytes)


def supports_all(config: Config) -> str | None:
    """An engine's `supports` that trains every Config."""
    return None


@dataclasses.dataclass(frozen=True)
class EngineKind:
    """An engine, as the library asks it (one object per engine, in `jaxprune.engines`).

    name: its `Config.engine` value. make(config, key, train, points, dims) -> Engine: the
    factory of a seed's runs (see `Engine`). supports(config) -> None, or why it cannot train
    `config` (the end of a sentence: "needs ..."). cost(config) -> Cost: its own work for one
    run, the measurements and readout that every engine shares left out (`shared_cost`).
    seed_words(config): words per seed it holds besides the seed's draws. run_words(config):
    words per run of its parameters, their gradient, the optimizer's moments and the mask
    criterion's scores (the memory model; `jaxprune.chunking` adds the activations)."""

    name: str
    make: Callable[..., Engine]
    cost: Callable[[Config], Cost]
    run_words: Callable[[Config], float]
    seed_words: Callable[[Config], float] = lambda config: 0
    supports: Callable[[Config], str | None] = supports_all


def shared_cost(config: Config) -> Cost:
    """The work of one run that is the same whatever the engine: the measurements at the L
    logged steps (forward products on the training and test sets, then the readout's
    elementwise work on (n, P, K, m)) and each step's readout (see the module docstring)."""
    k, m, d, n = config.num_classes, config.width, config.dim, config.n_train
    q, patches, neurons = num_noise_rows(config), config.num_patches, k * m
    batch = n if config.batch_size is None else config.batch_size
    logs = len(config.logged_steps())
    samples = n + config.n_test
    steps = OPTIMIZERS[config.optimizer].evaluations(config)
    return Cost(
        logs * 2 * samples * q * d * neurons,
        (logs * (2 * neurons * d + 6 * samples * patches * neurons)
         + steps * 4 * batch * patches * neurons) * BYTES_PER_WORD,
    )  # fmt: skip
