"""Speed of jaxprune on two reference workloads, as ratios measured in one run, and on the
Kou et al. grid over dimensions (shape buckets).

    python benchmarks/bench.py [--smoke] [--no-torch] [--json PATH] [--only W1|W2|Kou]
                               [--kou-dims N] [--precision NAME]

W1, paper-scale runs: K = 2, P = 2, d = 1000, m = 50, n = 100, n_test = 1000, 1000 GD steps,
96 runs (12 pruning fractions x 8 seeds). W2, one cell of Kou et al.'s grid: the kou2023 preset
at d = 600, 400 runs (40 signal strengths x 10 seeds). For each: runs per second of the vmapped
sweep (median of repeats, compiled), its achieved model FLOP/s (dense equivalent, counted
analytically) as a fraction of this machine's fp32 matrix-multiply peak measured here, the
speed-up against a per-run loop of the same jitted single-run function and against an idiomatic
PyTorch eager loop of the same model (if torch is installed: `pip install -e ".[bench]"`),
compile time and peak memory; W2's memory traffic (counted analytically: every step reads
each run's weights and mask and writes its weights, and reads the seed's noise rows once) as a
fraction of this device's copy bandwidth measured here (x -> x + 1 on 1 GiB, read + write).

Kou: `sweeps/kou2023_heatmap.py`'s grid (the kou2023 preset, 100 signal strengths x 10 seeds)
on N of its 100 dimensions (every (100 / N)-th; `--kou-dims 100` is the full 100,000-run grid),
from a cold start: compilations and their seconds (counted by a `jax.monitoring` listener on
backend compilations), wall seconds end to end, run seconds (the same sweep again, compiled),
runs/s, and the full grid projected from the subset (run seconds scaled by the padded work,
sum over buckets of the bucket's dim x its runs; compilations as the full grid's buckets).
`--precision` sets Config.matmul_precision of every workload. `--smoke` runs tiny sizes (CI).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import jaxprune
from jaxprune import chunking, runner
from jaxprune.config import PARAMS_FIELDS, SHAPE_FIELDS, Dims
from jaxprune.grid import shape_buckets
from jaxprune.training import make_run

KOU_DIMS = list(range(100, 1100, 10))
KOU_MUS = np.round(np.arange(0, 10, 0.1), 1).tolist()
BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"
_COMPILES: list[tuple[str, float]] = []  # (function, seconds) of every backend compilation
jax.monitoring.register_event_duration_secs_listener(
    lambda event, seconds, fun_name="", **_: (
        _COMPILES.append((fun_name, seconds)) if event == BACKEND_COMPILE else None
    )
)


@dataclasses.dataclass(frozen=True)
class Workload:
    name: str
    config: jaxprune.Config
    base: jaxprune.Params
    grid: dict
    seeds: int
    loop_runs: int  # runs timed in the per-run loops (extrapolated per run)

    @property
    def runs(self) -> int:
        return self.seeds * int(np.prod([len(v) for v in self.grid.values()]))


def workloads(smoke: bool) -> list[Workload]:
    w1 = jaxprune.Config(
        num_classes=2, num_patches=2, dim=1000, width=50, n_train=100, n_test=1000,
        steps=1000, log_every=1000, engine="dense",
    )  # fmt: skip
    p = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99]
    kou, kou_params = jaxprune.presets.kou2023(dim=600)
    kou = kou.replace(engine="dense")  # these figures are the dense engine's: see gram.py
    mus = [round(0.25 * i, 2) for i in range(40)]
    if smoke:
        return [
            Workload("W1-smoke", w1.replace(dim=100, n_test=100, steps=20, log_every=20),
                     jaxprune.Params(), {"prune_frac": p[:3]}, 2, 2),
            Workload("W2-smoke", kou.replace(dim=60, n_test=100, steps=10, log_every=10),
                     kou_params, {"mu_norm": mus[:4]}, 2, 2),
        ]  # fmt: skip
    return [
        Workload("W1", w1, jaxprune.Params(), {"prune_frac": p}, 8, 6),
        Workload("W2", kou, kou_params, {"mu_norm": mus}, 10, 40),
    ]


def model_flops(config: jaxprune.Config) -> float:
    """Dense-equivalent FLOPs of one run: every GD step is a forward product of the n P inputs
    with the K m filters (2 n P d K m) and the weight gradient (as many); every measurement a
    forward pass over the training and test sets."""
    k, p, d, m = config.num_classes, config.num_patches, config.dim, config.width
    product = 2 * p * d * k * m  # per sample
    steps = config.steps * 2 * config.n_train * product
    logs = len(config.logged_steps()) * (config.n_train + config.n_test) * product
    return float(steps + logs)


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_peak(size: int) -> float:
    """Median fp32 FLOP/s of one jitted size x size matrix product on the default device."""
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    return 2 * size**3 / median_time(lambda: f(a).block_until_ready(), 7)


def sweep_figures(work: Workload, repeats: int) -> dict:
    """Compile time, median warm wall time and XLA's peak memory of the vmapped sweep."""
    runner.clear_compiled()
    args = (work.config, work.grid, work.seeds)

    def go():
        jaxprune.sweep(*args, base=work.base, progress=False)

    first = median_time(go, 1)
    warm = median_time(go, repeats)
    num_points = int(np.prod([len(v) for v in work.grid.values()]))
    shape = chunking.choose_chunk_shape(work.config, num_points, work.seeds)
    points = jaxprune.Params(**{k: np.zeros(shape.points, np.float32) for k in PARAMS_FIELDS})
    seeds = np.zeros(shape.padded_seeds, np.int32)
    dims = Dims(**{k: np.full(shape.points, getattr(work.config, k), np.int32)
                   for k in SHAPE_FIELDS})  # fmt: skip
    lowered = runner.compiled_chunk(work.config).lower(points, dims, seeds)
    start = time.perf_counter()
    memory = lowered.compile().memory_analysis()
    compile_s = time.perf_counter() - start
    peak = memory.temp_size_in_bytes + memory.argument_size_in_bytes + memory.output_size_in_bytes
    return {"sweep_s": warm, "first_call_s": first, "compile_s": compile_s,
            "xla_peak_mib": peak / 2**20, "chunk_shape": [shape.points, shape.seeds]}  # fmt: skip


