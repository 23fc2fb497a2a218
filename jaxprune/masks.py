"""Pruning masks chosen at initialization (docs/concepts/masks.md): random, structured, and the
criteria magnitude, SNIP, GraSP and SynFlow.

A run draws one Uniform(0, 1) per first-layer weight from its mask key: Params-free, so shared by
the runs of a seed. Every mask is then a threshold of a ranking:

- 'bernoulli': M = [U >= p], each weight kept independently with probability 1 - p.
- 'exact': the uniforms are the scores; the round(p * count) smallest are removed.
- 'structured': round(p * K * m) whole neurons are removed, those with the smallest per-neuron
  uniform U[k, r, 0] (the whole layer: classes may lose different numbers of neurons).
- 'magnitude' (|w0|), 'snip' (|w0 * dL/dw|), 'grasp' (GraSP's -w0 * Hg, of which the largest
  are removed) and 'synflow' (iterative, data-free) score each weight from the run's own
  initial weights and, for SNIP and GraSP, its training set; the mask keeps the weights of
  highest score (lowest, for GraSP), ties broken by the uniforms.

`mask_from_scores` removes exactly round(p * count) weights of each group: each neuron's d
weights (`mask_scope='neuron'`, uniform fan-in) or the K m d weights of the layer
(`mask_scope='layer'`). p stays a traced, vmappable float: the count is compared with ranks, no
Python int is made of it. 'bernoulli' and 'structured' do not use the scope.

Nesting: for one run (seed and the Params other than p), the scores do not depend on p, so every
mask but SynFlow's is nested across p: mask(p2) ⊆ mask(p1) for p1 < p2. SynFlow's rounds follow a
schedule that depends on p, so it is not nested in general; in this model, with ReLU or leaky
ReLU, it equals magnitude pruning (see `synflow_scores`) and is therefore nested.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxprune import model
from jaxprune.config import Config, Dims, Params
from jaxprune.data import Sample


def mask_uniforms(config: Config, key: jax.Array) -> jax.Array:
    """One Uniform(0, 1) per first-layer weight, (K, m, d), neuron (k, r) from its own key
    (`model.neuron_draws`), so a run padded into a larger bucket keeps its own uniforms."""
    return model.neuron_draws(config, key, lambda k: jax.random.uniform(k, (config.dim,)))


def removal_ranks(scores: jax.Array, tiebreak: jax.Array) -> jax.Array:
    """Rank of each entry along the last axis in removal order, int (..., c): 0 for the lowest
    score, equal scores ordered by `tiebreak` (same shape), lowest first."""
    order = jnp.lexsort((tiebreak, scores), axis=-1)
    return jnp.argsort(order, axis=-1)


def keep_top(
    scores: jax.Array, tiebreak: jax.Array, prune_frac: jax.Array, count: jax.Array | None = None
) -> jax.Array:
    """Binary mask (..., c) in the scores' dtype that removes the round(p * count) lowest scores
    of each row along the last axis (ties by `tiebreak`) and keeps the others. count: the row's
    own entries (default c); padding entries must score +inf, so that they rank last."""
    count = scores.shape[-1] if count is None else count
    removed = jnp.round(prune_frac * count)
    return (removal_ranks(scores, tiebreak) >= removed).astype(scores.dtype)


def mask_from_scores(
    config: Config,
    scores: jax.Array,
    uniforms: jax.Array,
    prune_frac: jax.Array,
    dims: Dims | None = None,
) -> jax.Array:
    """Binary mask (K, m, d) that keeps the weights of highest `scores` (K, m, d): it removes
    exactly round(p d) weights of each neuron (mask_scope='neuron') or round(p K m d) of the
    layer ('layer'), with the run's own d and m (`dims`; padding is never kept). Equal scores
    are ordered by the run's mask `uniforms` (K, m, d)."""
    dims = Dims.of(config) if dims is None else dims
    valid = model.weight_valid(config, dims)
    scores = jnp.where(valid > 0, scores, jnp.inf)
    if config.mask_scope == "neuron":
        return keep_top(scores, uniforms, prune_frac, dims.dim) * valid
    count = config.num_classes * dims.width * dims.dim
    flat = keep_top(scores.reshape(-1), uniforms.reshape(-1), prune_frac, count)
    return flat.reshape(scores.shape) * valid


