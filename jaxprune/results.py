"""Tidy result frames, and a sweep's results on disk: writing chunks (one Arrow schema per
sweep), verifying and loading them, the spec and provenance they record (docs/output.md,
docs/schema.md).

A frame has one row per (run, logged step): `run` (the run's position in its sweep's run order),
`seed`, `step`, every Params field, the Config fields a sweep varied, the grid's variables, the
measurements and the theory columns (docs/schema.md); a sweep's rows are in (run, step) order. On
disk a sweep is a directory (see `jaxprune.directory` for its files and how overwrite and resume
treat them) holding `_sweep.json` and chunk files `part-*.parquet`, each a plain parquet file
whose key-value metadata holds the sweep's metadata under the key 'jaxprune'. `load` verifies
every chunk (`check_chunk`) and reads them in run order; docs/output.md shows the other readers.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import subprocess
import warnings
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from jaxprune import directory, theory
from jaxprune.config import CONFIG_FIELDS, PARAMS_FIELDS, Config, InvalidValue, Option, Params
from jaxprune.directory import (  # noqa: F401 (the directory's names, as before)
    METADATA_KEY,
    SPEC_FILE,
    STOP_FILE,
    atomically,
    chunk_files,
    chunk_path,
    read_metadata,
)
from jaxprune.metrics import METRIC_NAMES
from jaxprune.stopping import SweepInterrupted  # noqa: F401 (its home before)


def history_frame(
    config: Config,
    run_columns: dict[str, np.ndarray],
    steps: np.ndarray,
    history: dict[str, np.ndarray],
) -> pd.DataFrame:
    """The tidy frame of R runs logged at T steps.

    run_columns: `run` (int64), `seed`, every Params field and the varied Config fields, each (R,).
    steps: (T,) logged steps. history: each measurement (every name of METRIC_NAMES, and
    any others the training loop logs), (R, T). `time` is lr x step: the time of gradient
    flow that a GD run at that step approximates (and a 'flow' run is logged at).
    """
    num_runs, num_steps = len(run_columns["seed"]), len(steps)
    columns = {
        name: np.repeat(np.asarray(values), num_steps) for name, values in run_columns.items()
    }
    step = np.tile(steps, num_runs)
    columns = {
        "run": columns.pop("run"),
        "seed": columns.pop("seed"),
        "step": step,
        **({"time": columns["lr"] * step} if "lr" in columns else {}),
        **columns,
    }
    missing = [name for name in METRIC_NAMES if name not in history]
    if missing:
        raise ValueError(f"history lacks the measurements {missing}.")
    columns.update({name: np.asarray(values).reshape(-1) for name, values in history.items()})
    frame = pd.DataFrame(columns)
    # The frame's own columns (a grid over dim, say) take precedence over the Config's values,
    # which become columns too, so theory columns are computed alike (array powers) either way.
    static = {
        name: np.full(len(frame), getattr(config, name))
        for name in ("dim", "width", "n_train", "num_classes", "output_scale")
    }
    for name, values in theory.columns({**static, **frame}).items():
        frame[name] = np.asarray(values, dtype=bool if name == "in_regime" else np.float64)
    return frame


def run_id_columns(frame: pd.DataFrame) -> list[str]:
    """Columns that identify a run in a result frame: run, seed, Params fields, varied Config
    fields (all of them, so that frames of several sweeps or `train` calls stay apart)."""
    return [c for c in ("run", "seed", *PARAMS_FIELDS, *CONFIG_FIELDS) if c in frame.columns]


def final(frame: pd.DataFrame) -> pd.DataFrame:
    """The last logged row of each run, in the frame's run order."""
    last = frame.groupby(run_id_columns(frame), sort=False, dropna=False)["step"].idxmax()
    out = frame.loc[np.sort(last.to_numpy())].reset_index(drop=True)
    out.attrs = dict(frame.attrs)
    return out


def _arrow_type(annotation: str) -> pa.DataType:
    """The Arrow type of a Config field's column, from its annotation ('int | None', ...)."""
    kind = annotation.split("|")[0].strip()
    return {"int": pa.int64(), "float": pa.float64(), "str": pa.string(), "bool": pa.bool_()}[kind]


CONFIG_ARROW_TYPES = {f.name: _arrow_type(f.type) for f in dataclasses.fields(Config)}


