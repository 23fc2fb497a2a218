"""Shape buckets: grids over dim, width, n_train and n_test padded into few compilations, exactly
(every run equals `train` at its own shape); coordinate-stable draws; matmul precision."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import jaxprune
from conftest import assert_same_runs
from jaxprune import grid as grid_lib
from jaxprune import masks, model, runner
from jaxprune.config import PARAMS_FIELDS, SHAPE_FIELDS, Dims
from jaxprune.data import draw_sample

SMALL = jaxprune.Config(
    num_classes=2, num_patches=2, dim=12, width=3, n_train=6, n_test=10, steps=12, log_every=6
)
PARAMS = jaxprune.Params(mu_norm=2.0, sigma_noise=0.5, sigma_init=0.1, lr=0.5, label_flip=0.2)
P_GRID = [0.0, 0.4]


@pytest.mark.slow  # compiles padded and unpadded runs (test_buckets_bound_the_padding stays fast)
def test_draws_are_prefix_stable():
    """A draw at a bucket's shape holds, on the run's own prefix, exactly the draws made at the
    run's shape: a (d,) normal, a seed's samples, the init and the mask uniforms."""
    key = jax.random.key(5)
    np.testing.assert_array_equal(jax.random.normal(key, (7,)), jax.random.normal(key, (19,))[:7])
    big, small = SMALL.replace(dim=20, width=5), SMALL.replace(dim=12, width=3)
    padded, alone = draw_sample(big, key, 9), draw_sample(small, key, 6)
    np.testing.assert_array_equal(padded.z[:6, :, :12], alone.z)
    for name in ("y_true", "flip_uniform", "other_label", "signal_patch"):
        np.testing.assert_array_equal(getattr(padded, name)[:6], getattr(alone, name))
    init = big.replace(init="uniform_fan_in", bias=True)
    w_big, b_big = model.init_weights(init, PARAMS, key, Dims.of(small))
    w_small, b_small = model.init_weights(small.replace(init="uniform_fan_in", bias=True),
                                          PARAMS, key)  # fmt: skip
    np.testing.assert_array_equal(w_big[:, :3, :12], w_small)
    np.testing.assert_array_equal(b_big[:, :3], b_small)
    assert not np.asarray(w_big[:, 3:]).any() and not np.asarray(w_big[..., 12:]).any()
    np.testing.assert_array_equal(
        masks.mask_uniforms(big, key)[:, :3, :12], masks.mask_uniforms(small, key)
    )


# For each shape field: three values padded into one bucket (up to twice their size), the kinds
# of mask whose draw or score can see that field, bias on for some and off for others (with
# bias: leaky ReLU and PyTorch's uniform init, whose bound depends on d). Each variant compiles
# once per value for `train`, so a field gets only the masks it can change: every mask sees d
# and m (round(p d), the per-layer count over K m d, SNIP's scores); only SNIP's scores see
# the training set; no mask sees the test set.
# The test set's evaluation is fixed per variant ('auto' resolves at the bucket's shape, so it
# may pick another for a run alone): the projected test set for the masks that see n_test or
# width padding most, the explicit one for 'exact'.
VARIANTS = [
    ("bernoulli", False, "projected"),
    ("exact", True, "draw"),
    ("snip", False, "projected"),
]
# dim >= K m + K: the projected test set's covariance U U^T (K m = 6 neurons, the K signal
# coordinates removed) is nonsingular at every value; where it is singular (d - K < K m) its
# semidefinite Cholesky is not draw-for-draw stable under padding (docs/test-eval.md).
FIELDS = {"dim": [8, 11, 16], "width": [1, 2, 3], "n_train": [3, 4, 6], "n_test": [5, 7, 10]}
FIELD_MASKS = {
    "dim": ("bernoulli", "exact", "snip"),
    "width": ("bernoulli", "exact", "snip"),
    "n_train": ("bernoulli", "snip"),
    "n_test": ("bernoulli",),
}


@pytest.mark.slow  # compiles padded and unpadded runs (test_buckets_bound_the_padding stays fast)
@pytest.mark.parametrize("field", FIELDS)
def test_every_padded_run_equals_train_at_its_own_shape(field):
    values = FIELDS[field]
    flip = field in ("width", "n_test")  # the other bias setting for these fields
    for mask, bias, test_eval in [v for v in VARIANTS if v[0] in FIELD_MASKS[field]]:
        bias = bias != flip
        config = SMALL.replace(mask=mask, bias=bias, test_eval=test_eval)
        if bias:
            config = config.replace(activation="leaky_relu", init="uniform_fan_in")
        grid = {field: values, "prune_frac": P_GRID}
        frame = jaxprune.sweep(config, grid, [3, 8], base=PARAMS, progress=False, buckets="one")
        assert list(jaxprune.final(frame)[field]) == [v for v in values for _ in range(4)]
        for value in values:
            for p in P_GRID:
                for seed in (3, 8):
                    run = frame[(frame[field] == value) & (frame.prune_frac == p)
                                & (frame.seed == seed)]  # fmt: skip
                    alone = jaxprune.train(
                        config.replace(**{field: value}), PARAMS.replace(prune_frac=p), seed
                    )
                    assert_same_runs(run.drop(columns=[field, "run"]), alone.drop(columns="run"))


def test_buckets_bound_the_padding():
    values = list(range(100, 1100, 10))
    cuts = grid_lib.shape_buckets(values)
    assert sorted(v for cut in cuts for v in cut) == values
    for cut in cuts:
        assert max(cut) * len(cut) <= grid_lib.PADDING_SLACK * sum(cut)
    for first, second in zip(cuts, cuts[1:], strict=False):  # greedy: the next value overflows
        grown = first + [second[0]]
        assert max(grown) * len(grown) > grid_lib.PADDING_SLACK * sum(grown)
    assert grid_lib.shape_buckets([5, 3, 4], "one") == [[5, 3, 4]]
    assert grid_lib.shape_buckets([5, 3, 4], "each") == [[3], [4], [5]]
    batched = SMALL.replace(batch_size=2)  # minibatches: every n_train its own group
    groups = grid_lib.plan(batched, {"n_train": [4, 5, 6]}, np.arange(2))
    assert [g.config.n_train for g in groups] == [4, 5, 6]


@pytest.mark.slow  # compiles padded and unpadded runs (test_buckets_bound_the_padding stays fast)
def test_five_dims_compile_at_most_twice():
    """Counted backend compilations of chunk functions, not time."""
    names = []

    def listen(event, seconds, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            names.append(kwargs.get("fun_name"))

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        config = SMALL.replace(steps=5, log_every=5)  # compiled by no other test
        frame = jaxprune.sweep(config, {"dim": [8, 9, 10, 11, 12]}, 2, base=PARAMS,
                               progress=False)  # fmt: skip
        assert sorted(jaxprune.final(frame).dim.unique()) == [8, 9, 10, 11, 12]
        chunks = lambda: sum(map(names.count, runner.CHUNK_FUNCTIONS))  # noqa: E731
        assert 1 <= chunks() <= 2
        names.clear()
        jaxprune.sweep(config, {"dim": [8, 9, 10, 11, 12]}, 2, base=PARAMS, progress=False,
                       buckets="each")  # fmt: skip
        assert chunks() == 5  # the counter counts: one per value without buckets
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)


DIM_GRID = {"dim": [8, 10, 12], "prune_frac": [0.0, 0.5]}


@pytest.fixture(scope="session")  # once per worker (conftest: grouped)
def dim_sweep():
    return jaxprune.sweep(SMALL, DIM_GRID, [1, 2, 5], base=PARAMS, progress=False)


@pytest.mark.slow  # compiles padded and unpadded runs (test_buckets_bound_the_padding stays fast)
@pytest.mark.parametrize("chunk_size", [1, 4])
def test_dim_grid_chunk_size_does_not_change_results(dim_sweep, chunk_size):
    frame = jaxprune.sweep(
        SMALL, DIM_GRID, [1, 2, 5], base=PARAMS, chunk_size=chunk_size, progress=False
    )
    assert_same_runs(frame, dim_sweep)


@pytest.mark.slow  # compiles padded and unpadded runs (test_buckets_bound_the_padding stays fast)
def test_dim_grid_resumes(tmp_path, dim_sweep, monkeypatch):
    out = tmp_path / "dims"
    complete = jaxprune.sweep(
        SMALL, DIM_GRID, [1, 2, 5], base=PARAMS, out=out, chunk_size=4, progress=False
    )
    assert_same_runs(complete, dim_sweep)
    files = jaxprune.results.chunk_files(out)
    assert len(files) == 6  # one bucket of 3 dims x 2 points = 6 points, x 3 seeds, by 4 runs
    files[2].unlink()
    calls = []
    dispatch = runner._dispatch
    monkeypatch.setattr(
        runner, "_dispatch", lambda *a, **k: calls.append(a[1]) or dispatch(*a, **k)
    )
    resumed = jaxprune.sweep(SMALL, DIM_GRID, [1, 2, 5], base=PARAMS, out=out, progress=False)
    assert len(calls) == 1
    pd.testing.assert_frame_equal(resumed, complete, check_exact=True)
    pd.testing.assert_frame_equal(jaxprune.load(out), complete, check_exact=True)


@pytest.mark.slow  # compiles padded and unpadded runs (test_buckets_bound_the_padding stays fast)
@pytest.mark.parametrize("precision", ["float32", "tensorfloat32", "bfloat16"])
def test_matmul_precision_reaches_every_product(precision):
    """Every dot of the compiled chunk carries the Config's precision, and it runs on CPU."""
    config = SMALL.replace(matmul_precision=precision, steps=2, log_every=2)
    points = jaxprune.Params(**{k: jnp.zeros(2) + getattr(PARAMS, k) for k in PARAMS_FIELDS})
    dims = Dims(**{k: jnp.full(2, getattr(config, k), jnp.int32) for k in SHAPE_FIELDS})
    text = runner.compiled_chunk(config).lower(points, dims, jnp.arange(1)).as_text()
    dots = [line for line in text.splitlines() if "dot_general" in line]
    expected = {"float32": "HIGHEST", "tensorfloat32": "HIGH", "bfloat16": "DEFAULT"}[precision]
    assert dots and all(f"precision = [{expected}, {expected}]" in line for line in dots)
    frame = jaxprune.train(config, PARAMS, 0)
    assert np.isfinite(frame.train_loss).all()
