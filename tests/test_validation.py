"""Every bad input of docs/bad-input.md is a ValueError that names the field, raised before
compiling."""

import math
from pathlib import Path

import numpy as np
import pytest

import jaxprune
from jaxprune import Config, Params, chunking, runner

BAD_CONFIGS = [
    ({"num_classes": 1}, "num_classes", ">= 2"),
    ({"num_classes": 2.0}, "num_classes", "integer"),
    ({"num_patches": 0}, "num_patches", ">= 1"),
    ({"dim": 2, "num_classes": 3}, "dim", "dim >= num_classes"),
    ({"signal": "antipodal", "num_classes": 3, "dim": 10}, "num_classes", "antipodal"),
    ({"n_train": 0}, "n_train", ">= 1"),
    ({"n_train": -3}, "n_train", ">= 1"),
    ({"n_test": 0}, "n_test", ">= 1"),
    ({"width": 0}, "width", ">= 1"),
    ({"steps": 0}, "steps", ">= 1"),
    ({"log_every": 0}, "log_every", ">= 1"),
    ({"activation": "gelu"}, "activation", "'relu', 'relu_pow', 'leaky_relu'"),
    ({"act_power": 0.5}, "act_power", ">= 1"),
    ({"act_power": math.nan}, "act_power", "finite"),
    ({"leaky_slope": -0.1}, "leaky_slope", ">= 0"),
    ({"leaky_slope": math.inf}, "leaky_slope", "finite"),
    ({"signal": "sparse"}, "signal", "'orthogonal', 'antipodal'"),
    ({"noise_orthogonal": "yes"}, "noise_orthogonal", "True or False"),
    ({"layout": "stacked"}, "layout", "'patches', 'additive'"),
    ({"layout": "additive"}, "num_patches", "num_patches = 1"),
    ({"num_patches": 1}, "num_patches", "num_patches >= 2"),
    ({"bias": 1}, "bias", "True or False"),
    ({"init": "xavier"}, "init", "'normal', 'uniform_fan_in'"),
    ({"output_scale": "max"}, "output_scale", "'mean', 'sum'"),
    ({"patch_reduce": "max"}, "patch_reduce", "'sum', 'mean'"),
    (
        {"mask": "random"},
        "mask",
        "'bernoulli', 'exact', 'structured', 'magnitude', 'snip', 'grasp', 'synflow'",
    ),
    ({"mask_scope": "global"}, "mask_scope", "'neuron', 'layer'"),
    ({"synflow_rounds": 0}, "synflow_rounds", ">= 1"),
    ({"synflow_rounds": 2.5}, "synflow_rounds", "integer"),
    ({"optimizer": "sgd"}, "optimizer", "'gd', 'momentum', 'adam'"),
    ({"batch_size": 0}, "batch_size", "None or an integer >= 1"),
    ({"batch_size": 8.0}, "batch_size", "None or an integer >= 1"),
    ({"batch_size": 41}, "batch_size", "at most n_train (40)"),
    ({"loss_tol": 0.0}, "loss_tol", "> 0"),
    ({"loss_tol": -1.0}, "loss_tol", "> 0"),
]

BAD_PARAMS = [
    ({"prune_frac": 1.0}, "prune_frac", "[0, 1)"),
    ({"prune_frac": -0.1}, "prune_frac", "[0, 1)"),
    ({"mu_norm": -1.0}, "mu_norm", ">= 0"),
    ({"mu_norm": math.inf}, "mu_norm", "finite"),
    ({"sigma_noise": -0.5}, "sigma_noise", ">= 0"),
    ({"sigma_noise": math.nan}, "sigma_noise", "finite"),
    ({"sigma_init": -1e-3}, "sigma_init", ">= 0"),
    ({"lr": 0.0}, "lr", "> 0"),
    ({"lr": -1.0}, "lr", "> 0"),
    ({"lr": math.inf}, "lr", "> 0"),
    ({"label_flip": 1.5}, "label_flip", "[0, 1]"),
    ({"label_flip": "a lot"}, "label_flip", "non-number"),
    ({"lr": "0.5"}, "lr", "non-number"),
    ({"lr": True}, "lr", "non-number"),
    ({"mu_norm": None}, "mu_norm", "non-number"),
    ({"prune_frac": 0.99999999}, "prune_frac", "[0, 1)"),  # rounds to 1 in float32
]

