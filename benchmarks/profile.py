"""Where the time of one chunk goes, by timing its parts alone (compiled, medians).

    python benchmarks/profile.py [--workload W1|W2] [--smoke]

For the runs of one seed (vmapped over the workload's Params points, as a sweep runs them):
drawing the seed's training and test data, one masked GD step of all its runs (timed as a
compiled loop of `steps` steps, divided), one measurement (training and test sets), and a bare
loop of the same two matrix products per step (noise rows times filters and its weight
gradient) as the floor the step could reach. Each part is reported
per seed and as a share of an estimated chunk (draws + steps x step + logs x measurement).
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
from bench import matmul_peak, workloads

from jaxprune.config import PARAMS_FIELDS, Params
from jaxprune.data import draw_sample, num_noise_rows
from jaxprune.dense import gd_step
from jaxprune.metrics import measure
from jaxprune.state import TEST_STREAM, TRAIN_STREAM, init_state


def timed(fn, *args, repeats: int = 7) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", default="W2")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    work = next(w for w in workloads(args.smoke) if w.name.startswith(args.workload))
    config = work.config
    name, values = next(iter(work.grid.items()))
    points = Params(**{
        k: jnp.asarray(values if k == name else [getattr(work.base, k)] * len(values), jnp.float32)
        for k in PARAMS_FIELDS
    })  # fmt: skip
    key = jax.random.key(0)

    @jax.jit
    def draws(key):
        train = draw_sample(config, jax.random.fold_in(key, TRAIN_STREAM), config.n_train)
        return train, draw_sample(config, jax.random.fold_in(key, TEST_STREAM), config.n_test)

    train, test = draws(key)
    states = jax.jit(jax.vmap(lambda p: init_state(config, p, key, train)))(points)
    one_step = jax.vmap(lambda p, s: gd_step(config, p, train, s))
    logs = jax.jit(jax.vmap(lambda p, s: measure(config, p, s, train, test)))

    @jax.jit
    def steps(points, states):
        """config.steps GD steps of all points in one loop (no dispatch per step)."""
        return jax.lax.fori_loop(0, config.steps, lambda _, s: one_step(points, s), states)

    z = train.z.reshape(-1, config.dim)
    w = states.weights.reshape(-1, config.dim)

    @jax.jit
    def products(w):
        """The step's two matrix products alone, config.steps times in one loop."""

        def body(_, w):
            pre = z @ w.T  # (n Q, R K m)
            return w - 1e-6 * (pre.T @ z)  # (R K m, d)

        return jax.lax.fori_loop(0, config.steps, body, w)

    parts = {
        "draw the seed's data": timed(draws, key),
        "one GD step, all points": timed(steps, points, states) / config.steps,
        "one measurement, all points": timed(logs, points, states),
        "bare products of a step": timed(products, w) / config.steps,
    }
    num_logs = len(config.logged_steps())
    chunk = (parts["draw the seed's data"] + config.steps * parts["one GD step, all points"]
             + num_logs * parts["one measurement, all points"])  # fmt: skip
    peak = matmul_peak(256 if args.smoke else 2048)
    flops = 2 * 2 * z.shape[0] * config.dim * w.shape[0]
    print(f"{work.name}: {len(values)} points per seed, n Q = {z.shape[0]} noise rows "
          f"(Q = {num_noise_rows(config)}), {w.shape[0]} filters, d = {config.dim}")  # fmt: skip
    print(f"matmul peak {peak / 1e9:.1f} GFLOP/s; the bare products of a step run at "
          f"{flops / parts['bare products of a step'] / 1e9:.1f} GFLOP/s")  # fmt: skip
    print("| part | ms | count per seed | share of the chunk |\n|---|---|---|---|")
    counts = dict(zip(parts, [1, config.steps, num_logs, config.steps], strict=True))
    for part, seconds in parts.items():
        share = counts[part] * seconds / chunk
        print(f"| {part} | {1e3 * seconds:.3f} | {counts[part]} | {100 * share:.0f}% |")


if __name__ == "__main__":
    main()
