"""The `jaxprune` command: `sweep`, `plot` and `info`.

Bad input ends the command with status 2 and one line, `jaxprune CMD: error: ...`, in the
command line's own names (`--overwrite`, not `overwrite=True`): the library's refusals carry
their field, value and the arguments they suggest (`config.InvalidValue`), which `error_line`
writes with the flags of SWEEP_FLAGS and PLOT_FLAGS.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import shlex
import sys
import warnings
from pathlib import Path
from typing import NoReturn

from jaxprune import __version__

SPEC_KEYS = ("preset", "config", "params", "grid", "derived", "seeds")
PRESETS = ("yang2023", "kou2023")

# The API names a command's refusals may use, and its flags (see `error_line`).
SWEEP_FLAGS = {
    "overwrite": "--overwrite",
    "memory_budget_gb": "--memory-budget",
    "chunk_size": "--chunk-size",
    "out": "--out",
}
PLOT_FLAGS = {
    "x": "--x",
    "y": "--y",
    "value": "--value",
    "facet": "--facet",
    "mean_over": "--mean-over",
    "contours": "--contours",
    "vmin": "--vmin",
    "vmax": "--vmax",
    "log1mp": "--log1mp",
    "partial": "--partial",
}


def _info(args) -> None:
    if args.directory:
        print(sweep_info(Path(args.directory)))
        return
    import jax

    from jaxprune.results import environment

    for key, value in environment().items():
        print(f"{key}: {value}")
    for device in jax.devices():
        print(f"device: {device}")


def sweep_info(folder: Path) -> str:
    """A sweep directory's provenance as lines: its size and what is there, the environment
    that computed it, and each invocation (version, commit, times, chunks written, outcome)."""
    from jaxprune import directory
    from jaxprune.directory import read_metadata

    recorded = directory.read_recorded(folder) if folder.is_dir() else None
    if recorded is None:
        raise FileNotFoundError(f"no sweep at {folder} (no {directory.SPEC_FILE})")
    files = directory.chunk_files(folder)
    present = sum(read_metadata(f).get("chunk", {}).get("runs", 0) for f in files)
    lines = [
        f"sweep {folder}: spec_hash {recorded['spec_hash']}, {present} of "
        f"{recorded.get('runs_total', '?')} runs in {len(files)} of "
        f"{recorded.get('chunks_total', '?')} chunks",
        f"computed with jax {recorded.get('jax_version')}, jaxlib "
        f"{recorded.get('jaxlib_version')}, backend {recorded.get('backend')} "
        f"({recorded.get('device_count')} x {recorded.get('device_kind')})",
    ]
    for number, run in enumerate(recorded.get("invocations", []), 1):
        commit = run.get("git_commit")
        code = f"commit {commit[:12]}{' (dirty)' * bool(run.get('git_dirty'))}" if commit else (
            "not from a git clone"
        )
        end = (
            f"finished {run['finished']}, {run['wall_s']:.1f} s, {run['chunks_written']} chunks "
            f"written, {run['status']}"
            if "finished" in run
            else "running or killed (no end recorded)"
        )
        lines.append(
            f"invocation {number}: jaxprune {run.get('jaxprune_version')}, {code}, started "
            f"{run.get('started')}, {end}"
        )
    return "\n".join(lines)


def dataset_directory(path: Path) -> Path | None:
    """The sweep directory (one that holds chunk files) that `path` lies in, at any depth, or
    None. A figure there would break `pandas.read_parquet` of that directory."""
    from jaxprune.results import chunk_files

    for folder in path.resolve().parents:
        if chunk_files(folder):
            return folder
    return None


def figure_path(paths: list[Path], args) -> Path:
    """The default figure of `jaxprune plot`: next to the (first) results (never inside a
    sweep directory), named by the results and every choice that changes the figure."""
    results = paths[0].resolve()
    if results.is_dir():
        folder, name = results.parent, results.name
    elif sweep_dir := dataset_directory(results):  # a chunk file: beside its sweep
        folder, name = sweep_dir.parent, f"{sweep_dir.name}-{results.stem}"
    else:
        folder, name = results.parent, results.stem
    name = "+".join([name, *(p.resolve().name for p in paths[1:])])
    choices = [name, args.value, args.x, args.y]
    if args.facet:
        choices += ["facet", args.facet]
    if args.mean_over:
        choices += ["mean", "+".join(args.mean_over)]
    for column, levels in args.contours.items():
        choices += ["contour", column, "_".join(f"{v:g}" for v in levels)]
    for option, bound in (("vmin", args.vmin), ("vmax", args.vmax)):
        if bound is not None:
            choices += [option, f"{bound:g}"]
    choices += ["log1mp"] * args.log1mp + ["partial"] * args.partial
    return folder / ("-".join(choices) + ".png")


def _contours(items: list[str]) -> dict[str, list[float]]:
    """--contours COLUMN=LEVEL[,LEVEL] (repeatable) as {column: levels}."""
    contours = {}
    for item in items:
        column, _, levels = item.partition("=")
        try:
            contours[column.strip()] = [float(v) for v in levels.split(",")]
        except ValueError:
            raise ValueError(
                f"--contours {item} is invalid: give COLUMN=LEVEL[,LEVEL...], "
                f"e.g. benign_score=1 or p_any_class_without_signal=0.1,0.5."
            ) from None
        if not column.strip():
            raise ValueError(f"--contours {item} is invalid: give COLUMN=LEVEL[,LEVEL...].")
    return contours


def _image_formats() -> set[str]:
    """The image file suffixes matplotlib writes (png, pdf, svg, ...)."""
    from matplotlib.backend_bases import FigureCanvasBase

    return set(FigureCanvasBase.get_supported_filetypes())


def _plot(args) -> None:
    from jaxprune.cells import as_fields
    from jaxprune.plot import save_phase_diagram
    from jaxprune.results import load

    args.mean_over = list(as_fields(args.mean_over))
    args.contours = _contours(args.contours)
    paths = [Path(p) for p in args.results]
    out = Path(args.out) if args.out else figure_path(paths, args)
    formats = _image_formats()
    if out.suffix.lstrip(".").lower() not in formats:
        raise ValueError(
            f"--out {out} is invalid: its suffix names the image format, one of "
            f"{', '.join(sorted(formats))}."
        )
    inside = dataset_directory(out)
    if inside is not None:
        raise ValueError(
            f"--out {out} is inside the sweep directory {inside}, where it would break "
            f"pandas.read_parquet({str(inside)!r}): write the figure elsewhere."
        )
    with warnings.catch_warnings(record=True) as caught:
        # partial= is the runner's contract for incomplete sweeps (runs_present < runs_total).
        several = paths if len(paths) > 1 else paths[0]
        frame = load(several, partial=True) if args.partial else load(several)
        save_phase_diagram(
            frame,
            out,
            x=args.x,
            y=args.y,
            value=args.value,
            facet=args.facet,
            mean_over=args.mean_over,
            contours=args.contours,
            vmin=args.vmin,
            vmax=args.vmax,
            log1mp=args.log1mp,
            title=args.title,
        )
    for w in caught:  # jaxprune's own warnings as one line each, others as Python shows them
        if Path(w.filename).parent == Path(__file__).parent:
            print(f"jaxprune plot: warning: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    print(f"wrote {out}")


def spec_sweep(spec, args) -> None:
    """Run a sweep described by a JSON specification: {"preset": "yang2023", "config": {...},
    "params": {...}, "grid": {...}, "derived": {...}, "seeds": 8} (see docs/grids.md)."""
    from jaxprune import presets
    from jaxprune.config import Config, Params
    from jaxprune.runner import sweep

    allowed = ", ".join(SPEC_KEYS)
    if not isinstance(spec, dict):
        raise ValueError(
            f"{args.target} holds a JSON {type(spec).__name__}: a sweep specification is a JSON "
            f"object with keys {allowed}."
        )
    unknown = [key for key in spec if key not in SPEC_KEYS]
    if unknown:
        raise ValueError(f"sweep specification has unknown keys {unknown}: allowed are {allowed}.")
    for key, owner in (
        ("config", "Config"),
        ("params", "Params"),
        ("grid", "Params or Config"),
        ("derived", "Params"),
    ):
        if not isinstance(spec.get(key, {}), dict):
            raise ValueError(
                f'"{key}": {json.dumps(spec[key])} is invalid: must be a JSON object of '
                f"{owner} fields and their values."
            )
    if "preset" in spec:
        name = spec["preset"]
        if name not in PRESETS:
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
        derived=spec.get("derived"),
        collect=False,  # results stream to --out; memory stays bounded whatever the size
    )
    print(f"sweep complete in {args.out}")


def _sweep(args) -> None:
    target = Path(args.target)
    if not target.is_file():
        raise FileNotFoundError(f"no sweep script or specification at {target}")
    if target.suffix not in (".py", ".json"):
        raise ValueError(
            f"{target} is neither a sweep script (.py) nor a JSON specification (.json)."
        )
    if target.suffix == ".json":
        if args.rest:
            raise ValueError(f"unrecognized arguments for a specification: {' '.join(args.rest)}")
        try:
            spec = json.loads(target.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{target} is not valid JSON: {error}") from None
        spec_sweep(spec, args)
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


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors on one line, like every other refusal."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The `jaxprune` command line."""
    top = _Parser(prog="jaxprune", description=__doc__.split("\n")[0])
    top.add_argument("--version", action="version", version=f"jaxprune {__version__}")
    sub = top.add_subparsers(dest="command", required=True)

    p_sweep = sub.add_parser(
        "sweep", help="run a sweep script (.py, further arguments go to it) or a JSON specification"
    )
    p_sweep.add_argument("target", help="sweeps/NAME.py, or a JSON sweep specification (.json)")
    p_sweep.add_argument("--out", help="output directory of chunk files")
    p_sweep.add_argument("--seeds", type=int, help="number of seeds (range(SEEDS))")
    p_sweep.add_argument("--chunk-size", type=int, help="runs per compiled call")
    p_sweep.add_argument("--memory-budget", type=float, help="GiB a chunk may use")
    p_sweep.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a different sweep at --out (removes its own files only: _sweep.json, "
        "part-*.parquet; other files there stay)",
    )
    p_sweep.set_defaults(func=_sweep, flags=SWEEP_FLAGS, parser=p_sweep)

    p_plot = sub.add_parser(
        "plot",
        help="draw a phase diagram from a sweep's output",
        description="Draw the seed-mean of a final measurement over two swept fields. Every "
        "other field that varies must be --facet or --mean-over: a cell never averages over "
        "a field silently.",
    )
    p_plot.add_argument(
        "results",
        nargs="+",
        help="a sweep's output directory, or one parquet file of it; several directories are "
        "loaded as one table (the Config fields that differ become columns)",
    )
    p_plot.add_argument("--x", default="prune_frac", help="swept field on the x axis")
    p_plot.add_argument("--y", default="mu_norm", help="swept field on the y axis")
    p_plot.add_argument(
        "--value", default="test_acc", help="final measurement averaged in each cell"
    )
    p_plot.add_argument("--facet", metavar="FIELD", help="one panel per value of this swept field")
    p_plot.add_argument(
        "--mean-over",
        metavar="FIELD",
        action="append",
        help="average over this swept field too (repeatable, or a comma list)",
    )
    p_plot.add_argument(
        "--contours",
        metavar="COLUMN=LEVEL[,LEVEL]",
        action="append",
        default=[],
        help="dashed contour lines of a column, e.g. benign_score=1 (repeatable)",
    )
    p_plot.add_argument("--vmin", type=float, help="colour scale minimum (accuracy: 0)")
    p_plot.add_argument("--vmax", type=float, help="colour scale maximum (accuracy: 1)")
    p_plot.add_argument(
        "--log1mp", action="store_true", help="draw prune_frac p on a log(1 - p) scale"
    )
    p_plot.add_argument(
        "--partial",
        action="store_true",
        help="accept an incomplete sweep (the caption says PARTIAL and the run counts)",
    )
    p_plot.add_argument("--title", help="figure title (default: the value and the axes)")
    p_plot.add_argument(
        "--out",
        help="image file, PNG, PDF, SVG... by suffix (default: next to the results, named by "
        "the results and these choices)",
    )
    p_plot.set_defaults(func=_plot, flags=PLOT_FLAGS, parser=p_plot)

    p_info = sub.add_parser(
        "info",
        help="package, JAX and jaxlib versions, backend and devices; with DIR, a sweep's "
        "provenance",
    )
    p_info.add_argument(
        "directory",
        nargs="?",
        help="a sweep's output directory: print its size, environment and each invocation "
        "(version, git commit, start, end, wall time)",
    )
    p_info.set_defaults(func=_info, flags={}, parser=p_info)
    return top


