"""Projected test evaluation (`jaxprune.evaluation`): the law it samples from, exactly, and its
test accuracy against an explicit test set, statistically."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import jaxprune
from jaxprune import evaluation, model
from jaxprune.config import Config, Dims, Params
from jaxprune.data import dataset, draw_sample, signal_directions
from jaxprune.state import init_state

PARAMS = Params(prune_frac=0.4, mu_norm=1.5, sigma_noise=0.7, sigma_init=0.3)


def _filters(config, seed=0, dims=None):
    """Masked filters (K, m, d) of a pruned init with a non-trivial scale, and its mask."""
    state = init_state(config, PARAMS, jax.random.key(seed), dims=dims)
    return state.weights, state.mask


def _factor_of_map(config, w_eff):
    """The matrix A (K m, K m) of the linear map normals -> projected noise pre-activations,
    read off by feeding it the unit vectors: its law is N(0, A Aᵀ)."""
    neurons = config.num_classes * config.width
    unit = jnp.eye(neurons).reshape(neurons, 1, config.num_classes, config.width)
    zeros = jnp.zeros(neurons, jnp.int32)
    test = evaluation.ProjectedTest(zeros, jnp.zeros(neurons), zeros, zeros, unit)
    mapped = evaluation.projected_noise_preactivations(config, w_eff, test)  # (N, 1, K, m)
    return np.asarray(mapped.reshape(neurons, neurons), np.float64).T  # column j: unit j's image


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"noise_orthogonal": False},
        {"signal": "antipodal"},
        {"signal": "antipodal", "noise_orthogonal": False, "layout": "additive", "num_patches": 1},
        {"mask": "structured"},  # whole neurons pruned: a singular covariance
        {"dim": 5, "width": 4},  # K m = 8 neurons in 3 noise dimensions: rank 3
    ],
)
def test_projected_law_is_the_explicit_noise_covariance(changes):
    """The projected noise pre-activations are A ε with ε standard normal; A Aᵀ equals the
    covariance of the filters' products with an explicit standard noise row, W diag(v) Wᵀ
    (v = 0 on the signal coordinates when the noise is orthogonal to them), computed here in
    float64 from the explicit filters, to float32 precision."""
    config = Config(num_classes=2, num_patches=3, dim=40, width=5, n_test=8).replace(**changes)
    w_eff, _ = _filters(config)
    w = np.asarray(w_eff, np.float64).reshape(-1, config.dim)
    noise_coordinates = np.ones(config.dim)
    if config.noise_orthogonal:
        noise_coordinates[np.asarray(jaxprune.data.signal_coordinates(config))] = 0.0
    explicit = w @ np.diag(noise_coordinates) @ w.T
    a = _factor_of_map(config, w_eff)
    scale = np.abs(explicit).max()
    np.testing.assert_allclose(a @ a.T, explicit, atol=1e-5 * scale, rtol=0)
    assert np.allclose(a, np.tril(a))  # a triangular factor, ordered by neuron
    if config.mask == "structured":
        pruned = np.asarray(w_eff).reshape(-1, config.dim).any(axis=1) == 0
        assert pruned.any() and not a[pruned].any()  # a pruned neuron's product is exactly 0


def test_explicit_samples_have_the_projected_covariance():
    """The other direction, by sampling: the explicit products W z over 20,000 standard noise
    rows have the covariance the factor reproduces, within the sampling error (0.05 relative
    to the diagonal's scale, ~3.5 standard errors)."""
    config = Config(num_classes=2, num_patches=2, dim=30, width=3)
    w_eff, _ = _filters(config, seed=3)
    sample = draw_sample(config, jax.random.key(1), 20_000)
    products = np.asarray(model.noise_preactivations(w_eff, sample)).reshape(20_000, -1)
    a = _factor_of_map(config, w_eff)
    scale = np.diag(a @ a.T).max()
    np.testing.assert_allclose(np.cov(products.T), a @ a.T, atol=0.05 * scale, rtol=0)


def test_cholesky_factor_of_singular_matrices():
    """L Lᵀ = C for C positive semidefinite with zero rows and dependent rows; zero rows give
    zero rows of L; a positive definite C gives LAPACK's Cholesky factor."""
    rng = np.random.default_rng(0)
    u = rng.normal(size=(7, 4)).astype(np.float32)
    u[2] = 0.0  # a pruned neuron
    u[5] = 2.0 * u[1] - u[3]  # a combination of earlier ones
    c = jnp.asarray(u @ u.T)
    factor = np.asarray(evaluation.cholesky_factor(c))
    np.testing.assert_allclose(factor @ factor.T, c, atol=1e-5 * float(np.abs(c).max()))
    assert not factor[2].any() and not factor[:, 2].any()
    spd = jnp.asarray(u[:4].T @ u[:4] + np.eye(4, dtype=np.float32))
    np.testing.assert_allclose(
        evaluation.cholesky_factor(spd), jnp.linalg.cholesky(spd), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("signal,layout", [("orthogonal", "patches"), ("antipodal", "additive")])
def test_projected_signal_term_is_the_explicit_signal_patch(signal, layout):
    """The projected test set has the explicit test set's labels, flips and signal positions
    (the same draws), and its pre-activations' signal term equals the filters' products with
    the explicit signal patch (noise set to 0)."""
    patches = 1 if layout == "additive" else 3
    config = Config(signal=signal, layout=layout, num_patches=patches, dim=20, width=3)
    key, n = jax.random.key(4), 50
    explicit, projected = draw_sample(config, key, n), evaluation.draw_projected(config, key, n)
    for name in ("y_true", "flip_uniform", "other_label", "signal_patch"):
        np.testing.assert_array_equal(getattr(explicit, name), getattr(projected, name))
    w_eff, _ = _filters(config, seed=2)
    quiet = PARAMS.replace(sigma_noise=0.0)
    x = dataset(config, quiet, explicit).x  # (n, P, d): the signal patch, noise 0
    direct = jnp.einsum("npd,kmd->npkm", x, w_eff)
    noise = evaluation.projected_noise_preactivations(config, w_eff, projected)
    pre = model.patch_preactivations(
        config, model.signal_alignment(config, w_eff), noise, projected, quiet.mu_norm, 0.0
    )
    signal_patch = 0 if layout == "additive" else explicit.signal_patch
    rows = jnp.arange(n)
    np.testing.assert_allclose(pre[:, 0], direct[rows, signal_patch], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(pre[:, 0], quiet.mu_norm * jnp.einsum(
        "kmd,nd->nkm", w_eff, signal_directions(config)[explicit.y_true]), rtol=1e-6, atol=1e-7)


@pytest.mark.slow  # compiles Configs of its own (the fast tier keeps the module's others)
def test_projected_test_is_prefix_stable():
    """A run padded into a bucket (more samples, neurons, coordinates) sees on its own prefix
    exactly the projected draws and, to rounding, the noise pre-activations it sees alone."""
    small = Config(num_classes=2, num_patches=3, dim=12, width=3, n_test=6)
    big = small.replace(dim=20, width=5, n_test=9)
    key = jax.random.key(7)
    alone, padded = evaluation.draw_projected(small, key, 6), evaluation.draw_projected(big, key, 9)
    np.testing.assert_array_equal(padded.normals[:6, :, :, :3], alone.normals)
    w_small, _ = _filters(small, seed=1)
    w_big, _ = _filters(big, seed=1, dims=Dims.of(small))
    np.testing.assert_array_equal(w_big[:, :3, :12], w_small)
    pre_alone = evaluation.projected_noise_preactivations(small, w_small, alone)
    pre_padded = evaluation.projected_noise_preactivations(big, w_big, padded)
    np.testing.assert_allclose(pre_padded[:6, :, :, :3], pre_alone, rtol=1e-5, atol=1e-6)
    assert not np.asarray(pre_padded[:, :, :, 3:]).any()


def test_auto_picks_projected_where_it_is_cheaper():
    """'auto' follows `costs`: projected for the presets (n_test Q >> K m), draw when the test
    set is one sample or the filters outnumber the test patches at small d."""
    yang, _ = jaxprune.presets.yang2023()
    kou, _ = jaxprune.presets.kou2023()
    assert evaluation.resolve(yang) == evaluation.resolve(kou) == "projected"
    assert evaluation.resolve(yang.replace(n_test=1)) == "draw"
    assert evaluation.resolve(yang.replace(width=200, dim=300, n_test=20)) == "draw"
    assert evaluation.resolve(yang.replace(test_eval="draw")) == "draw"
    assert evaluation.resolve(yang.replace(n_test=1, test_eval="projected")) == "projected"
    for config in (yang, kou, yang.replace(n_test=1)):
        cost = evaluation.costs(config)
        cheaper = min(cost, key=lambda name: cost[name].seconds)
        assert evaluation.resolve(config) == cheaper


def test_test_eval_is_validated():
    with pytest.raises(ValueError, match=r"^Config.test_eval = 'exact' is invalid: must be one"):
        Config(test_eval="exact")


# Cells of the statistical test: three Configs (options of the model) x four Params cells.
CONFIGS = [
    Config(num_classes=2, num_patches=3, dim=60, width=4, n_train=10, n_test=100, steps=30,
           log_every=30),
    Config(num_classes=2, num_patches=1, layout="additive", signal="antipodal", dim=60, width=4,
           n_train=10, n_test=100, steps=30, log_every=30, bias=True, init="uniform_fan_in",
           noise_orthogonal=False, output_scale="sum", patch_reduce="mean"),
    Config(num_classes=3, num_patches=2, dim=60, width=3, n_train=12, n_test=100, steps=30,
           log_every=30, activation="relu_pow", act_power=2.0, mask="exact"),
]  # fmt: skip
CELLS = {"prune_frac": [0.0, 0.8], "label_flip": [0.0, 0.2]}
BASE = Params(mu_norm=1.0, sigma_noise=0.5, sigma_init=0.1, lr=0.5)


@pytest.mark.slow
def test_projected_and_drawn_test_sets_agree_in_distribution():
    """Per cell, test_acc and test_loss over 32 seeds with the projected and the explicit test
    set, paired by seed (the same training and test labels; independent test noise): Wilcoxon's
    signed-rank test of a zero median difference, no rejection at 5% after Holm's correction
    over the 12 cells x 2 measurements. The cells must not be degenerate (accuracy strictly
    between chance and 1 somewhere), or the test could not fail."""
    p_values, spread = [], []
    for config in CONFIGS:
        frames = {
            method: jaxprune.final(
                jaxprune.sweep(config.replace(test_eval=method), CELLS, 32, base=BASE,
                               progress=False)  # fmt: skip
            ).sort_values(["prune_frac", "label_flip", "seed"])
            for method in ("draw", "projected")
        }
        drawn, projected = frames["draw"], frames["projected"]
        for (_, cell_drawn), (_, cell_projected) in zip(
            drawn.groupby(["prune_frac", "label_flip"]),
            projected.groupby(["prune_frac", "label_flip"]),
            strict=True,
        ):
            assert (cell_drawn.seed.to_numpy() == cell_projected.seed.to_numpy()).all()
            # the same training (another compiled program: equal to float32 rounding)
            np.testing.assert_allclose(cell_drawn.train_loss, cell_projected.train_loss,
                                       rtol=1e-5, atol=1e-6)  # fmt: skip
            for column in ("test_acc", "test_loss"):
                difference = cell_projected[column].to_numpy() - cell_drawn[column].to_numpy()
                p = 1.0 if not difference.any() else scipy.stats.wilcoxon(difference).pvalue
                p_values.append(p)
            spread.append(cell_drawn.test_acc.std())
    assert len(p_values) == 24 and min(spread) > 0
    # Holm's step-down procedure rejects nothing at level 5% iff its first step does not:
    # the smallest p-value times the number of hypotheses exceeds 0.05.
    assert min(p_values) * len(p_values) > 0.05, sorted(p_values)[:3]
