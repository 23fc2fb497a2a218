"""How a sweep is cut into chunks: memory and time estimates, chunk shapes, the chunks.

A chunk is a block of a group's (point, seed) rectangle: `points` consecutive Params points
times `seeds` consecutive seeds. The runs of one seed share its data (drawn once; see
`jaxprune.data`), so a chunk's memory is its seeds' data plus its runs' own arrays, and its time
is its seeds' draws plus its runs' steps. Chunks of a group all have one shape (the last ones are
padded), so they share one compiled function. A default chunk fits the memory budget and holds at
most `DEFAULT_CHUNK_SECONDS` of work by the cost model (`run_cost`, with rates measured once per
process by `calibrate`), so that progress moves and an interrupted sweep loses seconds.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
import numbers
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxprune import engines, evaluation
from jaxprune.config import Config, InvalidValue, Option
from jaxprune.data import num_noise_rows

BYTES_PER_FLOAT = 4
# A default chunk holds at most this many seconds of estimated work (override: `sweep(...,
# chunk_seconds=...)`), so that a kill or Ctrl-C loses about that much and progress moves.
DEFAULT_CHUNK_SECONDS = 10.0
# A default chunk holds at most this many rows of results (runs x logged steps), so that its
# frame on the host (a few copies of about 40 columns: NumPy, pandas, Arrow, parquet) stays near
# 100 MB whatever the sweep's size: a sweep's peak memory then does not grow with its run count.
MAX_CHUNK_ROWS = 2**18
# Share of free memory (RAM on CPU) that a chunk may use when no budget is given.
DEFAULT_MEMORY_SHARE = 0.5
# Weight-sized arrays (K m d floats) read or written per optimizer step of one run, besides the
# matrix products (weights, mask, gradient, update, the freezing rule's selects), and the share
# of the calibrated matmul rate that a step's smaller products reach: these fit the step times
# of benchmarks/profile.py at both W1 and W2 sizes (README, Performance) within 10%.
PRODUCT_EFFICIENCY = 0.75


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
    each; a projected test set's rows are its K m normals, see `jaxprune.evaluation`) with the
    random bits and temporaries that drawing them takes (about 7 copies, measured with
    `memory_analysis` of compiled chunks), initial weights and mask uniforms, and what the
    engine holds per seed (`EngineKind.seed_words`)."""
    test_row = config.dim
    if evaluation.resolve(config) == "projected":
        test_row = config.num_classes * config.width
    rows = num_noise_rows(config)
    samples = config.n_train * (rows * config.dim + 8) + config.n_test * (rows * test_row + 8)
    weights = 4 * config.num_classes * config.width * config.dim
    weights += engines.resolve(config).seed_words(config)
    return int(7 * samples + weights) * BYTES_PER_FLOAT


def estimate_run_bytes(config: Config) -> int:
    """Bytes one run needs besides its seed's draws: its engine's parameters, gradient,
    optimizer moments and criterion scores (`EngineKind.run_words`), 3 copies of its
    pre-activations on the training and test sets (n P K m: values, gradient or activation,
    and their product with the neuron validity of shape buckets), and its logged metrics;
    with a 25% margin. All at the bucket's (padded) shape. (Calibrated with XLA's
    `memory_analysis` of compiled chunks, which it overestimates by up to 2x.)"""
    k, m = config.num_classes, config.width
    weights = engines.resolve(config).run_words(config)
    activations = 3 * (config.n_train + config.n_test) * config.num_patches * k * m
    history = 16 * len(config.logged_steps())
    return int(1.25 * (weights + activations + history)) * BYTES_PER_FLOAT


def chunk_bytes(config: Config, points: int, seeds_in_flight: int) -> int:
    """Estimated peak bytes of a chunk of `points` Params points while `seeds_in_flight` of its
    seeds are computed at once (`cpu_seeds_in_flight` on CPU, all of a device's seeds on an
    accelerator)."""
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
        raise InvalidValue("chunk_size", chunk_size, "is invalid: must be an int >= 1 or None.")


