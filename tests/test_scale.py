"""Scale and faults: several devices, several processes, a sweep killed and resumed."""

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from sweep_child import sweep_args, sweep_spec

import jaxprune
from conftest import OLD_FUSION_EMITTERS

pytestmark = pytest.mark.slow  # subprocesses: several devices, several processes, kills

CHILD = Path(__file__).with_name("sweep_child.py")


def _child(out, *args, env=None, **kwargs) -> subprocess.Popen:
    if "--distributed" in args:  # without the session's compilation cache (conftest.py)
        env = {"JAXPRUNE_NO_CACHE": "1", **(env or {})}
    return subprocess.Popen(
        [sys.executable, str(CHILD), str(out), *map(str, args)],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def _finish(process: subprocess.Popen, timeout: float = 300) -> str:
    stdout, stderr = process.communicate(timeout=timeout)
    assert process.returncode == 0, stderr
    return stdout + stderr


@pytest.fixture(scope="session")  # once per worker (conftest: grouped)
def one_device():
    """The test sweep on this process's single CPU device, in memory."""
    config, grid, seeds, base = sweep_args()
    return jaxprune.sweep(config, grid, seeds, base=base, chunk_size=6, progress=False)


def _devices(count: int) -> dict:
    """A child's environment with `count` CPU devices and XLA's own CPU fusion emitters: the
    suite turns them off to compile faster (conftest.py), and the code they generate for a
    sharded chunk may round a last bit unlike the one-device chunk's, which the library's
    default code does not."""
    flags = os.environ.get("XLA_FLAGS", "").replace(OLD_FUSION_EMITTERS, "")
    return {"XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count={count}"}


@pytest.mark.parametrize("dims", [False, True], ids=["grid", "grid-over-dim"])
def test_four_devices_give_the_same_table(tmp_path, dims):
    """The seeds of each chunk are sharded across 4 CPU devices: the table is identical to one
    device's. With dim in the grid, three dimensions are padded into one bucket."""
    args = ("--chunk-size", 12, "--dims") if dims else ("--chunk-size", 6)
    _finish(_child(tmp_path / "one", *args, env=_devices(1)))
    log = _finish(_child(tmp_path / "four", *args, env=_devices(4)))
    assert f"{54 if dims else 18} runs, 4 local devices" in log
    one, four = jaxprune.load(tmp_path / "one"), jaxprune.load(tmp_path / "four")
    pd.testing.assert_frame_equal(four, one, check_exact=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_split_the_chunks(tmp_path, one_device):
    """Two jax.distributed processes on loopback write their own chunk files into one
    directory; each returns the whole table, and `load` merges the files into it."""
    out, port = tmp_path / "out", _free_port()
    children = [_child(out, "--chunk-size", 3, "--distributed", pid, port) for pid in (0, 1)]
    logs = [_finish(child) for child in children]
    for pid, log in enumerate(logs):
        assert f"process {pid}: 18 runs" in log
        assert re.search(r"100%\|#{24}\| 9/9 runs ", log)  # each computed half of the 6 chunks
    assert len(jaxprune.results.chunk_files(out)) == 6
    pd.testing.assert_frame_equal(jaxprune.load(out), one_device, check_exact=True)


# steps: slow enough to be killed midway (about 0.5 s per chunk of one run on the idle CPU, as
# the suite compiles: conftest.py)
SLOW = 30_000


@pytest.fixture(scope="session")  # once per worker (conftest: grouped)
def uninterrupted(tmp_path_factory):
    """The slow test sweep in chunks of one run, uninterrupted, as `load` reads it."""
    clean = tmp_path_factory.mktemp("clean") / "out"
    _finish(_child(clean, "--chunk-size", 1, "--steps", SLOW))
    return jaxprune.load(clean)


def _wait_for_chunks(process: subprocess.Popen, out: Path, count: int) -> None:
    deadline = time.monotonic() + 240
    while len(jaxprune.results.chunk_files(out)) < count:
        assert process.poll() is None, "the sweep ended before it could be stopped"
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_sigint_saves_the_chunk_in_flight_and_says_how_to_resume(tmp_path, uninterrupted):
    """Ctrl-C in the middle of a command-line sweep: the chunk in flight is finished and
    written, the command exits with status 130 and one line saying what is saved and the
    command that resumes, and that command completes the table of an uninterrupted sweep."""
    spec, out = tmp_path / "spec.json", tmp_path / "out"
    spec.write_text(json.dumps(sweep_spec(SLOW)))
    argv = ["sweep", str(spec), "--out", str(out), "--chunk-size", "1"]
    child = subprocess.Popen(
        [sys.executable, "-m", "jaxprune.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_chunks(child, out, 2)
    seen = len(jaxprune.results.chunk_files(out))
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=60)  # bounded: one chunk of a few hundred ms
    assert child.returncode == 130, stderr
    assert "Traceback" not in stderr
    saved = len(jaxprune.results.chunk_files(out))
    assert seen < saved < 18  # the chunk in flight was finished and written, no more
    command = shlex.join(["jaxprune", *argv])
    assert stderr.splitlines()[-1] == (
        f"jaxprune sweep: interrupted: {saved} of 18 chunks saved in {out}; resume by running "
        f"the same sweep again: {command}"
    )
    assert not list(out.glob(".*"))  # no half-written temporaries left
    with pytest.raises(ValueError, match=f"holds {saved} of 18 runs"):
        jaxprune.load(out)
    resumed = subprocess.run(
        [sys.executable, "-m", "jaxprune.cli", *argv], capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"{saved} resumed" in resumed.stderr
    pd.testing.assert_frame_equal(jaxprune.load(out), uninterrupted, check_exact=True)


def test_two_processes_stop_together_on_a_refusal_seen_by_one(tmp_path):
    """A different sweep at `out`, which only process 0 checks: both processes stop with the
    refusal's message (not a barrier timeout)."""
    out, port = tmp_path / "out", _free_port()
    config, grid, seeds, base = sweep_args()
    jaxprune.sweep(config, grid, [1, 2], base=base, out=out, progress=False)
    children = [_child(out, "--distributed", pid, port) for pid in (0, 1)]
    for child in children:
        _, stderr = child.communicate(timeout=120)
        assert child.returncode != 0
        last = stderr.strip().splitlines()[-1]
        assert "holds a different sweep (recorded -> this one: seeds [1, 2] -> [4, 7, 11])" in last


def test_two_processes_stop_together_on_an_error_between_barriers(tmp_path):
    """Process 1 cannot write its chunks: process 0 stops after its chunk in flight, and both
    fail with process 1's error."""
    out, port = tmp_path / "out", _free_port()
    args = ("--chunk-size", 1, "--steps", SLOW, "--distributed")
    children = [_child(out, *args, pid, port, "--fail-writes", 1) for pid in (0, 1)]
    for child in children:
        _, stderr = child.communicate(timeout=120)
        assert child.returncode != 0
        assert "PermissionError: cannot write part-g0000-c000001.parquet (test)" in stderr
    assert len(jaxprune.results.chunk_files(out)) < 9  # process 0 did not go on to the end


def test_sigkill_then_rerun_gives_the_uninterrupted_table(tmp_path, uninterrupted):
    """Kill a sweep with SIGKILL after some chunks are written; re-running it resumes and yields
    exactly the table of an uninterrupted sweep: no row missing or duplicated."""
    steps = SLOW
    killed = tmp_path / "killed"
    child = _child(killed, "--chunk-size", 1, "--steps", steps)
    _wait_for_chunks(child, killed, 3)
    child.send_signal(signal.SIGKILL)
    child.wait()
    written = len(jaxprune.results.chunk_files(killed))
    assert 3 <= written < 18
    log = _finish(_child(killed, "--chunk-size", 1, "--steps", steps))
    assert f"{written} resumed" in log
    resumed = jaxprune.load(killed)
    assert not resumed.duplicated(["seed", "prune_frac", "mu_norm", "step"]).any()
    pd.testing.assert_frame_equal(resumed, uninterrupted, check_exact=True)
    assert not list(killed.glob(".*"))  # no half-written temporaries left
