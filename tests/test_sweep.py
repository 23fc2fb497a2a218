"""Sweeps: equality with single runs across chunk sizes, grid expansion, compile-once, parquet."""

import chex
import numpy as np
import pandas as pd
import pytest

import jaxprune
from conftest import assert_same_runs
from jaxprune import chunking, runner
from jaxprune.config import PARAMS_FIELDS, SHAPE_FIELDS, Dims

GRID = {"prune_frac": [0.0, 0.5, 0.9], "mu_norm": [0.5, 3.0]}


@pytest.fixture(scope="session")  # once per worker (conftest: grouped)
def reference(request):
    from conftest import TINY, TINY_PARAMS

    return jaxprune.sweep(TINY, GRID, seeds=[4, 7], base=TINY_PARAMS, chunk_size=12, progress=False)


# chunk_size None reuses the reference's compilation (fast tier); the others compile a shape each
SLOW_CHUNKS = [pytest.param(size, marks=pytest.mark.slow) for size in (1, 2, 5, 7)]


@pytest.mark.parametrize("chunk_size", [*SLOW_CHUNKS, None])
def test_chunk_size_does_not_change_results(reference, tiny, tiny_params, chunk_size):
    frame = jaxprune.sweep(
        tiny, GRID, seeds=[4, 7], base=tiny_params, chunk_size=chunk_size, progress=False
    )
    assert_same_runs(frame, reference)


@pytest.mark.parametrize("seed,p,mu", [(4, 0.0, 0.5), (7, 0.5, 3.0), (7, 0.9, 0.5)])
def test_train_alone_equals_run_inside_sweep(reference, tiny, tiny_params, seed, p, mu):
    alone = jaxprune.train(tiny, tiny_params.replace(prune_frac=p, mu_norm=mu), seed)
    inside = reference[
        (reference.seed == seed) & (reference.prune_frac == p) & (reference.mu_norm == mu)
    ]
    # the same run: its index in the sweep is its own, alone it is run 0
    assert (alone.run == 0).all() and inside.run.nunique() == 1
    assert_same_runs(alone.drop(columns="run"), inside.drop(columns="run"))


def test_train_of_a_seeds_runs_equals_them_inside_sweep(reference, tiny, tiny_params):
    """train with Params of (R,) leaves trains R runs of one seed in one call: the sweep's runs
    (run column 0..R-1 in the order given), and final states with a leading axis (R,) that are
    each run's own (mask density at its p)."""
    p, mu = np.array([0.9, 0.0, 0.5]), np.array([0.5, 3.0, 3.0])
    frame, states = jaxprune.train(
        tiny, tiny_params.replace(prune_frac=p, mu_norm=mu), 7, return_state=True
    )
    assert list(jaxprune.final(frame).run) == [0, 1, 2]
    for run, (pi, mi) in enumerate(zip(p, mu, strict=True)):
        mine = frame[frame.run == run]
        inside = reference[
            (reference.seed == 7) & (reference.prune_frac == pi) & (reference.mu_norm == mi)
        ]
        assert_same_runs(mine.drop(columns="run"), inside.drop(columns="run"))
    assert states.weights.shape == (3, tiny.num_classes, tiny.width, tiny.dim)
    kept = np.asarray(states.mask).reshape(3, -1).mean(axis=1)
    np.testing.assert_allclose(kept, 1 - p, atol=0.15)
    assert kept[0] < kept[2] < kept[1] == 1.0


@pytest.mark.parametrize(
    "change,message",
    [
        (dict(prune_frac=np.zeros((2, 2))), r"^params\.prune_frac has shape \(2, 2\): must be"),
        (
            dict(prune_frac=np.zeros(2), lr=np.ones(3)),
            r"^params\.lr has length 3 but params\.prune_frac has length 2: the 1-D fields",
        ),
    ],
)
def test_train_refuses_params_that_are_not_one_seeds_runs(tiny, tiny_params, change, message):
    with pytest.raises(ValueError, match=message):
        jaxprune.train(tiny, tiny_params.replace(**change), 0)