def structured_mask(
    config: Config, uniforms: jax.Array, prune_frac: jax.Array, dims: Dims | None = None
) -> jax.Array:
    """Binary mask (K, m, d) that removes the round(p K m) whole neurons (the run's own m) of
    smallest per-neuron uniform uniforms[k, r, 0] (nested across p)."""
    dims = Dims.of(config) if dims is None else dims
    own = model.neuron_valid(config, dims)
    neuron = jnp.where(own > 0, uniforms[..., 0], jnp.inf).reshape(-1)  # (K m,)
    count = config.num_classes * dims.width
    keep = keep_top(neuron, neuron, prune_frac, count).reshape(uniforms.shape[:2])
    return keep[..., None] * model.weight_valid(config, dims)


def mask_from_uniforms(
    config: Config, uniforms: jax.Array, prune_frac: jax.Array, dims: Dims | None = None
) -> jax.Array:
    """The random mask of config.mask, (K, m, d) in the uniforms' dtype, that removes a fraction
    `prune_frac` (`Criterion.from_uniforms`; 'bernoulli', 'exact', 'structured'). Padding
    beyond the run's own `dims` is always removed."""
    criterion = CRITERIA[config.mask]
    if criterion.from_uniforms is None:
        random = ", ".join(repr(name) for name, c in CRITERIA.items() if c.random)
        raise ValueError(
            f"Config.mask = {config.mask!r} is invalid here: only the random masks ({random}) "
            "are drawn from uniforms alone; use prune_mask for a criterion."
        )
    return criterion.from_uniforms(config, uniforms, prune_frac, dims)


def sample_mask(config: Config, key: jax.Array, prune_frac: jax.Array) -> jax.Array:
    """A random mask (K, m, d): `mask_from_uniforms` of the uniforms drawn from `key`. The
    criteria need the run's weights and data: see `prune_mask`."""
    return mask_from_uniforms(config, mask_uniforms(config, key), prune_frac)


def bernoulli_mask(
    config: Config, uniforms: jax.Array, prune_frac: jax.Array, dims: Dims | None = None
) -> jax.Array:
    """'bernoulli': each weight kept independently with probability 1 - p (M = [U >= p])."""
    return bernoulli_keep(uniforms, prune_frac) * model.weight_valid(config, dims)


def bernoulli_keep(uniforms: jax.Array, prune_frac: jax.Array) -> jax.Array:
    """[U >= p] in the uniforms' dtype, elementwise (any shape): 'bernoulli' before padding."""
    return (uniforms >= prune_frac).astype(uniforms.dtype)


def exact_mask(
    config: Config, uniforms: jax.Array, prune_frac: jax.Array, dims: Dims | None = None
) -> jax.Array:
    """'exact': the round(p * count) weights with the smallest uniforms of each neuron (or of
    the layer, mask_scope='layer') are removed."""
    return mask_from_scores(config, uniforms, uniforms, prune_frac, dims)


def _weight_grad(
    config: Config, params: Params, bias: jax.Array, train: Sample, dims: Dims | None = None
):
    """w -> dL/dw (K, m, d): the gradient of the training loss at unmasked weights w."""
    return lambda w: jax.grad(model.sample_loss, argnums=2)(config, params, w, bias, train, dims)


def magnitude_scores(weights: jax.Array) -> jax.Array:
    """|w0|, (K, m, d): magnitude pruning keeps the largest initial weights."""
    return jnp.abs(weights)