def check_memory_budget(memory_budget_gb) -> None:
    if memory_budget_gb is None:
        return
    number = isinstance(memory_budget_gb, numbers.Real) and not isinstance(memory_budget_gb, bool)
    if not (number and math.isfinite(memory_budget_gb) and memory_budget_gb > 0):
        raise InvalidValue(
            "memory_budget_gb", memory_budget_gb, "is invalid: must be a number > 0 (GiB)."
        )


def check_chunk_options(chunk_size, memory_budget_gb, chunk_seconds=None) -> None:
    """Refuse an invalid chunk_size, memory_budget_gb or chunk_seconds (before anything
    compiles)."""
    _check_chunk_size(chunk_size)
    check_memory_budget(memory_budget_gb)
    if chunk_seconds is not None:
        number = isinstance(chunk_seconds, numbers.Real) and not isinstance(chunk_seconds, bool)
        if not (number and math.isfinite(chunk_seconds) and chunk_seconds > 0):
            raise InvalidValue(
                "chunk_seconds", chunk_seconds, "is invalid: must be a number > 0 (seconds)."
            )


def seeds_vmapped(num_devices_seeds: int) -> int:
    """Seeds vmapped together on one device, of the `num_devices_seeds` it holds in a chunk: none
    on CPU (each seed is its own call, `cpu_seeds_in_flight` of them at once on their own
    threads; the runs of a seed already make large matrix products), all of them on an
    accelerator."""
    return 1 if jax.default_backend() == "cpu" else num_devices_seeds


