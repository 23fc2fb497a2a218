"""Pruning criteria: scores against direct NumPy / finite-difference computations on a tiny case,
exact counts per neuron and per layer, nesting across p, SynFlow's data independence and its
relation to magnitude pruning, and the wiring into a training run."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxprune
from jaxprune import Config, Params, model
from jaxprune.data import dataset, draw_sample
from jaxprune.masks import (
    grasp_scores,
    mask_from_scores,
    mask_uniforms,
    prune_mask,
    snip_scores,
    synflow_scores,
)
from jaxprune.state import INIT_STREAM, MASK_STREAM, TRAIN_STREAM

# K = 3 classes, Q = 2 noise patches, label noise: every term of the loss is exercised.
SMALL = Config(num_classes=3, num_patches=3, dim=10, width=3, n_train=12, n_test=8)
SMALL_PARAMS = Params(mu_norm=1.5, sigma_noise=0.7, sigma_init=0.4, label_flip=0.2)
FRACS = jnp.array([0.0, 0.1, 0.25, 0.37, 0.5, 0.64, 0.8, 0.9, 0.95])
KINDS = ["exact", "structured", "magnitude", "snip", "grasp", "synflow"]


def removed(fracs, count):
    """round(p * count) as the masks compute it: p * count in float32, rounded half to even."""
    return np.round(np.asarray(fracs, np.float32) * np.float32(count))


def draws(config, seed=0, params=SMALL_PARAMS):
    """The run's unpruned init (w (K, m, d), b (K, m)), mask uniforms and training draws."""
    key = jax.random.key(seed)
    w, b = model.init_weights(config, params, jax.random.fold_in(key, INIT_STREAM))
    uniforms = mask_uniforms(config, jax.random.fold_in(key, MASK_STREAM))
    train = draw_sample(config, jax.random.fold_in(key, TRAIN_STREAM), config.n_train)
    return w, b, uniforms, train


def numpy_grad(w, x, y, num_classes):
    """dL/dw in float64 of the mean cross-entropy of the ReLU CNN (patch sum, 1/m, no bias)."""
    width = w.shape[1]
    pre = np.einsum("npd,kmd->npkm", x, w)
    out = np.maximum(pre, 0).sum(axis=(1, 3)) / width  # (n, K)
    prob = np.exp(out - out.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    delta = (prob - np.eye(num_classes)[y]) / len(y)  # dL/dF, (n, K)
    return np.einsum("nk,npkm,npd->kmd", delta, (pre > 0).astype(float), x) / width


def dense(config, params, train):
    data = dataset(config, params, train)
    return np.asarray(data.x, np.float64), np.asarray(data.y)


@pytest.mark.slow  # compiles Configs of its own (the fast tier keeps the module's others)
def test_snip_scores_against_numpy():
    w, b, _, train = draws(SMALL)
    x, y = dense(SMALL, SMALL_PARAMS, train)
    w64 = np.asarray(w, np.float64)
    want = np.abs(w64 * numpy_grad(w64, x, y, 3))
    got = np.asarray(snip_scores(SMALL, SMALL_PARAMS, w, b, train))
    assert got.shape == (3, 3, 10)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-6 * want.max())


@pytest.mark.slow  # compiles GraSP's Hessian-gradient products (about 7 s)
def test_grasp_scores_against_finite_differences():
    """-w ⊙ Hg with Hg by central differences of the float64 NumPy gradient along g."""
    w, b, _, train = draws(SMALL)
    x, y = dense(SMALL, SMALL_PARAMS, train)
    w64 = np.asarray(w, np.float64)
    g = numpy_grad(w64, x, y, 3)
    eps = 1e-6 * np.linalg.norm(w64) / np.linalg.norm(g)
    hg = (numpy_grad(w64 + eps * g, x, y, 3) - numpy_grad(w64 - eps * g, x, y, 3)) / (2 * eps)
    want = -w64 * hg
    got = np.asarray(grasp_scores(SMALL, SMALL_PARAMS, w, b, train))
    np.testing.assert_allclose(got, want, rtol=2e-3, atol=1e-4 * np.abs(want).max())
    assert (got > 0).any() and (got < 0).any()  # a signed score (0 on dead neurons)


@pytest.mark.parametrize("scope", ["neuron", "layer"])
def test_grasp_removes_the_largest_scores(scope):
    """Wang et al.'s convention: the weights of largest S = -w ⊙ Hg go, the lowest stay (ties,
    such as the zero scores of a neuron dead on the training set, go by the uniforms)."""
    config = SMALL.replace(mask="grasp", mask_scope=scope)
    w, b, uniforms, train = draws(config)
    scores = np.asarray(grasp_scores(config, SMALL_PARAMS, w, b, train))
    mask = np.asarray(
        prune_mask(config, SMALL_PARAMS.replace(prune_frac=0.4), uniforms, w, b, train)
    )
    groups = (-1, 10) if scope == "neuron" else (1, -1)
    kept, scores = mask.reshape(groups).astype(bool), scores.reshape(groups)
    for keep, score in zip(kept, scores, strict=True):
        assert score[keep].max() <= score[~keep].min()


