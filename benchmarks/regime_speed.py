"""Speed of the theorems' regime and of the Kou grid, as ratios measured in one run (issue 17's
"Done when"), and what the persistent compilation cache saves.

    PYTHONPATH=. python benchmarks/regime_speed.py [--only a|b|c|cache|seed] [--seeds N]
                                                  [--kou-dims N] [--lean-runs N] [--json PATH]

(a) One `sweeps/theory_regime.py` run to training loss 0.1 at d = 10^5 (n = 8, m = 5,
    n_test = 1000, eta sigma^2 d = 1, sigma_0 sigma sqrt(d) = 0.1, benign score 1): seconds per
    run of each path in PATHS (GD or gradient flow; the explicit test set 'draw' or
    'projected'), and each one's speedup over GD with the explicit test set. Median over
    repeats of the compiled sweep of `--seeds` runs (compilation excluded). Beside them the
    ceiling of any exact simulation: GD with the explicit test set over the seconds to draw
    one run's n P d + K m d normals (the O(d) floor of (b), here at d = 10^5).
(b) Each projected path's seconds per run at d = 10^6 against 2 x (seconds to draw one run's
    n P d + K m d normals, the O(d) floor of an exact simulation, + its seconds per run at 10^3).
(c) The Kou et al. grid (`kou2023` preset, 100 signal strengths x 10 seeds) on `--kou-dims` of
    its 100 dimensions, end to end from a cold start (compilation included), against a lean
    per-run loop of the same model: one `jax.jit` of draw, init, `lax.fori_loop` of
    `dense.gd_step` and the final test accuracy on the explicit test set, compiled once per
    dimension (timed) and run on `--lean-runs` runs per dimension (extrapolated to the grid's
    1,000 per dimension).
seed: one seed's runs of theory_regime's mild grid (55 runs with the controls, trained to loss
    0.1) at d = 10^3, 10^5 and 10^6: as the body of `runner.compiled_chunk`'s lax.map against
    `runner.seed_function` at top level (what a CPU sweep now runs); 4 seeds from one thread
    against a CPU chunk's seeds in flight (one per core); and one measurement with
    `gram.measurement_block`'s d-blocks against `gram.block_size`'s.
cache: `sweeps/kou2023_heatmap.py --quick --out NEW_DIR` twice in fresh processes sharing a
    fresh cache directory: backend compile seconds and cache misses / hits of each (counted by
    `jax.monitoring` listeners).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
from bench import median_time  # benchmarks/ is this script's directory, as for gram.py
from gram import parts_function

import jaxprune
from jaxprune import chunking, gram, runner
from jaxprune import grid as grid_lib
from jaxprune.data import draw_sample
from jaxprune.dense import gd_step
from jaxprune.metrics import test_outputs
from jaxprune.state import TEST_STREAM, TRAIN_STREAM, init_state
from sweeps import theory_regime

ROOT = Path(__file__).resolve().parents[1]
KOU_DIMS = list(range(100, 1100, 10))
KOU_MUS = np.round(np.arange(0, 10, 0.1), 1).tolist()
IN_FLIGHT_SEEDS = 4  # seeds of part seed's comparison of one thread against seeds in flight


def regime(dim: int, optimizer: str, test_eval: str):
    """theory_regime's Config and Params at `dim` (full size, n_test = 1000), benign score 1."""
    config, params = theory_regime.regime_setting(dim, "full")
    config = config.replace(optimizer=optimizer, test_eval=test_eval)
    return config, params.replace(mu_norm=theory_regime.mu_for_score(1.0, dim))


def per_run_seconds(config, params, seeds: int, repeats: int) -> tuple[float, float, int]:
    """(median seconds per run of the compiled sweep over `seeds` seeds, its first call's
    seconds including compilation, the largest step count to the tolerance)."""
    runner.clear_compiled()
    steps = []

    def go():
        frame = jaxprune.final(jaxprune.sweep(config, {}, seeds, base=params, progress=False))
        steps.append(int(frame.converged_step.max()))

    first = median_time(go, 1)
    return median_time(go, repeats) / seeds, first, steps[-1]


def normal_floor(config) -> float:
    """Seconds to draw one run's n P d + K m d standard normals (jitted, median of 3)."""
    count = config.n_train * config.num_patches * config.dim
    count += config.num_classes * config.width * config.dim
    draw = jax.jit(lambda key: jax.random.normal(key, (count,)))
    jax.block_until_ready(draw(jax.random.key(0)))
    return median_time(lambda: jax.block_until_ready(draw(jax.random.key(1))), 3)


PATHS = {"gd + draw": ("gd", "draw"), "gd + projected": ("gd", "projected"),
         "flow + projected": ("flow", "projected")}  # fmt: skip


