"""`train` and `sweep`: run the pure single-run function over chunks of runs.

A chunk is a block of points x seeds of one static Config (see `jaxprune.chunking`). It is one
call of a compiled function: over its seeds (sharded across the local devices, and on CPU one
at a time), the single-run function vmapped over its points, so that the runs of one seed share
that seed's draws and their noise enters as one matrix product. One compiled function per
static Config and chunk shape (cached); the last chunks are padded, never recompiled.

With `out`, each chunk is written as its own parquet file as soon as it is done; re-running the
same sweep into the same directory reads finished chunks instead of recomputing them. Under
`jax.distributed`, process i computes the chunks i, i + n, i + 2n, ... of n processes.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import hashlib
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jax.sharding import AxisType, PartitionSpec

from jaxprune import chunking, results
from jaxprune import grid as grid_lib
from jaxprune.chunking import ChunkShape, check_chunk_options, choose_chunk_shape
from jaxprune.config import PARAMS_FIELDS, SHAPE_FIELDS, Config, Dims, Params
from jaxprune.metrics import METRIC_NAMES
from jaxprune.progress import ProgressBar
from jaxprune.training import make_seed_runs

SPEC_FILE = "_sweep.json"
RUN_AXIS = "runs"


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


_COMPILER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="jaxprune")
_EXECUTABLES: dict[tuple, concurrent.futures.Future] = {}


def executable(
    config: Config, shape: ChunkShape, num_devices: int = 1, with_state: bool = False
) -> concurrent.futures.Future:
    """The chunk function of `config` compiled ahead of time for chunks of `shape`, as a future
    (cached). Compilation runs on a background thread, so a sweep compiles the next group's
    function while it computes the chunks of this one."""
    key = (config, shape, num_devices, with_state)
    if key not in _EXECUTABLES:
        batch = chunking.seeds_vmapped(shape.padded_seeds // num_devices)
        fn = compiled_chunk(config, with_state, batch, num_devices)
        points = Params(
            **{name: jax.ShapeDtypeStruct((shape.points,), jnp.float32) for name in PARAMS_FIELDS}
        )
        dims = Dims(
            **{name: jax.ShapeDtypeStruct((shape.points,), jnp.int32) for name in SHAPE_FIELDS}
        )
        seeds = jax.ShapeDtypeStruct((shape.padded_seeds,), jnp.int32)
        _EXECUTABLES[key] = _COMPILER.submit(lambda: fn.lower(points, dims, seeds).compile())
    return _EXECUTABLES[key]


def clear_compiled() -> None:
    """Forget every compiled chunk function (the next sweep traces and compiles anew)."""
    compiled_chunk.cache_clear()
    _EXECUTABLES.clear()


@dataclasses.dataclass(frozen=True)
class Chunk:
    """One chunk of a group: points[point_slice] x seeds[seed_slice], with its index in the
    group's chunk order (point blocks outermost)."""

    index: int
    point_slice: slice
    seed_slice: slice

    @property
    def num_points(self) -> int:
        return self.point_slice.stop - self.point_slice.start

    @property
    def num_seeds(self) -> int:
        return self.seed_slice.stop - self.seed_slice.start


def chunks_of(group: grid_lib.RunGroup, shape: ChunkShape) -> list[Chunk]:
    """The group's chunks of `shape`, in order (see `chunking.chunk_blocks`)."""
    blocks = chunking.chunk_blocks(group.num_points, len(group.seeds), shape)
    return [Chunk(index, points, seeds) for index, (points, seeds) in enumerate(blocks)]


def _pad(values: np.ndarray, size: int) -> np.ndarray:
    """Pad (R,) to (size,) by repeating the last entry (padding runs are computed, then dropped)."""
    return np.concatenate([values, np.repeat(values[-1:], size - len(values))])


def _run_columns(group: grid_lib.RunGroup, chunk: Chunk) -> dict[str, np.ndarray]:
    """seed, every Params field and the grid's Config fields of the chunk's runs (points
    outermost), each (R,). A loss_tol of None is written as NaN, so the column stays float."""
    seeds = group.seeds[chunk.seed_slice]
    columns = {"seed": np.tile(seeds, chunk.num_points)}
    for name in PARAMS_FIELDS:
        columns[name] = np.repeat(getattr(group.points, name)[chunk.point_slice], len(seeds))
    for name, value in group.config_values.items():
        columns[name] = np.repeat(np.nan if value is None else value, len(columns["seed"]))
    for name in group.shape_axes:  # each run's own shape, not its bucket's
        columns[name] = np.repeat(getattr(group.dims, name)[chunk.point_slice], len(seeds))
    return columns


