"""A sweep's output directory: which files are the sweep's own, and how a directory is opened
for a sweep (created, resumed, or overwritten) without touching anything else in it.

A sweep owns exactly these names in its directory: `_sweep.json` (its metadata), its chunk files
`part-gGGGG-cCCCCCC.parquet`, `_stop.json` (written by a failing `jax.distributed` process) and
the temporaries `.NAME.tmp-PID` of those files while they are written. Every other entry (notes,
figures, the spec, folders) is foreign: no path of a sweep (overwrite, resume, refusal,
interrupt) removes or changes it. Overwriting removes the sweep's own files only; a directory
that holds foreign entries and no sweep is refused (it is somebody's folder, not a sweep's), and
so are targets that are never a sweep's own folder: the root, top-level folders, the home
directory and the working directory or any folder above it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from jaxprune.errors import InvalidValue, Option

METADATA_KEY = b"jaxprune"
SPEC_FILE = "_sweep.json"
# Written by a process of a `jax.distributed` sweep that fails or is interrupted, so that the
# others stop after their chunk in flight (see `jaxprune.stopping`).
STOP_FILE = "_stop.json"
CHUNK_PATTERN = re.compile(r"part-g(\d{4,})-c(\d{6,})\.parquet")
_OWN_FILES = (SPEC_FILE, STOP_FILE)
_TEMPORARY = re.compile(r"\.(.+)\.tmp-\d+")
_REPLACE = (Option("overwrite", True), Option("out"))


def chunk_path(directory: Path, group: int, chunk: int) -> Path:
    """The file of chunk `chunk` of group `group` of a sweep written to `directory`."""
    return Path(directory) / f"part-g{group:04d}-c{chunk:06d}.parquet"


def chunk_files(directory: str | Path) -> list[Path]:
    """The chunk files of a sweep directory (names `part-gGGGG-cCCCCCC.parquet`), in chunk
    order."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(
        entry
        for entry in directory.glob("part-*.parquet")
        if CHUNK_PATTERN.fullmatch(entry.name)
    )


def is_own(name: str) -> bool:
    """Whether a directory entry's name is one a sweep writes (see the module docstring)."""
    temporary = _TEMPORARY.fullmatch(name)
    if temporary:
        name = temporary.group(1)
    return name in _OWN_FILES or CHUNK_PATTERN.fullmatch(name) is not None


def own_files(directory: Path) -> list[Path]:
    """The sweep's own files in `directory` (none when it does not exist)."""
    if not directory.is_dir():
        return []
    return sorted(e for e in directory.iterdir() if is_own(e.name) and not e.is_dir())


def foreign_entries(directory: Path) -> list[str]:
    """The names of the entries in `directory` that are not the sweep's own (folders with a
    trailing '/'), sorted."""
    if not directory.is_dir():
        return []
    return sorted(
        e.name + "/" * e.is_dir()
        for e in directory.iterdir()
        if e.is_dir() or not is_own(e.name)
    )


def _listing(names: list[str], most: int = 5) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def check_target(out: Path) -> None:
    """Refuse an output directory that can never be a sweep's own folder: the root, a top-level
    folder, the home directory or a folder above it, the working directory or a folder above
    it."""
    resolved = out.expanduser().resolve()
    cwd, home = Path.cwd().resolve(), Path.home().resolve()
    reason = None
    if len(resolved.parts) <= 1:
        reason = "the root"
    elif resolved == home or resolved in home.parents:
        reason = "the home directory or a folder above it"
    elif len(resolved.parts) <= 2:
        reason = "a top-level folder"
    elif resolved == cwd or resolved in cwd.parents:
        reason = "the working directory or a folder above it"
    if reason is not None:
        raise InvalidValue(
            "out",
            str(out),
            f"is invalid: it is {reason}; a sweep needs a folder of its own, e.g. "
            f"{str(out / 'sweep')!r}.",
        )


def remove_own_files(directory: Path) -> list[Path]:
    """Delete the sweep's own files in `directory` (never anything else); returns them."""
    removed = own_files(directory)
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def remove_stale(directory: Path) -> None:
    """Delete what a killed or failed run of the sweep left behind: its temporaries and
    `_stop.json`."""
    for path in own_files(directory):
        if path.name == STOP_FILE or _TEMPORARY.fullmatch(path.name):
            path.unlink(missing_ok=True)


def read_recorded(directory: Path) -> dict | None:
    """The metadata in `directory/_sweep.json`, or None when there is none; an unreadable one
    is refused naming the file."""
    path = directory / SPEC_FILE
    if not path.exists():
        return None
    try:
        recorded = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidValue(
            None,
            None,
            f"{path} is unreadable ({type(error).__name__}): {{0}} to replace the sweep in "
            f"{directory}, or choose another {{1}}.",
            *_REPLACE,
        ) from None
    if not isinstance(recorded, dict) or "spec_hash" not in recorded:
        raise InvalidValue(
            None,
            None,
            f"{path} holds no sweep metadata (no spec_hash): {{0}} to replace the sweep in "
            f"{directory}, or choose another {{1}}.",
            *_REPLACE,
        )
    return recorded


def open_directory(out: Path, spec_hash: str, overwrite: bool) -> dict | None:
    """Prepare `out` for the sweep whose hash is `spec_hash`. Returns the recorded metadata when
    `out` holds the same sweep (to resume it), else None (a new sweep; `out` exists, holding
    no file of a sweep). Refuses (ValueError, one line) a target that is no sweep's folder, a
    directory holding foreign entries and no sweep, and without `overwrite` a different sweep.
    With `overwrite`, a sweep's own files are removed first; foreign entries always stay."""
    check_target(out)
    if out.exists() and not out.is_dir():
        raise InvalidValue("out", str(out), "is a file, not a directory.")
    recorded = None if overwrite else read_recorded(out)
    if recorded is not None:
        if recorded["spec_hash"] == spec_hash:
            remove_stale(out)
            return recorded
        return recorded  # the caller names the fields that differ and refuses
    has_sweep = (out / SPEC_FILE).exists() or bool(chunk_files(out))
    if has_sweep and not overwrite:
        raise InvalidValue(
            "out",
            str(out),
            f"holds chunk files but no {SPEC_FILE}: {{0}} to replace them, or choose another "
            f"{{1}}.",
            *_REPLACE,
        )
    foreign = foreign_entries(out)
    if foreign and not has_sweep:
        raise InvalidValue(
            "out",
            str(out),
            f"holds no jaxprune sweep but holds {_listing(foreign)}: choose a new or empty "
            f"directory ({{0}} only ever removes a sweep's own files).",
            Option("overwrite", quoted=False),
        )
    if overwrite:
        remove_own_files(out)
    out.mkdir(parents=True, exist_ok=True)
    return None


def read_metadata(path: str | Path) -> dict:
    """The jaxprune metadata of one parquet file ({} when it has none): the JSON under the
    key 'jaxprune' of its key-value metadata."""
    import pyarrow.parquet as pq  # here, so that `jaxprune info DIR` imports no JAX

    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta[METADATA_KEY]) if METADATA_KEY in meta else {}


def atomically(path: Path, write) -> None:
    """Call write(temporary path), then rename it to `path`: readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)
