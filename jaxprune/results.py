"""Tidy result frames and their parquet files (SPEC §3–§4).

A frame has one row per (run, logged step): `seed`, `step`, every Params field, the Config fields
a sweep varied, the measurements of §2.5 and the theory columns of §2.6. On disk a sweep is a
directory of chunk files `part-*.parquet`, each a plain parquet file whose schema metadata holds
the sweep's specification under the key 'jaxprune'; `pandas.read_parquet(directory)` reads it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from jaxprune import theory
from jaxprune.chunking import ChunkShape, chunk_blocks, run_order_key, run_positions
from jaxprune.config import CONFIG_FIELDS, PARAMS_FIELDS, Config
from jaxprune.metrics import METRIC_NAMES

METADATA_KEY = b"jaxprune"


def history_frame(
    config: Config,
    run_columns: dict[str, np.ndarray],
    steps: np.ndarray,
    history: dict[str, np.ndarray],
) -> pd.DataFrame:
    """The tidy frame of R runs logged at T steps.

    run_columns: `seed`, every Params field and the varied Config fields, each (R,).
    steps: (T,) logged steps. history: each measurement, (R, T).
    """
    num_runs, num_steps = len(run_columns["seed"]), len(steps)
    columns = {
        name: np.repeat(np.asarray(values), num_steps) for name, values in run_columns.items()
    }
    columns = {"seed": columns.pop("seed"), "step": np.tile(steps, num_runs), **columns}
    columns.update({name: np.asarray(history[name]).reshape(-1) for name in METRIC_NAMES})
    frame = pd.DataFrame(columns)
    # Config values as columns too, so a run's theory columns are computed alike (array powers)
    # whether its shape was swept (a column) or fixed.
    static = {
        name: np.full(len(frame), getattr(config, name))
        for name in ("dim", "width", "n_train", "num_classes")
    }
    for name, values in theory.columns({**static, **frame}).items():
        frame[name] = np.asarray(values, dtype=np.float64)
    return frame


def run_id_columns(frame: pd.DataFrame) -> list[str]:
    """Columns that identify a run in a result frame: seed, Params fields, varied Config fields."""
    return [c for c in ("seed", *PARAMS_FIELDS, *CONFIG_FIELDS) if c in frame.columns]


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


def read_metadata(path: str | Path) -> dict:
    """The jaxprune metadata of one parquet file ({} when it has none)."""
    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta[METADATA_KEY]) if METADATA_KEY in meta else {}


def chunk_path(directory: Path, group: int, chunk: int) -> Path:
    """The file of chunk `chunk` of group `group` of a sweep written to `directory`."""
    return directory / f"part-g{group:04d}-c{chunk:06d}.parquet"


def chunk_files(directory: str | Path) -> list[Path]:
    """The chunk files of a sweep directory, in run order."""
    return sorted(Path(directory).glob("part-*.parquet"))


def load(path: str | Path) -> pd.DataFrame:
    """Read a sweep's output, one parquet file or a directory of chunk files, into one frame in
    run order; the sweep's metadata (Config, grid, seeds, versions, ...) is in `frame.attrs`."""
    path = Path(path)
    if path.is_dir():
        files = chunk_files(path)
        if not files:
            raise FileNotFoundError(f"{path} holds no chunk files (part-*.parquet).")
    elif path.exists():
        files = [path]
    else:
        raise FileNotFoundError(f"no sweep output at {path}.")
    frames = [pd.read_parquet(f) for f in files]
    frame = pd.concat(frames, ignore_index=True)
    frame.attrs = metadata = read_metadata(files[0])
    if len(files) > 1:  # chunks are blocks of points x seeds: put their rows in run order
        keys = [
            _run_order_key(metadata, f, len(part)) for f, part in zip(files, frames, strict=True)
        ]
        frame = frame.iloc[np.argsort(np.concatenate(keys), kind="stable")].reset_index(drop=True)
        frame.attrs = metadata
    return frame


def _run_order_key(metadata: dict, file: Path, rows: int) -> np.ndarray:
    """The sweep-order sort key of the rows of chunk file `file` (named by `chunk_path`)."""
    group, chunk = (int(part[1:]) for part in file.stem.split("-")[1:])
    if "group_points" in metadata:  # shape buckets: a group's points span its shape values
        num_points = metadata["group_points"][group]
    else:
        grid = metadata["grid"]
        num_points = int(np.prod([len(v) for k, v in grid.items() if k in PARAMS_FIELDS]))
    num_seeds = len(metadata["seeds"])
    shape = ChunkShape(*metadata["chunk_shapes"][group], metadata["chunk_shapes"][group][1])
    points, seeds = chunk_blocks(num_points, num_seeds, shape)[chunk]
    positions = run_positions(num_seeds, points, seeds)
    return run_order_key(group, positions, rows // len(positions))
