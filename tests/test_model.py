"""The network and its gradient: autodiff against central finite differences in float64."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxprune import Config, Params, model
from jaxprune.data import dataset, draw_sample, sample_dataset
from jaxprune.dense import gd_step
from jaxprune.masks import sample_mask
from jaxprune.state import init_state

OPTIONS = list(
    itertools.product(
        [
            ("relu", {}),
            ("relu_pow", {"act_power": 3.0}),
            ("relu_pow", {"act_power": 1.5}),
            ("leaky_relu", {"leaky_slope": 0.2}),
        ],
        [False, True],  # bias
        ["mean", "sum"],  # output_scale
        ["sum", "mean"],  # patch_reduce
    )
)


def _problem(config, seed=0):
    params = Params(prune_frac=0.4, mu_norm=1.5, sigma_noise=0.7, sigma_init=0.3)
    key = jax.random.key(seed)
    data = sample_dataset(config, params, jax.random.fold_in(key, 0), config.n_train)
    mask = sample_mask(config, jax.random.fold_in(key, 1), params.prune_frac)
    w = jax.random.normal(jax.random.fold_in(key, 2), mask.shape)
    b = 0.3 * jax.random.normal(jax.random.fold_in(key, 3), mask.shape[:2])
    return data, mask, w, b


def _central_difference(f, x, idx, eps=1e-5):
    """(f(x + eps e_idx) - f(x - eps e_idx)) / (2 eps)."""
    step = jnp.zeros_like(x).at[idx].set(eps)
    return (f(x + step) - f(x - step)) / (2 * eps)


@pytest.mark.parametrize("act,bias,output_scale,patch_reduce", OPTIONS)
def test_gradient_matches_finite_differences(act, bias, output_scale, patch_reduce):
    name, extra = act
    config = Config(
        num_classes=3,
        num_patches=3,
        dim=7,
        width=3,
        n_train=6,
        activation=name,
        bias=bias,
        output_scale=output_scale,
        patch_reduce=patch_reduce,
        **extra,
    )
    with jax.enable_x64(True):
        data, mask, w, b = _problem(config)
        assert w.dtype == jnp.float64

        def loss(w, b):
            return model.loss(config, w, b, mask, data.x, data.y)

        grad_w, grad_b = jax.grad(loss, argnums=(0, 1))(w, b)
        rng = np.random.default_rng(0)
        for flat in rng.choice(w.size, 25, replace=False):
            idx = np.unravel_index(flat, w.shape)
            fd = _central_difference(lambda v: loss(v, b), w, idx)
            np.testing.assert_allclose(grad_w[idx], fd, rtol=1e-5, atol=1e-8)
            if mask[idx] == 0:
                assert grad_w[idx] == 0.0  # pruned weights get no gradient
        for idx in np.ndindex(b.shape):
            fd = _central_difference(lambda v: loss(w, v), b, idx)
            np.testing.assert_allclose(grad_b[idx], fd, rtol=1e-5, atol=1e-8)
            if not bias:
                assert grad_b[idx] == 0.0


def test_logits_match_a_direct_loop():
    config = Config(
        num_classes=2,
        num_patches=3,
        dim=5,
        width=2,
        n_train=4,
        activation="relu_pow",
        act_power=2.0,
        bias=True,
        output_scale="mean",
        patch_reduce="sum",
    )
    with jax.enable_x64(True):
        data, mask, w, b = _problem(config, seed=3)
        got = np.asarray(model.logits(config, w, b, mask, data.x))
    x, w, b, mask = map(np.asarray, (data.x, w, b, mask))
    want = np.zeros((4, 2))
    for i, k, r, q in itertools.product(range(4), range(2), range(2), range(3)):
        z = np.dot(w[k, r] * mask[k, r], x[i, q]) + b[k, r]
        want[i, k] += max(z, 0.0) ** 2 / config.width
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.slow  # compiles a training step of its own
def test_gd_step_is_masked_gradient_descent(tiny, tiny_params):
    config = tiny.replace(bias=True, init="uniform_fan_in")
    key = jax.random.key(7)
    sample = draw_sample(config, jax.random.fold_in(key, 0), config.n_train)
    data = dataset(config, tiny_params, sample)
    state = init_state(config, tiny_params, key)
    grad_w, grad_b = jax.grad(model.loss, argnums=(1, 2))(
        config, state.weights, state.bias, state.mask, data.x, data.y
    )
    new = gd_step(config, tiny_params, sample, state)
    np.testing.assert_allclose(
        new.weights, state.weights - tiny_params.lr * grad_w * state.mask, rtol=1e-6, atol=1e-7
    )
    np.testing.assert_allclose(new.bias, state.bias - tiny_params.lr * grad_b, rtol=1e-6, atol=1e-7)
    assert int(new.step) == 1 and int(new.converged_step) == -1 and not bool(new.diverged)


def test_uniform_fan_in_init_bounds_and_variance():
    config = Config(dim=400, width=50, init="uniform_fan_in", bias=True)
    w, b = model.init_weights(config, Params(), jax.random.key(0))
    bound = 1 / np.sqrt(400)
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    # Var of U(-a, a) is a^2 / 3; 40,000 draws give a relative standard error below 1%.
    np.testing.assert_allclose(np.var(np.asarray(w)), bound**2 / 3, rtol=0.04)
    normal_w, normal_b = model.init_weights(
        Config(dim=400, width=50), Params(sigma_init=0.2), jax.random.key(0)
    )
    np.testing.assert_allclose(np.std(np.asarray(normal_w)), 0.2, rtol=0.03)
    assert not np.asarray(normal_b).any()


LAYOUTS = [
    {"signal": "orthogonal", "num_classes": 3, "num_patches": 3},
    {"signal": "orthogonal", "num_classes": 3, "num_patches": 1, "layout": "additive"},
    {"signal": "antipodal", "num_classes": 2, "num_patches": 2, "noise_orthogonal": False},
    {"signal": "antipodal", "num_classes": 2, "num_patches": 1, "layout": "additive"},
]


@pytest.mark.slow  # compiles per layout and option (~25 CPU s under load)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("act,bias,output_scale,patch_reduce", OPTIONS[::3])
def test_training_path_equals_the_dense_model(layout, act, bias, output_scale, patch_reduce):
    """`sample_loss` (no dense x: gathered signal, shared noise rows) gives the dense model's
    loss and gradients, for every layout and signal kind."""
    name, extra = act
    config = Config(
        dim=9,
        width=3,
        n_train=11,
        activation=name,
        bias=bias,
        output_scale=output_scale,
        patch_reduce=patch_reduce,
        **layout,
        **extra,
    )
    params = Params(prune_frac=0.4, mu_norm=1.7, sigma_noise=0.6, label_flip=0.3)
    with jax.enable_x64(True):
        sample = draw_sample(config, jax.random.key(5), config.n_train)
        data = dataset(config, params, sample)
        _, mask, w, b = _problem(config, seed=2)
        dense = jax.value_and_grad(model.loss, argnums=(1, 2))(
            config, w * mask, b, mask, data.x, data.y
        )
        factored = jax.value_and_grad(model.sample_loss, argnums=(2, 3))(
            config, params, w * mask, b, sample
        )
    np.testing.assert_allclose(factored[0], dense[0], rtol=1e-12)
    np.testing.assert_allclose(factored[1][0] * mask, dense[1][0], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(factored[1][1], dense[1][1], rtol=1e-10, atol=1e-14)
