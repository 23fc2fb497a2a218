"""Theory columns: the formulas of docs/schema.md, and their presence in result frames."""

import numpy as np
import pandas as pd

from jaxprune import theory


def test_formulas():
    np.testing.assert_allclose(theory.d_eff(0.75, 400), 100.0)
    np.testing.assert_allclose(theory.snr_eff(2.0, 0.5, 0.75, 400), 2.0 / (0.5 * 10.0))
    np.testing.assert_allclose(
        theory.benign_score(50, 2.0, 0.5, 0.75, 400), 50 * 16 / (0.0625 * 100)
    )
    np.testing.assert_allclose(theory.signal_neurons_expected(0.9, 20), 2.0)
    np.testing.assert_allclose(theory.p_class_without_signal(0.5, 3), 0.125)
    np.testing.assert_allclose(theory.p_any_class_without_signal(0.5, 3, 2), 1 - 0.875**2)


def test_columns_work_on_frames():
    frame = pd.DataFrame(
        {
            "prune_frac": [0.0, 0.5],
            "mu_norm": [1.0, 2.0],
            "sigma_noise": [1.0, 1.0],
            "dim": [100, 100],
            "width": [4, 4],
            "n_train": [10, 10],
            "num_classes": [2, 2],
            "sigma_init": [0.01, 0.01],
            "lr": [1.0, 1.0],
        }
    )
    cols = theory.columns(frame)
    assert set(cols) == set(theory.THEORY_COLUMNS)
    np.testing.assert_allclose(cols["d_eff"], [100.0, 50.0])
    np.testing.assert_allclose(cols["benign_score"], [0.1, 10 * 16 / 50])
    np.testing.assert_allclose(cols["p_any_class_without_signal"], [0.0, 1 - (1 - 0.5**4) ** 2])


def test_regime_columns_by_hand():
    """d = 10000, n = 40, m = 20, sigma = 1, sigma_0 = 0.0005, lr = 1e-4, K = 2, at p = 0, 0.5
    and 0.99: each regime quantity and in_regime, computed by hand."""
    frame = pd.DataFrame(
        {
            "prune_frac": [0.0, 0.5, 0.99],
            "mu_norm": 2.0,
            "sigma_noise": 1.0,
            "sigma_init": 0.0005,
            "lr": 1e-4,
            "dim": 10_000,
            "width": 20,
            "n_train": 40,
            "num_classes": 2,
        }
    )
    cols = theory.columns(frame)
    np.testing.assert_allclose(cols["regime_d_over_n2"], 10_000 / 1600)  # 6.25
    np.testing.assert_allclose(cols["regime_init_scale"], 0.0005 * 100)  # 0.05
    np.testing.assert_allclose(cols["regime_init_kou"], 0.0005 * 10_000 / 40**0.5)  # 0.79
    np.testing.assert_allclose(cols["regime_step"], 1e-4 * 10_000)  # 1.0: at the threshold
    np.testing.assert_allclose(cols["regime_signal_neurons"], [20, 10, 0.2], rtol=1e-12)
    np.testing.assert_allclose(cols["regime_memorization"], [5000, 2500, 50], rtol=1e-12)
    assert cols["in_regime"].dtype == bool
    assert cols["in_regime"].tolist() == [True, True, True]
    # the paper-claims setting: d = 200, n = 40 (d/n^2 = 0.125), sigma_0 = 0.3, lr = 1
    paper = frame.assign(dim=200, sigma_init=0.3, lr=1.0)
    cols = theory.columns(paper)
    np.testing.assert_allclose(cols["regime_d_over_n2"], 0.125)
    np.testing.assert_allclose(cols["regime_init_scale"], 0.3 * 200**0.5)
    np.testing.assert_allclose(cols["regime_step"], 200.0)
    assert not cols["in_regime"].any()
    # one condition at a time flips in_regime
    for change in ({"dim": 1599}, {"sigma_init": 0.00064}, {"lr": 1.01e-4}):
        assert not theory.columns(frame.assign(**change))["in_regime"].any(), change
    # memorization: m (1 - p) d / n < 1 at p = 0.99999 with d = 100: 20 * 1e-5 * 100 / 40
    tiny = frame.assign(dim=1600, prune_frac=0.99999, sigma_init=0.001)
    assert (theory.columns(tiny)["regime_memorization"] < 1).all()
    assert not theory.columns(tiny)["in_regime"].any()


def test_regime_step_in_the_models_own_scaling():
    """output_scale='sum' has no 1/m in F, so the theorems' eta is m lr."""
    mean = theory.regime_step(0.1, 1.0, 100, width=10, output_scale="mean")
    total = theory.regime_step(0.1, 1.0, 100, width=10, output_scale="sum")
    np.testing.assert_allclose([mean, total], [10.0, 100.0])


def test_regime_columns_in_result_frames():
    """history_frame adds every theory column; per-run shape columns win over the Config."""
    from jaxprune import Config
    from jaxprune.results import history_frame

    config = Config(dim=100, width=4, n_train=10, output_scale="sum")
    run_columns = {
        "run": np.array([0, 1], dtype=np.int64),
        "seed": np.array([0, 1]),
        "prune_frac": np.array([0.0, 0.5]),
        "mu_norm": np.array([1.0, 1.0]),
        "sigma_noise": np.array([1.0, 1.0]),
        "sigma_init": np.array([0.01, 0.2]),
        "lr": np.array([0.001, 0.001]),
        "label_flip": np.array([0.0, 0.0]),
        "dim": np.array([100, 400]),
    }
    from jaxprune.metrics import METRIC_NAMES

    history = {name: np.zeros((2, 1)) for name in METRIC_NAMES}
    frame = history_frame(config, run_columns, np.array([0]), history)
    for column in theory.THEORY_COLUMNS:
        assert column in frame.columns, column
    np.testing.assert_allclose(frame.regime_d_over_n2, [1.0, 4.0])
    np.testing.assert_allclose(frame.regime_init_scale, [0.1, 4.0])
    np.testing.assert_allclose(frame.regime_init_kou, [0.01 * 100 / 10**0.5, 0.2 * 400 / 10**0.5])
    np.testing.assert_allclose(frame.regime_step, [0.001 * 4 * 100, 0.001 * 4 * 400])
    np.testing.assert_allclose(frame.regime_memorization, [40.0, 80.0])
    assert frame.in_regime.dtype == bool and frame.in_regime.tolist() == [True, False]
