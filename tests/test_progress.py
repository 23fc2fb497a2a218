"""The sweep's progress and messages: one `jaxprune` log line per update off a terminal, a tqdm
bar redrawn in place on one, the rate of the runs computed here (resumed ones excluded), silent
when disabled."""

import io
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from jaxprune import progress
from jaxprune.progress import ProgressBar


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def clock(monkeypatch):
    """A clock the test advances: progress.time.perf_counter reads it."""
    now = [100.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: now[0])
    return now


def test_log_lines_count_rate_eta_and_resumed(clock, caplog):
    caplog.set_level(logging.INFO, logger="jaxprune")
    bar = ProgressBar(12, stream=io.StringIO())
    bar.note("plan: 12 runs in 3 chunks")
    bar.update(4, resumed=True)  # read from disk at once: not in the rate
    clock[0] += 2.0
    bar.update(4)  # 4 runs computed in 2 s: 2 runs/s, 4 left -> 2 s
    clock[0] += 2.0
    bar.update(4)
    lines = [r.getMessage() for r in caplog.records if r.name == "jaxprune"]
    assert lines[0] == "plan: 12 runs in 3 chunks"
    assert re.fullmatch(r" 33%\|#{8} {16}\| 4/12 runs, 4 resumed \? runs/s .* ETA \?", lines[1])
    assert lines[2] == (
        " 67%|################        | 8/12 runs, 4 resumed  2.00 runs/s elapsed 00:02 ETA 00:02"
    )
    assert lines[3].startswith("100%|" + "#" * 24 + "| 12/12 runs, 4 resumed  2.00 runs/s")
    assert lines[3].endswith("elapsed 00:04 ETA 00:00") and len(lines) == 4


@pytest.mark.slow  # a subprocess importing jax
def test_default_handler_until_the_application_configures_logging():
    """A plain process prints `[jaxprune] ...` on stderr; once the application configures logging
    the lines go to its handlers, once each."""
    code = (
        "import logging, sys; from jaxprune.progress import ProgressBar\n"
        "ProgressBar(3).update(3)\n"
        "logging.basicConfig(format='app: %(name)s: %(message)s', stream=sys.stdout)\n"
        "ProgressBar(2).update(2)\n"
    )
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"\[jaxprune\] 100%\|#{24}\| 3/3 runs .* ETA 00:00\n", done.stderr)
    assert re.fullmatch(r"app: jaxprune: 100%\|#{24}\| 2/2 runs .* ETA 00:00\n", done.stdout)


def test_terminal_bar_redraws_in_place(clock, caplog):
    caplog.set_level(logging.INFO, logger="jaxprune")
    terminal = Terminal()
    bar = ProgressBar(10, stream=terminal)
    bar.started()
    clock[0] += 1.0
    bar.update(5)
    bar.update(5)
    text = terminal.getvalue()
    assert text.startswith("\r[jaxprune]   0%|") and text.endswith("ETA 00:00\n")
    assert text.count("\n") == 1 and "| 10/10 runs" in text  # one line, redrawn with \r
    assert not [r for r in caplog.records if "runs" in r.getMessage()]  # not in the log


def test_disabled_is_silent(clock, caplog, capsys):
    caplog.set_level(logging.INFO, logger="jaxprune")
    terminal = Terminal()
    bar = ProgressBar(4, enabled=False, stream=terminal)
    bar.note("plan")
    bar.started()
    bar.update(4)
    assert terminal.getvalue() == "" and not caplog.records and capsys.readouterr().err == ""
    assert bar.done == 4