def test_grid_expansion_order_and_columns(reference, tiny, tiny_params):
    steps = len(tiny.logged_steps())
    assert len(reference) == 3 * 2 * 2 * steps
    runs = jaxprune.final(reference)
    assert reference.run.dtype == np.int64 and list(runs.run) == list(range(12))
    assert list(runs.prune_frac) == [0.0] * 4 + [0.5] * 4 + [0.9] * 4
    assert list(runs.mu_norm) == [0.5, 0.5, 3.0, 3.0] * 3
    assert list(runs.seed) == [4, 7] * 6
    assert (runs.step == tiny.steps).all()
    assert (runs.lr == tiny_params.lr).all() and (runs.sigma_noise == tiny_params.sigma_noise).all()
    assert not set(jaxprune.Config.__dataclass_fields__) & set(reference.columns)
    # Paired runs: a seed's mask at p = 0.9 keeps fewer weights than at p = 0.5, and no more
    # signal neurons, whatever mu; mu does not change the mask.
    by = runs.set_index(["seed", "mu_norm", "prune_frac"])
    dense, sparse = by.xs(0.5, level="prune_frac"), by.xs(0.9, level="prune_frac")
    assert (sparse.density < dense.density).all()
    assert (sparse.signal_neurons <= dense.signal_neurons).all()
    assert (by.xs(0.5, level="mu_norm").density == by.xs(3.0, level="mu_norm").density).all()


@pytest.mark.slow  # compiles its own chunk shapes
def test_config_fields_in_grid(tiny, tiny_params):
    frame = jaxprune.sweep(
        tiny, {"width": [4, 6], "prune_frac": [0.0, 0.5]}, seeds=2, base=tiny_params, progress=False
    )
    assert "width" in frame.columns and list(jaxprune.final(frame).width) == [4] * 4 + [6] * 4
    wide = frame[(frame.width == 6) & (frame.seed == 1) & (frame.prune_frac == 0.5)]
    alone = jaxprune.train(tiny.replace(width=6), tiny_params.replace(prune_frac=0.5), 1)
    assert_same_runs(wide.drop(columns=["width", "run"]), alone.drop(columns="run"))
    np.testing.assert_allclose(
        jaxprune.final(frame).signal_neurons_expected, [4, 4, 2, 2, 6, 6, 3, 3]
    )


@pytest.mark.slow  # compiles its own chunk shapes
def test_one_trace_per_static_config(tiny, tiny_params, monkeypatch):
    """Chunks reuse one compiled function: the last, shorter chunk is padded, not retraced."""
    make_seed_runs = runner.make_seed_runs
    monkeypatch.setattr(
        runner, "make_seed_runs", lambda c: chex.assert_max_traces(make_seed_runs(c), n=1)
    )
    try:  # a Config no other test compiles, so the guard wraps only this test's traces
        config = tiny.replace(steps=7)
        frame = jaxprune.sweep(
            config,
            {"prune_frac": [0.1, 0.2, 0.3, 0.4, 0.5]},
            seeds=2,
            base=tiny_params,
            chunk_size=4,
            progress=False,
        )
        # 5 points x 2 seeds in 4 chunks of 3 points x 1 seed (the last point block padded)
        assert len(jaxprune.final(frame)) == 10
        frame = jaxprune.sweep(
            config,
            {"prune_frac": [0.6, 0.7, 0.8]},
            seeds=2,
            base=tiny_params,
            chunk_size=4,
            progress=False,
        )
        assert len(jaxprune.final(frame)) == 6  # another sweep, same chunk shape: no new trace
        with pytest.raises(AssertionError, match="traced > 1"):  # the guard is armed: a
            jaxprune.sweep(config, {"prune_frac": [0.1]}, seeds=3, progress=False)  # new shape
    finally:
        chex.clear_trace_counter()


@pytest.mark.slow  # compiles chunks of 5 (the resume test writes and loads in the fast tier)
def test_parquet_output_metadata_and_load(tmp_path, reference, tiny, tiny_params):
    out = tmp_path / "sweep"
    frame = jaxprune.sweep(
        tiny, GRID, seeds=[4, 7], base=tiny_params, out=out, chunk_size=5, progress=False
    )
    assert_same_runs(frame, reference)
    files = sorted(p.name for p in out.glob("part-*.parquet"))
    # 6 points x 2 seeds in chunks of at most 5 runs: 2 point blocks of 3 x 2 seed blocks of 1
    assert files == [f"part-g0000-c{c:06d}.parquet" for c in range(4)]
    assert not list(out.glob(".*"))  # no temporaries left behind
    loaded = jaxprune.load(out)
    pd.testing.assert_frame_equal(loaded, frame, check_exact=True)
    meta = loaded.attrs
    assert meta["config"]["dim"] == tiny.dim and meta["grid"] == GRID and meta["seeds"] == [4, 7]
    assert meta["base"]["lr"] == tiny_params.lr
    for key in (
        "jaxprune_version",
        "jax_version",
        "jaxlib_version",
        "backend",
        "device_kind",
        "spec_hash",
    ):
        assert meta[key]
    plain = pd.read_parquet(out)  # plain pandas reads the directory
    assert len(plain) == len(reference) and set(plain.columns) == set(reference.columns)
    single = jaxprune.load(out / files[0])
    assert (
        len(single) == 3 * len(tiny.logged_steps())
        and single.attrs["spec_hash"] == meta["spec_hash"]
    )