def _run_chunk(
    group: grid_lib.RunGroup,
    chunk: Chunk,
    shape: ChunkShape,
    num_devices: int = 1,
    with_state: bool = False,
):
    """Run one chunk as a padded block of shape.points x shape.padded_seeds runs.
    Returns (frame, states) with states None unless `with_state`."""
    points = jax.tree.map(
        lambda v: jnp.asarray(_pad(v[chunk.point_slice], shape.points), jnp.float32), group.points
    )
    dims = jax.tree.map(
        lambda v: jnp.asarray(_pad(v[chunk.point_slice], shape.points), jnp.int32), group.dims
    )
    seeds = jnp.asarray(_pad(group.seeds[chunk.seed_slice], shape.padded_seeds), jnp.int32)
    out = executable(group.config, shape, num_devices, with_state).result()(points, dims, seeds)
    history, states = out if with_state else (out, None)
    num_points, num_seeds = chunk.num_points, chunk.num_seeds

    def rows(values: jax.Array) -> np.ndarray:
        """(S, R, ...) -> (real points x real seeds, ...), points outermost."""
        values = np.swapaxes(np.asarray(values)[:num_seeds, :num_points], 0, 1)
        return values.reshape(num_points * num_seeds, *values.shape[2:])

    history = {name: rows(getattr(history, name)) for name in METRIC_NAMES}
    frame = results.history_frame(
        group.config, _run_columns(group, chunk), group.config.logged_steps(), history
    )
    return frame, None if states is None else jax.tree.map(rows, states)


def train(config: Config, params: Params, seed: int, return_state: bool = False):
    """Train one run; returns its frame (one row per logged step), and with `return_state` also
    its final RunState (weights (K, m, d), bias (K, m), mask (K, m, d), ...).

    It is the run `sweep` computes for the same (config, params, seed): the same random draws,
    the same steps, numbers equal up to float32 rounding.
    """
    (group,) = grid_lib.plan(config, {}, grid_lib.normalize_seeds([seed]), params)
    (chunk,) = chunks_of(group, ChunkShape(1, 1, 1))
    frame, states = _run_chunk(group, chunk, ChunkShape(1, 1, 1), with_state=return_state)
    if not return_state:
        return frame
    return frame, jax.tree.map(lambda v: v[0], states)


def sweep_spec(
    config: Config,
    grid: dict[str, list],
    seeds: np.ndarray,
    base: Params,
    buckets: str = "auto",
) -> dict:
    """What fixes a sweep's results and chunks: the Config, grid, seeds, base Params and shape
    bucketing, with their hash."""
    spec = {
        "config": dataclasses.asdict(config),
        "grid": grid,
        "grid_order": list(grid),  # the run order follows the grid's key order
        "seeds": seeds.tolist(),
        "base": {k: float(np.asarray(getattr(base, k))) for k in PARAMS_FIELDS},
        "buckets": buckets,
    }
    spec["spec_hash"] = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    return spec


def environment() -> dict:
    """Versions and device of this process, recorded with every result file."""
    import jaxlib

    from jaxprune import __version__

    device = jax.devices()[0]
    return {
        "jaxprune_version": __version__,
        "jax_version": jax.__version__,
        "jaxlib_version": jaxlib.__version__,
        "backend": jax.default_backend(),
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
    }


def _prepare_out(out: Path, spec: dict, overwrite: bool) -> list[list[int]] | None:
    """Create or reuse the output directory. Returns the chunk shapes of the sweep found there
    when it is the same sweep (to resume it with the same chunks), else None."""
    spec_path = out / SPEC_FILE
    if spec_path.exists() and not overwrite:
        recorded = json.loads(spec_path.read_text())
        if recorded["spec_hash"] == spec["spec_hash"]:
            for stale in out.glob(".*.tmp-*"):  # half-written by a killed run
                stale.unlink(missing_ok=True)
            return recorded["chunk_shapes"]
        raise ValueError(
            f"out = {str(out)!r} holds a different sweep (spec_hash {recorded['spec_hash']}, this "
            f"one {spec['spec_hash']}): choose another `out`, or pass overwrite=True to replace it."
        )
    if out.exists() and overwrite and (spec_path.exists() or results.chunk_files(out)):
        shutil.rmtree(out)
    elif out.exists() and any(out.iterdir()):
        raise ValueError(
            f"out = {str(out)!r} is a non-empty directory that holds no jaxprune sweep."
        )
    out.mkdir(parents=True, exist_ok=True)
    return None


def _metadata(spec: dict, groups: list[grid_lib.RunGroup], shapes: list[ChunkShape]) -> dict:
    """What every result file records: the sweep's spec, its groups' sizes (points) and chunk
    shapes, and the environment."""
    return {
        **spec,
        "group_points": [g.num_points for g in groups],
        "chunk_shapes": [[s.points, s.seeds] for s in shapes],
        **environment(),
    }


def _check_resumed_shapes(recorded, shapes: list[ChunkShape], chunk_size, out: Path) -> None:
    """Refuse an explicit chunk_size that would cut a sweep found in `out` differently."""
    as_lists = [[shape.points, shape.seeds] for shape in shapes]
    if recorded is not None and chunk_size is not None and recorded != as_lists:
        raise ValueError(
            f"chunk_size = {chunk_size} differs from the chunks {recorded} (points x seeds) of "
            f"the same sweep already in {out}: pass chunk_size=None to resume it, or "
            f"overwrite=True."
        )