def cpu_seeds_in_flight() -> int:
    """Seeds a CPU device computes at once, each its own call of the one-seed function on its
    own thread (`runner.executable`): one per core. A seed's step loop runs on one core (its
    steps are too small for XLA's intra-op threads), so a second seed in flight uses the other
    (on the 2-core CPU, 4 seeds of theory_regime's mild grid 1.3-1.6x faster than from one
    thread at d = 10^3-10^6, benchmarks/regime_speed.py --only seed, docs/performance.md).
    Each seed in flight holds its own draws: `choose_chunk_shape` budgets for them."""
    return max(1, os.cpu_count() or 1)


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
    chunk_seconds: float | None = None,
    speed: Speed | None = None,
) -> ChunkShape:
    """The chunk shape of a group of num_points x num_seeds runs.

    With `chunk_size`, at most that many runs. Otherwise the largest chunk whose estimated peak
    memory (`chunk_bytes`) on each device fits `memory_budget_gb` (default:
    `default_memory_budget_gb()`) and, with `chunk_seconds`, whose estimated time
    (`chunk_seconds_estimate` at `speed`, default `current_speed()`) is at most that, and which
    holds at most MAX_CHUNK_ROWS rows of results; a budget that does not hold one run is refused.
    A chunk takes whole rows of points first (every point of a seed shares that seed's draws),
    then as many seeds as fit; both are evened out so that the padded last chunk wastes little.
    Seeds are padded to a multiple of num_devices.
    """
    check_chunk_options(chunk_size, memory_budget_gb, chunk_seconds)
    if chunk_size is not None:
        points = min(num_points, int(chunk_size))
        seeds = min(num_seeds, max(1, int(chunk_size) // points))
    else:
        budget = default_memory_budget_gb() if memory_budget_gb is None else memory_budget_gb
        budget_bytes = budget * 2**30
        if chunk_bytes(config, 1, 1) > budget_bytes:
            raise InvalidValue(
                "memory_budget_gb",
                float(f"{budget:g}"),
                f"is too small: one run of this Config needs about "
                f"{chunk_bytes(config, 1, 1) / 2**30:.3g} GiB "
                f"({estimate_seed_bytes(config) / 2**20:.1f} MiB of data drawn for its seed, "
                f"{estimate_run_bytes(config) / 2**20:.1f} MiB of its own). Raise {{0}}, or "
                f"reduce n_test, n_train, dim or width.",
                Option("memory_budget_gb", quoted=False),
            )
        accelerator = jax.default_backend() != "cpu"
        # the seeds computed at once share the budget (CPU: `cpu_seeds_in_flight`)
        in_flight = 1 if accelerator else cpu_seeds_in_flight()
        points = (budget_bytes / in_flight - estimate_seed_bytes(config)) // estimate_run_bytes(
            config
        )
        points = int(max(1, min(num_points, points)))
        per_device = num_seeds  # seeds per device: as many as the bounds below allow
        if accelerator:  # all of a device's seeds at once: they share the budget
            per_device = max(1, int(budget_bytes // chunk_bytes(config, points, 1)))
        if chunk_seconds is not None:
            speed = current_speed() if speed is None else speed

            def seconds(points: int, seeds: int) -> float:
                return chunk_seconds_estimate(config, ChunkShape(points, seeds, seeds), speed)

            while points > 1 and seconds(points, 1) > chunk_seconds:
                points = max(1, math.floor(points * chunk_seconds / seconds(points, 1)))
            per_device = min(per_device, max(1, int(chunk_seconds // seconds(points, 1))))
        most_runs = max(1, MAX_CHUNK_ROWS // len(config.logged_steps()))
        points = min(points, most_runs)
        per_device = min(per_device, max(1, most_runs // (points * num_devices)))
        seeds = min(num_seeds, per_device * num_devices)
    points = _even(num_points, points)
    seeds = _even(num_seeds, seeds)
    padded = -(-seeds // num_devices) * num_devices
    return ChunkShape(points=points, seeds=seeds, padded_seeds=padded)


@dataclasses.dataclass(frozen=True)
class Chunk:
    """One chunk of a sweep: the runs points[point_slice] x seeds[seed_slice] of group `group`,
    with its `index` in that group's chunk order (point blocks outermost)."""

    group: int
    index: int
    point_slice: slice
    seed_slice: slice

    @property
    def num_points(self) -> int:
        return self.point_slice.stop - self.point_slice.start

    @property
    def num_seeds(self) -> int:
        return self.seed_slice.stop - self.seed_slice.start

    @property
    def num_runs(self) -> int:
        return self.num_points * self.num_seeds


def chunks_of(group: int, num_points: int, num_seeds: int, shape: ChunkShape) -> list[Chunk]:
    """The chunks of group `group`, num_points x num_seeds runs cut to `shape`, in order: point
    blocks outermost, then seed blocks."""
    blocks = [
        (slice(p, min(p + shape.points, num_points)), slice(s, min(s + shape.seeds, num_seeds)))
        for p in range(0, num_points, shape.points)
        for s in range(0, num_seeds, shape.seeds)
    ]
    return [Chunk(group, index, points, seeds) for index, (points, seeds) in enumerate(blocks)]


@dataclasses.dataclass(frozen=True)
class Speed:
    """What this process's device sustains: `flops` per second in float32 matrix products and
    `bytes` per second of elementwise work (see `calibrate`)."""

    flops: float
    bytes: float


def _median_seconds(fn, *args, repeats: int = 5) -> float:
    jax.block_until_ready(fn(*args))  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return float(np.median(times))


@functools.cache
def calibrate() -> Speed:
    """Measure this process's `Speed` once (about 0.2 s on a CPU): medians of a float32 matrix
    product (1024², or 4096² on an accelerator, large enough to hide the dispatch) and of an
    elementwise pass over three arrays (2^20 floats, or 2^26)."""
    size, length = (1024, 2**20) if jax.default_backend() == "cpu" else (4096, 2**26)
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    flops = 2 * size**3 / _median_seconds(jax.jit(lambda x: x @ x), a)
    x = jnp.ones(length, jnp.float32)
    passes = 4 * length * BYTES_PER_FLOAT  # three arrays read, one written
    bandwidth = passes / _median_seconds(jax.jit(lambda x, y, z: x * y + z), x, x + 1, x + 2)
    return Speed(flops=flops, bytes=bandwidth)


# The ratios measured / estimated seconds of the last chunks this process ran (`observe`): the
# cost model's estimates are divided by their median, so that a machine slower than its
# calibration (loaded by other jobs, or a cost model off for this Config) gets smaller chunks
# in the next plans of the process (the chunk shapes of a running sweep are fixed: they are
# recorded for resume).
OBSERVED = collections.deque(maxlen=8)


def observe(estimated: float, measured: float) -> None:
    """Record a chunk's measured seconds against its estimate (not a group's first chunk,
    which includes its compilation)."""
    if estimated > 0 and measured > 0:
        OBSERVED.append(measured / estimated)


def slowdown() -> float:
    """How much slower than estimated the recent chunks ran (the median ratio; 1 without any)."""
    return float(np.median(OBSERVED)) if OBSERVED else 1.0


def current_speed() -> Speed:
    """`calibrate()`'s speed divided by `slowdown()`: what plans use by default."""
    speed, slower = calibrate(), slowdown()
    return Speed(flops=speed.flops / slower, bytes=speed.bytes / slower)


def run_cost(config: Config) -> tuple[float, float]:
    """(matrix-product FLOPs, elementwise bytes) of training and measuring one run to the end,
    besides its seed's draws, by the engine that trains it: `engines.costs`, the one cost model
    (the one 'auto' chooses by). An upper bound under loss_tol (a frozen run stops early)."""
    cost = engines.costs(config)[engines.resolve(config).name]
    return float(cost.flops), float(cost.bytes)


def seed_cost(config: Config) -> float:
    """Elementwise bytes of drawing one seed's data (as many passes as its memory, see
    `estimate_seed_bytes`)."""
    return float(estimate_seed_bytes(config))


def chunk_seconds_estimate(
    config: Config, shape: ChunkShape, speed: Speed, num_devices: int = 1
) -> float:
    """Estimated seconds of one chunk of `shape`: each device computes its share of the seeds,
    each seed's draws and its `shape.points` runs (`run_cost` at `speed`)."""
    flops, elementwise = run_cost(config)
    per_run = flops / (PRODUCT_EFFICIENCY * speed.flops) + elementwise / speed.bytes
    per_seed = seed_cost(config) / speed.bytes + shape.points * per_run
    return shape.padded_seeds // num_devices * per_seed


@dataclasses.dataclass(frozen=True)
class ChunkPlan:
    """How a sweep's groups are cut: `shapes` (one ChunkShape per group), `chunks` (every chunk
    of the sweep, in order) and `seconds` (each chunk's estimated time, or None when not
    estimated)."""

    shapes: tuple[ChunkShape, ...]
    chunks: tuple[Chunk, ...]
    seconds: tuple[float, ...] | None

    def describe(self, num_runs: int) -> str:
        """One line: runs, groups, chunks and the estimated time."""
        largest = max(shape.runs for shape in self.shapes)
        line = (
            f"{num_runs} runs in {len(self.shapes)} group{'s' * (len(self.shapes) > 1)} "
            f"(one compilation each), {len(self.chunks)} chunk{'s' * (len(self.chunks) > 1)} "
            f"of at most {largest} runs"
        )
        if self.seconds is not None:
            line += (
                f"; about {sum(self.seconds):.3g} s of training by the cost model "
                f"(at most {max(self.seconds):.2g} s a chunk)"
            )
        return line


def plan_chunks(
    groups,
    chunk_size: int | None = None,
    memory_budget_gb: float | None = None,
    num_devices: int = 1,
    chunk_seconds: float | None = DEFAULT_CHUNK_SECONDS,
    speed: Speed | None = None,
    estimate: bool = True,
    shapes: list[ChunkShape] | None = None,
) -> ChunkPlan:
    """The chunks of a sweep's groups (each with .config, .num_points, .seeds; see
    `jaxprune.grid.RunGroup`): shapes by `choose_chunk_shape` (unless `shapes` are given, as
    when a sweep resumes), the chunks in order, and with `estimate` each chunk's estimated
    seconds at `speed` (default: `calibrate()`, measured once per process)."""
    if shapes is None:
        shapes = [
            choose_chunk_shape(
                g.config,
                g.num_points,
                len(g.seeds),
                chunk_size,
                memory_budget_gb,
                num_devices,
                chunk_seconds if chunk_size is None else None,
                speed,
            )
            for g in groups
        ]
    chunks = [
        chunk
        for index, (group, shape) in enumerate(zip(groups, shapes, strict=True))
        for chunk in chunks_of(index, group.num_points, len(group.seeds), shape)
    ]
    seconds = None
    if estimate:
        speed = current_speed() if speed is None else speed
        seconds = tuple(
            chunk_seconds_estimate(groups[c.group].config, shapes[c.group], speed, num_devices)
            for c in chunks
        )
    return ChunkPlan(tuple(shapes), tuple(chunks), seconds)