BAD_GRIDS = [
    ({"pruning": [0.1]}, "pruning", "no field"),
    ({"prune_frac": []}, "prune_frac", "empty"),
    ({"prune_frac": 0.5}, "prune_frac", "sequence"),
    ({"activation": "relu"}, "activation", "sequence"),
    ({"prune_frac": [0.1, 0.1]}, "prune_frac", "distinct"),
    ({"prune_frac": [0.5, 1.0]}, "prune_frac", "[0, 1)"),
    ({"lr": [0.1, -0.1]}, "lr", "> 0"),
    ({"activation": ["relu", "gelu"]}, "activation", "'relu', 'relu_pow', 'leaky_relu'"),
    ({"dim": [1, 10]}, "dim", "dim >= num_classes"),
    ({"width": [4, 0]}, "width", ">= 1"),
    ({"prune_frac": [[0.1, 0.2]]}, "prune_frac", "1-d sequence"),
    ({"prune_frac": np.zeros((2, 2))}, "prune_frac", "1-d sequence"),
    ({"lr": [1, 1.0]}, "lr", "distinct"),
    ({"prune_frac": [0.1, 0.1 + 1e-12]}, "prune_frac", "the same float32 (0.1)"),
    ({"sigma_noise": [1, 1 + 1e-9, 2]}, "sigma_noise", "holds 1.0 and 1.000000001"),
    ({"loss_tol": [None, 0.05, 0.05 + 1e-12]}, "loss_tol", "distinct in float32"),
    ({"lr": [0.1, np.float64(0.1)]}, "lr", "distinct"),
    ({"width": [4, np.int64(4)]}, "width", "distinct"),
    ({"loss_tol": [1, 1.0]}, "loss_tol", "distinct"),
    ({"loss_tol": [None, -1.0]}, "loss_tol", "> 0"),
    ({"bias": [True, "no"]}, "bias", "True or False"),
    ({"batch_size": [4, 9]}, "batch_size", "at most n_train (8)"),
    ({"batch_size": [None, None]}, "batch_size", "distinct"),
    ({"optimizer": ["gd", "sgd"]}, "optimizer", "'gd', 'momentum', 'adam'"),
    ({"mask": ["snip", "random"]}, "mask", "'magnitude', 'snip', 'grasp', 'synflow'"),
    ({"mask_scope": ["layer", 1]}, "mask_scope", "'neuron', 'layer'"),
    ({"synflow_rounds": [10, -1]}, "synflow_rounds", ">= 1"),
]

BAD_SEEDS = [
    (0, ">= 1"),
    ([], "empty"),
    ([-1], "seeds"),
    ([1, 1], "distinct"),
    ([0.5], "seeds"),
    ("12", "seeds"),
    ([2**31], "seeds"),
]


@pytest.fixture(autouse=True)
def no_compilation(monkeypatch):
    """Any attempt to compile fails the test: validation must come first."""

    def refuse(*args, **kwargs):
        raise AssertionError("compiled before validating")

    monkeypatch.setattr(runner, "compiled_chunk", refuse)


@pytest.mark.parametrize("changes,field,allowed", BAD_CONFIGS)
def test_bad_config(changes, field, allowed):
    with pytest.raises(ValueError) as error:
        Config(**changes)
    assert f"Config.{field} = " in str(error.value) and allowed in str(error.value)


@pytest.mark.parametrize("changes,field,allowed", BAD_PARAMS)
def test_bad_params_in_train_and_base(tiny, changes, field, allowed):
    with pytest.raises(ValueError) as error:
        jaxprune.train(tiny, Params(**changes), 0)
    assert f"Params.{field} = " in str(error.value) and allowed in str(error.value)
    with pytest.raises(ValueError, match=f"Params.{field}"):
        jaxprune.sweep(tiny, {}, 1, base=Params(**changes), progress=False)


@pytest.mark.parametrize("grid,field,allowed", BAD_GRIDS)
def test_bad_grid(tiny, grid, field, allowed):
    with pytest.raises(ValueError) as error:
        jaxprune.sweep(tiny, grid, 2, progress=False)
    assert field in str(error.value) and allowed in str(error.value)


@pytest.mark.parametrize("seeds,allowed", BAD_SEEDS)
def test_bad_seeds(tiny, seeds, allowed):
    with pytest.raises(ValueError, match="seeds") as error:
        jaxprune.sweep(tiny, {"prune_frac": [0.1]}, seeds, progress=False)
    assert allowed in str(error.value)


def test_bad_sweep_arguments(tiny, tmp_path):
    with pytest.raises(ValueError, match="chunk_size"):
        jaxprune.sweep(tiny, {}, 2, chunk_size=0, progress=False)
    with pytest.raises(ValueError, match="memory_budget_gb"):
        jaxprune.sweep(tiny, {}, 2, memory_budget_gb=-1.0, progress=False)
    with pytest.raises(ValueError, match="config must be a jaxprune.Config"):
        jaxprune.sweep({"dim": 3}, {}, 2, progress=False)
    with pytest.raises(ValueError, match="grid must be a mapping"):
        jaxprune.sweep(tiny, [("prune_frac", [0.1])], 2, progress=False)
    with pytest.raises(ValueError, match="base.lr"):
        jaxprune.sweep(tiny, {}, 2, base=Params(lr=[0.1, 0.2]), progress=False)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds no jaxprune sweep"):
        jaxprune.sweep(tiny, {}, 2, out=tmp_path, progress=False)


