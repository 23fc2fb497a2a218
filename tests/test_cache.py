"""The persistent compilation cache (`jaxprune.cache`): where `import jaxprune` puts it, how it
is turned off, and that a second process compiles nothing new (counted by jax.monitoring)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SETTINGS = """
import json, jax, jaxprune
print(json.dumps({"dir": jax.config.jax_compilation_cache_dir,
                  "time": jax.config.jax_persistent_cache_min_compile_time_secs,
                  "size": jax.config.jax_persistent_cache_min_entry_size_bytes}))
"""

SWEEP = """
import json, jax
counts = {"misses": 0, "hits": 0, "compile_seconds": 0.0}
def event(name, **kwargs):
    if name == "/jax/compilation_cache/cache_misses":
        counts["misses"] += 1
    if name == "/jax/compilation_cache/cache_hits":
        counts["hits"] += 1
def duration(name, seconds, **kwargs):
    if name == "/jax/core/compile/backend_compile_duration":
        counts["compile_seconds"] += seconds
jax.monitoring.register_event_listener(event)
jax.monitoring.register_event_duration_secs_listener(duration)
import jaxprune
config = jaxprune.Config(dim=12, width=3, n_train=6, n_test=10, steps=4, log_every=2)
frame = jaxprune.sweep(config, {"prune_frac": [0.0, 0.5]}, 2, progress=False)
counts["rows"] = len(frame)
print(json.dumps(counts))
"""


def _run(code: str, **environ) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "JAXPRUNE_"))}
    env.update(PYTHONPATH=str(ROOT), **environ)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_where_the_cache_goes_and_how_it_turns_off(tmp_path):
    default = _run(SETTINGS, XDG_CACHE_HOME=str(tmp_path / "xdg"))
    assert default == {"dir": str(tmp_path / "xdg" / "jaxprune" / "jax"), "time": 0.0, "size": -1}
    chosen = _run(SETTINGS, JAX_COMPILATION_CACHE_DIR=str(tmp_path / "mine"))
    assert chosen["dir"] == str(tmp_path / "mine") and chosen["time"] == 0.0
    assert _run(SETTINGS, JAX_COMPILATION_CACHE_DIR="")["dir"] in (None, "")
    off = _run(SETTINGS, JAXPRUNE_NO_CACHE="1", XDG_CACHE_HOME=str(tmp_path / "xdg"))
    assert off == {"dir": None, "time": 1.0, "size": 0}  # JAX's own defaults, untouched
    kept = _run(SETTINGS, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="2.5",
                XDG_CACHE_HOME=str(tmp_path / "xdg"))  # fmt: skip
    assert kept["time"] == 2.5  # the user's own threshold is kept


@pytest.mark.slow
def test_a_second_process_compiles_nothing_new(tmp_path):
    """The same sweep in two fresh processes sharing a cache directory: the first misses the
    cache and compiles; the second finds every compilation (no miss) and spends a fraction of
    the first's backend compile time."""
    cache = str(tmp_path / "cache")
    first = _run(SWEEP, JAX_COMPILATION_CACHE_DIR=cache)
    second = _run(SWEEP, JAX_COMPILATION_CACHE_DIR=cache)
    assert first["rows"] == second["rows"] == 12
    assert first["misses"] > 0 and first["hits"] == 0
    assert second["misses"] == 0 and second["hits"] >= first["misses"]
    assert second["compile_seconds"] < 0.5 * first["compile_seconds"]
