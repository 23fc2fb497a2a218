"""The `jaxprune` command: `sweep`, `plot` and `info`."""

from __future__ import annotations

import argparse
import json
import runpy
import shlex
import sys
from pathlib import Path


def _info(_args) -> None:
    import jax

    from jaxprune.results import environment

    for key, value in environment().items():
        print(f"{key}: {value}")
    for device in jax.devices():
        print(f"device: {device}")


def _plot(args) -> None:
    from jaxprune.plot import save_phase_diagram
    from jaxprune.results import load

    out = Path(args.out or Path(args.results).with_suffix("").as_posix() + f"-{args.value}.png")
    save_phase_diagram(load(args.results), out, x=args.x, y=args.y, value=args.value)
    print(f"wrote {out}")


def spec_sweep(spec: dict, args) -> None:
    """Run a sweep described by a JSON specification:
    {"preset": "yang2023", "config": {...}, "params": {...}, "grid": {...}, "seeds": 8}."""
    from jaxprune import presets
    from jaxprune.config import Config, Params
    from jaxprune.runner import sweep

    unknown = set(spec) - {"preset", "config", "params", "grid", "seeds"}
    if unknown:
        raise ValueError(
            f"sweep specification has unknown keys {sorted(unknown)}: allowed are "
            f"preset, config, params, grid, seeds."
        )
    if "preset" in spec:
        name = spec["preset"]
        if name not in ("yang2023", "kou2023"):
            raise ValueError(f"preset = {name!r} is invalid: must be 'yang2023' or 'kou2023'.")
        config, params = getattr(presets, name)()
    else:
        config, params = Config(), Params()
    config = config.replace(**spec.get("config", {}))
    params = params.replace(**spec.get("params", {}))
    seeds = args.seeds if args.seeds is not None else spec.get("seeds", 8)
    if args.out is None:
        raise ValueError("--out is required for a sweep specification.")
    sweep(
        config,
        spec.get("grid", {}),
        seeds,
        base=params,
        out=args.out,
        chunk_size=args.chunk_size,
        memory_budget_gb=args.memory_budget,
        overwrite=args.overwrite,
        collect=False,  # results stream to --out; memory stays bounded whatever the size
    )
    print(f"sweep complete in {args.out}")


def _sweep(args) -> None:
    target = Path(args.target)
    if not target.is_file():
        raise FileNotFoundError(f"no sweep script or specification at {target}")
    if target.suffix == ".json":
        if args.rest:
            raise ValueError(f"unrecognized arguments for a specification: {' '.join(args.rest)}")
        spec_sweep(json.loads(target.read_text()), args)
        return
    # A sweep script: run it as `python SCRIPT ARGS...` with the options passed through.
    argv = [str(target), *args.rest]
    for flag, value in (
        ("--out", args.out),
        ("--seeds", args.seeds),
        ("--chunk-size", args.chunk_size),
        ("--memory-budget", args.memory_budget),
    ):
        if value is not None:
            argv += [flag, str(value)]
    if args.overwrite:
        argv.append("--overwrite")
    sys.argv = argv
    runpy.run_path(str(target), run_name="__main__")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="jaxprune", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p_sweep = sub.add_parser(
        "sweep", help="run a sweep script (.py, further arguments go to it) or a JSON specification"
    )
    p_sweep.add_argument("target", help="sweeps/NAME.py, or a JSON sweep specification")
    p_sweep.add_argument("--out", help="output directory of chunk files")
    p_sweep.add_argument("--seeds", type=int, help="number of seeds")
    p_sweep.add_argument("--chunk-size", type=int, help="runs per compiled call")
    p_sweep.add_argument("--memory-budget", type=float, help="GiB a chunk may use")
    p_sweep.add_argument(
        "--overwrite", action="store_true", help="replace a different sweep at --out"
    )
    p_sweep.set_defaults(func=_sweep)

    p_plot = sub.add_parser("plot", help="draw a phase diagram from a sweep's output")
    p_plot.add_argument("results", help="a sweep's output directory or parquet file")
    p_plot.add_argument("--x", default="prune_frac")
    p_plot.add_argument("--y", default="mu_norm")
    p_plot.add_argument("--value", default="test_acc")
    p_plot.add_argument("--out", help="image file (default: next to the results)")
    p_plot.set_defaults(func=_plot)

    p_info = sub.add_parser("info", help="package, JAX and jaxlib versions, backend and devices")
    p_info.set_defaults(func=_info)

    args, rest = parser.parse_known_args(argv)
    if rest and args.command != "sweep":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.rest = rest  # a sweep script's own arguments, such as --quick
    command = shlex.join(["jaxprune", *(sys.argv[1:] if argv is None else argv)])
    try:
        args.func(args)
    except (ValueError, FileNotFoundError) as error:  # bad input: one clear line, no traceback
        parser.exit(2, f"jaxprune {args.command}: error: {error}\n")
    except KeyboardInterrupt as stopped:  # Ctrl-C: what is saved and how to resume, one line
        from jaxprune.results import SweepInterrupted

        if isinstance(stopped, SweepInterrupted):
            stopped.exit(command, prefix=f"jaxprune {args.command}: ")
        parser.exit(130, f"jaxprune {args.command}: interrupted\n")


if __name__ == "__main__":
    main()
