"""`train` and `sweep`: run the pure single-run function vmapped over chunks of runs.

One compiled function per static Config (cached); each chunk of runs is one call of it. Chunks
have a fixed size within a group (the last is padded), so chunks never recompile. With `out`,
each chunk is written as its own parquet file as soon as it is done; re-running the same sweep
into the same directory reads finished chunks instead of recomputing them.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import numbers
import shutil
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from jaxprune import grid as grid_lib
from jaxprune import results
from jaxprune.config import PARAMS_FIELDS, Config, Params
from jaxprune.metrics import METRIC_NAMES
from jaxprune.training import make_run

BYTES_PER_FLOAT = 4
DEFAULT_MEMORY_BUDGET_GB = 2.0
SPEC_FILE = "_sweep.json"


# On CPU a chunk is computed in micro-batches of at most this many runs, vmapped together, so that
# a step's working set stays in cache: at the quickstart size (d = 200, m = 20, n = 40) a chunk of
# 256 runs trains at 36 runs/s as one vmap and at 62-69 runs/s in micro-batches of 1 to 32.
CPU_MICRO_BATCH = 32


def micro_batch_size(chunk: int) -> int:
    """Runs vmapped together inside a chunk of `chunk` runs: all of them on an accelerator; on
    CPU the largest divisor of `chunk` up to CPU_MICRO_BATCH (a divisor, so that no separate
    remainder batch is traced)."""
    if jax.default_backend() != "cpu":
        return chunk
    return max(b for b in range(1, min(chunk, CPU_MICRO_BATCH) + 1) if chunk % b == 0)


@functools.cache
def compiled_runs(config: Config, with_state: bool = False, micro_batch: int = 0):
    """The compiled chunk function for `config`: (Params of (R,) leaves, seeds (R,)) -> history
    (and final states), the single-run function vmapped over micro-batches of `micro_batch`
    runs (0: all R at once) by `lax.map`."""
    run = make_run(config)
    one = run if with_state else (lambda params, seed: run(params, seed)[0])
    return jax.jit(
        lambda params, seeds: jax.lax.map(
            lambda args: one(*args), (params, seeds), batch_size=micro_batch
        )
    )


def estimate_run_bytes(config: Config) -> int:
    """Rough bytes one run needs inside a vmapped chunk: data, weights, activations, gradients."""
    k, p, d, m = config.num_classes, config.num_patches, config.dim, config.width
    samples = config.n_train + config.n_test
    data = samples * p * d * 2 + config.n_train * p * d  # x and noise of both sets, temporaries
    weights = k * m * d * 8  # weights, mask, uniforms, gradient, update, temporaries
    activations = samples * p * k * m * 4
    return int((data + weights + activations) * BYTES_PER_FLOAT * 1.5)


def choose_chunk_size(
    config: Config, num_runs: int, chunk_size: int | None, memory_budget_gb: float | None
) -> int:
    """Runs per compiled call: `chunk_size` if given, else the fewest equal chunks that fit
    `memory_budget_gb` (by `estimate_run_bytes`)."""
    if chunk_size is not None:
        if (
            isinstance(chunk_size, bool)
            or not isinstance(chunk_size, numbers.Integral)
            or chunk_size < 1
        ):
            raise ValueError(
                f"chunk_size = {chunk_size!r} is invalid: must be an int >= 1 or None."
            )
        return min(int(chunk_size), num_runs)
    budget = DEFAULT_MEMORY_BUDGET_GB if memory_budget_gb is None else memory_budget_gb
    if not isinstance(budget, (int, float)) or isinstance(budget, bool) or not budget > 0:
        raise ValueError(
            f"memory_budget_gb = {memory_budget_gb!r} is invalid: must be a number > 0."
        )
    fits = int(max(1, min(num_runs, budget * 2**30 // estimate_run_bytes(config))))
    # As many chunks as the budget needs, of equal size, so the padded last chunk wastes little.
    return -(-num_runs // -(-num_runs // fits))


def _pad(values: np.ndarray, size: int) -> np.ndarray:
    """Pad (R,) to (size,) by repeating the last entry (padding runs are computed, then dropped)."""
    return np.concatenate([values, np.repeat(values[-1:], size - len(values))])


def _run_columns(group: grid_lib.RunGroup, index: slice) -> dict[str, np.ndarray]:
    """seed, every Params field and the grid's Config fields of runs `index`, each (R,). A
    loss_tol of None is written as NaN, so the column stays float (and parquet-friendly)."""
    columns = {"seed": group.seeds[index]}
    columns.update({name: getattr(group.params, name)[index] for name in PARAMS_FIELDS})
    for name, value in group.config_values.items():
        columns[name] = np.repeat(np.nan if value is None else value, len(columns["seed"]))
    return columns


def _run_chunk(group: grid_lib.RunGroup, index: slice, size: int, with_state: bool = False):
    """Run the runs `index` of `group` as one padded chunk of `size` runs.
    Returns (frame, states) with states None unless `with_state`."""
    params = jax.tree.map(lambda v: jnp.asarray(_pad(v[index], size), jnp.float32), group.params)
    seeds = jnp.asarray(_pad(group.seeds[index], size), jnp.int32)
    out = compiled_runs(group.config, with_state, micro_batch_size(size))(params, seeds)
    history, states = out if with_state else (out, None)
    count = len(group.seeds[index])
    history = {name: np.asarray(getattr(history, name))[:count] for name in METRIC_NAMES}
    frame = results.history_frame(
        group.config, _run_columns(group, index), group.config.logged_steps(), history
    )
    return frame, states


def train(config: Config, params: Params, seed: int, return_state: bool = False):
    """Train one run; returns its frame (one row per logged step), and with `return_state` also
    its final RunState (weights (K, m, d), bias (K, m), mask (K, m, d), ...).

    It is the run `sweep` computes for the same (config, params, seed): the same random draws,
    the same steps, numbers equal up to float32 rounding.
    """
    (group,) = grid_lib.plan(config, {}, grid_lib.normalize_seeds([seed]), params)
    frame, states = _run_chunk(group, slice(0, 1), 1, with_state=return_state)
    if not return_state:
        return frame
    return frame, jax.tree.map(lambda v: v[0], states)


def sweep_spec(config: Config, grid: dict[str, list], seeds: np.ndarray, base: Params) -> dict:
    """What fixes a sweep's results: the Config, grid, seeds and base Params, with their hash."""
    spec = {
        "config": dataclasses.asdict(config),
        "grid": grid,
        "grid_order": list(grid),  # the run order follows the grid's key order
        "seeds": seeds.tolist(),
        "base": {k: float(np.asarray(getattr(base, k))) for k in PARAMS_FIELDS},
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


def _prepare_out(out: Path, spec: dict, overwrite: bool) -> list[int] | None:
    """Create or reuse the output directory. Returns the chunk sizes of the sweep found there
    when it is the same sweep (to resume it with the same chunks), else None."""
    spec_path = out / SPEC_FILE
    if spec_path.exists() and not overwrite:
        recorded = json.loads(spec_path.read_text())
        if recorded["spec_hash"] == spec["spec_hash"]:
            return recorded["chunk_sizes"]
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


class _Progress:
    """One line per chunk on stderr: runs done, rate and ETA."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.done, self.enabled, self.start = total, 0, enabled, time.perf_counter()

    def update(self, runs: int, note: str = "") -> None:
        self.done += runs
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.start
        rate = self.done / elapsed if elapsed > 0 else float("inf")
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        print(
            f"[jaxprune] {self.done}/{self.total} runs ({100 * self.done / self.total:.0f}%), "
            f"{rate:.1f} runs/s, elapsed {elapsed:.0f}s, ETA {eta:.0f}s{note}",
            file=sys.stderr,
            flush=True,
        )


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
) -> pd.DataFrame:
    """Train every (grid point, seed) and return the tidy frame (one row per run and logged step).

    grid: Params fields (vmapped inside one compiled call) and Config fields (one compilation per
    distinct combination) mapped to sequences of values; the runs are their Cartesian product
    with `seeds` (an int n for range(n), or a sequence). Fields not in the grid come from
    `config` and `base` (default Params()). Runs go in chunks of `chunk_size` runs, by default as
    many as fit `memory_budget_gb`. With `out` (a directory), each chunk is written there as
    parquet; re-running the same sweep into it resumes, skipping chunks already written.
    """
    grid = grid_lib.normalize_grid(grid)
    seeds = grid_lib.normalize_seeds(seeds)
    base = Params() if base is None else base
    groups = grid_lib.plan(config, grid, seeds, base)
    spec = sweep_spec(config, grid, seeds, base)
    sizes = [choose_chunk_size(g.config, g.num_runs, chunk_size, memory_budget_gb) for g in groups]
    metadata = {**spec, "chunk_sizes": sizes, **environment()}
    if out is not None:
        out = Path(out)
        recorded = _prepare_out(out, spec, overwrite)
        if recorded is not None and chunk_size is not None and recorded != sizes:
            raise ValueError(
                f"chunk_size = {chunk_size} differs from the chunks {recorded} of the same sweep "
                f"already in {out}: pass chunk_size=None to resume it, or overwrite=True."
            )
        sizes = metadata["chunk_sizes"] = recorded or sizes
        results.write_json(out / SPEC_FILE, metadata)

    total = sum(g.num_runs for g in groups)
    bar = _Progress(total, progress)
    frames = []
    for g, (group, size) in enumerate(zip(groups, sizes, strict=True)):
        for c, start in enumerate(range(0, group.num_runs, size)):
            index = slice(start, min(start + size, group.num_runs))
            path = None if out is None else out / f"part-g{g:04d}-c{c:06d}.parquet"
            if path is not None and path.exists():
                frames.append(pd.read_parquet(path))
                bar.update(index.stop - index.start, " (resumed)")
                continue
            frame, _ = _run_chunk(group, index, size)
            if path is not None:
                results.write_parquet(frame, path, metadata)
            frames.append(frame)
            bar.update(index.stop - index.start)
    frame = pd.concat(frames, ignore_index=True)
    frame.attrs = metadata
    return frame
