"""Presets: the kou2023 model against an independent NumPy rendering of Kou et al.'s CNN."""

import jax
import numpy as np
import pytest

import jaxprune
from jaxprune import model
from jaxprune.data import sample_dataset
from jaxprune.masks import sample_mask


def test_kou2023_settings():
    config, params = jaxprune.presets.kou2023()
    assert (config.num_classes, config.num_patches, config.width) == (2, 2, 10)
    assert (config.n_train, config.n_test, config.steps) == (20, 1000, 100)
    assert (config.signal, config.noise_orthogonal, config.layout) == (
        "antipodal",
        False,
        "patches",
    )
    assert (config.bias, config.init, config.activation) == (True, "uniform_fan_in", "relu")
    assert (config.output_scale, config.patch_reduce) == ("sum", "mean")
    assert (params.lr, params.label_flip, params.sigma_noise, params.prune_frac) == (
        0.1,
        0.1,
        1.0,
        0.0,
    )
    assert jaxprune.presets.kou2023(dim=300)[0].dim == 300


@pytest.mark.slow  # compiles Configs of its own (the fast tier keeps the module's others)
def test_kou2023_forward_equals_conv1d_rendering():
    """Conv1d(1, 2m, kernel=d, stride=d, bias) over the two patches laid end to end, ReLU,
    mean over the 2 output positions, sum over the m filters of each class."""
    config, params = jaxprune.presets.kou2023(dim=50)
    key = jax.random.key(0)
    data = sample_dataset(config, params, key, 16)
    w, b = model.init_weights(config, params, jax.random.fold_in(key, 1))
    mask = sample_mask(config, key, 0.0)
    got = np.asarray(model.logits(config, w, b, mask, data.x))

    signal = np.asarray(data.x).reshape(16, 1, 100)  # (batch, channels=1, length 2d)
    kernel = np.asarray(w).reshape(20, 1, 50)  # (out_channels = 2m, in, kernel): class-major
    bias = np.asarray(b).reshape(20)
    conv = np.stack(
        [
            (signal[:, :, s * 50 : (s + 1) * 50][:, None] * kernel[None]).sum((2, 3)) + bias
            for s in range(2)
        ],
        axis=-1,
    )  # (batch, 2m, positions)
    hidden = np.maximum(conv, 0).mean(-1)
    want = np.stack([hidden[:, :10].sum(1), hidden[:, 10:].sum(1)], axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_kou2023_data_statistics():
    config, params = jaxprune.presets.kou2023(dim=100, mu_norm=2.0)
    data = sample_dataset(config, params, jax.random.key(3), 5000)
    y, y_true = np.asarray(data.y), np.asarray(data.y_true)
    assert abs((y != y_true).mean() - 0.1) < 4.5 * np.sqrt(0.09 / 5000)
    noise = np.asarray(data.noise)[np.asarray(data.noise_patch) == 1]
    np.testing.assert_allclose(noise[:, 0].var(), 1.0, rtol=0.1)  # not orthogonalized
    signal = np.asarray(data.x)[np.asarray(data.noise_patch) == 0]
    np.testing.assert_array_equal(signal[:, 0], np.where(y_true == 1, 2.0, -2.0))


def test_yang2023_is_the_default_paper_setting():
    config, params = jaxprune.presets.yang2023()
    assert config == jaxprune.Config() and params == jaxprune.Params()
    assert (config.signal, config.noise_orthogonal, config.output_scale, config.mask) == (
        "orthogonal",
        True,
        "mean",
        "bernoulli",
    )
