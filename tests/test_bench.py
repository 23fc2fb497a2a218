"""The benchmark's smoke size runs and reports every figure (no timing is asserted)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # the benchmark script in a subprocess

ROOT = Path(__file__).parents[1]


def test_benchmark_smoke_writes_every_figure(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--smoke", "--no-torch",
         "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["matmul_peak_flops"] > 0 and report["environment"]["backend"] == "cpu"
    assert [w["workload"] for w in report["workloads"]] == ["W1-smoke", "W2-smoke", "Kou-3d"]
    *rows, kou = report["workloads"]
    assert kou["runs"] == 3 * 4 * 2 and kou["buckets"] == 1 and kou["compilations"] >= 1
    for key in ("compile_s", "wall_s", "run_s", "runs_per_s", "projected_full_wall_s"):
        assert kou[key] > 0, key
    assert report["copy_bytes_per_s"] > 0
    for row in rows:
        for key in ("runs_per_s", "model_gflops", "fraction_of_peak", "speedup_vs_jax_loop",
                    "compile_s", "xla_peak_mib", "peak_rss_mib",
                    "memory_gbytes_per_s"):  # fmt: skip
            assert row[key] > 0, key
        assert row["speedup_vs_torch_loop"] is None  # --no-torch
        assert f"| {row['workload']} | {row['runs']} |" in done.stdout