def jax_loop_per_run(work: Workload) -> float:
    """Seconds per run of a Python loop over runs of the jitted single-run function."""
    run = jax.jit(make_run(work.config))
    values = next(iter(work.grid.values()))
    name = next(iter(work.grid))
    params = [work.base.replace(**{name: v}) for v in values]
    jax.block_until_ready(run(params[0], 0))  # compile

    def loop():
        for i in range(work.loop_runs):
            jax.block_until_ready(run(params[i % len(params)], i // len(params)))

    return median_time(loop, 3) / work.loop_runs


def torch_loop_per_run(work: Workload) -> float | None:
    """Seconds per run of an idiomatic PyTorch eager loop of the same model (None without
    torch): per run, sample data, draw the init and mask, then `steps` masked GD steps with
    autograd, and the measurements."""
    try:
        import torch
    except ImportError:
        return None
    c = work.config
    values = next(iter(work.grid.values()))
    name = next(iter(work.grid))

    def one_run(seed: int, params: jaxprune.Params) -> None:
        gen = torch.Generator().manual_seed(seed)

        def data(n):
            y = torch.randint(0, c.num_classes, (n,), generator=gen)
            x = params.sigma_noise * torch.randn(n, c.num_patches, c.dim, generator=gen)
            sign = 1.0 if c.signal == "orthogonal" else (2.0 * y - 1.0)
            coord = y if c.signal == "orthogonal" else torch.zeros_like(y)
            x[:, 0, :] = 0.0
            x[torch.arange(n), 0, coord] = params.mu_norm * sign
            return x, y

        x, y = data(c.n_train)
        x_test, y_test = data(c.n_test)
        shape = (c.num_classes, c.width, c.dim)
        if c.init == "normal":
            w = params.sigma_init * torch.randn(*shape, generator=gen)
            b = torch.zeros(shape[:2])
        else:
            bound = c.dim**-0.5
            w = (torch.rand(*shape, generator=gen) * 2 - 1) * bound
            b = (torch.rand(*shape[:2], generator=gen) * 2 - 1) * bound
        mask = (torch.rand(*shape, generator=gen) >= params.prune_frac).float()
        w = (w * mask).requires_grad_()
        b = b.requires_grad_(c.bias)

        def logits(x):
            pre = torch.einsum("npd,kmd->npkm", x, w * mask)
            if c.bias:
                pre = pre + b
            act = torch.relu(pre)
            act = act.sum(1) if c.patch_reduce == "sum" else act.mean(1)
            out = act.sum(-1)
            return out / c.width if c.output_scale == "mean" else out

        for _ in range(c.steps):
            loss = torch.nn.functional.cross_entropy(logits(x), y)
            grads = torch.autograd.grad(loss, [w, b] if c.bias else [w])
            with torch.no_grad():
                w -= params.lr * grads[0] * mask
                if c.bias:
                    b -= params.lr * grads[1]
        with torch.no_grad():
            (logits(x).argmax(-1) == y).float().mean().item()
            (logits(x_test).argmax(-1) == y_test).float().mean().item()

    points = [work.base.replace(**{name: float(v)}) for v in values]
    one_run(0, points[0])  # warm up

    def loop():
        for i in range(work.loop_runs):
            one_run(i, points[i % len(points)])

    return median_time(loop, 3) / work.loop_runs


def copy_bandwidth(size_bytes: int) -> float:
    """Bytes per second moved by x -> x + 1 on a float32 array of `size_bytes` on the default
    device (one read and one write of every byte), median of 7 compiled calls."""
    x = jnp.zeros(size_bytes // 4, jnp.float32)
    f = jax.jit(lambda x: x + 1)
    f(x).block_until_ready()
    return 2 * size_bytes / median_time(lambda: f(x).block_until_ready(), 7)


def model_bytes(config: jaxprune.Config, runs: int, seeds: int) -> float:
    """The least memory traffic of `runs` runs of `seeds` seeds (analytic): every GD step reads
    each run's weights and mask and writes its weights (3 K m d floats), and reads its seed's
    training noise rows (n Q d); every measurement reads the weights and the seed's training
    and test noise rows."""
    k, d, m = config.num_classes, config.dim, config.width
    rows = jaxprune.data.num_noise_rows(config) * d
    steps = config.steps * (runs * 3 * k * m * d + seeds * config.n_train * rows)
    logs = len(config.logged_steps()) * (
        runs * k * m * d + seeds * (config.n_train + config.n_test) * rows
    )
    return 4.0 * (steps + logs)


def padded_work(dims: list[int]) -> int:
    """Sum over the automatic buckets of `dims` of the bucket's dim times its number of dims."""
    return sum(max(bucket) * len(bucket) for bucket in shape_buckets(dims))


def kou_grid(num_dims: int, seeds: int, smoke: bool, precision: str) -> dict:
    """The Kou et al. grid on `num_dims` of its dimensions, cold (compilations counted), then
    warm; with the full grid projected from it."""
    config, params = jaxprune.presets.kou2023()
    config = config.replace(matmul_precision=precision)
    full = KOU_DIMS
    mus = KOU_MUS
    if smoke:
        config = config.replace(n_test=100, steps=10, log_every=10)
        full, mus = [100, 110, 120, 200, 300], KOU_MUS[:4]
    dims = full[:: max(1, len(full) // num_dims)][:num_dims]
    grid = {"dim": dims, "mu_norm": mus}
    runner.clear_compiled()
    before = len(_COMPILES)
    start = time.perf_counter()
    jaxprune.sweep(config, grid, seeds, base=params, progress=False)
    wall = time.perf_counter() - start
    compiles = [seconds for name, seconds in _COMPILES[before:] if name in runner.CHUNK_FUNCTIONS]
    run_s = median_time(lambda: jaxprune.sweep(config, grid, seeds, base=params,
                                               progress=False), 1)  # fmt: skip
    runs = len(dims) * len(mus) * seeds
    full_runs = len(full) * len(mus) * seeds
    projected_run_s = run_s * padded_work(full) / padded_work(dims)  # same mus and seeds
    buckets = len(shape_buckets(full))
    compile_each = float(np.median(compiles)) if compiles else 0.0
    return {
        "workload": f"Kou-{len(dims)}d",
        "dims": dims,
        "runs": runs,
        "buckets": len(shape_buckets(dims)),
        "compilations": len(compiles),
        "compile_s": float(sum(compiles)),
        "wall_s": wall,
        "run_s": run_s,
        "runs_per_s": runs / run_s,
        "full_runs": full_runs,
        "full_buckets": buckets,
        "projected_full_run_s": projected_run_s,
        # the first bucket's compilation is not overlapped; the others run beside the chunks
        "projected_full_wall_s": projected_run_s + compile_each,
        "projected_full_wall_upper_s": projected_run_s + buckets * compile_each,
        "matmul_precision": precision,
    }


def measure(work: Workload, peak: float, repeats: int, with_torch: bool) -> dict:
    sweep = sweep_figures(work, repeats)
    per_run_jax = jax_loop_per_run(work)
    per_run_torch = torch_loop_per_run(work) if with_torch else None
    sweep_per_run = sweep["sweep_s"] / work.runs
    flops = model_flops(work.config) * work.runs / sweep["sweep_s"]
    return {
        "workload": work.name,
        "runs": work.runs,
        "runs_per_s": work.runs / sweep["sweep_s"],
        "model_gflops": flops / 1e9,
        "fraction_of_peak": flops / peak,
        "speedup_vs_jax_loop": per_run_jax / sweep_per_run,
        "speedup_vs_torch_loop": None if per_run_torch is None else per_run_torch / sweep_per_run,
        "jax_loop_runs_per_s": 1 / per_run_jax,
        "torch_loop_runs_per_s": None if per_run_torch is None else 1 / per_run_torch,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "memory_gbytes_per_s": model_bytes(work.config, work.runs, work.seeds)
        / sweep["sweep_s"]
        / 1e9,
        **sweep,
    }


def environment() -> dict:
    device = jax.devices()[0]
    return {"jax": jax.__version__, "backend": jax.default_backend(),
            "device": device.device_kind, "device_count": jax.device_count(),
            "machine": platform.machine(), "python": platform.python_version()}  # fmt: skip


def table(rows: list[dict], peak: float, bandwidth: float) -> str:
    def fmt(value, spec):
        return "n/a" if value is None else format(value, spec)

    lines = [
        f"fp32 matmul peak: {peak / 1e9:.1f} GFLOP/s; copy bandwidth: {bandwidth / 1e9:.1f} GB/s",
        "| workload | runs | runs/s | model GFLOP/s | of peak | memory GB/s | of copy bandwidth "
        "| vs JAX loop | vs PyTorch loop | compile s | XLA peak MiB | process peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    kou = []
    for r in rows:
        if r["workload"].startswith("Kou"):
            kou.append(r)
            continue
        lines.append(
            f"| {r['workload']} | {r['runs']} | {r['runs_per_s']:.1f} | {r['model_gflops']:.1f} "
            f"| {100 * r['fraction_of_peak']:.0f}% | {r['memory_gbytes_per_s']:.1f} "
            f"| {100 * r['memory_gbytes_per_s'] * 1e9 / bandwidth:.0f}% "
            f"| {r['speedup_vs_jax_loop']:.1f}x "
            f"| {fmt(r['speedup_vs_torch_loop'], '.0f')}x | {r['compile_s']:.2f} "
            f"| {r['xla_peak_mib']:.0f} | {r['peak_rss_mib']:.0f} |"
        )
    if kou:
        lines += [
            "",
            "| workload | runs | buckets | compilations | compile s | wall s | run s | runs/s "
            "| full grid: runs | buckets | run s (projected) | wall s (projected) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in kou:
            lines.append(
                f"| {r['workload']} ({r['matmul_precision']}) | {r['runs']} | {r['buckets']} "
                f"| {r['compilations']} | {r['compile_s']:.1f} | {r['wall_s']:.1f} "
                f"| {r['run_s']:.1f} | {r['runs_per_s']:.0f} | {r['full_runs']} "
                f"| {r['full_buckets']} | {r['projected_full_run_s']:.1f} "
                f"| {r['projected_full_wall_s']:.1f} to {r['projected_full_wall_upper_s']:.1f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for CI")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch loop")
    parser.add_argument("--only", help="workloads by name, comma-separated (W1, W2, Kou)")
    parser.add_argument("--json", default=None, help="output file (default results/bench.json)")
    parser.add_argument(
        "--kou-dims",
        type=int,
        default=10,
        help="dimensions of the Kou grid to run (of 100; 100 = the full grid)",
    )
    parser.add_argument("--kou-seeds", type=int, default=10, help="seeds of the Kou grid")
    parser.add_argument(
        "--precision",
        default="float32",
        help="Config.matmul_precision: float32, tensorfloat32 or bfloat16",
    )
    args = parser.parse_args()
    peak = matmul_peak(256 if args.smoke else 2048)
    gpu = jax.default_backend() != "cpu"
    bandwidth = copy_bandwidth(2**30 if gpu else 2**26)
    only = args.only.split(",") if args.only else ["W1", "W2", "Kou"]
    rows = []
    for work in workloads(args.smoke):
        if not any(work.name.startswith(name) for name in only):
            continue
        work = dataclasses.replace(
            work, config=work.config.replace(matmul_precision=args.precision)
        )
        print(f"[bench] {work.name}: {work.runs} runs ...", file=sys.stderr, flush=True)
        rows.append(measure(work, peak, 1 if args.smoke else 2, not args.no_torch))
    if "Kou" in only:
        num_dims, seeds = (3, 2) if args.smoke else (args.kou_dims, args.kou_seeds)
        print(f"[bench] Kou grid: {num_dims} dimensions ...", file=sys.stderr, flush=True)
        rows.append(kou_grid(num_dims, seeds, args.smoke, args.precision))
    print(table(rows, peak, bandwidth))
    out = Path(args.json or ("results/bench-smoke.json" if args.smoke else "results/bench.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"matmul_peak_flops": peak, "copy_bytes_per_s": bandwidth,
                               "environment": environment(), "workloads": rows},
                              indent=1))  # fmt: skip
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
