"""Tidy result frames, and a sweep's output directory: its files, specification, resume and
loading (docs/schema.md, docs/scale.md).

A frame has one row per (run, logged step): `run` (the run's position in its sweep's run order),
`seed`, `step`, every Params field, the Config fields a sweep varied, the measurements
(docs/concepts/model.md#measurements) and the theory columns (docs/schema.md); a sweep's rows are in
(run, step) order. On disk a sweep is a directory holding `_sweep.json` (its specification, chunk
shapes and size) and chunk files `part-*.parquet`, each a plain parquet file whose schema metadata
holds the same under the key 'jaxprune'; `pandas.read_parquet(directory)` reads it, `load` reads it
in run order and refuses an incomplete one unless asked.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
import warnings
from pathlib import Path
from typing import NoReturn

import jax
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from jaxprune import theory
from jaxprune.config import CONFIG_FIELDS, PARAMS_FIELDS, Config, Params
from jaxprune.metrics import METRIC_NAMES

METADATA_KEY = b"jaxprune"
SPEC_FILE = "_sweep.json"
# Written by a process of a `jax.distributed` sweep that fails or is interrupted, so that the
# others stop after their chunk in flight (see `jaxprune.stopping`).
STOP_FILE = "_stop.json"


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a sweep after the chunk in flight was saved (or, at a second Ctrl-C,
    abandoned). saved: chunks of the sweep in `out` (0 without `out`); total: chunks of the sweep;
    out: the output directory or None."""

    def __init__(self, saved: int, total: int, out: Path | None, abandoned: bool = False):
        super().__init__(f"sweep interrupted: {saved} of {total} chunks saved in {out}")
        self.saved, self.total, self.out, self.abandoned = saved, total, out, abandoned

    def summary(self, command: str | None = None) -> str:
        """One line for a command-line front end: what is saved and the command that resumes."""
        if self.out is None:
            return (
                f"interrupted: nothing saved (no output directory) of {self.total} chunks; "
                f"give an output directory to make a sweep resumable."
            )
        again = f": {command}" if command else " in the same output directory"
        return (
            f"interrupted: {self.saved} of {self.total} chunks saved in {self.out}; "
            f"resume by running the same sweep again{again}"
        )

    def exit(self, command: str | None = None, prefix: str = "") -> NoReturn:
        """Print `summary(command)` as one line on stderr and exit with status 130 (128 +
        SIGINT). After an abandoned chunk the process ends at once (`os._exit`): interpreter
        shutdown would wait for the computation still running."""
        print(prefix + self.summary(command), file=sys.stderr)
        if self.abandoned:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        raise SystemExit(130)


def history_frame(
    config: Config,
    run_columns: dict[str, np.ndarray],
    steps: np.ndarray,
    history: dict[str, np.ndarray],
) -> pd.DataFrame:
    """The tidy frame of R runs logged at T steps.

    run_columns: `run` (int64), `seed`, every Params field and the varied Config fields, each (R,).
    steps: (T,) logged steps. history: each measurement, (R, T).
    """
    num_runs, num_steps = len(run_columns["seed"]), len(steps)
    columns = {
        name: np.repeat(np.asarray(values), num_steps) for name, values in run_columns.items()
    }
    columns = {
        "run": columns.pop("run"),
        "seed": columns.pop("seed"),
        "step": np.tile(steps, num_runs),
        **columns,
    }
    columns.update({name: np.asarray(history[name]).reshape(-1) for name in METRIC_NAMES})
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


def _atomically(path: Path, write) -> None:
    """Call write(temporary path), then rename it to `path`: readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


def write_parquet(frame: pd.DataFrame, path: str | Path, metadata: dict) -> None:
    """Write `frame` to `path` atomically, with `metadata` as JSON in the schema metadata."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), METADATA_KEY: json.dumps(metadata).encode()}
    )
    _atomically(Path(path), lambda tmp: pq.write_table(table, tmp))


def write_json(path: str | Path, data: dict) -> None:
    """Write `data` as JSON to `path` atomically."""
    _atomically(Path(path), lambda tmp: tmp.write_text(json.dumps(data, indent=1)))


