"""The Gram engine against the dense one: the theorem-regime workload W3 and a scan over d.

    python benchmarks/gram.py [--smoke] [--full] [--json PATH] [--plot PATH]
    python benchmarks/gram.py --stream 1e6 [--stream-runs 8]

W3: K = 2, P = 2, n = 50, m = 20, d = 20,000, n_test = 1000, 1000 GD steps (measured at steps 0
and 1000), 12 pruning fractions x 4 seeds, as `jaxprune.sweep` runs it (compiled first, then
timed). 'gram' runs whole; 'dense' runs whole with --full (do that on an accelerator), else at
SHORT and 3 SHORT steps, scaled to 1000 steps by its per-step time (a 1000-step dense W3 takes
over 5 minutes on a shared 2-core CPU).

Scan over d (1e3 ... 1e5, W3 otherwise, 4 pruning fractions x 1 seed): for the runs of one
seed, one compiled function per engine and d runs the engine's initialization (the Gram engine
forms its matrices there), L measurements and S steps with L and S as arguments, so one
compilation times init, a measurement and a step apart (medians). Time per run of W3 =
(init + 2 measurements + 1000 steps) / runs. Prints a table with the cost model's prediction
(`jaxprune.engines.costs`), saves a log-log plot of time per run against d.

--stream D: only the Gram engine's constants and one measurement at d = D in the
regime_boundary setting, with the runs' initial filters and mask streamed from the seed's draws
against held per run (`stream_figures`).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from unittest import mock

import jax
import jax.numpy as jnp
import pandas as pd
from bench import median_time  # benchmarks/ is this script's directory, as for profile.py

import jaxprune
from jaxprune import engines, gram
from jaxprune.config import PARAMS_FIELDS, Dims, Params
from jaxprune.data import draw_sample
from jaxprune.evaluation import draw_test
from jaxprune.metrics import measure
from jaxprune.state import TEST_STREAM, TRAIN_STREAM
from jaxprune.training import engine_products

PRUNE = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99]
SHORT = 20


def w3(dim: int = 20_000, **changes) -> jaxprune.Config:
    return jaxprune.Config(
        num_classes=2, num_patches=2, dim=dim, width=20, n_train=50, n_test=1000, steps=1000,
        log_every=1000,
    ).replace(**changes)  # fmt: skip


def sweep_time(config: jaxprune.Config, prune: list[float], seeds: int, repeats: int) -> float:
    """Median wall time of the compiled sweep (a first call compiles)."""

    def go():
        jaxprune.sweep(config, {"prune_frac": prune}, seeds, progress=False)

    go()
    return median_time(go, repeats)


def w3_figures(smoke: bool, full: bool, repeats: int) -> dict:
    """W3's wall time by each engine, measured in this run, and the ratio."""
    config = w3(dim=2000, n_test=100) if smoke else w3()
    prune, seeds = (PRUNE[:3], 1) if smoke else (PRUNE, 4)
    gram_s = sweep_time(config.replace(engine="gram"), prune, seeds, repeats)
    dense = config.replace(engine="dense")
    if full:
        dense_s, how = sweep_time(dense, prune, seeds, repeats), "run whole"
    else:
        short = SHORT // 4 if smoke else SHORT
        one = sweep_time(dense.replace(steps=short, log_every=short), prune, seeds, repeats)
        three = sweep_time(dense.replace(steps=3 * short, log_every=3 * short), prune, seeds, 1)
        per_step = (three - one) / (2 * short)
        dense_s = one + (config.steps - short) * per_step
        how = f"timed at {short} and {3 * short} steps, scaled to {config.steps} by steps"
    costs = engines.costs(config)
    return {
        "runs": len(prune) * seeds,
        "gram_s": gram_s,
        "dense_s": dense_s,
        "dense_how": how,
        "measured_ratio": dense_s / gram_s,
        "model_ratio": costs["dense"].seconds / costs["gram"].seconds,
        "auto": engines.resolve(config).name,
    }


def choice_figures(smoke: bool, repeats: int) -> pd.DataFrame:
    """Does 'auto' pick the faster engine? Both engines' sweep times on the Kou et al. cell
    (the kou2023 preset at d = 600, 40 signal strengths x 10 seeds) and on a formation-heavy
    Config (many samples, few steps), with the cost model's pick."""
    kou, kou_params = jaxprune.presets.kou2023(dim=600)
    heavy = w3(dim=1000, n_train=200, num_patches=3, steps=10, log_every=10, n_test=200)
    cases = [
        ("Kou cell", kou, kou_params, {"mu_norm": [0.25 * i for i in range(40)]}, 10),
        ("n=200, P=3, 10 steps", heavy, Params(), {"prune_frac": PRUNE[:4]}, 2),
    ]
    if smoke:
        cases = [(n, c.replace(n_test=50), p, {k: v[:2] for k, v in g.items()}, 1)
                 for n, c, p, g, _ in cases]  # fmt: skip
    rows = []
    for name, config, base, grid, seeds in cases:
        times = {}
        for eng in ("dense", "gram"):
            args = (config.replace(engine=eng), grid, seeds)
            kwargs = {"base": base, "progress": False}
            jaxprune.sweep(*args, **kwargs)  # compile
            times[eng] = median_time(lambda a=args, k=kwargs: jaxprune.sweep(*a, **k), repeats)
        faster = min(times, key=times.get)
        rows.append({"config": name, "dense_s": times["dense"], "gram_s": times["gram"],
                     "faster": faster, "auto": engines.resolve(config).name})  # fmt: skip
    return pd.DataFrame(rows)