@pytest.mark.slow  # writes, resumes and refuses sweeps (about 11 s)
def test_resume_skips_written_chunks_and_refuses_other_specs(
    tmp_path, reference, tiny, tiny_params, monkeypatch
):
    out = tmp_path / "sweep"
    complete = jaxprune.sweep(
        tiny, GRID, seeds=[4, 7], base=tiny_params, out=out, chunk_size=5, progress=False
    )
    (out / "part-g0000-c000001.parquet").unlink()  # as if killed while running chunk 1
    calls = []
    dispatch = runner._dispatch
    monkeypatch.setattr(
        runner, "_dispatch", lambda *a, **k: calls.append(a[1]) or dispatch(*a, **k)
    )
    resumed = jaxprune.sweep(tiny, GRID, seeds=[4, 7], base=tiny_params, out=out, progress=False)
    assert calls == [chunking.Chunk(0, 1, slice(0, 3), slice(1, 2))]  # points 0-2 with seed 7
    pd.testing.assert_frame_equal(resumed, complete, check_exact=True)
    pd.testing.assert_frame_equal(jaxprune.load(out), complete, check_exact=True)
    with pytest.raises(ValueError, match="holds a different sweep") as refused:
        jaxprune.sweep(
            tiny.replace(steps=30), GRID, seeds=[4, 8], base=tiny_params, out=out, progress=False
        )
    # the fields that differ, recorded -> this one
    assert "config.steps 20 -> 30; seeds [4, 7] -> [4, 8]" in str(refused.value)
    with pytest.raises(ValueError, match="chunk_size"):
        jaxprune.sweep(
            tiny, GRID, seeds=[4, 7], base=tiny_params, out=out, chunk_size=2, progress=False
        )
    replaced = jaxprune.sweep(
        tiny,
        {"prune_frac": [0.5]},
        seeds=[4, 7],
        base=tiny_params,
        out=out,
        overwrite=True,
        progress=False,
    )
    pd.testing.assert_frame_equal(jaxprune.load(out), replaced)


def test_final_keeps_last_row_per_run(reference, tiny):
    last = jaxprune.final(reference)
    assert len(last) == 12 and (last.step == tiny.steps).all()
    merged = reference.merge(
        last[["seed", *PARAMS_FIELDS, "train_loss"]],
        on=["seed", *PARAMS_FIELDS],
        suffixes=("", "_last"),
    )
    at_end = merged[merged.step == tiny.steps]
    np.testing.assert_array_equal(at_end.train_loss, at_end.train_loss_last)


