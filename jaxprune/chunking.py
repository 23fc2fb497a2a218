"""How a group of runs is cut into chunks: memory estimates and chunk shapes.

A chunk is a block of the group's (point, seed) rectangle: `points` consecutive Params points
times `seeds` consecutive seeds. The runs of one seed share its data (drawn once; see
`jaxprune.data`), so a chunk's memory is its seeds' data plus its runs' own arrays. Chunks of a
group all have one shape (the last ones are padded), so they share one compiled function.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os

import jax
import numpy as np

from jaxprune.config import Config
from jaxprune.data import num_noise_rows

BYTES_PER_FLOAT = 4
# Default chunks hold at most this many runs, so that progress moves, a kill loses little, and
# host round-trips stay negligible (a chunk of this size takes seconds to minutes).
MAX_DEFAULT_CHUNK_RUNS = {"cpu": 4096, "accelerator": 65536}
# Share of free memory (RAM on CPU) that a chunk may use when no budget is given.
DEFAULT_MEMORY_SHARE = 0.5


@dataclasses.dataclass(frozen=True)
class ChunkShape:
    """points: Params points per chunk. seeds: seeds per chunk. padded_seeds: seeds per compiled
    call, a multiple of the local device count (extra seeds are computed and dropped)."""

    points: int
    seeds: int
    padded_seeds: int

    @property
    def runs(self) -> int:
        return self.points * self.seeds


def estimate_seed_bytes(config: Config) -> int:
    """Bytes of one seed's shared draws in flight: the training and test noise rows (n Q d
    each) with the random bits and temporaries that drawing them takes (about 7 copies, measured
    with `memory_analysis` of compiled chunks), initial weights and mask uniforms."""
    samples = (config.n_train + config.n_test) * (num_noise_rows(config) * config.dim + 8)
    weights = 4 * config.num_classes * config.width * config.dim
    return int(7 * samples + weights) * BYTES_PER_FLOAT


def estimate_run_bytes(config: Config) -> int:
    """Bytes one run needs besides its seed's draws: 2 copies of its weights (K m d: weights
    and gradient), 2 more per moment of the optimizer (one for momentum, two for Adam), the
    scores and ranks of a pruning criterion (4 more), 3 copies of its pre-activations on the
    training and test sets (n P K m: values, gradient or activation, and their product with the
    neuron validity of shape buckets), and its logged metrics; with a 25% margin. All at the
    bucket's (padded) shape. (Calibrated with XLA's `memory_analysis` of compiled chunks,
    which it overestimates by up to 2x.)"""
    k, d, m = config.num_classes, config.dim, config.width
    moments = {"gd": 0, "momentum": 1, "adam": 2}[config.optimizer]
    criterion = 0 if config.mask in ("bernoulli", "exact", "structured") else 4
    weights = (2 + 2 * moments + criterion) * k * m * d
    activations = 3 * (config.n_train + config.n_test) * config.num_patches * k * m
    history = 16 * len(config.logged_steps())
    return int(1.25 * (weights + activations + history)) * BYTES_PER_FLOAT


def chunk_bytes(config: Config, points: int, seeds_in_flight: int) -> int:
    """Estimated peak bytes of a chunk of `points` Params points while `seeds_in_flight` of its
    seeds are computed at once (one on CPU, all of a device's seeds on an accelerator)."""
    return seeds_in_flight * (estimate_seed_bytes(config) + points * estimate_run_bytes(config))


def default_memory_budget_gb() -> float:
    """DEFAULT_MEMORY_SHARE of the first local device's free memory, or of free RAM on CPU."""
    device = jax.local_devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    if stats and "bytes_limit" in stats:
        free = stats["bytes_limit"] - stats.get("bytes_in_use", 0)
    else:
        free = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    return DEFAULT_MEMORY_SHARE * free / 2**30


def _check_chunk_size(chunk_size) -> None:
    if chunk_size is None:
        return
    if (
        isinstance(chunk_size, bool)
        or not isinstance(chunk_size, numbers.Integral)
        or chunk_size < 1
    ):
        raise ValueError(f"chunk_size = {chunk_size!r} is invalid: must be an int >= 1 or None.")


def check_memory_budget(memory_budget_gb) -> None:
    if memory_budget_gb is None:
        return
    number = isinstance(memory_budget_gb, numbers.Real) and not isinstance(memory_budget_gb, bool)
    if not (number and math.isfinite(memory_budget_gb) and memory_budget_gb > 0):
        raise ValueError(
            f"memory_budget_gb = {memory_budget_gb!r} is invalid: must be a number > 0 (GiB)."
        )


def check_chunk_options(chunk_size, memory_budget_gb) -> None:
    """Refuse an invalid chunk_size or memory_budget_gb (before anything compiles)."""
    _check_chunk_size(chunk_size)
    check_memory_budget(memory_budget_gb)


def seeds_vmapped(num_devices_seeds: int) -> int:
    """Seeds computed at once on one device, of the `num_devices_seeds` it holds in a chunk: one
    at a time on CPU (`lax.map`; the runs of a seed already make large matrix products), all of
    them on an accelerator."""
    return 1 if jax.default_backend() == "cpu" else num_devices_seeds


def _even(total: int, most: int) -> int:
    """The size of the fewest equal blocks of at most `most` that cover `total`."""
    return -(-total // -(-total // most))


def choose_chunk_shape(
    config: Config,
    num_points: int,
    num_seeds: int,
    chunk_size: int | None = None,
    memory_budget_gb: float | None = None,
    num_devices: int = 1,
) -> ChunkShape:
    """The chunk shape of a group of num_points x num_seeds runs.

    With `chunk_size`, at most that many runs. Otherwise the largest chunk whose estimated peak
    memory (`chunk_bytes`) on each device fits `memory_budget_gb` (default:
    `default_memory_budget_gb()`), of at most MAX_DEFAULT_CHUNK_RUNS runs per device; a budget
    that does not hold one run is refused. A chunk takes whole rows of points first (every
    point of a seed shares that seed's draws), then as many seeds as fit; both are evened out
    so that the padded last chunk wastes little. Seeds are padded to a multiple of num_devices.
    """
    check_chunk_options(chunk_size, memory_budget_gb)
    if chunk_size is not None:
        points = min(num_points, int(chunk_size))
        seeds = min(num_seeds, max(1, int(chunk_size) // points))
    else:
        budget = default_memory_budget_gb() if memory_budget_gb is None else memory_budget_gb
        budget_bytes = budget * 2**30
        if chunk_bytes(config, 1, 1) > budget_bytes:
            raise ValueError(
                f"memory_budget_gb = {budget:g} is too small: one run of this Config needs about "
                f"{chunk_bytes(config, 1, 1) / 2**30:.3g} GiB "
                f"({estimate_seed_bytes(config) / 2**20:.1f} MiB of data drawn for its seed, "
                f"{estimate_run_bytes(config) / 2**20:.1f} MiB of its own). Raise "
                f"memory_budget_gb, or reduce n_test, n_train, dim or width."
            )
        kind = "cpu" if jax.default_backend() == "cpu" else "accelerator"
        most_runs = MAX_DEFAULT_CHUNK_RUNS[kind]
        run_bytes = estimate_run_bytes(config)
        points = (budget_bytes - estimate_seed_bytes(config)) // run_bytes
        points = int(max(1, min(num_points, most_runs, points)))
        per_device = max(1, most_runs // points)
        if kind == "accelerator":  # all of a device's seeds at once: they share the budget
            per_device = min(
                per_device, max(1, int(budget_bytes // chunk_bytes(config, points, 1)))
            )
        seeds = min(num_seeds, per_device * num_devices)
    points = _even(num_points, points)
    seeds = _even(num_seeds, seeds)
    padded = -(-seeds // num_devices) * num_devices
    return ChunkShape(points=points, seeds=seeds, padded_seeds=padded)


def chunk_blocks(num_points: int, num_seeds: int, shape: ChunkShape) -> list[tuple[slice, slice]]:
    """(points, seeds) slices of each chunk of a num_points x num_seeds group cut to `shape`, in
    chunk order: point blocks outermost, then seed blocks."""
    return [
        (slice(p, min(p + shape.points, num_points)), slice(s, min(s + shape.seeds, num_seeds)))
        for p in range(0, num_points, shape.points)
        for s in range(0, num_seeds, shape.seeds)
    ]


def run_positions(num_seeds: int, points: slice, seeds: slice) -> np.ndarray:
    """Position in a group's run order (points outermost, then seeds) of each run of the chunk
    points x seeds, in the chunk's row order (also points outermost)."""
    point_index = np.arange(points.start, points.stop)[:, None]
    return (point_index * num_seeds + np.arange(seeds.start, seeds.stop)[None, :]).ravel()


def run_order_key(group: int, positions: np.ndarray, rows_per_run: int) -> np.ndarray:
    """A sort key (one per row) that puts rows of several chunks in sweep order: groups in order,
    then run positions, then the rows (logged steps) of a run as they come."""
    return np.repeat(group * (1 << 40) + positions, rows_per_run)