def arrow_table(frame: pd.DataFrame) -> pa.Table:
    """`frame` as an Arrow table with one schema for every chunk of a sweep: a Config field's
    column has the field's type (int64, float64, string, bool), None or NaN as null, whatever
    the values of the chunk (a grid over batch_size [None, 4] stores int64 with nulls in every
    chunk, not double in one and int64 in the other); other columns keep their NumPy types."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for name in frame.columns:
        if name in CONFIG_ARROW_TYPES:
            column = pa.array(frame[name].to_numpy(), from_pandas=True)
            if pa.types.is_floating(column.type) and CONFIG_ARROW_TYPES[name] == pa.int64():
                column = pa.array(
                    [None if v != v else int(v) for v in frame[name].tolist()], pa.int64()
                )
            column = column.cast(CONFIG_ARROW_TYPES[name])
            index = table.schema.get_field_index(name)
            table = table.set_column(index, pa.field(name, column.type), column)
    return table


def write_parquet(frame: pd.DataFrame, path: str | Path, metadata: dict) -> None:
    """Write `frame` to `path` atomically (`arrow_table`'s schema), with `metadata` as JSON in
    the schema metadata under the key 'jaxprune'."""
    table = arrow_table(frame)
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), METADATA_KEY: json.dumps(metadata).encode()}
    )
    atomically(Path(path), lambda tmp: pq.write_table(table, tmp))


def write_json(path: str | Path, data: dict) -> None:
    """Write `data` as JSON to `path` atomically."""
    atomically(Path(path), lambda tmp: tmp.write_text(json.dumps(data, indent=1)))


def sweep_spec(
    config: Config,
    grid: dict[str, list],
    seeds: np.ndarray,
    base: Params,
    buckets: str = "auto",
    derived: dict[str, str] | None = None,
) -> dict:
    """What fixes a sweep's results and chunks: the Config, grid, seeds, base Params, shape
    bucketing and derived expressions (see `grid.plan`), with their hash."""
    spec = {
        "config": dataclasses.asdict(config),
        "grid": grid,
        "grid_order": list(grid),  # the run order follows the grid's key order
        "seeds": seeds.tolist(),
        "base": {k: float(np.asarray(getattr(base, k))) for k in PARAMS_FIELDS},
        "buckets": buckets,
    }
    if derived:  # only when given: the hashes of sweeps without stay as they were
        spec["derived"] = dict(derived)
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


def _git(folder: Path, *args: str) -> str | None:
    """The output of `git -C folder ARGS` (stripped), or None when git fails or is missing."""
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def provenance() -> dict:
    """The code that computes a sweep in this process, and when it started: the jaxprune
    version, and when the package is imported from a git clone, its commit and whether
    tracked files differ from it (`git_dirty`; untracked files are not counted); both None
    outside a clone. `started`: now, UTC, ISO 8601."""
    from jaxprune import __version__

    package = Path(__file__).resolve().parent
    commit = dirty = None
    if _git(package, "ls-files", "--error-unmatch", Path(__file__).name) is not None:
        commit = _git(package, "rev-parse", "HEAD")
        status = _git(package, "status", "--porcelain", "--untracked-files=no")
        dirty = None if commit is None or status is None else bool(status)
    return {
        "jaxprune_version": __version__,
        "git_commit": commit,
        "git_dirty": dirty,
        "started": _now(),
    }


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


def finished(invocation: dict, wall_s: float, chunks_written: int, status: str) -> dict:
    """An invocation's provenance (`provenance()`) with its end: `finished` (now), `wall_s`,
    the chunks it wrote and how it ended ('complete', 'interrupted' or 'failed')."""
    end = {"finished": _now(), "wall_s": round(wall_s, 3), "chunks_written": chunks_written}
    return {**invocation, **end, "status": status}


def sweep_metadata(
    spec: dict, chunk_shapes: list[list[int]], runs: int, chunks: int, engines: list[dict]
) -> dict:
    """What every result file of a sweep records: its spec, its chunk shapes ([points, seeds] per
    group), its size in runs and chunks, the engine of each group (see `runner.engines`) and the
    environment."""
    sizes = {"chunk_shapes": chunk_shapes, "runs_total": runs, "chunks_total": chunks}
    return {**spec, **sizes, "engines": engines, **environment()}


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def spec_differences(recorded: dict, spec: dict) -> list[str]:
    """'field old -> new' for each field in which two sweep specs differ."""
    differences = []
    for part in ("config", "base"):
        old, new = recorded.get(part, {}), spec[part]
        for name in [*new, *(k for k in old if k not in new)]:
            if old.get(name) != new.get(name):
                differences.append(
                    f"{part}.{name} {_short(old.get(name))} -> {_short(new.get(name))}"
                )
    for part in ("grid", "grid_order", "seeds", "derived"):
        if recorded.get(part) != spec.get(part):
            differences.append(
                f"{part} {_short(recorded.get(part))} -> {_short(spec.get(part))}"
            )
    return differences


def prepare_out(out: Path, spec: dict, overwrite: bool) -> dict | None:
    """Create or reuse the output directory of the sweep `spec` (see `jaxprune.directory`).
    Returns the recorded metadata when `out` holds the same sweep (to resume it with the same
    chunks), else None. A different sweep at `out` is refused, naming the fields that differ,
    unless `overwrite`; overwriting removes only the sweep's own files."""
    recorded = directory.open_directory(out, spec["spec_hash"], overwrite)
    if recorded is not None and recorded["spec_hash"] != spec["spec_hash"]:
        differences = "; ".join(spec_differences(recorded, spec)) or "the spec hash"
        raise InvalidValue(
            "out",
            str(out),
            f"holds a different sweep (recorded -> this one: {differences}): choose another "
            f"{{0}}, or {{1}} to replace it.",
            Option("out"),
            Option("overwrite", True),
        )
    if recorded is not None:
        from jaxprune import __version__

        version = recorded.get("jaxprune_version")
        if version != __version__:
            raise InvalidValue(
                "out",
                str(out),
                f"holds this sweep computed by jaxprune {version}; this is jaxprune "
                f"{__version__}, whose results can differ (the version changes whenever results "
                f"can): {{0}} to recompute it, or choose another {{1}}.",
                Option("overwrite", True),
                Option("out"),
            )
    return recorded


class ChunkError(ValueError):
    """A chunk file that cannot be used: `kind` 'unreadable', 'short' (other rows or runs than
    its chunk's) or 'foreign' (another sweep's spec_hash); `path` names it."""

    def __init__(self, path: Path, kind: str, detail: str):
        super().__init__(f"{path}: {detail}")
        self.path, self.kind = Path(path), kind


def check_chunk(
    path: Path, spec_hash: str, runs: np.ndarray | None = None, rows: int | None = None
) -> pd.DataFrame | None:
    """Verify one chunk file: readable, of the sweep `spec_hash`, and holding the `runs` (int64
    (R,), each run's id) and `rows` expected (default: what the file's own metadata records of
    its chunk). Returns its frame when `rows` is None (load), else None (resume reads only its
    footer and run column). Raises ChunkError."""
    try:
        metadata = read_metadata(path)
        found = metadata.get("spec_hash")
        if found != spec_hash:
            raise ChunkError(
                path, "foreign", f"belongs to another sweep (spec_hash {found}, not {spec_hash})"
            )
        recorded = metadata.get("chunk", {})
        if rows is None:
            frame = pd.read_parquet(path)
            file_runs, file_rows = frame["run"].to_numpy(), len(frame)
            rows, expected = recorded.get("rows"), recorded.get("runs")
        else:
            frame = None
            file_runs = pq.read_table(path, columns=["run"]).column("run").to_numpy()
            file_rows, expected = len(file_runs), None if runs is None else len(runs)
    except ChunkError:
        raise
    except Exception as error:  # noqa: BLE001 (pyarrow's errors: truncated, empty, garbage)
        detail = " ".join(str(error).split())[:120]
        message = f"unreadable ({type(error).__name__}: {detail})"
        raise ChunkError(path, "unreadable", message) from error
    distinct = np.unique(file_runs)
    if rows is not None and file_rows != rows:
        raise ChunkError(path, "short", f"holds {file_rows} rows, not the chunk's {rows}")
    if expected is not None and len(distinct) != expected:
        raise ChunkError(path, "short", f"holds {len(distinct)} runs, not the chunk's {expected}")
    if runs is not None and not np.array_equal(distinct, np.sort(runs)):
        raise ChunkError(path, "short", "holds other runs than its chunk's")
    return frame


def in_run_order(frames: list[pd.DataFrame], metadata: dict) -> pd.DataFrame:
    """Chunks' frames as one frame in (run, step) order, with `metadata` in its attrs and
    runs_present (distinct runs in it) beside the recorded runs_total."""
    frame = pd.concat(frames, ignore_index=True).sort_values(["run", "step"], ignore_index=True)
    present = int(frame["run"].nunique())
    frame.attrs = {**metadata, "runs_present": present}
    frame.attrs.setdefault("runs_total", present)
    return frame


def _read_sweep(path: Path, partial: bool) -> tuple[list[pd.DataFrame], dict]:
    """The verified chunk frames of a sweep directory or one chunk file, and the sweep's
    metadata (its `_sweep.json`, or the first chunk's)."""
    if path.is_dir():
        files = chunk_files(path)
        recorded = directory.read_recorded(path)
        if not files and recorded is None:
            raise FileNotFoundError(f"{path} holds no chunk files (part-*.parquet).")
        metadata = recorded if recorded is not None else read_metadata(files[0])
    elif path.exists():
        files = [path]
        metadata = read_metadata(path)
    else:
        raise FileNotFoundError(f"no sweep output at {path}.")
    metadata = {k: v for k, v in metadata.items() if k not in ("chunk", "provenance")}
    frames = []
    for file in files:
        try:
            frames.append(check_chunk(file, metadata.get("spec_hash")))
        except ChunkError as bad:
            if bad.kind == "foreign" or not partial:
                skip = ", or {0} to skip it." if bad.kind != "foreign" else "."
                raise InvalidValue(
                    None,
                    None,
                    f"{bad}: move it out of {file.parent}, or re-run the sweep to recompute it"
                    + skip,
                    Option("partial", True),
                ) from None
            warnings.warn(f"skipped {bad} (partial=True)", stacklevel=3)
    if frames:
        seen = np.concatenate([np.unique(f["run"].to_numpy()) for f in frames])
        if len(np.unique(seen)) != len(seen):
            raise ValueError(f"{path} holds some runs in more than one chunk file: re-run it.")
    return frames, metadata


def load_many(paths: list, partial: bool = False) -> pd.DataFrame:
    """Several sweeps' outputs as one frame: each read by `load`, their runs numbered on (the
    second sweep's first run follows the first sweep's last), and every Config field that
    differs between them (or that one of them varies) a column in every row. attrs: `sweeps`
    (each sweep's metadata, in order), runs_present and runs_total (sums)."""
    frames = [load(path, partial) for path in paths]
    configs = [frame.attrs.get("config", {}) for frame in frames]
    offset = 0
    for frame in frames:
        frame["run"] += offset
        offset += frame.attrs.get("runs_total", frame.attrs["runs_present"])
    for name in CONFIG_FIELDS:
        values = {json.dumps(config.get(name)) for config in configs}
        if len(values) > 1 or any(name in frame.columns for frame in frames):
            for frame, config in zip(frames, configs, strict=True):
                if name not in frame.columns:
                    column = np.repeat(config.get(name), len(frame))
                    frame.insert(frame.columns.get_loc("step") + 1, name, column)
    together = pd.concat(frames, ignore_index=True)
    together.attrs = {
        "sweeps": [frame.attrs for frame in frames],
        "runs_present": sum(frame.attrs["runs_present"] for frame in frames),
        "runs_total": offset,
    }
    return together


def load(path: str | Path | list, partial: bool = False) -> pd.DataFrame:
    """Read a sweep's output into one frame in (run, step) order, with the sweep's metadata
    (Config, grid, seeds, versions, provenance, ...) and `runs_present` / `runs_total` in
    `frame.attrs`.

    path: a sweep directory, or one parquet file (which loads the runs it holds). Every chunk
    file is verified (`check_chunk`): an unreadable or short one is refused with one line naming
    it, or with `partial` skipped with a warning; another sweep's chunk is always refused. A
    directory that holds only part of its sweep (an interrupted or still running sweep) is
    refused with how much is there, unless `partial`: then it warns and returns what is there.
    A list of paths loads several sweeps as one frame (`load_many`).
    """
    if isinstance(path, (list, tuple)):
        return load_many(list(path), partial)
    path = Path(path)
    frames, metadata = _read_sweep(path, partial)
    frame = in_run_order(frames, metadata) if frames else None
    present = 0 if frame is None else frame.attrs["runs_present"]
    total = metadata.get("runs_total", present)
    if path.is_dir() and present < total:
        holds = (
            f"{path} holds {present} of {total} runs ({len(frames)} of "
            f"{metadata.get('chunks_total', '?')} chunks)"
        )
        if frame is None or not partial:
            raise InvalidValue(
                None,
                None,
                f"{holds}: resume by re-running the same sweep, or {{0}} to load what is there.",
                Option("partial", True),
            )
        warnings.warn(f"{holds}: a partial result (partial=True).", stacklevel=2)
    return frame