@pytest.mark.parametrize(
    "changes,factor",
    [
        ({}, lambda s: 3 / 3),  # ReLU, patch sum: d R / d|w| = P / m everywhere
        ({"patch_reduce": "mean", "activation": "leaky_relu"}, lambda s: 1 / 3),
        ({"activation": "relu_pow", "act_power": 3.0}, lambda s: 3 * 3 * s**2 / 3),
    ],
)
def test_synflow_scores_against_closed_form(changes, factor):
    """R = (1/m) sum_{k,r} reduce_q act(sum_d |w| M): score = |w| M * dR/d|w|, where dR/d|w| is
    P/m (or 1/m with the patch mean) for ReLU, and q P S^(q-1)/m with S = sum_d |w| M for
    max(0, z)^q."""
    config = SMALL.replace(**changes)
    w, b, uniforms, _ = draws(config)
    mask = (np.asarray(uniforms) > 0.3).astype(np.float32)
    abs_w = np.abs(np.asarray(w, np.float64)) * mask
    total = abs_w.sum(axis=-1, keepdims=True)  # S per neuron, (K, m, 1)
    want = abs_w * factor(total)
    got = np.asarray(synflow_scores(config, w, b, jnp.asarray(mask)))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
@pytest.mark.parametrize("scope", ["neuron", "layer"])
def test_synflow_is_data_free_and_equals_magnitude(activation, scope):
    """In this model SynFlow's objective is linear in |w| (ReLU of a positive input), so the
    iterative procedure keeps the largest |w0|: its mask is magnitude pruning's, for any data."""
    config = SMALL.replace(mask="synflow", mask_scope=scope, activation=activation)
    w, b, uniforms, train = draws(config)
    _, _, _, other_train = draws(config, seed=1)
    other = SMALL_PARAMS.replace(mu_norm=9.0, sigma_noise=0.1, label_flip=0.0)

    def masks(config, params, train):
        return jax.vmap(
            lambda p: prune_mask(config, params.replace(prune_frac=p), uniforms, w, b, train)
        )(FRACS)

    synflow = np.asarray(masks(config, SMALL_PARAMS, train))
    np.testing.assert_array_equal(synflow, masks(config, other, other_train))
    np.testing.assert_array_equal(synflow, masks(config, SMALL_PARAMS, None))
    np.testing.assert_array_equal(synflow, masks(config.replace(mask="magnitude"), other, None))
    # SNIP, by contrast, does depend on the data.
    snip = config.replace(mask="snip")
    assert (masks(snip, SMALL_PARAMS, train) != masks(snip, other, other_train)).any()


def test_synflow_is_not_nested_in_general():
    """With max(0, z)^3 the score of a weight grows with its neuron's remaining total, so the
    rounds' rankings depend on the schedule, which depends on p: over the whole layer, with 5
    rounds, some seeds give masks that are not nested across p. (With 1 round, or with ReLU,
    they are; see the tests above and below.)"""
    config = SMALL.replace(
        mask="synflow", mask_scope="layer", activation="relu_pow", synflow_rounds=5
    )
    fracs = jnp.linspace(0.0, 0.98, 50)

    def one_seed(seed):
        w, b, uniforms, _ = draws(config, seed)
        return jax.vmap(
            lambda p: prune_mask(config, SMALL_PARAMS.replace(prune_frac=p), uniforms, w, b, None)
        )(fracs)

    masks = np.asarray(jax.jit(jax.vmap(one_seed))(jnp.arange(20)))  # (seeds, p, K, m, d)
    grows = (masks[:, 1:] > masks[:, :-1]).any(axis=(2, 3, 4))
    assert grows.any()  # a weight pruned at some p is kept at a larger p
    pruned = 90 - masks.sum(axis=(2, 3, 4))  # of K m d = 90 weights
    np.testing.assert_array_equal(pruned, removed(fracs, 90)[None].repeat(20, 0))