def _resumed_shapes(recorded: list[list[int]] | None, num_devices: int) -> list[ChunkShape]:
    """The recorded chunk shapes ([points, seeds] per group), padded for num_devices ([] for
    None)."""
    return [ChunkShape(p, s, -(-s // num_devices) * num_devices) for p, s in recorded or []]


def _sync(name: str) -> None:
    """Wait until every process of a `jax.distributed` job gets here (nothing with one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def sweep(
    config: Config,
    grid: Mapping[str, Any],
    seeds: Any,
    *,
    base: Params | None = None,
    out: str | Path | None = None,
    chunk_size: int | None = None,
    memory_budget_gb: float | None = None,
    progress: bool = True,
    overwrite: bool = False,
    buckets: str = "auto",
) -> pd.DataFrame:
    """Train every (grid point, seed) and return the tidy frame (one row per run and logged step).

    grid: Params fields (vmapped inside one compiled call) and Config fields (one compilation per
    distinct combination) mapped to sequences of values; the runs are their Cartesian product
    with `seeds` (an int n for range(n), or a sequence). Fields not in the grid come from
    `config` and `base` (default Params()). Runs go in chunks of at most `chunk_size` runs, by
    default as many as fit `memory_budget_gb` (default: half the free device memory, or RAM),
    with the seeds of a chunk sharded across the local devices. With `out` (a directory), each
    chunk is written there as parquet; re-running the same sweep into it resumes, skipping
    chunks already written. buckets: how values of the shape fields (dim, width, n_train,
    n_test) share compilations, padded exactly: 'auto' (buckets that waste at most 25% of the
    work; see `jaxprune.grid`), 'one' (one bucket per field) or 'each' (one per value).
    Under `jax.distributed`, the processes split the chunks, each writing its own files into
    `out` (required), and each returns the whole table.
    """
    grid = grid_lib.normalize_grid(grid)
    seeds = grid_lib.normalize_seeds(seeds)
    base = Params() if base is None else base
    check_chunk_options(chunk_size, memory_budget_gb)
    groups = grid_lib.plan(config, grid, seeds, base, buckets)
    spec = sweep_spec(config, grid, seeds, base, buckets)
    process, num_processes = jax.process_index(), jax.process_count()
    if num_processes > 1 and out is None:
        raise ValueError("out = None is invalid under jax.distributed: give a shared directory.")
    num_devices = jax.local_device_count()
    shapes = [
        choose_chunk_shape(
            g.config, g.num_points, len(g.seeds), chunk_size, memory_budget_gb, num_devices
        )
        for g in groups
    ]
    if out is not None:
        out = Path(out)
        if process == 0:  # the others wait, then take the chunks it settled on
            recorded = _prepare_out(out, spec, overwrite)
            _check_resumed_shapes(recorded, shapes, chunk_size, out)
            shapes = _resumed_shapes(recorded, num_devices) or shapes
            results.write_json(out / SPEC_FILE, _metadata(spec, groups, shapes))
        _sync("jaxprune: output prepared")
        if process != 0:
            recorded = json.loads((out / SPEC_FILE).read_text())["chunk_shapes"]
            shapes = _resumed_shapes(recorded, num_devices)
    metadata = _metadata(spec, groups, shapes)

    plan = []  # (group index, group, shape, chunk, mine): every chunk of the sweep, in order
    for g, (group, shape) in enumerate(zip(groups, shapes, strict=True)):
        for chunk in chunks_of(group, shape):
            plan.append((g, group, shape, chunk, len(plan) % num_processes == process))
    bar = ProgressBar(sum(c.num_points * c.num_seeds for *_, c, mine in plan if mine), progress)
    pieces = []  # (group, run positions, frame, or the path of another process's chunk)
    my_groups = list(dict.fromkeys(g for g, *_, mine in plan if mine))
    next_group = dict(zip(my_groups, my_groups[1:], strict=False))
    for g, group, shape, chunk, mine in plan:
        if mine and g in next_group:  # this group starts: compile the next one meanwhile
            following = next_group.pop(g)
            executable(groups[following].config, shapes[following], num_devices)
        path = None if out is None else results.chunk_path(out, g, chunk.index)
        positions = chunking.run_positions(len(group.seeds), chunk.point_slice, chunk.seed_slice)
        if not mine:
            pieces.append((g, positions, path))
        elif path is not None and path.exists():
            pieces.append((g, positions, pd.read_parquet(path)))
            bar.update(len(positions), resumed=True)
        else:
            frame, _ = _run_chunk(group, chunk, shape, num_devices)
            if path is not None:
                results.write_parquet(frame, path, metadata)
            pieces.append((g, positions, frame))
            bar.update(len(positions))
    if num_processes > 1:
        bar.note(f"process {process}: my chunks are done; waiting for the other processes")
        _sync("jaxprune: chunks written")
    frames, order = [], []
    for g, positions, frame in pieces:
        frame = pd.read_parquet(frame) if isinstance(frame, Path) else frame
        frames.append(frame)
        order.append(chunking.run_order_key(g, positions, len(frame) // len(positions)))
    frame = pd.concat(frames, ignore_index=True)
    frame = frame.iloc[np.argsort(np.concatenate(order), kind="stable")].reset_index(drop=True)
    frame.attrs = metadata
    return frame