def part_a(seeds: int, repeats: int) -> dict:
    """Seconds per run at d = 10^5 of every path in PATHS, and each fast path's speedup over
    GD with the explicit test set."""
    rows = {}
    for name, (optimizer, test_eval) in PATHS.items():
        config, params = regime(100_000, optimizer, test_eval)
        per_run, first, steps = per_run_seconds(config, params, seeds, repeats)
        rows[name] = {"s_per_run": per_run, "first_call_s": first, "steps_to_tolerance_max": steps}
    slow = rows["gd + draw"]["s_per_run"]
    for row in rows.values():
        row["speedup_over_gd_draw"] = slow / row["s_per_run"]
    floor = normal_floor(regime(100_000, "gd", "projected")[0])
    return {
        "dim": 100_000, "seeds": seeds, "paths": rows, "normals_floor_s": floor,
        "ceiling_over_gd_draw": slow / floor,
    }  # fmt: skip


def part_b(seeds: int, repeats: int) -> dict:
    """Each projected path's seconds per run at d = 10^6 against 2 x (the O(d) floor of normals
    + its seconds per run at d = 10^3)."""
    floor = normal_floor(regime(1_000_000, "gd", "projected")[0])
    rows = {}
    for name, (optimizer, test_eval) in PATHS.items():
        if test_eval != "projected":
            continue
        big, params_big = regime(1_000_000, optimizer, test_eval)
        small, params_small = regime(1_000, optimizer, test_eval)
        big_s, _, _ = per_run_seconds(big, params_big, seeds, repeats)
        small_s, _, _ = per_run_seconds(small, params_small, seeds, repeats)
        bound = 2 * (floor + small_s)
        rows[name] = {"s_per_run_d1e6": big_s, "s_per_run_d1e3": small_s, "bound_s": bound,
                      "ratio_to_bound": big_s / bound}  # fmt: skip
    return {"seeds": seeds, "normals_floor_s": floor, "paths": rows}


def mild_points(dim: int):
    """theory_regime's full-size mild grid of one seed at `dim` (`mild_grid`: scores x the mild
    p and their matched controls, R = 55), as `jaxprune.grid.plan` expands it for a sweep:
    its Config (GD, Gram engine, projected), Params of (R,) float32 leaves and their Dims."""
    config, params = regime(dim, "gd", "projected")
    grid = theory_regime.mild_grid(dim, params.sigma_init, theory_regime.SIZES["full"])
    (group,) = grid_lib.plan(config.replace(engine="gram"), grid, np.arange(1), base=params)
    points = jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), group.points)
    return group.config, points, jax.tree.map(lambda v: jnp.asarray(v, jnp.int32), group.dims)


def seed_row(dim: int, repeats: int) -> dict:
    """`part_seed`'s figures at one d."""
    config, points, dims = mild_points(dim)
    mapped, top, seed = runner.compiled_chunk(config), runner.seed_function(config), jnp.int32(1)

    def timed(call) -> float:
        jax.block_until_ready(call())  # compiles
        return median_time(lambda: jax.block_until_ready(call()), repeats)

    def measurement(least: int) -> float:
        with mock.patch.object(gram, "MEASUREMENT_MIN_BLOCK", least):
            parts = parts_function(config, "gram")
            logs = lambda n: timed(lambda: parts(points, 1, n, 0))  # noqa: E731
            return (logs(2) - logs(0)) / 2

    seeds = jnp.arange(IN_FLIGHT_SEEDS, dtype=jnp.int32)
    shape = chunking.ChunkShape(len(points.lr), IN_FLIGHT_SEEDS, IN_FLIGHT_SEEDS)
    in_flight = runner.executable(config, shape).result()  # a CPU chunk: seeds in flight
    row = {
        "dim": dim,
        "runs": int(points.lr.shape[0]),
        "lax_map_s": timed(lambda: mapped(points, dims, seed[None])),
        "seed_function_s": timed(lambda: top(points, dims, seed)),
        "seeds": IN_FLIGHT_SEEDS,
        "seeds_in_flight": chunking.cpu_seeds_in_flight(),
        "one_thread_s": timed(lambda: [top(points, dims, s) for s in seeds]),
        "in_flight_s": timed(lambda: in_flight(points, dims, seeds)),
        "measurement_block_s": measurement(gram.MEASUREMENT_MIN_BLOCK),
        "block_size_s": measurement(2**62),  # then min(block_size, ...) is block_size
    }
    row["lax_map_over_seed_function"] = row["lax_map_s"] / row["seed_function_s"]
    row["one_thread_over_in_flight"] = row["one_thread_s"] / row["in_flight_s"]
    row["block_size_over_measurement_block"] = row["block_size_s"] / row["measurement_block_s"]
    return row


def part_seed(repeats: int) -> dict:
    """One seed's mild grid trained to loss 0.1 (compiled, medians) at d = 10^3, 10^5, 10^6: as
    the body of `runner.compiled_chunk`'s lax.map (a chunk of one seed) against
    `runner.seed_function` called at top level (what a CPU sweep runs); IN_FLIGHT_SEEDS seeds
    called one after the other from one thread against a CPU chunk's function
    (`runner.executable`: `chunking.cpu_seeds_in_flight` seeds at once); and one measurement
    (`gram.py`'s parts_function) with the d-blocks of `gram.measurement_block` against those of
    `gram.block_size`."""
    return {"rows": [seed_row(dim, repeats) for dim in (1_000, 100_000, 1_000_000)]}