@pytest.mark.parametrize("scope", ["neuron", "layer"])
@pytest.mark.parametrize("kind", KINDS)
def test_exact_counts_and_nesting(kind, scope):
    """round(p d) weights removed per neuron, or round(p K m d) per layer ('structured':
    round(p K m) whole neurons), and mask(p2) ⊆ mask(p1) for p1 < p2."""
    config = SMALL.replace(mask=kind, mask_scope=scope, synflow_rounds=10)
    w, b, uniforms, train = draws(config)
    masks = np.asarray(
        jax.jit(
            jax.vmap(
                lambda p: prune_mask(
                    config, SMALL_PARAMS.replace(prune_frac=p), uniforms, w, b, train
                )
            )
        )(FRACS)
    )
    assert set(np.unique(masks)) <= {0.0, 1.0}
    if kind == "structured":
        neurons = masks.max(axis=-1)  # (p, K, m)
        np.testing.assert_array_equal(masks.min(axis=-1), neurons)  # whole neurons
        np.testing.assert_array_equal(neurons.sum(axis=(1, 2)), 9 - removed(FRACS, 9))
    elif scope == "neuron":
        kept = np.broadcast_to((10 - removed(FRACS, 10))[:, None, None], masks.shape[:3])
        np.testing.assert_array_equal(masks.sum(axis=-1), kept)
    else:
        np.testing.assert_array_equal(masks.sum(axis=(1, 2, 3)), 90 - removed(FRACS, 90))
    for looser, tighter in zip(masks[:-1], masks[1:], strict=True):
        assert (tighter <= looser).all()


def test_ties_are_broken_by_the_mask_uniforms():
    """With sigma_init = 0 every magnitude score ties: the mask is the random 'exact' mask."""
    params = SMALL_PARAMS.replace(sigma_init=0.0, prune_frac=0.6)
    for scope in ("neuron", "layer"):
        config = SMALL.replace(mask="magnitude", mask_scope=scope)
        w, b, uniforms, _ = draws(config, params=params)
        exact = prune_mask(config.replace(mask="exact"), params, uniforms, w, b, None)
        np.testing.assert_array_equal(prune_mask(config, params, uniforms, w, b, None), exact)


def test_prune_fraction_is_traced_not_a_python_int():
    """One trace serves every p: the count removed is compared with ranks inside the graph."""
    config = SMALL.replace(mask_scope="layer")
    scores = jax.random.normal(jax.random.key(0), (3, 3, 10))
    uniforms = mask_uniforms(config, jax.random.key(1))
    chex.clear_trace_counter()
    select = jax.jit(
        chex.assert_max_traces(lambda p: mask_from_scores(config, scores, uniforms, p), n=1)
    )
    for p in (0.0, 0.3, 0.71, 0.99):
        mask = np.asarray(select(jnp.float32(p)))
        assert mask.sum() == 90 - removed(p, 90)
        kept = np.asarray(scores).ravel()[mask.ravel() == 1]
        if p > 0:
            assert kept.min() > np.asarray(scores).ravel()[mask.ravel() == 0].max()


@pytest.mark.slow  # trains a criterion's run (its own compile)
def test_criterion_run_uses_its_own_init_and_data():
    """A SNIP run's mask is prune_mask of that run's initial weights and training data; pruned
    weights stay exactly zero through training; density is exact."""
    config = SMALL.replace(mask="snip", mask_scope="layer", steps=6, log_every=3)
    params = SMALL_PARAMS.replace(prune_frac=0.7, lr=0.5)
    frame, state = jaxprune.train(config, params, 0, return_state=True)
    w, b, uniforms, train = draws(config)
    np.testing.assert_array_equal(state.mask, prune_mask(config, params, uniforms, w, b, train))
    weights, mask = np.asarray(state.weights), np.asarray(state.mask)
    assert (weights[mask == 0] == 0).all() and (weights[mask == 1] != 0).all()
    np.testing.assert_allclose(frame.density, 1 - round(0.7 * 90) / 90)


@pytest.mark.slow  # criteria.py at smoke size: every criterion swept
def test_criteria_sweep_smoke_and_report(tmp_path):
    """sweeps/criteria.py --smoke (in this process) writes every criterion's results and the
    report: its tables, its verdict and its three figures."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "sweeps" / "criteria.py"
    spec = importlib.util.spec_from_file_location("criteria_sweep", script)
    sweep_script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep_script)
    out, report = tmp_path / "results", tmp_path / "report"
    sweep_script.main(["--smoke", "--out", str(out), "--report", str(report)])
    text = (report / "criteria.md").read_text()
    assert "Size: **smoke**" in text and "## Verdict" in text
    for name in ("bernoulli", "snip/layer"):
        assert f"- **{name}** keeps the signal coordinate" in text
    for figure in ("test_acc", "signal_neurons", "noise_max"):
        assert (report / f"criteria_{figure}.png").stat().st_size > 1000
    last = sweep_script.criteria_report.load_criteria(out)
    assert len(last) == 2 * 3 * 2 * 2  # criteria x p x mu x seeds
    assert set(last.criterion) == {"bernoulli", "snip/layer"}
