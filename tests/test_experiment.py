"""jaxprune.experiment, what the experiment scripts share: their command line and sizes, the run
record (run.json) a Recorder keeps, and the table of invocations the reports print."""

import json

import pytest

import jaxprune
from jaxprune import experiment


def _args(*argv):
    return experiment.parser("A test script.\n\nMore.").parse_args(list(argv))


def test_sizes_and_output_directories():
    assert experiment.size_of(_args()) == "full"
    assert experiment.size_of(_args("--quick")) == "quick"
    assert experiment.size_of(_args("--smoke", "--seeds", "3")) == "smoke"
    assert str(experiment.out_dir("kou", _args())) == "results/kou"
    assert str(experiment.out_dir("kou", _args("--quick"))) == "results/kou-quick"
    assert str(experiment.out_dir("kou", _args("--smoke", "--out", "x/y"))) == "x/y"
    with pytest.raises(SystemExit):  # one size at a time
        _args("--quick", "--smoke")


@pytest.mark.slow  # two recorded sweeps (about 7 s)
def test_recorder_counts_trained_and_resumed_runs(tmp_path, tiny, tiny_params, monkeypatch):
    """A sweep's runs are recorded with those trained by this invocation; a second invocation
    resumes them all (trained 0); the table gives one row per invocation."""
    monkeypatch.setattr("sys.argv", ["sweeps/demo.py", "--smoke"])
    grid = {"prune_frac": [0.0, 0.5]}
    for _ in range(2):
        args = _args("--smoke", "--out", str(tmp_path))
        recorder = experiment.Recorder("sweeps/demo.py", args, "demo")
        frame = recorder.sweep("first", tiny, grid, 2, tiny_params, purpose="a test")
        saved = json.loads((tmp_path / experiment.RUN_FILE).read_text())["invocations"][-1]
        assert saved["finished"] is False  # killed here, the record would say so
        recorder.done()
    assert len(jaxprune.final(frame)) == 4
    record = json.loads((tmp_path / experiment.RUN_FILE).read_text())
    assert record["script"] == "sweeps/demo.py" and record["size"] == "smoke"
    assert record["sweeps"] == {"first": {"purpose": "a test"}}
    first, again = record["invocations"]
    assert first["command"] == "python sweeps/demo.py --smoke"
    assert first["sweeps"]["first"]["runs"] == first["sweeps"]["first"]["trained"] == 4
    assert again["sweeps"]["first"]["trained"] == 0
    assert first["finished"] is again["finished"] is True
    assert first["hardware"]["cpu_count"] >= 1 and first["hardware"]["backend"] == "cpu"
    table = experiment.invocation_table(record)
    assert list(table["runs trained"]) == [4, 0]
    assert list(table["command"]) == ["`python sweeps/demo.py --smoke`"] * 2
    assert experiment.runs_on_disk(tmp_path / "first") == 4
    assert experiment.runs_on_disk(tmp_path / "missing") == 0
    assert "status" not in table  # every invocation finished


def test_a_sweep_that_dies_leaves_its_invocation_marked_unfinished(tmp_path, monkeypatch):
    """Bad input before any sweep writes nothing; an invocation that dies inside its first sweep
    (here the sweep raises, as a kill would stop it) is in run.json, marked unfinished."""
    monkeypatch.setattr("sys.argv", ["sweeps/demo.py", "--smoke"])
    recorder = experiment.Recorder(
        "sweeps/demo.py", _args("--smoke", "--out", str(tmp_path)), "demo"
    )
    assert not (tmp_path / experiment.RUN_FILE).exists()

    def dies(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(experiment, "run_sweep", dies)
    with pytest.raises(RuntimeError, match="killed"):
        recorder.sweep("first", None, {}, 1, None)
    (invocation,) = json.loads((tmp_path / experiment.RUN_FILE).read_text())["invocations"]
    assert invocation["finished"] is False
    assert list(experiment.invocation_table({"invocations": [invocation]})["status"]) == [
        "did not finish (killed, or still running)"
    ]


def test_invocation_table_says_which_invocations_did_not_finish():
    """An invocation without done() (killed) stays marked unfinished, and an `interrupted` note
    is shown as such; a table of finished invocations has no status column."""
    base = {"command": "python sweeps/demo.py", "wall_s": 1.0, "sweeps": {}}
    record = {"invocations": [
        {**base, "finished": True},
        {**base, "finished": False},
        {**base, "finished": False, "interrupted": "killed after one chunk"},
        {**base},  # written before the flag was kept
    ]}  # fmt: skip
    table = experiment.invocation_table(record)
    assert list(table["status"]) == [
        "finished",
        "did not finish (killed, or still running)",
        "interrupted: killed after one chunk",
        "finished",
    ]


@pytest.mark.slow  # one recorded sweep (about 3 s)
def test_recorder_refuses_another_sweep_in_the_scripts_flags(tmp_path, tiny, tiny_params):
    """A sweep key holding another sweep is refused in one line naming the script's flags."""
    args = _args("--smoke", "--out", str(tmp_path))
    experiment.Recorder("sweeps/demo.py", args, "demo").sweep(
        "first", tiny, {"prune_frac": [0.0]}, 1, tiny_params
    )
    recorder = experiment.Recorder("sweeps/demo.py", args, "demo")
    with pytest.raises(SystemExit) as refused:
        recorder.sweep("first", tiny, {"prune_frac": [0.5]}, 1, tiny_params)
    line = str(refused.value)
    assert line.startswith(f"--out {tmp_path / 'first'} holds a different sweep")
    assert line.endswith("choose another --out, or pass --overwrite to replace it.")
    assert "\n" not in line and "overwrite=True" not in line


def test_recorder_refuses_results_of_another_size(tmp_path):
    (tmp_path / experiment.RUN_FILE).write_text(
        json.dumps({"script": "sweeps/demo.py", "size": "quick", "invocations": []})
    )
    with pytest.raises(SystemExit, match="of size 'quick', not sweeps/demo.py 'smoke'"):
        experiment.Recorder("sweeps/demo.py", _args("--smoke", "--out", str(tmp_path)), "demo")
    overwritten = experiment.Recorder(
        "sweeps/demo.py", _args("--smoke", "--out", str(tmp_path), "--overwrite"), "demo"
    )
    assert overwritten.record["size"] == "smoke"
