"""`train` and `sweep`: run the pure single-run function over chunks of runs.

A chunk is a block of points x seeds of one static Config (see `jaxprune.chunking`). It is one
call of a compiled function: over its seeds (sharded across the local devices, and on CPU one
at a time), the single-run function vmapped over its points, so that the runs of one seed share
that seed's draws and their noise enters as one matrix product. One compiled function per
static Config and chunk shape (cached); the last chunks are padded, never recompiled.

With `out`, each chunk is written as its own parquet file as soon as it is done and dropped from
memory (results stream to disk); re-running the same sweep into the same directory skips the
chunks written (see `jaxprune.results`). Ctrl-C finishes and writes the chunk in flight, then
raises `SweepInterrupted` (see `jaxprune.stopping`). Under `jax.distributed`, process i computes
the chunks i, i + n, i + 2n, ... of n processes, and an error on one stops all.
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jax.sharding import AxisType, PartitionSpec

from jaxprune import chunking, engines, results, resume, stopping
from jaxprune import grid as grid_lib
from jaxprune.chunking import Chunk, ChunkPlan, ChunkShape, check_chunk_options
from jaxprune.config import (
    PARAMS_FIELDS,
    SHAPE_FIELDS,
    Config,
    Dims,
    InvalidValue,
    Option,
    Params,
    validate_params,
)
from jaxprune.progress import ProgressBar
from jaxprune.results import SPEC_FILE, STOP_FILE
from jaxprune.stopping import SweepInterrupted
from jaxprune.training import HISTORY_NAMES, make_seed_runs

RUN_AXIS = "runs"
# The names jax.monitoring's compile events give a chunk function: `compiled_chunk`'s, and on
# one CPU device `seed_function`'s (see `executable`).
CHUNK_FUNCTIONS = ("jit(chunk)", "jit(seed_runs)")


@functools.cache
def compiled_chunk(
    config: Config, with_state: bool = False, seed_batch: int = 1, num_devices: int = 1
):
    """The compiled chunk function for `config`: (Params of (R,) leaves, Dims of (R,) leaves
    (each run's own shape in the bucket `config`), seeds (S,)) -> history Metrics of (S, R, T)
    leaves (and final RunStates of (S, R, ...) leaves with `with_state`).

    `training.make_seed_runs` (the R points of one seed, sharing its draws) is mapped over the
    seeds in batches of `seed_batch` by `lax.map`; with num_devices > 1 the seed axis is split
    across that many local devices by `shard_map` (S must be a multiple of it).
    """
    runs = make_seed_runs(config)
    per_seed = runs if with_state else (lambda points, dims, seed: runs(points, dims, seed)[0])

    def chunk(points: Params, dims: Dims, seeds: jax.Array):
        return jax.lax.map(lambda seed: per_seed(points, dims, seed), seeds, batch_size=seed_batch)

    if num_devices > 1:
        mesh = jax.make_mesh(
            (num_devices,),
            (RUN_AXIS,),
            axis_types=(AxisType.Auto,),
            devices=jax.local_devices()[:num_devices],
        )
        chunk = jax.shard_map(
            chunk,
            mesh=mesh,
            in_specs=(PartitionSpec(), PartitionSpec(), PartitionSpec(RUN_AXIS)),
            out_specs=PartitionSpec(RUN_AXIS),
            check_vma=False,  # each device computes its own seeds: no collectives to check
        )
    return jax.jit(chunk)


_EXECUTABLES: dict[tuple, concurrent.futures.Future] = {}


def compile_ahead() -> int:
    """How many groups a sweep compiles ahead of the one it runs, in as many threads: one on
    CPU, whose cores run the chunks; on an accelerator, whose host cores are otherwise idle, up
    to half of them (XLA compiles in parallel), at most 8."""
    if jax.default_backend() == "cpu":
        return 1
    return max(1, min(8, (os.cpu_count() or 2) // 2))


@functools.cache
def _compiler() -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(compile_ahead(), thread_name_prefix="jaxprune")


@functools.cache
def seed_function(config: Config, with_state: bool = False):
    """`training.make_seed_runs(config)` jitted for one seed: (Params of (R,) leaves, Dims of
    (R,) leaves, seed ()) -> history of (R, T) leaves (and final RunStates of (R, ...) leaves
    with `with_state`). On one CPU device a chunk runs its seeds as one call of this each
    (`executable`), and `train` calls it: a seed's loops then run at top level, where XLA's CPU
    backend runs them 1.5-2.3x faster than as the body of `compiled_chunk`'s `lax.map`
    (measured at d = 10^3 to 10^6 in the theory_regime setting, docs/performance.md)."""
    runs = make_seed_runs(config)

    def seed_runs(points: Params, dims: Dims, seed: jax.Array):
        return runs(points, dims, seed) if with_state else runs(points, dims, seed)[0]

    return jax.jit(seed_runs)


@functools.cache
def _seed_threads() -> concurrent.futures.ThreadPoolExecutor:
    """The threads a CPU chunk calls its seeds from (`_each_seed`), one per seed in flight."""
    return concurrent.futures.ThreadPoolExecutor(
        chunking.cpu_seeds_in_flight(), thread_name_prefix="jaxprune-seed"
    )


def _each_seed(compiled):
    """A chunk function (points, dims, seeds (S,)) -> outputs of (S, ...) leaves from the
    compiled one-seed function: one call per seed, `chunking.cpu_seeds_in_flight` of them at
    once on their own threads (the CPU client runs the calls of one thread one after the
    other), stacked."""

    def one(points: Params, dims: Dims, seed: np.ndarray):
        return jax.block_until_ready(compiled(points, dims, seed))

    def chunk(points: Params, dims: Dims, seeds: jax.Array):
        calls = [_seed_threads().submit(one, points, dims, seed) for seed in np.asarray(seeds)]
        outputs = [call.result() for call in calls]
        return jax.tree.map(lambda *leaves: jnp.stack(leaves), *outputs)

    return chunk


def executable(
    config: Config, shape: ChunkShape, num_devices: int = 1, with_state: bool = False
) -> concurrent.futures.Future:
    """The chunk function of `config` compiled ahead of time for chunks of `shape`, as a future
    (cached): `compiled_chunk`'s, or on one CPU device (no seeds vmapped together,
    `chunking.seeds_vmapped`) `seed_function`'s called once per seed, `cpu_seeds_in_flight` of
    them at once (`_each_seed`). Compilation runs on
    background threads, so a sweep compiles the next groups' functions (`compile_ahead`)
    while it computes the chunks of this one."""
    key = (config, shape, num_devices, with_state)
    if key not in _EXECUTABLES:
        batch = chunking.seeds_vmapped(shape.padded_seeds // num_devices)
        points = Params(
            **{name: jax.ShapeDtypeStruct((shape.points,), jnp.float32) for name in PARAMS_FIELDS}
        )
        dims = Dims(
            **{name: jax.ShapeDtypeStruct((shape.points,), jnp.int32) for name in SHAPE_FIELDS}
        )
        if batch == 1 and num_devices == 1:
            fn, seed = seed_function(config, with_state), jax.ShapeDtypeStruct((), jnp.int32)
            compile = lambda: _each_seed(fn.lower(points, dims, seed).compile())  # noqa: E731
        else:
            fn = compiled_chunk(config, with_state, batch, num_devices)
            seeds = jax.ShapeDtypeStruct((shape.padded_seeds,), jnp.int32)
            compile = lambda: fn.lower(points, dims, seeds).compile()  # noqa: E731
        _EXECUTABLES[key] = _compiler().submit(compile)
    return _EXECUTABLES[key]


def clear_compiled() -> None:
    """Forget every compiled chunk function (the next sweep traces and compiles anew)."""
    compiled_chunk.cache_clear()
    seed_function.cache_clear()
    _EXECUTABLES.clear()


def _pad(values: np.ndarray, size: int) -> np.ndarray:
    """Pad (R,) to (size,) by repeating the last entry (padding runs are computed, then dropped)."""
    return np.concatenate([values, np.repeat(values[-1:], size - len(values))])


def _run_columns(group: grid_lib.RunGroup, chunk: Chunk) -> dict[str, np.ndarray]:
    """run, seed, every Params field and the grid's Config fields of the chunk's runs (points
    outermost), each (R,). A loss_tol of None is written as NaN, so the column stays float."""
    seeds = group.seeds[chunk.seed_slice]
    columns = {
        "run": group.run_ids(chunk.point_slice, chunk.seed_slice),
        "seed": np.tile(seeds, chunk.num_points),
    }
    for name in PARAMS_FIELDS:
        columns[name] = np.repeat(getattr(group.points, name)[chunk.point_slice], len(seeds))
    for name, values in group.variables.items():
        columns[name] = np.repeat(values[chunk.point_slice], len(seeds))
    for name, value in group.config_values.items():
        columns[name] = np.repeat(np.nan if value is None else value, chunk.num_runs)
    for name in group.shape_axes:  # each run's own shape, not its bucket's
        columns[name] = np.repeat(getattr(group.dims, name)[chunk.point_slice], len(seeds))
    return columns


def _dispatch(
    group: grid_lib.RunGroup,
    chunk: Chunk,
    shape: ChunkShape,
    num_devices: int = 1,
    with_state: bool = False,
    stop=lambda: False,
):
    """Start one chunk as a padded block of shape.points x shape.padded_seeds runs, once its
    function is compiled; returns its outputs (computed asynchronously), or None when stop()
    turns true during the compilation."""
    points = jax.tree.map(
        lambda v: jnp.asarray(_pad(v[chunk.point_slice], shape.points), jnp.float32), group.points
    )
    dims = jax.tree.map(
        lambda v: jnp.asarray(_pad(v[chunk.point_slice], shape.points), jnp.int32), group.dims
    )
    seeds = jnp.asarray(_pad(group.seeds[chunk.seed_slice], shape.padded_seeds), jnp.int32)
    compiled = executable(group.config, shape, num_devices, with_state)
    stopping.wait(lambda: compiled.done() or stop())
    return compiled.result()(points, dims, seeds) if compiled.done() and not stop() else None


def _frame(group: grid_lib.RunGroup, chunk: Chunk, outputs, with_state: bool = False):
    """The tidy frame of a chunk's outputs (and its final RunStates, None unless
    `with_state`), its padding dropped."""
    history, states = outputs if with_state else (outputs, None)
    num_points, num_seeds = chunk.num_points, chunk.num_seeds

    def rows(values: jax.Array) -> np.ndarray:
        """(S, R, ...) -> (real points x real seeds, ...), points outermost."""
        values = np.swapaxes(np.asarray(values)[:num_seeds, :num_points], 0, 1)
        return values.reshape(num_points * num_seeds, *values.shape[2:])

    history = {name: rows(getattr(history, name)) for name in HISTORY_NAMES}
    frame = results.history_frame(
        group.config, _run_columns(group, chunk), group.config.logged_steps(), history
    )
    return frame, None if states is None else jax.tree.map(rows, states)


def train(config: Config, params: Params, seed: int, return_state: bool = False):
    """Train one run, or the R runs of one seed; returns the frame (one row per run and logged
    step), and with `return_state` also the final RunState (weights (K, m, d), bias (K, m),
    mask (K, m, d), ...; with the Gram engine also its `coefficients`).
    frame.attrs["engines"] records the engine that trained it.

    params: scalar leaves for one run, or leaves of one length R (scalars broadcast) for R runs
    of the seed, trained in one call as a sweep's chunk trains a seed's runs (vmapped, sharing
    the seed's draws); their `run` column is 0, ..., R - 1 and their states have a leading
    axis (R,). Several runs of one seed in one call are what a caller that needs their states
    wants (a sweep keeps no states).

    It calls `seed_function(config)` on these runs (no planner, chunks or threads), as a CPU
    sweep calls it for each seed of a chunk: the runs `sweep` computes for the same (config,
    params, seed), with the same random draws and the same steps.
    """
    if not isinstance(config, Config):
        raise ValueError(f"config must be a jaxprune.Config, got {type(config).__name__}.")
    params = validate_params(params)
    shapes = {name: np.shape(getattr(params, name)) for name in PARAMS_FIELDS}
    vectors = {name: shape[0] for name, shape in shapes.items() if len(shape) == 1}
    for name, shape in shapes.items():
        if len(shape) > 1:
            raise ValueError(
                f"params.{name} has shape {shape}: must be a scalar, or 1-D for R runs of one "
                f"seed; use sweep for grids."
            )
    first = next(iter(vectors), None)
    for name, length in vectors.items():
        if length != vectors[first]:
            raise ValueError(
                f"params.{name} has length {length} but params.{first} has length "
                f"{vectors[first]}: the 1-D fields must have one length R (R runs of one seed)."
            )
    batched = first is not None
    num_runs = vectors[first] if batched else 1
    (seed,) = grid_lib.normalize_seeds([seed])
    values = {
        name: np.broadcast_to(np.asarray(getattr(params, name), np.float64), (num_runs,))
        for name in PARAMS_FIELDS
    }
    points = Params(**{name: jnp.asarray(v, jnp.float32) for name, v in values.items()})
    dims = jax.tree.map(lambda v: jnp.full((num_runs,), v, jnp.int32), Dims.of(config))
    history, states = seed_function(config, with_state=True)(points, dims, jnp.int32(seed))
    columns = {
        "run": np.arange(num_runs, dtype=np.int64),
        "seed": np.full(num_runs, seed, np.int64),
    }
    columns.update(values)
    logs = {name: np.asarray(getattr(history, name)) for name in HISTORY_NAMES}
    frame = results.history_frame(config, columns, config.logged_steps(), logs)
    frame.attrs["engines"] = [{"engine": engines.resolve(config).name}]
    if not return_state:
        return frame
    return frame, states if batched else jax.tree.map(lambda v: v[0], states)


def _recorded_shapes(recorded: dict, num_devices: int) -> list[ChunkShape]:
    """The chunk shapes recorded in a sweep's metadata, padded for num_devices."""
    return [
        ChunkShape(p, s, -(-s // num_devices) * num_devices) for p, s in recorded["chunk_shapes"]
    ]


def _shape_lists(plan: ChunkPlan) -> list[list[int]]:
    return [[shape.points, shape.seeds] for shape in plan.shapes]


def group_engines(groups: list[grid_lib.RunGroup]) -> list[dict]:
    """The engine that trains each group (its bucket's Config names it: `grid.plan` resolves
    'auto' once per group), with the Config values the grid gives the group, and for swept
    shape fields the values its bucket holds:
    [{"optimizer": "gd", "dim": [100, 110, 120], "engine": "gram"}, ...]."""
    return [
        {
            **g.config_values,
            **{name: sorted(set(getattr(g.dims, name).tolist())) for name in g.shape_axes},
            "engine": g.config.engine,
        }
        for g in groups
    ]


def sweep(
    config: Config,
    grid: Mapping[str, Any],
    seeds: Any,
    *,
    base: Params | None = None,
    out: str | Path | None = None,
    chunk_size: int | None = None,
    memory_budget_gb: float | None = None,
    chunk_seconds: float | None = None,
    progress: bool = True,
    overwrite: bool = False,
    collect: bool = True,
    buckets: str = "auto",
    derived: Mapping[str, str] | None = None,
) -> pd.DataFrame | None:
    """Train every (grid point, seed) and return the tidy frame (one row per run and logged step,
    in (run, step) order).

    grid: Params fields (vmapped inside one compiled call) and Config fields (one compilation per
    distinct combination) mapped to sequences of values; the runs are their Cartesian product
    with `seeds` (an int n for range(n), or a sequence). Fields not in the grid come from
    `config` and `base` (default Params()). Runs go in chunks of at most `chunk_size` runs, by
    default as many as fit `memory_budget_gb` (default: half the free device memory, or RAM)
    and `chunk_seconds` of estimated work (default `chunking.DEFAULT_CHUNK_SECONDS`), with the
    seeds of a chunk sharded across the local devices.

    With `out` (a directory), each chunk is written there as parquet as soon as it is done and
    not kept in memory; the frame returned is read back from `out` at the end, or, with
    `collect=False` (for sweeps larger than memory), nothing is returned: `jaxprune.load(out)`
    reads it. Re-running the same sweep into `out` resumes, skipping chunks already written;
    a different sweep there is refused unless `overwrite`, which removes that sweep's own files
    only (other files and folders in `out` stay; see `jaxprune.directory`).
    Ctrl-C finishes and writes the chunk in flight (a second one abandons it), then raises
    `stopping.SweepInterrupted` (the library raises; `jaxprune.cli.exit_interrupted` ends a
    process with its one line). Under `jax.distributed`, the processes split the chunks, each
    writing its own files into `out` (required), and each returns the whole table; an error on
    one process stops every process with that error.
    A grid key may zip fields that vary together: ("dim", "n_train") or "dim,n_train" mapped to
    [(100, 10), (200, 20)] is one axis of two points (Params fields and variables zip together,
    and Config fields of one kind: shape fields, or others). derived: Params field -> expression
    of the run's other fields and the grid's variables (grid axes that are no field), e.g.
    {"lr": "0.5 / (sigma_noise**2 * dim)"}; evaluated per run, at its own shape (see
    `jaxprune.derived` and docs/grids.md). Derived values and variables are ordinary columns.
    buckets: how values of the shape fields (dim, width, n_train, n_test) share compilations,
    padded exactly: 'auto' (buckets that waste at most 25% of the work; see `jaxprune.grid`),
    'one' (one bucket per field) or 'each' (one per value).
    """
    derived = grid_lib.normalize_derived(derived, grid)
    grid = grid_lib.normalize_grid(grid, grid_lib.variables_of(derived))
    seeds = grid_lib.normalize_seeds(seeds)
    base = Params() if base is None else base
    check_chunk_options(chunk_size, memory_budget_gb, chunk_seconds)
    if not collect and out is None:
        raise InvalidValue("collect", False, "needs {0}: a sweep kept nowhere would be lost.",
                           Option("out", quoted=False))  # fmt: skip
    if jax.process_count() > 1 and out is None:
        raise InvalidValue(
            "out", None, "is invalid under jax.distributed: give a shared directory."
        )
    groups = grid_lib.plan(config, grid, seeds, base, buckets, derived)
    spec = results.sweep_spec(config, grid, seeds, base, buckets, derived)
    invocation, start = results.provenance(), time.perf_counter()
    num_devices = jax.local_device_count()
    seconds = chunking.DEFAULT_CHUNK_SECONDS if chunk_seconds is None else chunk_seconds
    options = dict(num_devices=num_devices, estimate=progress)
    plan = chunking.plan_chunks(
        groups, chunk_size, memory_budget_gb, chunk_seconds=seconds, **options
    )
    runs = sum(group.num_runs for group in groups)
    before: list[dict] = []  # the invocations recorded in `out` by earlier runs of the sweep

    def metadata_of(plan: ChunkPlan, invocations: list[dict] | None = None) -> dict:
        shapes = _shape_lists(plan)
        trained_by = group_engines(groups)
        metadata = results.sweep_metadata(spec, shapes, runs, len(plan.chunks), trained_by)
        return metadata if invocations is None else {**metadata, "invocations": invocations}

    if out is not None:
        out = Path(out)

        def replan(recorded: dict) -> ChunkPlan:
            shapes = _recorded_shapes(recorded, num_devices)
            return chunking.plan_chunks(groups, shapes=shapes, **options)

        def opened(plan: ChunkPlan, before: list[dict]) -> dict:
            return metadata_of(plan, [*before, invocation])

        plan, before = resume.open_out(out, spec, plan, replan, opened, chunk_size, overwrite)
    metadata = metadata_of(plan)

    process, num_processes = jax.process_index(), jax.process_count()
    mine = plan.chunks[process::num_processes]
    bar = ProgressBar(sum(chunk.num_runs for chunk in mine), progress)
    bar.note(plan.describe(runs))
    frames = []  # without `out`: the chunks' frames, to return
    error, written = None, 0
    with stopping.Interrupts(bar.note) as interrupts:
        try:
            done = set()
            if out is not None:
                notice = bar.note if progress else lambda text: warnings.warn(text, stacklevel=4)
                done = resume.verified(out, groups, plan, mine, spec["spec_hash"], notice)
            estimates = {}  # group -> the cost model's seconds of one of its chunks
            for chunk, seconds in zip(plan.chunks, plan.seconds or (), strict=False):
                estimates.setdefault(chunk.group, seconds)
            last, seen = time.perf_counter(), set()
            for chunk, frame in _train(groups, plan, mine, done, out, interrupts, bar):
                now = time.perf_counter()  # chunks overlap: the time since the last one ended
                took, last = now - last, now
                if chunk.group in seen and chunk.group in estimates:  # compiled already
                    chunking.observe(estimates[chunk.group], took)
                seen.add(chunk.group)
                if out is None:
                    frames.append(frame)
                else:
                    about = {"group": chunk.group, "index": chunk.index}
                    about.update(runs=chunk.num_runs, rows=len(frame), seconds=round(took, 3))
                    if chunk.group in estimates:
                        about["estimated_seconds"] = round(estimates[chunk.group], 3)
                    chunk_meta = {**metadata, "provenance": invocation, "chunk": about}
                    results.write_parquet(
                        frame, results.chunk_path(out, chunk.group, chunk.index), chunk_meta
                    )
                    written += 1
                bar.update(chunk.num_runs)
            if interrupts.requested:
                raise KeyboardInterrupt
        except BaseException as stopped:  # noqa: BLE001 (every process raises it: `agree`)
            error = stopped
            if num_processes > 1:  # the others stop after their chunk in flight
                results.write_json(out / STOP_FILE, {"process": process, "error": str(stopped)})
    if out is not None and process == 0 and (out / SPEC_FILE).exists():
        status = "complete" if error is None else "failed"
        status = "interrupted" if isinstance(error, KeyboardInterrupt) else status
        ended = results.finished(invocation, time.perf_counter() - start, written, status)
        results.write_json(out / SPEC_FILE, metadata_of(plan, [*before, ended]))

    def interrupted() -> SweepInterrupted:
        saved = 0 if out is None else len(results.chunk_files(out))
        busy = any(not compiled.done() for compiled in _EXECUTABLES.values())
        return SweepInterrupted(saved, len(plan.chunks), out, interrupts.abandoned, busy)

    if isinstance(error, KeyboardInterrupt) and num_processes == 1:
        raise interrupted() from None
    if num_processes > 1:
        bar.note(f"process {process}: my chunks are done; waiting for the other processes")
    stopping.agree(error, interrupted)
    if out is None:
        return results.in_run_order(frames, metadata)
    return results.load(out) if collect else None


def _ready(outputs) -> bool:
    return all(leaf.is_ready() for leaf in jax.tree.leaves(outputs))


def _train(groups, plan: ChunkPlan, mine, done: set, out: Path | None, interrupts, bar):
    """Yield (chunk, frame) for each of this process's chunks not in `done` (the (group, index)
    of those sound in `out`), in order, until
    Ctrl-C or another process asks to stop. The next chunk is started before the last one's
    frame is made and written, so that the device works while the host writes; the next
    groups' functions are compiled (on background threads, `compile_ahead`) while this group's
    chunks run."""
    num_devices = jax.local_device_count()
    my_groups = list(dict.fromkeys(chunk.group for chunk in mine))
    position = {group: i for i, group in enumerate(my_groups)}
    ahead = compile_ahead()
    stop_file = None if out is None or jax.process_count() == 1 else out / STOP_FILE

    def stop() -> bool:
        return interrupts.requested or (stop_file is not None and stop_file.exists())

    pending = None  # (chunk, outputs) computed and not yet yielded
    for chunk in mine:
        if stop():
            break
        if (chunk.group, chunk.index) in done:
            bar.update(chunk.num_runs, resumed=True)
            continue
        group, shape = groups[chunk.group], plan.shapes[chunk.group]
        if chunk.group in position:  # this group starts: compile the next ones meanwhile
            executable(group.config, shape, num_devices)  # its own first, if not yet asked
            first = position.pop(chunk.group) + 1
            for following in my_groups[first : first + ahead]:
                executable(groups[following].config, plan.shapes[following], num_devices)
        outputs = _dispatch(group, chunk, shape, num_devices, stop=stop)
        if outputs is None:  # stopped while compiling
            break
        bar.started()
        if pending is not None:
            yield pending[0], _frame(groups[pending[0].group], *pending)[0]
        stopping.wait(functools.partial(_ready, outputs))
        pending = chunk, outputs
    if pending is not None:
        yield pending[0], _frame(groups[pending[0].group], *pending)[0]