def parts_function(config: jaxprune.Config, name: str):
    """jit(points, seed, logs, steps) -> a checksum: the engine's init, `logs` measurements of
    the seed's runs (as the training loop takes them: `training.engine_products`, then
    `measure`; the test set as `config.test_eval` draws it), `steps` steps (both counts
    traced: one compilation)."""
    make = engines.ENGINES[name].make

    @jax.jit
    def parts(points: Params, seed: jax.Array, logs: jax.Array, steps: jax.Array) -> jax.Array:
        key = jax.random.key(seed)
        train = draw_sample(config, jax.random.fold_in(key, TRAIN_STREAM), config.n_train)
        test = draw_test(config, jax.random.fold_in(key, TEST_STREAM), config.n_test)
        dims = jax.tree.map(lambda v: jnp.full(points.lr.shape, v), Dims.of(config))
        eng = make(config, key, train, points, dims)

        def log(i, total):
            # (the state made to depend on i, so that the compiler cannot hoist the
            # measurement out of the loop)
            states = jax.tree.map(
                lambda v: v + 1e-30 * i if jnp.issubdtype(v.dtype, jnp.floating) else v,
                eng.initial,
            )
            products = engine_products(config, eng, states, train, test)
            metrics = jax.vmap(lambda p, s, pr: measure(config, p, s, train, test, None, pr))(
                points, states, products
            )
            return total + metrics.test_loss.sum() * (i + 1)

        total = jax.lax.fori_loop(0, logs, log, jnp.zeros(()))
        states = jax.lax.fori_loop(0, steps, lambda t, s: eng.step(s, None), eng.initial)
        leaves = jax.tree.leaves(jax.tree.map(jnp.sum, states))
        return total + sum(leaf.sum().astype(jnp.float32) for leaf in leaves)

    return parts


