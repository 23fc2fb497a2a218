"""Sampled data against the distribution of docs/concepts/model.md#data."""

import jax
import numpy as np
import pytest

from jaxprune import Config, Params
from jaxprune.data import sample_dataset

N = 4000


def _sample(config, **params):
    data = sample_dataset(config, Params(**params), jax.random.key(11), N)
    return {k: np.asarray(v) for k, v in vars(data).items()}


def _binomial_band(count, trials, prob, z=4.5):
    """count lies within z standard deviations of Binomial(trials, prob)'s mean."""
    assert abs(count - trials * prob) <= z * np.sqrt(trials * prob * (1 - prob)) + 1e-9, (
        count,
        trials * prob,
    )


@pytest.mark.parametrize("noise_orthogonal", [True, False])
def test_orthogonal_patches(noise_orthogonal):
    config = Config(num_classes=3, num_patches=4, dim=20, noise_orthogonal=noise_orthogonal)
    d = _sample(config, mu_norm=2.5, sigma_noise=0.7)
    x, y_true, noise, noise_patch = d["x"], d["y_true"], d["noise"], d["noise_patch"]
    # Exactly one signal patch per sample, equal to mu_norm * e_{y} (the noise is zero there).
    signal_patch = noise_patch == 0
    assert (signal_patch.sum(axis=1) == 1).all()
    signal = x[signal_patch]
    np.testing.assert_array_equal(signal, 2.5 * np.eye(3, 20)[y_true])
    # Signal position and labels uniform.
    for q in range(4):
        _binomial_band(signal_patch[:, q].sum(), N, 1 / 4)
    for k in range(3):
        _binomial_band((y_true == k).sum(), N, 1 / 3)
    # Noise patches are the noise: mean 0, variance sigma^2, independent coordinates.
    np.testing.assert_array_equal(x[~signal_patch], noise[~signal_patch])
    xi = noise[~signal_patch]  # (N * 3, d)
    free = xi[:, 3:]
    assert abs(free.mean()) < 4.5 * 0.7 / np.sqrt(free.size)
    np.testing.assert_allclose(free.var(), 0.49, rtol=4.5 * np.sqrt(2 / free.size))
    assert abs(np.corrcoef(free[:, 0], free[:, 1])[0, 1]) < 4.5 / np.sqrt(len(free))
    if noise_orthogonal:
        assert not xi[:, :3].any()  # orthogonal to every signal direction
    else:
        np.testing.assert_allclose(xi[:, :3].var(), 0.49, rtol=4.5 * np.sqrt(2 / xi[:, :3].size))


def test_antipodal_signal_sign_follows_class():
    config = Config(
        num_classes=2, num_patches=2, dim=30, signal="antipodal", noise_orthogonal=False
    )
    d = _sample(config, mu_norm=3.0)
    signal = d["x"][d["noise_patch"] == 0]
    expected = np.zeros((N, 30))
    expected[:, 0] = np.where(d["y_true"] == 1, 3.0, -3.0)
    np.testing.assert_array_equal(signal, expected)
    _binomial_band((d["y_true"] == 1).sum(), N, 0.5)


def test_additive_layout():
    config = Config(num_classes=2, num_patches=1, dim=25, layout="additive")
    d = _sample(config, mu_norm=1.5, sigma_noise=2.0)
    assert d["x"].shape == (N, 1, 25) and (d["noise_patch"] == 1).all()
    mean = 1.5 * np.eye(2, 25)[d["y_true"]]
    np.testing.assert_allclose(d["x"][:, 0] - mean, d["noise"][:, 0], atol=1e-6)
    xi = d["noise"][:, 0, 2:]
    np.testing.assert_allclose(xi.var(), 4.0, rtol=4.5 * np.sqrt(2 / xi.size))
    assert not d["noise"][:, 0, :2].any()


@pytest.mark.parametrize("num_classes", [2, 4])
def test_label_flip_rate_and_target(num_classes):
    config = Config(num_classes=num_classes, dim=8)
    d = _sample(config, label_flip=0.2)
    flipped = d["y"] != d["y_true"]
    _binomial_band(flipped.sum(), N, 0.2)
    # A flipped label is any other class, uniformly.
    offsets = (d["y"][flipped] - d["y_true"][flipped]) % num_classes
    for offset in range(1, num_classes):
        _binomial_band((offsets == offset).sum(), flipped.sum(), 1 / (num_classes - 1))
    assert not (_sample(config, label_flip=0.0)["y"] != d["y_true"]).any()


def test_params_only_scale_the_same_draws():
    """Runs of one seed with different Params see the same sample, scaled (paired runs)."""
    config = Config(num_classes=3, num_patches=3, dim=10)
    a = _sample(config, mu_norm=1.0, sigma_noise=1.0, label_flip=0.1)
    b = _sample(config, mu_norm=2.0, sigma_noise=0.5, label_flip=0.3)
    np.testing.assert_array_equal(a["y_true"], b["y_true"])
    np.testing.assert_array_equal(a["noise_patch"], b["noise_patch"])
    np.testing.assert_allclose(b["noise"], 0.5 * a["noise"], rtol=1e-6)
    # Flips are nested in the flip probability: every label flipped at 0.1 is flipped at 0.3.
    assert (b["y"] != b["y_true"])[a["y"] != a["y_true"]].all()
