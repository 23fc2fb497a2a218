"""Theory columns: the formulas of SPEC §2.6, and their presence in result frames."""

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
        }
    )
    cols = theory.columns(frame)
    assert set(cols) == set(theory.THEORY_COLUMNS)
    np.testing.assert_allclose(cols["d_eff"], [100.0, 50.0])
    np.testing.assert_allclose(cols["benign_score"], [0.1, 10 * 16 / 50])
    np.testing.assert_allclose(cols["p_any_class_without_signal"], [0.0, 1 - (1 - 0.5**4) ** 2])
