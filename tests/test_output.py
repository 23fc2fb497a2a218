"""A sweep's output directory: overwrite removes only the sweep's own files, chunks are verified
on resume and load, one schema across chunks, provenance, several sweeps loaded as one."""

import json
import os
import signal
from pathlib import Path

import pandas as pd
import pytest

import jaxprune
from jaxprune import cli, results, runner

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