def snip_scores(
    config: Config,
    params: Params,
    weights: jax.Array,
    bias: jax.Array,
    train: Sample,
    dims: Dims | None = None,
) -> jax.Array:
    """SNIP's connection sensitivity |w0 * dL/dw| (Lee et al. 2019), (K, m, d): the training loss
    that `params` makes of `train`, at the initial weights w0 (K, m, d) with the full mask and
    biases b (K, m). It equals |dL/dc| for a mask c at c = 1. The highest are kept."""
    return jnp.abs(weights * _weight_grad(config, params, bias, train, dims)(weights))


def grasp_scores(
    config: Config,
    params: Params,
    weights: jax.Array,
    bias: jax.Array,
    train: Sample,
    dims: Dims | None = None,
) -> jax.Array:
    """GraSP's score S = -w0 ⊙ Hg (Wang et al. 2020), (K, m, d), with g = dL/dw and H the Hessian
    of the training loss in the weights, both at w0 with the full mask; Hg is the forward-over-
    reverse product of `jax.linearize`. S_i is, to first order, half the change of the gradient
    norm |g|^2 when weight i is removed (delta = -w_i e_i changes it by 2 delta . Hg = 2 S_i), so
    GraSP removes the weights of *largest* S (those whose removal raises gradient flow most, or
    lowers it least) and keeps the lowest, as its reference code does (pruner/GraSP.py: scores
    -theta * Hg, kept where <= the p-quantile threshold). In the paper's model this removes the
    live signal weights first (analysis/grasp.py). No
    temperature is applied to the logits (the reference code divides them by 200)."""
    grad, hessian_times = jax.linearize(_weight_grad(config, params, bias, train, dims), weights)
    return -weights * hessian_times(grad)


def synflow_scores(
    config: Config,
    weights: jax.Array,
    bias: jax.Array,
    mask: jax.Array,
    dims: Dims | None = None,
) -> jax.Array:
    """One round of SynFlow's scores (Tanaka et al. 2020), (K, m, d): |w| ⊙ dR/d|w| with
    R = the sum of the network's outputs on an all-ones input (every one of the P patches), at
    the absolute weights |w| ⊙ mask and biases |b|. Data-free; pruned weights score 0.

    In this model the second layer is fixed and positive, and ReLU (or leaky ReLU) of a positive
    input is the identity, so R = scale * P' * sum_{k,r} (sum_d |w_krd| M_krd + |b_kr|), with
    P' = P (patch_reduce='sum') or 1 ('mean'): R is linear in |w|, the score is a constant
    times |w| ⊙ M, and iterative SynFlow keeps exactly the weights magnitude pruning keeps. With
    relu_pow the factor grows with the neuron's total |w|: the same per neuron, but a different
    ranking from magnitude's over the layer (mask_scope='layer')."""
    ones = jnp.ones((1, config.num_patches, config.dim), weights.dtype)

    def objective(abs_w: jax.Array) -> jax.Array:
        valid = model.neuron_valid(config, dims)
        return model.logits(config, abs_w, jnp.abs(bias), mask, ones, valid).sum()

    abs_w = jnp.abs(weights)
    return abs_w * jax.grad(objective)(abs_w)


def synflow_mask(
    config: Config,
    weights: jax.Array,
    bias: jax.Array,
    uniforms: jax.Array,
    prune_frac: jax.Array,
    dims: Dims | None = None,
) -> jax.Array:
    """Iterative SynFlow, (K, m, d): config.synflow_rounds = n rounds; round k rescores the
    remaining weights and prunes them to density (1 - p)^(k / n) (exponential schedule), the last
    round to exactly 1 - p, by `mask_from_scores` (so per neuron or per layer). A pruned weight
    ranks below every remaining one and stays pruned."""
    rounds = config.synflow_rounds

    def prune_round(k: jax.Array, mask: jax.Array) -> jax.Array:
        scores = jnp.where(mask > 0, synflow_scores(config, weights, bias, mask, dims), -jnp.inf)
        frac = jnp.where(k == rounds, prune_frac, 1.0 - (1.0 - prune_frac) ** (k / rounds))
        return mask_from_scores(config, scores, uniforms, frac, dims)

    return jax.lax.fori_loop(1, rounds + 1, prune_round, model.weight_valid(config, dims))