def lean_run(config):
    """The lean per-run function: draw, init, fori_loop of gd_step, final test accuracy on the
    explicit test set (jitted once per Config)."""

    def run(params, seed):
        key = jax.random.key(seed)
        train = draw_sample(config, jax.random.fold_in(key, TRAIN_STREAM), config.n_train)
        test = draw_sample(config, jax.random.fold_in(key, TEST_STREAM), config.n_test)
        state = init_state(config, params, key, train)
        state = jax.lax.fori_loop(
            0, config.steps, lambda _, s: gd_step(config, params, train, s), state
        )
        predicted = test_outputs(config, params, state, test).argmax(-1)
        labels = jaxprune.data.observed_labels(config, test, params.label_flip)
        return (predicted == labels).mean()

    return jax.jit(run)


def part_c(num_dims: int, lean_runs: int) -> dict:
    config, params = jaxprune.presets.kou2023()
    dims = KOU_DIMS[:: max(1, len(KOU_DIMS) // num_dims)][:num_dims]
    seeds = 10
    runner.clear_compiled()
    start = time.perf_counter()
    jaxprune.sweep(config, {"dim": dims, "mu_norm": KOU_MUS}, seeds, base=params, progress=False)
    sweep_s = time.perf_counter() - start
    runs_per_dim = len(KOU_MUS) * seeds
    lean_s = 0.0
    lean_compile_s = 0.0
    for dim in dims:
        lean = lean_run(config.replace(dim=dim, test_eval="draw"))
        start = time.perf_counter()
        jax.block_until_ready(lean(params, 0))
        lean_compile_s += time.perf_counter() - start
        sample = [(KOU_MUS[(7 * i) % len(KOU_MUS)], i % seeds) for i in range(lean_runs)]
        start = time.perf_counter()
        for mu, seed in sample:
            jax.block_until_ready(lean(params.replace(mu_norm=mu), seed))
        lean_s += (time.perf_counter() - start) / lean_runs * runs_per_dim
    lean_total = lean_s + lean_compile_s
    return {
        "dims": dims, "runs": len(dims) * runs_per_dim, "sweep_s": sweep_s,
        "lean_s": lean_total, "lean_compile_s": lean_compile_s,
        "lean_runs_timed_per_dim": lean_runs, "speedup": lean_total / sweep_s,
        "test_eval": jaxprune.evaluation.resolve(config),
    }  # fmt: skip


CHILD = """
import json, runpy, sys, jax
counts = {"misses": 0, "hits": 0, "compile_s": 0.0}
def event(name, **kwargs):
    counts["misses"] += name == "/jax/compilation_cache/cache_misses"
    counts["hits"] += name == "/jax/compilation_cache/cache_hits"
def duration(name, seconds, **kwargs):
    if name == "/jax/core/compile/backend_compile_duration":
        counts["compile_s"] += seconds
jax.monitoring.register_event_listener(event)
jax.monitoring.register_event_duration_secs_listener(duration)
sys.argv = ["sweeps/kou2023_heatmap.py", *sys.argv[1:]]
runpy.run_path("sweeps/kou2023_heatmap.py", run_name="__main__")
print(json.dumps(counts))
"""


def part_cache(size: str) -> dict:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k != "JAXPRUNE_NO_CACHE"}
        env.update(JAX_COMPILATION_CACHE_DIR=str(Path(tmp) / "cache"), PYTHONPATH=str(ROOT))
        for i in range(2):
            args = [f"--{size}"] if size != "full" else []
            start = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-c", CHILD, *args, "--out", str(Path(tmp) / f"out{i}")],
                cwd=ROOT, env=env, capture_output=True, text=True, check=True,
            )  # fmt: skip
            row = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append({**row, "wall_s": time.perf_counter() - start})
    return {
        "size": size, "first": rows[0], "second": rows[1],
        "compile_fraction": rows[1]["compile_s"] / rows[0]["compile_s"],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["a", "b", "c", "cache", "seed"], action="append")
    parser.add_argument("--seeds", type=int, default=4, help="runs per timed sweep in (a), (b)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--kou-dims", type=int, default=10)
    parser.add_argument("--lean-runs", type=int, default=20)
    parser.add_argument("--cache-size", choices=["full", "quick", "smoke"], default="quick")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    parts = args.only or ["a", "b", "c", "cache"]
    out = {
        "command": " ".join(["python", *sys.argv]),
        "machine": {
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "jax": jax.__version__,
            "backend": jax.default_backend(),
            "load_average": os.getloadavg(),
        },
    }
    jobs = {
        "a": lambda: part_a(args.seeds, args.repeats),
        "b": lambda: part_b(args.seeds, args.repeats),
        "c": lambda: part_c(args.kou_dims, args.lean_runs),
        "cache": lambda: part_cache(args.cache_size),
        "seed": lambda: part_seed(args.repeats),
    }
    for part in parts:
        out[part] = jobs[part]()
        print(json.dumps({part: out[part]}), flush=True)
    out["load_average_after"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
