"""Opening a sweep's output directory for resume, across processes, and finding which of the
chunks already there are sound (see `jaxprune.directory` for the files, `jaxprune.results` for
the checks of one chunk)."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import jax

from jaxprune import results, stopping
from jaxprune.chunking import ChunkPlan
from jaxprune.directory import CHUNK_PATTERN, SPEC_FILE
from jaxprune.errors import InvalidValue, Option


def open_out(
    out: Path, spec: dict, plan: ChunkPlan, replan, metadata_of, chunk_size, overwrite
) -> tuple[ChunkPlan, list[dict]]:
    """Process 0 creates `out`, or finds the same sweep there to resume with its chunks, or
    refuses; every process hears its outcome. Returns the plan to follow (the recorded chunks
    of a resumed sweep) and the invocations recorded before (to which `metadata_of(plan)`
    adds this one in out/_sweep.json)."""
    error, before = None, []
    if jax.process_index() == 0:
        try:
            recorded = results.prepare_out(out, spec, overwrite)
            if recorded is not None:
                planned = [[shape.points, shape.seeds] for shape in plan.shapes]
                if chunk_size is not None and recorded["chunk_shapes"] != planned:
                    raise InvalidValue(
                        "chunk_size",
                        chunk_size,
                        f"differs from the chunks {recorded['chunk_shapes']} (points x seeds) of "
                        f"the same sweep already in {out}: {{0}} to resume it, or {{1}}.",
                        Option("chunk_size", None),
                        Option("overwrite", True),
                    )
                plan = replan(recorded)
                before = recorded.get("invocations", [])
            results.write_json(out / SPEC_FILE, metadata_of(plan, before))
        except Exception as refused:  # noqa: BLE001 (every process raises it: `agree`)
            error = refused
    stopping.agree(error, lambda: error)
    if jax.process_index() != 0:
        plan = replan(json.loads((out / SPEC_FILE).read_text()))
    return plan, before


def verified(out: Path, groups, plan: ChunkPlan, mine, spec_hash: str, note) -> set:
    """The (group, index) of this process's chunks already in `out` and sound (readable, with
    the chunk's rows and runs, of this sweep: `results.check_chunk`). An unreadable or short
    one is left to be recomputed, with one line through `note`; a chunk file of another sweep,
    or one that is no chunk of this sweep, is refused (ValueError naming it)."""
    per_group = collections.Counter(chunk.group for chunk in plan.chunks)
    for path in results.chunk_files(out):
        group, index = map(int, CHUNK_PATTERN.fullmatch(path.name).groups())
        if index >= per_group.get(group, 0):
            found = results.read_metadata(path).get("spec_hash") if path.exists() else None
            owner = "another sweep" if found != spec_hash else "no chunk of this sweep"
            raise InvalidValue(
                None,
                None,
                f"{path} belongs to {owner} (spec_hash {found}, this sweep's {spec_hash}): "
                f"move it out of {out}, or {{0}} to replace the sweep.",
                Option("overwrite", True),
            )
    done = set()
    for chunk in mine:
        path = results.chunk_path(out, chunk.group, chunk.index)
        if not path.exists():
            continue
        group = groups[chunk.group]
        rows = chunk.num_runs * len(group.config.logged_steps())
        try:
            run_ids = group.run_ids(chunk.point_slice, chunk.seed_slice)
            results.check_chunk(path, spec_hash, run_ids, rows)
        except results.ChunkError as bad:
            if bad.kind == "foreign":
                raise InvalidValue(
                    None,
                    None,
                    f"{bad}: move it out of {out}, or {{0}} to replace the sweep.",
                    Option("overwrite", True),
                ) from None
            note(f"{bad}: recomputing it")
            continue
        done.add((chunk.group, chunk.index))
    return done
