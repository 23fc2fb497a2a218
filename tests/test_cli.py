"""The console command and the quickstart script, end to end at a tiny size."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import jaxprune
from jaxprune import cli

ROOT = Path(__file__).resolve().parents[1]


def test_info(capsys):
    cli.main(["info"])
    out = capsys.readouterr().out
    assert f"jaxprune_version: {jaxprune.__version__}" in out and "backend: cpu" in out
    assert "device: " in out


def test_quickstart_quick_writes_parquet_and_png(tmp_path):
    out = tmp_path / "qs"
    done = subprocess.run(
        [sys.executable, str(ROOT / "sweeps" / "quickstart.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    frame = jaxprune.load(out)
    last = jaxprune.final(frame)
    assert len(last) == 3 * 2 * 2 and set(last.prune_frac) == {0.0, 0.5, 0.99}
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert "12/12 runs (100%)" in done.stderr and "ETA" in done.stderr  # progress on stderr

    cli.main(["plot", str(out), "--value", "train_acc", "--out", str(tmp_path / "t.png")])
    assert (tmp_path / "t.png").stat().st_size > 10_000


def test_sweep_from_json_spec_and_bad_spec(tmp_path, capsys):
    spec = {
        "config": {"dim": 8, "width": 3, "n_train": 6, "n_test": 16, "steps": 4, "log_every": 2},
        "grid": {"prune_frac": [0.0, 0.5]},
        "seeds": 2,
    }
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    cli.main(["sweep", str(path), "--out", str(tmp_path / "out")])
    assert len(jaxprune.final(jaxprune.load(tmp_path / "out"))) == 4
    path.write_text(json.dumps({**spec, "grid": {"prune_frac": [1.5]}}))
    with pytest.raises(SystemExit) as exit_:
        cli.main(["sweep", str(path), "--out", str(tmp_path / "bad")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert (
        "Params.prune_frac = 1.5 is invalid: must lie in [0, 1)" in err and "Traceback" not in err
    )


@pytest.mark.parametrize(
    "argv,message",
    [
        (["sweep", "no-such-sweep.py"], "no sweep script or specification at no-such-sweep.py"),
        (["plot", "no-such-results"], "no sweep output at no-such-results"),
    ],
)
def test_missing_files_are_one_line_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_unknown_field_in_json_spec_is_a_one_line_error(tmp_path, capsys):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({"config": {"dimm": 10}, "grid": {"prune_frac": [0.1]}}))
    with pytest.raises(SystemExit) as exit_:
        cli.main(["sweep", str(path), "--out", str(tmp_path / "out")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "Config has no field 'dimm'" in err and "Traceback" not in err
