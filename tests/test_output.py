"""A sweep's output directory: overwrite removes only the sweep's own files, chunks are verified
on resume and load, one schema across chunks, provenance, several sweeps loaded as one."""

import json
import math
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import jaxprune
from conftest import assert_same_runs
from jaxprune import cli, results

GRID = {"prune_frac": [0.0, 0.5], "mu_norm": [1.0, 3.0]}
SEEDS = [4, 7]


def tiny_sweep(config, params, out, grid=GRID, **options):
    options = {"chunk_size": 2, "progress": False, **options}
    return jaxprune.sweep(config, grid, SEEDS, base=params, out=out, **options)


def add_foreign(folder: Path) -> dict[str, str]:
    """Put a user's files beside a sweep: notes, a figure in a folder, the spec; returns
    {relative path: content}."""
    foreign = {"notes.txt": "my notes", "figures/fig.txt": "a figure", "spec.json": "{}"}
    for name, text in foreign.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return foreign


def assert_survive(folder: Path, foreign: dict[str, str]) -> None:
    for name, text in foreign.items():
        assert (folder / name).read_text() == text, name


@pytest.mark.slow  # compiles Configs of its own (the fast tier keeps the module's others)
def test_foreign_files_survive_resume_refusal_overwrite_and_interrupt(
    tmp_path, tiny, tiny_params, monkeypatch
):
    out = tmp_path / "sweep"
    first = tiny_sweep(tiny, tiny_params, out)
    foreign = add_foreign(out)
    # resume: the same sweep, complete: nothing recomputed, nothing removed
    pd.testing.assert_frame_equal(tiny_sweep(tiny, tiny_params, out), first, check_exact=True)
    assert_survive(out, foreign)
    # refusal: a different sweep without overwrite
    with pytest.raises(ValueError, match="holds a different sweep"):
        tiny_sweep(tiny, tiny_params, out, grid={"prune_frac": [0.2]})
    assert_survive(out, foreign)
    # overwrite: the old sweep's files go, the user's stay
    replaced = tiny_sweep(tiny, tiny_params, out, grid={"prune_frac": [0.2]}, overwrite=True)
    assert_survive(out, foreign)
    assert sorted(p.name for p in results.chunk_files(out)) == [
        "part-g0000-c000000.parquet"  # 1 point x 2 seeds in one chunk of 2 runs
    ]
    pd.testing.assert_frame_equal(jaxprune.load(out), replaced, check_exact=True)
    # interrupt: Ctrl-C while the first chunk is written, then overwrite again
    write = results.write_parquet

    def interrupted_write(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # the handler asks the sweep to stop
        return write(*args, **kwargs)

    monkeypatch.setattr(results, "write_parquet", interrupted_write)
    with pytest.raises(results.SweepInterrupted) as stopped:
        tiny_sweep(tiny, tiny_params, out, overwrite=True)
    assert stopped.value.saved == 1 and stopped.value.total == 4
    assert_survive(out, foreign)
    assert sorted(e.name for e in out.iterdir()) == sorted(
        ["_sweep.json", "part-g0000-c000000.parquet", "notes.txt", "figures", "spec.json"]
    )


def test_a_folder_without_a_sweep_is_refused_naming_what_it_holds(tmp_path, tiny, tiny_params):
    folder = tmp_path / "thesis"
    foreign = add_foreign(folder)
    for overwrite in (False, True):
        with pytest.raises(ValueError) as refused:
            tiny_sweep(tiny, tiny_params, folder, overwrite=overwrite)
        assert str(refused.value) == (
            f"out = {str(folder)!r} holds no jaxprune sweep but holds figures/, notes.txt, "
            f"spec.json: choose a new or empty directory (overwrite only ever removes a "
            f"sweep's own files)."
        )
    assert_survive(folder, foreign)


def test_root_home_and_working_directory_are_refused(tmp_path, tiny, tiny_params, monkeypatch):
    folder = tmp_path / "thesis"
    foreign = add_foreign(folder)
    monkeypatch.chdir(folder)
    for target, reason in [
        (".", "the working directory"),
        (str(tmp_path), "the working directory or a folder above it"),
        ("/", "the root"),
        ("/tmp", "a top-level folder"),
        (str(Path.home()), "the home directory"),
    ]:
        with pytest.raises(ValueError, match=f"is invalid: it is {reason}"):
            tiny_sweep(tiny, tiny_params, target, overwrite=True)
    assert_survive(folder, foreign)


def test_command_line_overwrite_of_the_working_directory_is_one_line(
    tmp_path, monkeypatch, capsys
):
    """The reported case: `jaxprune sweep spec.json --out . --overwrite` in a thesis folder."""
    folder = tmp_path / "thesis"
    foreign = add_foreign(folder)
    (folder / "spec.json").write_text(json.dumps({"grid": {"prune_frac": [0.1]}, "seeds": 1}))
    foreign["spec.json"] = (folder / "spec.json").read_text()
    monkeypatch.chdir(folder)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["sweep", "spec.json", "--out", ".", "--overwrite"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err == (
        "jaxprune sweep: error: --out . is invalid: it is the working directory or a folder "
        "above it; a sweep needs a folder of its own, e.g. 'sweep'.\n"
    )
    assert_survive(folder, foreign)


def test_corrupt_short_and_foreign_chunks_are_caught_on_load_and_resume(
    tmp_path, tiny, tiny_params
):
    out = tmp_path / "sweep"
    complete = tiny_sweep(tiny, tiny_params, out)
    files = results.chunk_files(out)  # 4 chunks of 2 runs
    halved = files[0].read_bytes()
    files[0].write_bytes(halved[: len(halved) // 2])  # cut in half
    files[1].write_bytes(b"")  # emptied
    table = pq.read_table(files[2])  # short: a row dropped, its metadata kept
    pq.write_table(table.slice(0, table.num_rows - 1), files[2])
    with pytest.raises(ValueError, match=f"^{files[0]}: unreadable \\(ArrowInvalid") as refused:
        jaxprune.load(out)
    assert "\n" not in str(refused.value) and "pass partial=True to skip it" in str(refused.value)
    with pytest.warns(UserWarning) as caught:
        part = jaxprune.load(out, partial=True)
    messages = [str(w.message) for w in caught]
    assert messages[:3] == [
        f"skipped {files[0]}: " + messages[0].split(": ", 1)[1],
        f"skipped {files[1]}: " + messages[1].split(": ", 1)[1],
        f"skipped {files[2]}: holds 9 rows, not the chunk's 10 (partial=True)",
    ]
    assert part.attrs["runs_present"] == 2 and part.attrs["runs_total"] == 8
    # resume: the three are recomputed, each with one line; the sound one is kept
    with pytest.warns(UserWarning) as caught:
        resumed = tiny_sweep(tiny, tiny_params, out)
    lines = [str(w.message) for w in caught]
    assert [line.split(":")[0] for line in lines] == [str(f) for f in files[:3]]
    assert all(line.endswith(": recomputing it") and "\n" not in line for line in lines)
    pd.testing.assert_frame_equal(resumed, complete, check_exact=True)
    # a foreign chunk: another sweep's part file copied in is refused by load and resume
    other = tmp_path / "other"
    tiny_sweep(tiny, tiny_params, other, grid={"prune_frac": [0.2, 0.4]})
    shutil.copy(results.chunk_files(other)[0], files[3])
    with pytest.raises(ValueError, match=f"^{files[3]}: belongs to another sweep"):
        jaxprune.load(out)
    with pytest.raises(ValueError, match=f"^{files[3]}: belongs to another sweep"):
        jaxprune.load(out, partial=True)
    with pytest.raises(ValueError, match=f"^{files[3]}: belongs to another sweep"):
        tiny_sweep(tiny, tiny_params, out)
    extra = out / "part-g0000-c000009.parquet"  # beyond the sweep's chunks
    shutil.move(files[3], extra)
    with pytest.raises(ValueError, match=f"^{extra} belongs to another sweep"):
        tiny_sweep(tiny, tiny_params, out)


@pytest.mark.slow  # compiles Configs of its own (the fast tier keeps the module's others)
def test_one_schema_across_chunks_read_by_pyarrow_polars_and_duckdb(tmp_path, tiny, tiny_params):
    """A None-able Config field in the grid: one Arrow type (int64 with nulls) in every chunk,
    so that pyarrow.dataset, polars and duckdb read the chunk files as one table."""
    out = tmp_path / "sweep"
    grid = {"batch_size": [None, 4], "prune_frac": [0.0, 0.5]}
    frame = jaxprune.sweep(tiny, grid, SEEDS, base=tiny_params, out=out, chunk_size=2,
                           progress=False)  # fmt: skip
    add_foreign(out)  # the documented readers take the chunk files' glob, not the folder
    files = results.chunk_files(out)
    assert len(files) == 4
    schemas = {pq.read_schema(f).remove_metadata() for f in files}
    assert len(schemas) == 1 and schemas.pop().field("batch_size").type == pa.int64()
    meta = [results.read_metadata(f) for f in files]  # the sweep's metadata in every file
    recorded = json.loads((out / "_sweep.json").read_text())
    for m in meta:
        assert m["spec_hash"] == recorded["spec_hash"] and m["grid"] == recorded["grid"]
        assert m["provenance"]["jaxprune_version"] == jaxprune.__version__
    pattern = str(out / "part-*.parquet")
    expected = frame.sort_values(["run", "step"], ignore_index=True)
    counts = expected.batch_size.isna().sum()
    import pyarrow.dataset as ds

    table = ds.dataset(files, format="parquet").to_table()
    assert table.num_rows == len(frame) and table.column("batch_size").null_count == counts
    polars = pytest.importorskip("polars")
    lazy = polars.scan_parquet(pattern).collect()
    read = polars.read_parquet(pattern)
    assert lazy.height == read.height == len(frame)
    assert read["batch_size"].null_count() == counts
    assert read.sort(["run", "step"])["test_acc"].to_list() == expected.test_acc.tolist()
    duckdb = pytest.importorskip("duckdb")
    rows = duckdb.sql(
        f"select count(*), count(batch_size), sum(run) from read_parquet('{pattern}')"
    ).fetchall()[0]
    assert rows == (len(frame), len(frame) - counts, int(frame.run.sum()))


def test_provenance_is_recorded_and_printed_by_info(tmp_path, tiny, tiny_params, capsys):
    out = tmp_path / "sweep"
    tiny_sweep(tiny, tiny_params, out)
    (out / "part-g0000-c000003.parquet").unlink()
    frame = tiny_sweep(tiny, tiny_params, out)  # resumed: a second invocation
    first, second = frame.attrs["invocations"]
    assert first["chunks_written"] == 4 and second["chunks_written"] == 1
    for invocation in (first, second):
        assert invocation["jaxprune_version"] == jaxprune.__version__ == "0.2.0"
        assert invocation["status"] == "complete" and invocation["wall_s"] > 0
        assert invocation["started"] < invocation["finished"]
        commit = invocation["git_commit"]  # the tests run from a clone
        assert len(commit) == 40 and isinstance(invocation["git_dirty"], bool)
    chunk = results.read_metadata(out / "part-g0000-c000003.parquet")
    assert chunk["provenance"]["started"] == second["started"]
    cli.main(["info", str(out)])
    printed = capsys.readouterr().out
    assert f"jaxprune {jaxprune.__version__}" in printed and commit[:12] in printed
    assert "8 of 8 runs" in printed and printed.count("complete") == 2


def test_provenance_outside_a_clone_is_none(monkeypatch):
    monkeypatch.setattr(results, "_git", lambda folder, *args: None)
    found = results.provenance()
    assert found["git_commit"] is None and found["git_dirty"] is None
    assert found["jaxprune_version"] == jaxprune.__version__


DERIVED = {"lr": "0.125 / (sigma_noise**2 * dim)", "sigma_init": "0.2 / (sigma_noise * sqrt(dim))"}


@pytest.mark.slow  # compiles Configs of its own (the fast tier keeps the module's others)
def test_a_derived_sweep_over_d_equals_the_per_d_sweeps_it_replaces(tmp_path, tiny, tiny_params):
    """lr and sigma_init tied to d in one sweep over d (one shape bucket: one compilation)
    equal, run for run, the sweeps with one d each and their lr and sigma_init computed by
    hand; loading those sweeps together gives the same frame, with dim as a column."""
    dims, grid = [12, 16], {"prune_frac": [0.0, 0.5]}
    together = jaxprune.sweep(tiny, {"dim": dims, **grid}, SEEDS, base=tiny_params,
                              derived=DERIVED, out=tmp_path / "all", progress=False)  # fmt: skip
    assert together.attrs["derived"] == DERIVED and len(together.attrs["engines"]) == 1
    folders = []
    for d in dims:
        sigma = tiny_params.sigma_noise
        lr, sigma_init = 0.125 / (sigma**2 * d), 0.2 / (sigma * math.sqrt(d))
        base = tiny_params.replace(lr=lr, sigma_init=sigma_init)
        folders.append(tmp_path / f"d{d}")
        jaxprune.sweep(tiny.replace(dim=d), grid, SEEDS, base=base, out=folders[-1],
                       progress=False)  # fmt: skip
    apart = jaxprune.load(folders)
    assert apart.attrs["runs_total"] == 8 and len(apart.attrs["sweeps"]) == 2
    assert sorted(apart.run.unique()) == list(range(8))
    apart = apart[together.columns]
    assert_same_runs(apart, together)  # float32 rounding: the bucket pads d = 12 to 16
    for name in ("run", "seed", "dim", "lr", "sigma_init", "prune_frac", "step"):
        assert (apart[name].to_numpy() == together[name].to_numpy()).all(), name
    expected = 0.125 / (tiny_params.sigma_noise**2 * together.dim)
    assert (together.lr.to_numpy() == expected.to_numpy()).all()
    figure = tmp_path / "fig.png"  # `jaxprune plot` takes the per-d sweeps together
    argv = ["plot", *map(str, folders), "--y", "dim", "--mean-over", "lr,sigma_init"]
    cli.main([*argv, "--out", str(figure)])
    assert figure.stat().st_size > 0


@pytest.mark.slow  # compiles Configs of its own (the fast tier keeps the module's others)
def test_zipped_axes_and_grid_variables(tmp_path, tiny, tiny_params):
    """A zipped axis varies two fields together; a grid variable (no field) feeds a derived
    field and is a column; the benign score sets mu_norm."""
    grid = {("dim", "n_train"): [(12, 6), (16, 8)], "score": [0.5, 2.0]}
    derived = {"mu_norm": "(score * sigma_noise**4 * dim / n_train) ** 0.25"}
    frame = jaxprune.sweep(tiny, grid, [3], base=tiny_params, derived=derived, progress=False)
    final = jaxprune.final(frame)
    assert final[["dim", "n_train", "score"]].values.tolist() == [
        [12, 6, 0.5], [12, 6, 2.0], [16, 8, 0.5], [16, 8, 2.0]
    ]  # fmt: skip
    benign = final.n_train * final.mu_norm**4 / (tiny_params.sigma_noise**4 * final.dim)
    np.testing.assert_allclose(benign, final.score, rtol=1e-12)
    assert frame.attrs["grid"]["dim,n_train"] == [[12, 6], [16, 8]]


@pytest.mark.parametrize(
    "grid, derived, message",
    [
        ({"dim": [8]}, {"lr": "__import__('os')"}, "derived['lr'] = \"__import__('os')\" is "
         "invalid: __import__(...) is not allowed"),
        ({"dim": [8]}, {"lr": "dim.real"}, "'dim.real' is not allowed"),
        ({"dim": [8]}, {"lr": "1 / c"}, "'c' is no field and no grid axis"),
        ({"dim": [8]}, {"lr": "1 / (dim"}, "it is no Python expression"),
        ({"dim": [8]}, {"lr": "'a'"}, "'a' is no number"),
        ({"dim": [8]}, {"steps": "dim"}, "derived key 'steps' is invalid: must be a Params"),
        ({"lr": [0.1]}, {"lr": "dim"}, "lr is in the grid too"),
        ({"dim": [8]}, {"lr": "1 - dim / 8"}, "gives Params.lr = 0.0 is invalid: must be finite"),
        ({"dim": [8]}, {"lr": "sigma_init", "sigma_init": "1"}, "sigma_init is derived itself"),
        ({"score": [1.0]}, {}, "grid key 'score' is no field"),
        ({("dim", "lr"): [(8, 0.1)]}, {}, "a zipped axis holds Params fields"),
        ({"dim,n_train": [(8,)]}, {}, "a zipped axis takes a non-empty sequence of 2-tuples"),
    ],
)
def test_bad_derived_expressions_and_zips_are_one_line(tiny, grid, derived, message):
    with pytest.raises(ValueError) as refused:
        jaxprune.sweep(tiny, grid, 1, derived=derived, progress=False)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_a_json_specification_takes_derived_expressions(tmp_path, capsys):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"grid": {"dim": [8, 10]}, "derived": {"lr": "1 / c"}}))
    with pytest.raises(SystemExit):
        cli.main(["sweep", str(spec), "--out", str(tmp_path / "out")])
    assert capsys.readouterr().err == (
        "jaxprune sweep: error: derived['lr'] = '1 / c' is invalid: 'c' is no field and no "
        "grid axis; an expression may use " + jaxprune.derived.ALLOWED + ".\n"
    )


def test_measured_chunk_times_recalibrate_the_next_plans(tiny, monkeypatch):
    """Chunks that ran 4x slower than estimated: the next plan's chunks are 4x smaller, so
    that they hold the time bound at the speed measured."""
    from jaxprune import chunking
    from jaxprune import grid as grid_lib

    monkeypatch.setattr(chunking, "OBSERVED", chunking.collections.deque(maxlen=8))
    monkeypatch.setattr(chunking, "calibrate", lambda: chunking.Speed(2e8, 2e8))
    groups = grid_lib.plan(tiny, {"prune_frac": list(np.linspace(0, 0.9, 64))}, np.arange(64))
    before = chunking.plan_chunks(groups, chunk_seconds=1.0)
    for measured in (3.0, 4.0, 5.0):
        chunking.observe(1.0, measured)
    after = chunking.plan_chunks(groups, chunk_seconds=1.0)
    assert chunking.slowdown() == 4.0
    assert before.shapes[0].runs == 64 * 8 and after.shapes[0].runs == 64 * 2
    assert max(after.seconds) <= 1.0  # estimated at the slower speed


def test_default_chunks_hold_a_bounded_number_of_rows(tiny):
    """Tiny runs (fast by the cost model, fitting any memory budget) still come in chunks of at
    most MAX_CHUNK_ROWS rows, so that a sweep's host memory does not grow with its run count."""
    from jaxprune import chunking

    steps = len(tiny.logged_steps())
    for num_points, num_seeds in [(20_000, 100), (20_000, 10), (10, 100_000)]:
        shape = chunking.choose_chunk_shape(tiny, num_points, num_seeds, memory_budget_gb=64,
                                            chunk_seconds=1e9)  # fmt: skip
        assert shape.runs * steps <= chunking.MAX_CHUNK_ROWS
        assert shape.runs * steps > chunking.MAX_CHUNK_ROWS / 4  # not needlessly small


def test_help_and_version_do_not_import_jax():
    """`jaxprune --help` and `--version` answer without importing JAX (lazy imports), imported
    as the console script imports it."""
    import subprocess
    import sys

    code = (
        "import sys, contextlib, io\n"
        "from jaxprune.cli import main\n"
        "for argv in (['--help'], ['--version'], ['sweep', '--help']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try: main(argv)\n"
        "        except SystemExit: pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'jaxlib', 'numpy')))\n"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=root, env={**os.environ, "PYTHONPATH": str(root)})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.slow
def test_ctrl_c_during_compilation_exits_at_once(tmp_path):
    """SIGINT while the chunk function compiles: the command exits with status 130 and its one
    line without waiting for the compiler (it waited 26 s)."""
    import subprocess
    import sys
    import time

    spec, out = tmp_path / "spec.json", tmp_path / "out"
    spec.write_text(json.dumps({
        "config": {"dim": 64, "width": 8, "n_train": 16, "n_test": 64, "steps": 50,
                   "mask": "synflow", "optimizer": "adam", "num_classes": 4},
        "grid": {"prune_frac": [0.5, 0.9]}, "seeds": 2,
    }))  # fmt: skip
    argv = [sys.executable, "-m", "jaxprune.cli", "sweep", str(spec), "--out", str(out)]
    child = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    while not (out / "_sweep.json").exists():
        assert child.poll() is None
        time.sleep(0.02)
    time.sleep(0.5)  # planned and compiling (SynFlow and Adam compile for seconds)
    assert not results.chunk_files(out)
    start = time.perf_counter()
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=60)
    waited = time.perf_counter() - start
    assert child.returncode == 130 and "Traceback" not in stderr
    assert stderr.splitlines()[-1].startswith("jaxprune sweep: interrupted: 0 of 1 chunks saved")
    assert waited < 10, waited  # far below a compilation's time
    assert json.loads((out / "_sweep.json").read_text())["invocations"][0]["status"] == (
        "interrupted"
    )
