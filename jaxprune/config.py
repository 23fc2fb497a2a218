"""Static `Config` (shapes and code paths) and vmappable `Params` (the floats a sweep varies).

`Config` is a frozen, hashable dataclass: it keys the compilation cache, so every field must be a
plain Python value. It validates itself on construction, so a bad value is refused before anything
is compiled. `Params` is a pytree of floats: a sweep stacks it along a leading run axis and vmaps.
`validate_params` checks concrete values (scalars or arrays of a grid) before they reach JAX.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any

import jax
import numpy as np

from jaxprune.errors import InvalidValue, Option  # noqa: F401 (the validation's error, here)

ACTIVATIONS = ("relu", "relu_pow", "leaky_relu")
SIGNALS = ("orthogonal", "antipodal")
LAYOUTS = ("patches", "additive")
INITS = ("normal", "uniform_fan_in")
OUTPUT_SCALES = ("mean", "sum")
PATCH_REDUCES = ("sum", "mean")
MASK_SCOPES = ("neuron", "layer")
TEST_EVALS = ("auto", "draw", "projected")
# The names of `jax_default_matmul_precision`: full float32, TF32 passes, one bfloat16 pass.
MATMUL_PRECISIONS = ("float32", "tensorfloat32", "bfloat16")
# The fields that fix array shapes only: a sweep pads them into buckets (see `jaxprune.grid`).
SHAPE_FIELDS = ("dim", "width", "n_train", "n_test")


def _fail(owner: str, name: str, value: Any, allowed: str) -> None:
    raise InvalidValue(name, value, f"is invalid: {allowed}.", owner=owner)


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        none = "None or " if name in _OPTIONAL else ""
        _fail("Config", name, value, f"must be {none}an integer >= {minimum}")
    return int(value)


def _check_float(name: str, value: Any, allowed: str, ok) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        _fail("Config", name, value, allowed)
    value = float(value)
    if not (math.isfinite(value) and ok(value)):
        _fail("Config", name, value, allowed)
    return value


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        _fail("Config", name, value, f"must be one of {', '.join(map(repr, choices))}")
    return str(value)


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        _fail("Config", name, value, "must be True or False")
    return bool(value)


_INT_MINIMUMS = {
    "num_classes": 2,
    "num_patches": 1,
    "dim": 1,
    "width": 1,
    "n_train": 1,
    "n_test": 1,
    "steps": 1,
    "log_every": 1,
    "synflow_rounds": 1,
    "batch_size": 1,
    "flow_max_steps": 1,
}
# Fields for which None is a valid value (no tolerance, full batch).
_OPTIONAL = ("loss_tol", "batch_size")
_FLOAT_RULES = {
    "act_power": ("must be a finite number >= 1", lambda v: v >= 1),
    "leaky_slope": ("must be a finite number >= 0", lambda v: v >= 0),
    "loss_tol": ("must be None or a finite number > 0", lambda v: v > 0),
    "flow_rtol": ("must be a finite number > 0", lambda v: v > 0),
    "flow_atol": ("must be a finite number > 0", lambda v: v > 0),
}
_CHOICES = {
    "activation": ACTIVATIONS,
    "signal": SIGNALS,
    "layout": LAYOUTS,
    "init": INITS,
    "output_scale": OUTPUT_SCALES,
    "patch_reduce": PATCH_REDUCES,
    "mask_scope": MASK_SCOPES,
    "test_eval": TEST_EVALS,
    "matmul_precision": MATMUL_PRECISIONS,
}


def normalize_config_value(name: str, value: Any) -> Any:
    """Check one Config field on its own and return it as a plain Python value (Config keys the
    jit cache, so numpy scalars become int, float or bool); raises ValueError naming the field."""
    if name in _OPTIONAL and value is None:
        return None
    if name in _INT_MINIMUMS:
        return _check_int(name, value, _INT_MINIMUMS[name])
    if name in _FLOAT_RULES:
        return _check_float(name, value, *_FLOAT_RULES[name])
    if name in _CHOICES:
        return _check_choice(name, value, _CHOICES[name])
    if name in _CATALOG_FIELDS:
        return _check_choice(name, value, _catalogs().names(name))
    return _check_bool(name, value)


# The fields that name an entry of a catalog: an engine, an optimizer, a mask criterion
# (docs/extending.md adds one).
_CATALOG_FIELDS = ("mask", "optimizer", "engine")


def _catalogs():
    """`jaxprune.engines`, which holds the catalogs' names and checks (`names`, `check`).
    Imported here, at the first check, not at the top of this module: the catalogs'
    definitions (the engines, optimizers and criteria) are built on Config."""
    from jaxprune import engines

    return engines


def _check_fields(owner: str, fields: tuple[str, ...], changes: dict) -> None:
    unknown = [name for name in changes if name not in fields]
    if unknown:
        raise ValueError(
            f"{owner} has no field {unknown[0]!r}: its fields are {', '.join(fields)}."
        )


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that fixes array shapes or code paths; one compilation per distinct Config.

    Notation: K = num_classes, P = num_patches, d = dim, m = width (neurons per class),
    n = n_train. The defaults are the paper's setting (orthogonal 1-sparse signals, noise
    orthogonal to them, ReLU, fixed second layer 1/m, Bernoulli mask, full-batch GD) at a size
    that trains in a second or two on a laptop CPU.

    mask: how the pruning mask is chosen at initialization (see `jaxprune.masks`): 'bernoulli',
    'exact', 'structured' (random), or a criterion: 'magnitude', 'snip', 'grasp', 'synflow'.
    mask_scope: where 'exact' and the criteria rank the weights: within each 'neuron' (round(p d)
    removed per neuron) or over the whole 'layer' (round(p K m d) removed in all).
    synflow_rounds: pruning rounds of SynFlow (exponential schedule; Tanaka et al. use 100).
    optimizer: 'gd' (the paper's), 'momentum' (heavy ball, 0.9) or 'adam', all with lr from
    Params; or 'flow', gradient flow, the limit lr -> 0 of 'gd' at fixed time t = lr * steps,
    solved by an adaptive ODE solver (see `jaxprune.flow`), logged at the same steps (times
    lr * step). batch_size: samples per step, drawn afresh each step; None for the full batch
    (the only choice under 'flow').
    flow_rtol, flow_atol: relative and absolute tolerances of the 'flow' solver's step-size
    control. flow_max_steps: the most solver steps between two logged steps; a run that needs
    more stops there, flagged `solver_failed` (never silently truncated).
    engine: how the steps are computed, with the same results: 'dense' on the (K, m, d) filters,
    'gram' on their coefficients over the training patches with per-neuron masked Gram matrices
    (a step's cost independent of d; see `jaxprune.gram`; optimizers linear in the gradients),
    or 'auto' (the cheaper by `jaxprune.engines.costs` of those that support the Config).
    matmul_precision: precision of every matrix product of training and measurement, a name of
    `jax_default_matmul_precision`: 'float32' (full), 'tensorfloat32' or 'bfloat16' (faster on
    GPUs, less accurate; on CPU all three compute in float32).
    test_eval: how the test set is evaluated (see `jaxprune.evaluation`): 'draw' (n_test explicit
    samples in d dimensions), 'projected' (their noise drawn directly as its K m projections on
    the filters: exact in distribution, cost independent of n_test d), or 'auto' (the cheaper by
    `jaxprune.evaluation.costs`).
    """

    num_classes: int = 2
    num_patches: int = 2
    dim: int = 200
    width: int = 20
    n_train: int = 40
    n_test: int = 500
    steps: int = 300
    log_every: int = 50
    activation: str = "relu"
    act_power: float = 3.0
    leaky_slope: float = 0.1
    signal: str = "orthogonal"
    noise_orthogonal: bool = True
    layout: str = "patches"
    bias: bool = False
    init: str = "normal"
    output_scale: str = "mean"
    patch_reduce: str = "sum"
    mask: str = "bernoulli"
    loss_tol: float | None = None
    mask_scope: str = "neuron"
    synflow_rounds: int = 100
    optimizer: str = "gd"
    batch_size: int | None = None
    engine: str = "auto"
    matmul_precision: str = "float32"
    test_eval: str = "auto"
    flow_rtol: float = 1e-5
    flow_atol: float = 1e-8
    flow_max_steps: int = 65536

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = normalize_config_value(field.name, getattr(self, field.name))
            object.__setattr__(self, field.name, value)

        if self.signal == "antipodal" and self.num_classes != 2:
            _fail(
                "Config",
                "num_classes",
                self.num_classes,
                "signal='antipodal' needs num_classes = 2",
            )
        if self.signal == "orthogonal" and self.dim < self.num_classes:
            _fail(
                "Config",
                "dim",
                self.dim,
                f"signal='orthogonal' needs dim >= num_classes ({self.num_classes})",
            )
        if self.layout == "patches" and self.num_patches < 2:
            _fail(
                "Config",
                "num_patches",
                self.num_patches,
                "layout='patches' needs num_patches >= 2 (one signal patch, the rest noise)",
            )
        if self.layout == "additive" and self.num_patches != 1:
            _fail(
                "Config", "num_patches", self.num_patches, "layout='additive' needs num_patches = 1"
            )
        if self.batch_size is not None and self.batch_size > self.n_train:
            _fail(
                "Config",
                "batch_size",
                self.batch_size,
                f"must be None (full batch) or at most n_train ({self.n_train})",
            )

        _catalogs().check(self)  # how the engine, optimizer and mask go together

    def replace(self, **changes) -> Config:
        """A copy with `changes` applied (validated like any new Config)."""
        _check_fields("Config", CONFIG_FIELDS, changes)
        return dataclasses.replace(self, **changes)

    def logged_steps(self) -> np.ndarray:
        """Steps at which a run is measured: 0, log_every, 2*log_every, ... and the last step."""
        return np.unique(np.append(np.arange(0, self.steps, self.log_every), self.steps))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Params:
    """The floats a sweep may vmap over; each leaf is a scalar for one run, shape (R,) for R runs.

    prune_frac: fraction of first-layer weights removed at initialization, in [0, 1).
    mu_norm: signal strength ||mu||. sigma_noise: noise standard deviation per coordinate.
    sigma_init: standard deviation of the first-layer weights at init (init='normal').
    lr: gradient-descent learning rate. label_flip: probability that a label is replaced.
    """

    prune_frac: Any = 0.0
    mu_norm: Any = 4.0
    sigma_noise: Any = 1.0
    sigma_init: Any = 0.01
    lr: Any = 1.0
    label_flip: Any = 0.0

    def replace(self, **changes) -> Params:
        """A copy with `changes` applied."""
        _check_fields("Params", PARAMS_FIELDS, changes)
        return dataclasses.replace(self, **changes)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Dims:
    """A run's own shape inside a padded bucket: ints (a scalar per run, (R,) for R runs) no
    larger than the bucket Config's fields of the same names. Coordinates, neurons and samples
    beyond them are padding, masked so that they change nothing (see `jaxprune.grid`)."""

    dim: Any
    width: Any
    n_train: Any
    n_test: Any

    @classmethod
    def of(cls, config: Config) -> Dims:
        """The unpadded shape of `config` (int32 scalars)."""
        return cls(*(np.int32(getattr(config, name)) for name in SHAPE_FIELDS))


CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(Config))
PARAMS_FIELDS = tuple(f.name for f in dataclasses.fields(Params))

# field: (allowed-values text, predicate on a float array)
_PARAMS_RULES = {
    # p is used in float32: 0.99999999 would round to 1 and prune everything.
    "prune_frac": (
        "must lie in [0, 1), also in float32",
        lambda v: (v >= 0) & (v.astype(np.float32) < 1),
    ),
    "mu_norm": ("must be finite and >= 0", lambda v: v >= 0),
    "sigma_noise": ("must be finite and >= 0", lambda v: v >= 0),
    "sigma_init": ("must be finite and >= 0", lambda v: v >= 0),
    "lr": ("must be finite and > 0", lambda v: v > 0),
    "label_flip": ("must lie in [0, 1]", lambda v: (v >= 0) & (v <= 1)),
}


def check_params_values(name: str, values: Any) -> np.ndarray:
    """Validate the concrete values of one Params field; returns them as a float64 array."""
    allowed, ok = _PARAMS_RULES[name]
    try:
        array = np.asarray(values)
    except ValueError:  # ragged nesting
        array = np.asarray(None)
    if array.dtype.kind not in "iuf":  # not bools, strings, None or nested sequences
        message = f"is invalid: {allowed} (got a non-number)."
        raise InvalidValue(name, values, message, owner="Params")
    array = array.astype(np.float64)
    bad = ~(np.isfinite(array) & ok(array))
    if bad.any():
        _fail("Params", name, float(array[bad].flat[0]), allowed)
    return array


def validate_params(params: Params) -> Params:
    """Check every field of concrete `params` (scalars or arrays); raises ValueError naming it."""
    if not isinstance(params, Params):
        raise ValueError(f"params must be a jaxprune.Params, got {type(params).__name__}.")
    for name in PARAMS_FIELDS:
        check_params_values(name, getattr(params, name))
    return params