def sweep_spec(
    config: Config,
    grid: dict[str, list],
    seeds: np.ndarray,
    base: Params,
    buckets: str = "auto",
) -> dict:
    """What fixes a sweep's results and chunks: the Config, grid, seeds, base Params and shape
    bucketing (see `grid.plan`), with their hash."""
    spec = {
        "config": dataclasses.asdict(config),
        "grid": grid,
        "grid_order": list(grid),  # the run order follows the grid's key order
        "seeds": seeds.tolist(),
        "base": {k: float(np.asarray(getattr(base, k))) for k in PARAMS_FIELDS},
        "buckets": buckets,
    }
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
    for part in ("grid", "grid_order", "seeds"):
        if recorded.get(part) != spec[part]:
            differences.append(f"{part} {_short(recorded.get(part))} -> {_short(spec[part])}")
    return differences


def prepare_out(out: Path, spec: dict, overwrite: bool) -> dict | None:
    """Create or reuse the output directory of the sweep `spec`. Returns the recorded metadata
    when `out` holds the same sweep (to resume it with the same chunks), else None. A different
    sweep at `out` is refused, naming the fields that differ, unless `overwrite`."""
    spec_path = out / SPEC_FILE
    if spec_path.exists() and not overwrite:
        recorded = json.loads(spec_path.read_text())
        if recorded["spec_hash"] == spec["spec_hash"]:
            for stale in [*out.glob(".*.tmp-*"), out / STOP_FILE]:  # left by a killed run
                stale.unlink(missing_ok=True)
            return recorded
        differences = "; ".join(spec_differences(recorded, spec)) or "the spec hash"
        raise ValueError(
            f"out = {str(out)!r} holds a different sweep (recorded -> this one: {differences}): "
            f"choose another `out`, or pass overwrite=True to replace it."
        )
    if out.exists() and overwrite and (spec_path.exists() or chunk_files(out)):
        shutil.rmtree(out)
    elif out.exists() and any(out.iterdir()):
        raise ValueError(
            f"out = {str(out)!r} is a non-empty directory that holds no jaxprune sweep."
        )
    out.mkdir(parents=True, exist_ok=True)
    return None


def read_metadata(path: str | Path) -> dict:
    """The jaxprune metadata of one parquet file ({} when it has none)."""
    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta[METADATA_KEY]) if METADATA_KEY in meta else {}


def chunk_path(directory: Path, group: int, chunk: int) -> Path:
    """The file of chunk `chunk` of group `group` of a sweep written to `directory`."""
    return directory / f"part-g{group:04d}-c{chunk:06d}.parquet"


def chunk_files(directory: str | Path) -> list[Path]:
    """The chunk files of a sweep directory, in chunk order."""
    return sorted(Path(directory).glob("part-*.parquet"))


def in_run_order(frames: list[pd.DataFrame], metadata: dict) -> pd.DataFrame:
    """Chunks' frames as one frame in (run, step) order, with `metadata` in its attrs and
    runs_present (distinct runs in it) beside the recorded runs_total."""
    frame = pd.concat(frames, ignore_index=True).sort_values(["run", "step"], ignore_index=True)
    present = int(frame["run"].nunique())
    frame.attrs = {**metadata, "runs_present": present}
    frame.attrs.setdefault("runs_total", present)
    return frame


def load(path: str | Path, partial: bool = False) -> pd.DataFrame:
    """Read a sweep's output into one frame in (run, step) order, with the sweep's metadata
    (Config, grid, seeds, versions, ...) and `runs_present` / `runs_total` in `frame.attrs`.

    path: a sweep directory, or one parquet file (which loads the runs it holds). A directory
    that holds only part of its sweep (an interrupted or still running sweep) is refused with
    how much is there, unless `partial`: then it warns and returns what is there.
    """
    path = Path(path)
    if path.is_dir():
        files = chunk_files(path)
        spec_path = path / SPEC_FILE
        if not files and not spec_path.exists():
            raise FileNotFoundError(f"{path} holds no chunk files (part-*.parquet).")
        metadata = read_metadata(files[0]) if files else json.loads(spec_path.read_text())
    elif path.exists():
        files = [path]
        metadata = read_metadata(path)
    else:
        raise FileNotFoundError(f"no sweep output at {path}.")
    frame = in_run_order([pd.read_parquet(f) for f in files], metadata) if files else None
    present = 0 if frame is None else frame.attrs["runs_present"]
    total = metadata.get("runs_total", present)
    if path.is_dir() and present < total:
        holds = (
            f"{path} holds {present} of {total} runs ({len(files)} of "
            f"{metadata.get('chunks_total', '?')} chunks)"
        )
        if frame is None or not partial:
            raise ValueError(
                f"{holds}: resume by re-running the same sweep, or pass partial=True to load "
                f"what is there."
            )
        warnings.warn(f"{holds}: a partial result (partial=True).", stacklevel=2)
    return frame