def prune_mask(
    config: Config,
    params: Params,
    uniforms: jax.Array,
    weights: jax.Array,
    bias: jax.Array,
    train: Sample | None,
    dims: Dims | None = None,
) -> jax.Array:
    """The run's mask (K, m, d) of kind config.mask (`CRITERIA`), removing a fraction
    params.prune_frac.

    uniforms: the run's mask uniforms (K, m, d). weights (K, m, d) and bias (K, m): its unpruned
    initialization. train: its training draws (only 'snip' and 'grasp' use them; may be None for
    the others). dims: the run's own shape inside a padded bucket (default: unpadded). Pure
    and vmappable over params and dims.
    """
    criterion = CRITERIA[config.mask]
    if criterion.from_uniforms is not None:
        return criterion.from_uniforms(config, uniforms, params.prune_frac, dims)
    if criterion.mask is not None:
        return criterion.mask(config, params, uniforms, weights, bias, train, dims)
    if criterion.needs_train and train is None:
        raise ValueError(f"Config.mask = {config.mask!r} needs the run's training draws.")
    scores = criterion.scores(config, params, weights, bias, train, dims)
    return mask_from_scores(config, scores, uniforms, params.prune_frac, dims)


@dataclasses.dataclass(frozen=True)
class Criterion:
    """A way of choosing the mask (`Config.mask`), as the library asks it.

    name: its `Config.mask` value. from_uniforms(config, uniforms, p, dims) -> mask: a random
    mask, drawn from the run's mask uniforms alone (None for a criterion). scores(config,
    params, weights, bias, train, dims) -> (K, m, d): a criterion's scores, of which
    `mask_from_scores` keeps the highest (ties by the uniforms); or a whole mask function
    `mask(config, params, uniforms, weights, bias, train, dims)` where it is not one ranking
    (SynFlow's rounds). needs_train: the scores read the training set. score_copies:
    weight-sized arrays its scoring holds (memory model: scores, ranks, their temporaries)."""

    name: str
    from_uniforms: Callable | None = None
    scores: Callable | None = None
    mask: Callable | None = None
    needs_train: bool = False
    score_copies: int = 4

    @property
    def random(self) -> bool:
        """Drawn from the mask uniforms alone (Params-free but for p)."""
        return self.from_uniforms is not None


CRITERIA: dict[str, Criterion] = {}


def register_criterion(criterion: Criterion) -> Criterion:
    """Add `criterion` to the catalog under its name (so `Config.mask` accepts it)."""
    CRITERIA[criterion.name] = criterion
    return criterion


def _synflow(config, params, uniforms, weights, bias, train, dims):
    return synflow_mask(config, weights, bias, uniforms, params.prune_frac, dims)


def _magnitude(config, params, weights, bias, train, dims):
    return magnitude_scores(weights)


def _grasp(config, params, weights, bias, train, dims):
    """GraSP removes the largest S: the mask keeps the largest -S."""
    return -grasp_scores(config, params, weights, bias, train, dims)


BERNOULLI = register_criterion(Criterion("bernoulli", bernoulli_mask, score_copies=0))
EXACT = register_criterion(Criterion("exact", exact_mask, score_copies=0))
STRUCTURED = register_criterion(Criterion("structured", structured_mask, score_copies=0))
MAGNITUDE = register_criterion(Criterion("magnitude", scores=_magnitude))
SNIP = register_criterion(Criterion("snip", scores=snip_scores, needs_train=True))
GRASP = register_criterion(Criterion("grasp", scores=_grasp, needs_train=True))
SYNFLOW = register_criterion(Criterion("synflow", mask=_synflow))