def test_replace_with_unknown_field(tiny):
    with pytest.raises(ValueError, match="Config has no field 'dimm': its fields are num_classes"):
        tiny.replace(dimm=10)
    with pytest.raises(ValueError, match="Params has no field 'learning_rate'"):
        Params().replace(learning_rate=0.1)


def test_array_like_grid_values_and_seeds_are_accepted(tiny):
    """Valid input in NumPy, JAX and pandas containers is taken as plain values."""
    import jax.numpy as jnp
    import pandas as pd

    from jaxprune import grid as grid_lib

    grid = grid_lib.normalize_grid(
        {
            "prune_frac": jnp.array([0.0, 0.5]),
            "mu_norm": pd.Series([1.0, 2.0]),
            "width": np.array([3, 4]),
            "loss_tol": [None, 0.5],
        }
    )
    assert grid == {
        "prune_frac": [0.0, 0.5],
        "mu_norm": [1.0, 2.0],
        "width": [3, 4],
        "loss_tol": [None, 0.5],
    }
    assert all(type(v) is int for v in grid["width"])
    np.testing.assert_array_equal(grid_lib.normalize_seeds(np.arange(3)), [0, 1, 2])
    np.testing.assert_array_equal(grid_lib.normalize_seeds(jnp.array([5, 2])), [5, 2])
    assert chunking.choose_chunk_shape(tiny, 10, 3, np.int64(4)).runs == 4


def _readme_bad_inputs() -> list[tuple[str, str]]:
    """(input, message) rows of the bad-input table of docs/bad-input.md."""
    readme = (Path(__file__).parents[1] / "docs" / "bad-input.md").read_text()
    table = readme.split("<!-- bad-input-table: begin -->")[1].split("<!-- bad-input-table: end")[0]
    rows = [line.split(" | ", 1) for line in table.strip().splitlines()[2:]]
    return [(code.strip("| `"), message.rstrip(" |")) for code, message in rows]


README_BAD_INPUTS = _readme_bad_inputs()


def test_the_bad_input_table_covers_every_required_case():
    inputs = " ".join(code for code, _ in README_BAD_INPUTS)
    spec_cases = [
        "prune_frac=1.0", "prune_frac=-0.1", "num_classes=1", "dim=2, num_classes=3",
        "'antipodal', num_classes=3", "n_train=0", "width=0", "steps=0", "lr=0.0",
        "sigma_noise=-1.0", "math.inf", "math.nan", "'gelu'", "{'depth'", "[]",
    ]  # fmt: skip
    for needle in spec_cases:
        assert needle in inputs


def _result_frame(config: Config):
    """A result frame as a sweep of prune_frac x mu_norm x sigma_noise x 2 seeds writes it, with
    every column at its dtype (the measurements are zeros: the refusals never read them)."""
    import itertools

    from jaxprune.config import PARAMS_FIELDS
    from jaxprune.metrics import METRIC_NAMES
    from jaxprune.results import history_frame

    runs = np.array(list(itertools.product([0.0, 0.5], [1.0, 4.0], [0.5, 1.0], [0, 1])))
    columns = {"run": np.arange(len(runs), dtype=np.int64), "seed": runs[:, 3].astype(np.int64)}
    columns.update({name: np.full(len(runs), getattr(Params(), name)) for name in PARAMS_FIELDS})
    columns.update(prune_frac=runs[:, 0], mu_norm=runs[:, 1], sigma_noise=runs[:, 2])
    dtypes = {"converged_step": np.int32, "diverged": bool}
    history = {m: np.zeros((len(runs), 1), dtypes.get(m, np.float32)) for m in METRIC_NAMES}
    return history_frame(config, columns, np.array([config.steps]), history)


@pytest.mark.parametrize("code,message", README_BAD_INPUTS, ids=[c for c, _ in README_BAD_INPUTS])
def test_every_readme_bad_input_gets_its_message(code, message):
    from jaxprune.plot import phase_diagram

    tiny = Config(
        num_classes=2, num_patches=2, dim=16, width=4, n_train=8, n_test=32, steps=20, log_every=5
    )
    namespace = {"math": math, "Config": Config, "Params": Params, "C": tiny}
    namespace.update(sweep=jaxprune.sweep, train=jaxprune.train)
    namespace.update(F=_result_frame(tiny), phase_diagram=phase_diagram)
    with pytest.raises(ValueError) as error:
        eval(code, namespace)
    assert str(error.value) == message