def stream_figures(dim: int, runs: int, repeats: int) -> list[dict]:
    """The Gram engine's constants (init) and one measurement of `runs` runs of one seed at
    d = dim in the regime_boundary setting (K = 2, m = 40, n = 16, n_test = 1000 projected,
    Bernoulli masks of a normal init, p in {0, 0.1, 0.3, 0.5}), with each run's initial filters
    and mask streamed from the seed's draws (`gram.streams`) and held per run (medians)."""
    config = jaxprune.Config(
        dim=dim, width=40, n_train=16, n_test=1000, steps=1, log_every=1, engine="gram",
        test_eval="projected",
    )  # fmt: skip
    prune = [0.0, 0.1, 0.3, 0.5] * (runs // 4) + [0.0] * (runs % 4)
    points = Params(**{
        k: jnp.asarray(prune if k == "prune_frac" else [getattr(Params(), k)] * runs, jnp.float32)
        for k in PARAMS_FIELDS
    })  # fmt: skip
    rows, streams = [], gram.streams
    for streamed in (True, False):
        with mock.patch.object(gram, "streams", lambda c, s=streamed: s and streams(c)):
            parts = parts_function(config, "gram")
            jax.block_until_ready(parts(points, 0, 1, 0))  # compiles

            def timed(logs: int, parts=parts) -> float:
                call = lambda: jax.block_until_ready(parts(points, 1, logs, 0))  # noqa: E731
                return median_time(call, repeats)

            init, with_log = timed(0), timed(1)
        rows.append({
            "d": dim, "runs": runs, "filters": "streamed" if streamed else "held",
            "init_s": init, "measurement_s": with_log - init, "init_plus_one_s": with_log,
        })  # fmt: skip
    return rows


def scan_row(dim: int, name: str, runs: int, repeats: int, probe: int, n_test: int) -> dict:
    """Init, measurement and step times of `name` at d = dim (`probe` steps timed)."""
    config = w3(dim=dim, n_test=n_test, test_eval="draw")
    points = Params(**{
        k: jnp.asarray(PRUNE[:runs] if k == "prune_frac" else [getattr(Params(), k)] * runs,
                       jnp.float32)
        for k in PARAMS_FIELDS
    })  # fmt: skip
    parts = parts_function(config.replace(engine=name), name)
    start = time.perf_counter()
    jax.block_until_ready(parts(points, 0, 1, 1))
    compile_s = time.perf_counter() - start

    def timed(logs: int, steps: int) -> float:
        return median_time(lambda: jax.block_until_ready(parts(points, 1, logs, steps)), repeats)

    base, with_log, with_steps = timed(0, 0), timed(1, 0), timed(0, probe)
    init, log, step = base, max(with_log - base, 0.0), max(with_steps - base, 0.0) / probe
    total = init + 2 * log + config.steps * step
    return {
        "d": dim,
        "engine": name,
        "init_ms_per_run": 1e3 * init / runs,
        "log_ms_per_run": 1e3 * log / runs,
        "step_us_per_run": 1e6 * step / runs,
        "w3_s_per_run": total / runs,
        "model_s_per_run": engines.costs(config)[name].seconds,
        "compile_s": compile_s,
    }


def plot(frame: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import seaborn as sns

    grid = sns.relplot(
        data=frame, x="d", y="w3_s_per_run", hue="engine", kind="line", marker="o", height=3.5
    )
    grid.set(xscale="log", yscale="log", xlabel="d", ylabel="seconds per run (W3: 1000 steps)")
    grid.figure.suptitle(f"Gram vs dense engine ({jax.devices()[0].device_kind})", y=1.02)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.savefig(path, dpi=120, bbox_inches="tight")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (CI)")
    parser.add_argument("--full", action="store_true", help="run dense W3 whole (accelerator)")
    parser.add_argument("--json", default="results/gram_bench.json")
    parser.add_argument("--plot", default="results/gram_d_scan.png")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--stream", type=float, default=None, metavar="D",
        help="only the streamed-against-held figure of the Gram engine at d = D",
    )  # fmt: skip
    parser.add_argument("--stream-runs", type=int, default=8)
    args = parser.parse_args()
    device = jax.devices()[0]
    print(f"# {platform.processor() or platform.machine()}, {device.platform}: "
          f"{device.device_kind}, JAX {jax.__version__}")  # fmt: skip
    if args.stream:
        rows = stream_figures(int(args.stream), args.stream_runs, args.repeats)
        frame = pd.DataFrame(rows)
        print(f"\nThe Gram engine's constants and one measurement, {args.stream_runs} runs of "
              "one seed (K = 2, m = 40, n = 16, n_test = 1000 projected), s, medians:")  # fmt: skip
        print(frame.to_markdown(index=False, floatfmt=".3g"))
        held, streamed = (frame.set_index("filters").loc[k, "init_plus_one_s"]
                          for k in ("held", "streamed"))  # fmt: skip
        print(f"held / streamed: {held / streamed:.2f}x")
        return

    figures = w3_figures(args.smoke, args.full, args.repeats)
    print("\nW3 (K=2, P=2, n=50, m=20, d=20,000, n_test=1000, 1000 GD steps, "
          f"{figures['runs']} runs; dense {figures['dense_how']}):")  # fmt: skip
    print(
        pd.DataFrame([figures]).drop(columns="dense_how").to_markdown(index=False, floatfmt=".3g")
    )

    choice = choice_figures(args.smoke, args.repeats)
    print("\nDoes 'auto' pick the faster engine (sweep wall times)?")
    print(choice.to_markdown(index=False, floatfmt=".3g"))

    dims = [1000, 3000] if args.smoke else [1000, 3000, 10_000, 30_000, 100_000]
    runs, n_test = (2, 50) if args.smoke else (4, 1000)
    probes = {"gram": 50, "dense": 4} if args.smoke else {"gram": 400, "dense": 8}
    rows = [
        scan_row(d, name, runs, args.repeats, probes[name], n_test)
        for d in dims
        for name in ("gram", "dense")
    ]
    scan = pd.DataFrame(rows)
    wide = scan.pivot(index="d", columns="engine", values="w3_s_per_run")
    model = scan.pivot(index="d", columns="engine", values="model_s_per_run")
    ratios = pd.DataFrame({
        "measured dense/gram": wide["dense"] / wide["gram"],
        "model dense/gram": model["dense"] / model["gram"],
    })  # fmt: skip
    print(f"\nScan over d ({runs} runs of one seed; W3 time per run = init + 2 logs + 1000 "
          "steps):")  # fmt: skip
    print(scan.to_markdown(index=False, floatfmt=".3g"))
    print(ratios.reset_index().to_markdown(index=False, floatfmt=".3g"))
    plot(scan, Path(args.plot))
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"w3": figures, "choice": choice.to_dict("records"), "scan": rows}
    out.write_text(json.dumps({"device": device.device_kind, **record},
                              indent=1))  # fmt: skip
    print(f"\nwrote {out} and {args.plot}")


if __name__ == "__main__":
    main()
