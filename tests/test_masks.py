"""Masks: fractions within a binomial band, exact counts, nesting across p, and the p^m rule."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxprune import Config, theory
from jaxprune.masks import mask_uniforms, sample_mask

FRACS = [0.0, 0.1, 0.37, 0.5, 0.9, 0.99]


@pytest.mark.parametrize("p", FRACS)
def test_bernoulli_fraction_in_binomial_band(p):
    config = Config(num_classes=3, width=50, dim=300)
    mask = np.asarray(sample_mask(config, jax.random.key(5), p))
    assert set(np.unique(mask)) <= {0.0, 1.0}
    trials = mask.size
    assert abs(mask.sum() - trials * (1 - p)) <= 4.5 * np.sqrt(trials * p * (1 - p)) + 1e-9


@pytest.mark.parametrize("p", FRACS)
def test_exact_removes_round_pd_per_neuron(p):
    config = Config(num_classes=2, width=7, dim=101, mask="exact")
    mask = np.asarray(sample_mask(config, jax.random.key(5), p))
    np.testing.assert_array_equal(mask.sum(axis=-1), 101 - round(p * 101))


@pytest.mark.parametrize("kind", ["bernoulli", "exact"])
def test_masks_nested_across_p_for_one_seed(kind):
    config = Config(num_classes=2, width=10, dim=64, mask=kind)
    fracs = jnp.linspace(0.0, 0.95, 12)
    masks = np.asarray(jax.vmap(lambda p: sample_mask(config, jax.random.key(3), p))(fracs))
    for looser, tighter in zip(masks[:-1], masks[1:], strict=True):
        assert (tighter <= looser).all()  # mask(p2) ⊆ mask(p1) for p1 < p2
        assert tighter.sum() <= looser.sum()
    assert masks[0].all() and masks[-1].sum() < 0.1 * masks[-1].size
    other = np.asarray(sample_mask(config, jax.random.key(4), 0.5))
    assert (other != masks[6]).any()  # another seed, another mask


def test_p_any_class_without_signal_matches_masks():
    """Monte Carlo over 4000 seeds of the mask's signal coordinates against 1 - (1 - p^m)^K."""
    config = Config(num_classes=3, width=6, dim=8)
    p = 0.8
    keys = jax.random.split(jax.random.key(0), 4000)
    masks = jax.vmap(lambda k: sample_mask(config, k, p))(keys)  # (S, K, m, d)
    kept = np.asarray(masks[:, jnp.arange(3), :, jnp.arange(3)])  # (K, S, m): signal coordinate
    none_kept = (kept.sum(axis=-1) == 0).any(axis=0)
    prob = theory.p_any_class_without_signal(p, 6, 3)
    np.testing.assert_allclose(prob, 1 - (1 - 0.8**6) ** 3)
    assert abs(none_kept.mean() - prob) <= 4.5 * np.sqrt(prob * (1 - prob) / 4000)
    np.testing.assert_allclose(
        kept.sum(axis=-1).mean(), theory.signal_neurons_expected(p, 6), rtol=0.03
    )


def test_uniforms_shape_and_range():
    u = np.asarray(mask_uniforms(Config(num_classes=2, width=3, dim=9), jax.random.key(0)))
    assert u.shape == (2, 3, 9) and (u >= 0).all() and (u < 1).all()
