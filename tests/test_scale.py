"""Scale and faults: several devices, several processes, a sweep killed and resumed."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from sweep_child import sweep_args

import jaxprune

CHILD = Path(__file__).with_name("sweep_child.py")


def _child(out, *args, env=None, **kwargs) -> subprocess.Popen:
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


@pytest.fixture(scope="module")
def one_device():
    """The test sweep on this process's single CPU device, in memory."""
    config, grid, seeds, base = sweep_args()
    return jaxprune.sweep(config, grid, seeds, base=base, chunk_size=6, progress=False)


def test_four_devices_give_the_same_table(tmp_path, one_device):
    """The seeds of each chunk are sharded across 4 CPU devices: the table is identical."""
    flags = "--xla_force_host_platform_device_count=4"
    log = _finish(_child(tmp_path / "out", "--chunk-size", 6, env={"XLA_FLAGS": flags}))
    assert "18 runs, 4 local devices" in log
    pd.testing.assert_frame_equal(jaxprune.load(tmp_path / "out"), one_device, check_exact=True)


def test_four_devices_give_the_same_table_for_a_grid_over_dim(tmp_path):
    """The same with dim in the grid (three dimensions padded into one bucket)."""
    config, grid, seeds, base = sweep_args(dims=True)
    one = jaxprune.sweep(config, grid, seeds, base=base, chunk_size=12, progress=False)
    flags = "--xla_force_host_platform_device_count=4"
    log = _finish(_child(tmp_path / "out", "--chunk-size", 12, "--dims", env={"XLA_FLAGS": flags}))
    assert "54 runs, 4 local devices" in log
    pd.testing.assert_frame_equal(jaxprune.load(tmp_path / "out"), one, check_exact=True)


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
        assert "9/9 runs (100%)" in log  # each computed half of the 6 chunks of 3 runs
    assert len(jaxprune.results.chunk_files(out)) == 6
    pd.testing.assert_frame_equal(jaxprune.load(out), one_device, check_exact=True)


def test_sigkill_then_rerun_gives_the_uninterrupted_table(tmp_path):
    """Kill a sweep with SIGKILL after some chunks are written; re-running it resumes and yields
    exactly the table of an uninterrupted sweep: no row missing or duplicated."""
    steps = 4000  # slow enough (a few hundred ms per chunk of one run) to be killed midway
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    child = _child(killed, "--chunk-size", 1, "--steps", steps)
    deadline = time.monotonic() + 240
    while len(jaxprune.results.chunk_files(killed)) < 3:
        assert child.poll() is None, "the sweep ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    written = len(jaxprune.results.chunk_files(killed))
    assert 3 <= written < 18
    log = _finish(_child(killed, "--chunk-size", 1, "--steps", steps))
    assert f"{written} resumed" in log
    _finish(_child(clean, "--chunk-size", 1, "--steps", steps))
    resumed, uninterrupted = jaxprune.load(killed), jaxprune.load(clean)
    assert not resumed.duplicated(["seed", "prune_frac", "mu_norm", "step"]).any()
    pd.testing.assert_frame_equal(resumed, uninterrupted, check_exact=True)
    assert not list(killed.glob(".*"))  # no half-written temporaries left