def error_line(error: Exception, flags: dict[str, str]) -> str:
    """A refusal as one line in the command line's names: an OSError as "reason: path", an
    `InvalidValue` rendered with `flags` (API name -> flag), anything else as its message;
    newlines folded."""
    from jaxprune.errors import InvalidValue

    if isinstance(error, OSError) and error.strerror and error.filename:
        text = f"{error.strerror}: {error.filename}"
    elif isinstance(error, InvalidValue):
        text = error.render(flags)
    else:
        text = str(error)
    return " ".join(text.split())


def exit_interrupted(stopped, command: str | None = None, prefix: str = "") -> NoReturn:
    """End the process after a `SweepInterrupted`: its summary (what is saved, the `command`
    that resumes) as one line on stderr, status 130 (128 + SIGINT). When work still runs on
    background threads (an abandoned chunk, a compilation: `stopped.busy`) the process ends at
    once (`os._exit`): interpreter shutdown would wait for it (Ctrl-C during a compilation
    took 26 s to exit). For the command line and sweep scripts; the library only raises."""
    print(prefix + stopped.summary(command), file=sys.stderr)
    if stopped.busy:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    raise SystemExit(130)


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and args.command != "sweep":
        args.parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.rest = rest  # a sweep script's own arguments, such as --quick
    flags = dict(args.flags)
    if getattr(args, "seeds", None) is not None:  # a spec's own "seeds" keeps its JSON name
        flags["seeds"] = "--seeds"
    command = shlex.join(["jaxprune", *(sys.argv[1:] if argv is None else argv)])
    try:
        args.func(args)
    except (ValueError, OSError) as error:  # bad input: one clear line, no traceback
        args.parser.exit(2, f"jaxprune {args.command}: error: {error_line(error, flags)}\n")
    except KeyboardInterrupt as stopped:  # Ctrl-C: what is saved and how to resume, one line
        from jaxprune.stopping import SweepInterrupted

        if isinstance(stopped, SweepInterrupted):
            exit_interrupted(stopped, command, prefix=f"jaxprune {args.command}: ")
        parser.exit(130, f"jaxprune {args.command}: interrupted\n")


if __name__ == "__main__":
    main()
