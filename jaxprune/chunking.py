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
    """Bytes of one seed's shared draws: training and test samples, initial weights and mask
    uniforms, with their temporaries."""
    q, d = num_noise_rows(config), config.dim
    samples = (config.n_train + config.n_test) * (q * d + 4)
    weights = 2 * config.num_classes * config.width * d
    return int(2 * (samples + weights) * BYTES_PER_FLOAT)


def estimate_run_bytes(config: Config) -> int:
    """Bytes one run needs besides its seed's draws: weights, mask, gradient, update and
    temporaries (K m d each), the optimizer's moments (one K m d for momentum, two for Adam,
    with their updates), the scores and ranks of a pruning criterion, pre-activations and their
    gradient on the training and test sets (n P K m each), and its logged metrics."""
    k, p, d, m = config.num_classes, config.num_patches, config.dim, config.width
    moments = {"gd": 0, "momentum": 1, "adam": 2}[config.optimizer]
    criterion = 0 if config.mask in ("bernoulli", "exact", "structured") else 4
    weights = (8 + 2 * moments + criterion) * k * m * d
    activations = 4 * (config.n_train + config.n_test) * p * k * m
    history = 16 * len(config.logged_steps())
    return int(1.25 * (weights + activations + history) * BYTES_PER_FLOAT)


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


def runs_that_fit(config: Config, budget_gb: float, seeds_in_flight: int = 1) -> int:
    """Runs of one chunk that fit `budget_gb` with `seeds_in_flight` seeds' draws in memory.
    Refuses a budget that does not hold one run, saying how much one run needs."""
    budget = budget_gb * 2**30
    seed_bytes, run_bytes = estimate_seed_bytes(config), estimate_run_bytes(config)
    if seed_bytes + run_bytes > budget:
        need = (seed_bytes + run_bytes) / 2**30
        raise ValueError(
            f"memory_budget_gb = {budget_gb:g} is too small: one run of this Config needs about "
            f"{need:.3g} GiB ({seed_bytes / 2**20:.1f} MiB of data shared by its seed, "
            f"{run_bytes / 2**20:.1f} MiB of its own). Raise memory_budget_gb, or reduce "
            f"n_test, n_train, dim or width."
        )
    return max(1, int((budget - seeds_in_flight * seed_bytes) // run_bytes))


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
    seeds_in_flight: int = 1,
) -> ChunkShape:
    """The chunk shape of a group of num_points x num_seeds runs.

    Runs per chunk: `chunk_size` if given, else as many as fit `memory_budget_gb` per device
    (default: `default_memory_budget_gb()`), at most MAX_DEFAULT_CHUNK_RUNS per device. A chunk
    takes whole rows of points first (every point of a seed shares that seed's draws), then as
    many seeds as fit; both are evened out so that the padded last chunk wastes little.
    """
    check_chunk_options(chunk_size, memory_budget_gb)
    if chunk_size is not None:
        most = int(chunk_size)
    else:
        budget = default_memory_budget_gb() if memory_budget_gb is None else memory_budget_gb
        kind = "cpu" if jax.default_backend() == "cpu" else "accelerator"
        most = min(runs_that_fit(config, budget, seeds_in_flight), MAX_DEFAULT_CHUNK_RUNS[kind])
        most *= num_devices
    points = _even(num_points, min(num_points, most))
    seeds = _even(num_seeds, max(1, min(num_seeds, most // points)))
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
