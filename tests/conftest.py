import os

import pytest

# The suite compiles afresh, in this process and the subprocesses it starts: a persistent cache
# warmed by earlier runs makes two jax.distributed processes start at different times (one
# loads, the other compiles), and the suite's results must not depend on what an earlier run
# left in ~/.cache. tests/test_cache.py sets its own cache directories.
os.environ.setdefault("JAXPRUNE_NO_CACHE", "1")

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


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (`-n auto`, with `--dist loadgroup` from pyproject), the tests that share
    a module-scoped fixture (a sweep, a science script at smoke size) run on one worker, so the
    fixture is computed once; the other tests spread over the workers one by one."""
    for item in items:
        fixtures = getattr(item, "_fixtureinfo", None)
        if fixtures is None:
            continue
        shared = sorted(
            name
            for name, definitions in fixtures.name2fixturedefs.items()
            if definitions[-1].scope == "module"
        )
        if shared:
            item.add_marker(pytest.mark.xdist_group(f"{item.module.__name__}:{','.join(shared)}"))