@pytest.mark.parametrize("num_points,num_seeds", [(1, 1), (7, 1), (1, 100), (24, 48), (523, 3)])
@pytest.mark.parametrize("budget_gb", [0.05, 0.5, 2.0])
def test_automatic_chunks_fit_budget_and_waste_little(tiny, num_points, num_seeds, budget_gb):
    config = tiny.replace(dim=400, n_test=2000)
    shape = chunking.choose_chunk_shape(config, num_points, num_seeds, None, budget_gb)
    assert 1 <= shape.points <= num_points and 1 <= shape.seeds <= num_seeds
    assert shape.padded_seeds == shape.seeds
    flight = chunking.cpu_seeds_in_flight()  # the seeds a CPU computes at once share the budget
    assert chunking.chunk_bytes(config, shape.points, flight) <= budget_gb * 2**30
    point_blocks, seed_blocks = -(-num_points // shape.points), -(-num_seeds // shape.seeds)
    # Evened out: padding is less than one point (seed) per block.
    assert shape.points * point_blocks - num_points < point_blocks
    assert shape.seeds * seed_blocks - num_seeds < seed_blocks
    # No more point blocks than the budget needs: one more point per block would not fit.
    if point_blocks > 1:
        bigger = -(-num_points // (point_blocks - 1))
        assert chunking.chunk_bytes(config, bigger, flight) > budget_gb * 2**30


@pytest.mark.slow  # compiles a chunk per case to read XLA's memory analysis
@pytest.mark.parametrize(
    "changes",
    [
        {"dim": 2000, "n_test": 3000},
        {"width": 60, "n_train": 200, "num_patches": 3},
        {"dim": 1000, "width": 50, "n_train": 100, "n_test": 1000},
    ],
)
@pytest.mark.parametrize("budget_gb", [0.2, 0.5])
def test_compiled_chunk_peak_memory_is_within_the_budget(tiny, changes, budget_gb):
    """XLA's own account of the compiled chunk (arguments, outputs and temporaries at their peak),
    times the seeds a CPU computes at once, stays within the budget the chunk was sized for, and
    uses a fair share of it."""
    config = tiny.replace(steps=4, log_every=2, **changes)
    shape = chunking.choose_chunk_shape(config, 4096, 8, None, budget_gb)
    points = jaxprune.Params(**{k: np.zeros(shape.points, np.float32) for k in PARAMS_FIELDS})
    dims = Dims(**{k: np.full(shape.points, getattr(config, k), np.int32) for k in SHAPE_FIELDS})
    seeds = np.zeros(shape.padded_seeds, np.int32)
    compiled = runner.compiled_chunk(config).lower(points, dims, seeds).compile()
    memory = compiled.memory_analysis()
    peak = memory.temp_size_in_bytes + memory.argument_size_in_bytes + memory.output_size_in_bytes
    peak *= chunking.cpu_seeds_in_flight()  # a CPU computes that many seeds at once
    assert 0.2 * budget_gb * 2**30 < peak <= budget_gb * 2**30


def test_chunk_shapes_pad_seeds_to_the_device_count(tiny):
    shape = chunking.choose_chunk_shape(tiny, 3, 10, chunk_size=12, num_devices=4)
    assert (shape.points, shape.seeds, shape.padded_seeds) == (3, 4, 4)
    shape = chunking.choose_chunk_shape(tiny, 3, 5, chunk_size=6, num_devices=4)
    assert (shape.points, shape.seeds, shape.padded_seeds) == (3, 2, 4)


def test_a_run_that_does_not_fit_the_budget_is_refused(tiny):
    config = tiny.replace(dim=4000, n_test=100_000)
    need = (chunking.estimate_seed_bytes(config) + chunking.estimate_run_bytes(config)) / 2**30
    with pytest.raises(ValueError, match=rf"needs about {need:.3g} GiB"):
        jaxprune.sweep(config, {}, seeds=2, memory_budget_gb=need / 2, progress=False)


@pytest.mark.slow  # compiles its own Config group
def test_config_grid_with_optional_loss_tol_on_disk(tmp_path, tiny, tiny_params):
    """loss_tol None is written as NaN: the column stays float and plain pandas reads it."""
    out = tmp_path / "tol"
    frame = jaxprune.sweep(
        tiny, {"loss_tol": [None, 0.6]}, seeds=2, base=tiny_params, out=out, progress=False
    )
    assert frame.loss_tol.dtype == np.float64
    plain = pd.read_parquet(out)
    assert (
        plain.loss_tol.isna().sum() == frame.loss_tol.isna().sum() == 2 * len(tiny.logged_steps())
    )
    last = jaxprune.final(frame)
    assert len(last) == 4  # NaN keys are runs too
    assert (last[last.loss_tol.isna()].converged_step == -1).all()
    assert (last[last.loss_tol == 0.6].converged_step > 0).all()


@pytest.mark.slow  # compiles seeds vmapped together
def test_seeds_vmapped_together_give_the_same_results(reference, tiny, tiny_params, monkeypatch):
    """The accelerator path (all seeds of a chunk in one vmap) computes the same runs as the
    CPU path (one seed at a time)."""
    monkeypatch.setattr(chunking, "seeds_vmapped", lambda seeds: seeds)
    frame = jaxprune.sweep(
        tiny, GRID, seeds=[4, 7], base=tiny_params, chunk_size=12, progress=False
    )
    assert_same_runs(frame, reference)


# The rates of the 2-core CI CPU (README, Performance): fp32 matmul peak and elementwise bandwidth.
CI_SPEED = chunking.Speed(flops=2e11, bytes=2e10)
# The dense engine, as the W1 figure it is checked against ("auto" takes the Gram engine here).
PAPER = jaxprune.Config(
    dim=1000, width=50, n_train=100, n_test=1000, steps=1000, log_every=100, engine="dense"
)


@pytest.mark.parametrize("bound", [chunking.DEFAULT_CHUNK_SECONDS, 3.0])
def test_default_chunks_at_paper_size_hold_at_most_the_time_bound(bound):
    """At the paper's size (12 p x 8 seeds), the planner cuts chunks of at most `bound` seconds
    of estimated work, and no smaller than needed: one more seed would break the bound."""
    groups = jaxprune.grid.plan(
        PAPER, {"prune_frac": [i / 12 for i in range(12)]}, np.arange(8), jaxprune.Params()
    )
    plan = chunking.plan_chunks(groups, memory_budget_gb=8.0, chunk_seconds=bound, speed=CI_SPEED)
    assert sum(chunk.num_runs for chunk in plan.chunks) == 96
    assert len(plan.chunks) > 1 and max(plan.seconds) <= bound
    (shape,) = plan.shapes
    # No fewer chunks would do: the (evened) chunk of one block fewer breaks the bound.
    if shape.points < 12:  # a row of points is over the bound: one seed, blocks of points
        assert shape.seeds == 1
        blocks = -(-12 // shape.points)
        bigger = chunking.ChunkShape(-(-12 // (blocks - 1)), 1, 1)
    else:
        blocks = -(-8 // shape.seeds)
        seeds = -(-8 // (blocks - 1))
        bigger = chunking.ChunkShape(12, seeds, seeds)
    assert chunking.chunk_seconds_estimate(PAPER, bigger, CI_SPEED) > bound
    # The cost model against the measured W1 workload (96 runs at 2.16 runs/s on that CPU).
    assert 0.7 < sum(plan.seconds) / (96 / 2.16) < 1.4


@pytest.mark.slow  # compiles time-bounded chunk shapes
def test_time_bound_cuts_chunks_without_changing_results(reference, tiny, tiny_params):
    frame = jaxprune.sweep(
        tiny, GRID, seeds=[4, 7], base=tiny_params, chunk_seconds=1e-9, progress=False
    )
    assert frame.attrs["chunk_shapes"] == [[1, 1]]  # a run alone is over the bound
    assert_same_runs(frame, reference)


def test_collect_false_streams_to_disk(tmp_path, reference, tiny, tiny_params):
    out = tmp_path / "stream"
    kept = jaxprune.sweep(
        tiny, GRID, [4, 7], base=tiny_params, out=out, chunk_size=5, progress=False, collect=False
    )
    assert kept is None
    assert_same_runs(jaxprune.load(out), reference)
    with pytest.raises(ValueError, match="collect = False needs out"):
        jaxprune.sweep(tiny, GRID, [4, 7], base=tiny_params, collect=False)


def test_an_incomplete_sweep_loads_only_when_asked(tmp_path, reference, tiny, tiny_params):
    out = tmp_path / "partial"
    jaxprune.sweep(tiny, GRID, [4, 7], base=tiny_params, out=out, chunk_size=5, progress=False)
    complete = jaxprune.load(out)
    assert complete.attrs["runs_present"] == complete.attrs["runs_total"] == 12
    (out / "part-g0000-c000002.parquet").unlink()  # points 3-5 with seed 4
    message = "holds 9 of 12 runs (3 of 4 chunks): resume by re-running the same sweep"
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        jaxprune.load(out)
    with pytest.warns(UserWarning, match="holds 9 of 12 runs"):
        partial = jaxprune.load(out, partial=True)
    assert partial.attrs["runs_present"] == 9 and partial.attrs["runs_total"] == 12
    assert list(jaxprune.final(partial).run) == [0, 1, 2, 3, 4, 5, 7, 9, 11]
    pd.testing.assert_frame_equal(
        partial, complete[complete.run.isin(partial.run)].reset_index(drop=True)
    )
    for part in out.glob("part-*"):
        part.unlink()
    with pytest.raises(ValueError, match="holds 0 of 12 runs"):
        jaxprune.load(out, partial=True)
