import atexit
import os
import shutil
import tempfile

import pytest

# Compiling is most of the suite's time (its programs are tiny and compiled once each), so:
# - The processes the suite starts (the science scripts, the CLI, a sweep killed and resumed)
#   share one persistent compilation cache, made fresh for this test session and removed at its
#   end: a program one subprocess compiled, the next one loads. Nothing an earlier run left in
#   ~/.cache is read. The test processes themselves keep the cache off
#   (`jax_enable_compilation_cache`, below), so what they count with jax.monitoring is what
#   they compiled. Two jax.distributed processes run without it (tests/test_scale.py): one
#   loading while the other compiles would start them at different times.
# - XLA's CPU backend at LLVM optimization level 0 and without its new fusion emitters compiles
#   them about 2.5x faster (measured on a small Config's `train`: 6.4 s -> 3.2 s of backend
#   compile for the Gram engine with SNIP; the suite's test_gram, test_model and test_training
#   take 295 s -> 178 s on two workers). Code generated so may round a last bit differently, so
#   the suite compares like with like: every process it starts inherits the flags (a test that
#   sets XLA_FLAGS for a child adds to them). The library runs with XLA's defaults.
if "JAXPRUNE_TEST_CACHE" not in os.environ:  # set once, by pytest's first process
    _cache = tempfile.mkdtemp(prefix="jaxprune-test-cache-")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
    os.environ.update(JAXPRUNE_TEST_CACHE=_cache, JAX_COMPILATION_CACHE_DIR=_cache)
    os.environ.pop("JAXPRUNE_NO_CACHE", None)
OLD_FUSION_EMITTERS = "--xla_cpu_use_fusion_emitters=false"  # tests/test_scale.py takes it out
for _flag in ("--xla_backend_optimization_level=0", OLD_FUSION_EMITTERS):
    if _flag.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_flag}".strip()

import jax  # noqa: E402

jax.config.update("jax_enable_compilation_cache", False)  # this process: see above

from jaxprune import Config, Params  # noqa: E402

# Small enough to compile and train in about a second on a 2-core CPU.
TINY = Config(
    num_classes=2, num_patches=2, dim=16, width=4, n_train=8, n_test=32, steps=20, log_every=5
)
TINY_PARAMS = Params(prune_frac=0.3, mu_norm=2.0, sigma_noise=0.5, sigma_init=0.05, lr=0.5)


@pytest.fixture
def tiny():
    return TINY


@pytest.fixture
def tiny_params():
    return TINY_PARAMS


def assert_same_runs(actual, expected):
    """Frames of the same runs: identical columns, run identities, steps and discrete outcomes;
    float measurements equal up to float32 rounding. (XLA may order a reduction differently for
    another number of runs in a batch, which moves the last bit or two of a sum.)"""
    import numpy as np
    import pandas as pd

    assert list(actual.columns) == list(expected.columns)
    assert len(actual) == len(expected)
    floats = [c for c in expected.columns if expected[c].dtype == np.float32]
    pd.testing.assert_frame_equal(
        actual.drop(columns=floats).reset_index(drop=True),
        expected.drop(columns=floats).reset_index(drop=True),
        check_exact=True,
    )
    for column in floats:
        np.testing.assert_allclose(
            actual[column], expected[column], rtol=1e-5, atol=1e-6, err_msg=column
        )


def pytest_itemcollected(item):
    """Under pytest-xdist (`-n auto`, with `--dist loadgroup` from pyproject), the tests that share
    a fixture of their module's computed once (a sweep, a science script at smoke size) run on one
    worker; the other tests spread over the workers one by one. The group is marked as each test
    is collected, before xdist writes the groups into the node ids (in its
    pytest_collection_modifyitems, which runs before a conftest's). (Under pytest 9.2 xdist's
    groups are ignored, and the science smoke, 40-50 s, was computed on both workers: the test
    extra keeps pytest below 9.2.) The fixtures are session-scoped:
    a worker may run other modules' tests between a group's, and a module-scoped fixture would
    be torn down and computed again when the group comes back."""
    fixtures = getattr(item, "_fixtureinfo", None)
    if fixtures is None:
        return
    shared = sorted(
        name
        for name, definitions in fixtures.name2fixturedefs.items()
        if definitions[-1].scope in ("module", "session")
        and getattr(definitions[-1].func, "__module__", None) == item.module.__name__
    )
    if shared:
        item.add_marker(pytest.mark.xdist_group(f"{item.module.__name__}:{','.join(shared)}"))
