"""The Gram engine (`Config.engine='gram'`): masked GD and momentum trained exactly in the
coefficients of the training patches, at a cost per step independent of d.

Under GD and heavy-ball momentum the gradient of filter (k, r) is M_{k,r} ⊙ (a combination of the
training patches), and the optimizer's update is linear in the gradients, so every filter stays

    w_{k,r}(t) = w_{k,r}(0) ⊙ M_{k,r} + M_{k,r} ⊙ (Σ_{i,q} α_{k,r,i,q} z_{i,q} + Σ_c β_{k,r,c} e_c)

over the seed's standard noise rows z_{i,q} (n Q of them, Params-free; see `jaxprune.data`) and
the C coordinates e_c that carry the class signals (C = K orthogonal, 1 antipodal): the patches
are sigma_noise z_{i,q} and mu_norm (±e_c), so these B = n Q + C rows span them whatever the
Params. The filters' products with the rows are

    v_{k,r} = u_{k,r} + G_{k,r} a_{k,r},   G_{k,r} = R diag(M_{k,r}) Rᵀ (B x B),  a = (α, β)

with u the products of the initial masked filters, and the network's pre-activations are v
scaled by sigma_noise and mu_norm (`model.patch_preactivations`). A step of the dense engine
moves w by -lr M ⊙ Σ_b (∂L/∂v_b) R_b, so here a moves by the optimizer's update of ∂L/∂v:
O(K m B²) per step. G and u are formed once per run in one pass over d-blocks (`over_blocks`,
never a (K m, B, d) array), at K m d (nQ)(nQ + 1) FLOPs. The initial filters and the mask are
those of the dense initialization (`state.init_state`), so every mask kind works: held per run
(K, m, d), or, for a 'bernoulli' mask of a 'normal' init, streamed block by block from the
seed's shared normals and mask uniforms (`streams`: bitwise the same, and no run then holds a
(K, m, d) array of its own). Measurements never form the filters either: the training rows'
products and the signal alignments are v, and the test noise's products (the covariance of
projected evaluation, or the explicit test rows') come from one pass over the filters' d-blocks
(K m n Q d); they go through `metrics.measure` as `metrics.FilterProducts`, as the dense
engine's filters do. `run_state` rebuilds whole filters only for the caller (return_state).

With buckets' padding (padded coordinates z = 0 and mask = 0, padded neurons mask = 0, padded
samples weight 0), G's padded rows and columns are 0 and every quantity goes through the model's
and metrics' functions, so padding carries over; `masked_gram`'s blocks cover the padded d.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxprune import model
from jaxprune.config import Config, Dims, Params
from jaxprune.data import Sample, num_noise_rows, observed_labels, signal_signs
from jaxprune.engine import BYTES_PER_WORD, Cost, Engine, EngineKind
from jaxprune.evaluation import ProjectedTest, covariance_preactivations
from jaxprune.masks import CRITERIA, bernoulli_keep, mask_uniforms
from jaxprune.metrics import FilterProducts
from jaxprune.optimizers import OPTIMIZERS, minibatch, optimizer
from jaxprune.state import INIT_STREAM, MASK_STREAM, RunState, init_state, step_unless_frozen

# Words of one d-block of the outer products of the noise rows (T x block) in `masked_gram`.
BLOCK_WORDS = 2**21
# Words of the R runs' filters in one d-block of a measurement (R K m x block), about a CPU
# core's L2 cache, and the fewest coordinates a block has (`measurement_block`).
MEASUREMENT_WORDS = 2**19
MEASUREMENT_MIN_BLOCK = 512


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Coefficients:
    """A run's filters over the span of its training patches (`RunState.coefficients`):
    w_{k,r} = w_{k,r}(0) ⊙ M + M ⊙ (Σ_{i,q} noise[k,r,i,q] z_{i,q} + Σ_c signal[k,r,c] e_c).

    noise: (K, m, n, Q), on the standard noise rows z (the noise patch xi_{i,q} is sigma_noise
    z_{i,q}, so its coefficient is noise / sigma_noise: the proofs' rho up to ||xi||²). signal:
    (K, m, C), on the signal coordinates `signal_coordinates(config)` (C = K, or 1 for
    antipodal signals; the proofs' gamma up to mu_norm).
    """

    noise: jax.Array
    signal: jax.Array


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class GramRun:
    """The constants of one run that the Gram engine keeps out of the loops' carry. gram:
    (K, m, B, B) per-neuron masked Gram matrices of the rows (`gram_of`). initial: (K, m, B)
    the initial masked filters' products with the rows. kept_signal: (K, m) the mask on each
    neuron's own class's signal coordinate; kept: () the mask's kept weights. weights, mask:
    (K, m, d) the initial masked filters and the mask, or None where the engine `streams` them
    from the seed's shared draws."""

    gram: jax.Array
    initial: jax.Array
    kept_signal: jax.Array
    kept: jax.Array
    weights: jax.Array | None = None
    mask: jax.Array | None = None


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class GramState:
    """The Gram engine's state of one run. coefficients: (K, m, B), a = (α, β) over the rows
    (noise rows first, then the signal coordinates). bias: (K, m). opt_state: the optimizer's
    state for (coefficients, bias). step, converged_step, diverged: as in `RunState`."""

    coefficients: jax.Array
    bias: jax.Array
    step: jax.Array
    converged_step: jax.Array
    diverged: jax.Array
    opt_state: Any

    @property
    def frozen(self) -> jax.Array:
        return (self.converged_step >= 0) | self.diverged


def signal_basis(config: Config) -> tuple[np.ndarray, np.ndarray]:
    """(coordinates (C,), row (K,)): the distinct signal coordinates, and for each class the
    index among them of its own (static numpy)."""
    if config.signal == "orthogonal":
        return np.arange(config.num_classes), np.arange(config.num_classes)
    return np.zeros(1, int), np.zeros(config.num_classes, int)


def streams(config: Config) -> bool:
    """Whether the engine streams a run's initial filters and mask from the seed's shared draws
    (a 'bernoulli' mask of a 'normal' init: M = [U >= p] and w(0) = sigma_init N ⊙ M are
    elementwise in the seed's uniforms U and normals N), one d-block at a time, instead of
    holding them (K, m, d) per run; see `make_engine`."""
    return config.mask == "bernoulli" and config.init == "normal"


def block_size(config: Config) -> int:
    """The most coordinates per d-block of the engine's passes over d (`pairs_block`; the
    passes of a call take `measurement_block`'s, at most this)."""
    return pairs_block(config.n_train * num_noise_rows(config), config.dim)


def pairs_block(num: int, dim: int) -> int:
    """Coordinates per d-block such that the T = N (N + 1) / 2 distinct outer products of N
    rows (T x block) hold at most BLOCK_WORDS words."""
    return int(max(1, min(dim, BLOCK_WORDS // (num * (num + 1) // 2))))


def measurement_block(config: Config, runs: int) -> int:
    """Coordinates per d-block of the passes over d of `runs` runs in one call (forming their
    Gram matrices, and each measurement's test noise products): their filters' and masks' block
    (runs K m x block) about MEASUREMENT_WORDS words, so that it stays in cache (at K m = 10,
    R = 30 a measurement is bound by memory traffic: 3.4-4.9x faster than at `block_size` at
    d = 10^5-10^6; forming G at R = 55, d = 10^6 about 12% faster), but at least
    MEASUREMENT_MIN_BLOCK coordinates (below that the loop's overhead per block shows) and at
    most `block_size`.
    (Measured on the 2-core CPU by docs/performance.md's command; a chunk's R moves only the
    last bits of its sums.)"""
    neurons = runs * config.num_classes * config.width
    return int(min(block_size(config), max(MEASUREMENT_MIN_BLOCK, MEASUREMENT_WORDS // neurons)))


def over_blocks(dim: int, block: int, part, zero):
    """zero + the sum over the d-blocks [s, s + size) of part(take) (a pytree like zero), where
    take(x) slices an array's last axis (d) to the block: a `fori_loop` over the full blocks
    and one call for the rest, so no (..., d) temporary of part's is ever whole."""

    def at(start, size: int):
        return lambda x: jax.lax.dynamic_slice_in_dim(x, start, size, axis=-1)

    def add(total, start, size: int):
        return jax.tree.map(jnp.add, total, part(at(start, size)))

    blocks, rest = divmod(dim, block)
    total = jax.lax.fori_loop(0, blocks, lambda b, total: add(total, b * block, block), zero)
    return add(total, blocks * block, rest) if rest else total


def pair_products(rows: jax.Array, mask: jax.Array) -> jax.Array:
    """Σ_d M_{k,r,d} rows_{a,d} rows_{b,d} over the rows' T = N (N + 1) / 2 distinct pairs
    a <= b (`np.triu_indices`), (K, m, T), of rows (N, s) and a mask (K, m, s): one
    (K m, s) x (s, T) product (under vmap over runs that share `rows`, one for all runs)."""
    first, second = np.triu_indices(rows.shape[0])
    return jnp.einsum("kmd,td->kmt", mask, rows[first] * rows[second])


def pairs_to_gram(pairs: jax.Array, num: int) -> jax.Array:
    """The symmetric (..., N, N) of the distinct pairs (..., T) of `pair_products`."""
    first, second = np.triu_indices(num)
    gram = jnp.zeros(pairs.shape[:-1] + (num, num), pairs.dtype)
    return gram.at[..., first, second].set(pairs).at[..., second, first].set(pairs)


def masked_gram(rows: jax.Array, mask: jax.Array, block: int | None = None) -> jax.Array:
    """Per-neuron masked Gram matrices rows diag(M_{k,r}) rowsᵀ, (K, m, N, N), of rows (N, d)
    and a mask (K, m, d), blocked over d (`over_blocks` of `pair_products`, `block`
    coordinates at a time): peak memory T (block + K m) words, never K m N d."""
    num, dim = rows.shape
    pairs = num * (num + 1) // 2
    block = pairs_block(num, dim) if block is None else block
    zero = jnp.zeros(mask.shape[:2] + (pairs,), jnp.result_type(rows, mask))
    total = over_blocks(dim, block, lambda take: pair_products(take(rows), take(mask)), zero)
    return pairs_to_gram(total, num)


def gram_of(noise: jax.Array, mask_c: jax.Array, z_c: jax.Array) -> jax.Array:
    """G (K, m, B, B) over the rows [z (nQ, d); e_c (C)]: the masked noise Gram (K, m, nQ, nQ),
    the cross terms M_c z_{iq,c} (mask_c (K, m, C): the mask at the distinct signal
    coordinates, z_c (nQ, C): the rows there) and the diagonal M_c."""
    cross = mask_c[:, :, None, :] * z_c  # (K, m, nQ, C)
    top = jnp.concatenate([noise, cross], axis=-1)
    diagonal = mask_c[..., None] * jnp.eye(mask_c.shape[-1], dtype=mask_c.dtype)  # (K, m, C, C)
    bottom = jnp.concatenate([jnp.swapaxes(cross, -1, -2), diagonal], axis=-1)
    return jnp.concatenate([top, bottom], axis=-2)


def make_engine(
    config: Config, key: jax.Array, train: Sample, points: Params, dims: Dims
) -> Engine:
    """The Gram engine (`jaxprune.engine.Engine`) of the runs `points` (leaves (R,)) of the
    seed whose root key is `key` and training draws `train` (z (n, Q, d)), with their own
    shapes `dims` (leaves (R,)) in the bucket `config`. Forms each run's `GramRun` in one pass
    over d from its pruned initialization: `state.init_state`'s, held per run, or streamed from
    the seed's draws where the engine `streams` (bitwise the same).

    A bucket's padding needs nothing of its own here: padded coordinates and neurons are
    pruned (mask 0), so their Gram rows and columns vanish; padded samples weigh 0 in the
    loss (`model.sample_loss`'s weighting), so their coefficients get no gradient and stay 0;
    padded neurons are out of `model.readout`."""
    n, q = config.n_train, num_noise_rows(config)
    z_rows = train.z.reshape(n * q, config.dim)  # row i Q + q is z_{i,q}
    coords, class_row = signal_basis(config)
    signs = signal_signs(config)  # (K,)

    def products(v: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Row products v (K, m, B) -> (noise_pre (n, Q, K, m), alignment (K, m, K))."""
        k, m = v.shape[:2]
        noise_pre = jnp.moveaxis(v[..., : n * q].reshape(k, m, n, q), (0, 1), (2, 3))
        alignment = signs * v[..., n * q + class_row]  # class c's direction is sign_c e_{c}
        return noise_pre, alignment

    def loss(params: Params, dims: Dims, v: jax.Array, bias: jax.Array, indices) -> jax.Array:
        """The training loss (of the minibatch `indices`, or of the run's own samples) given
        the row products v (K, m, B): `model.sample_loss` without the filters."""
        noise_pre, alignment = products(v)
        sample, weight = train, model.prefix(n, dims.n_train)
        if indices is not None:  # minibatches never pad n_train (see `grid.shape_buckets`)
            sample, noise_pre, weight = minibatch(train, indices), noise_pre[indices], None
        pre = model.patch_preactivations(
            config, alignment, noise_pre, sample, params.mu_norm, params.sigma_noise
        )
        labels = observed_labels(config, sample, params.label_flip)
        logits = model.readout(config, pre, bias, model.neuron_valid(config, dims))
        return model.cross_entropy(logits, labels, weight)

    block = measurement_block(config, len(points.prune_frac))
    take_coords = lambda x: x[..., coords]  # noqa: E731
    rows_c = jax.nn.one_hot(coords, config.dim, dtype=z_rows.dtype)  # (C, d): e_c
    noise_cols = 1.0 - rows_c.sum(0) if config.noise_orthogonal else jnp.ones(config.dim)
    if streams(config):  # the seed's draws, shared by its runs (`state.init_state`'s keys)
        normals = model.init_normals(config, jax.random.fold_in(key, INIT_STREAM))  # (K, m, d)
        uniforms = mask_uniforms(config, jax.random.fold_in(key, MASK_STREAM))  # (K, m, d)

    def initial_filters(params: Params, dims: Dims, run: GramRun | None, take):
        """(w(0) ⊙ M, M), each (K, m, s), of one run at the coordinates `take` selects (take(x)
        of a (..., d) array is (..., s)): sliced from the run's own arrays, or streamed from
        the seed's draws as `state.init_state` makes them (bitwise)."""
        if not streams(config):
            return take(run.weights), take(run.mask)
        coordinates = take(model.prefix(config.dim, dims.dim))
        valid = model.neuron_valid(config, dims)[..., None] * coordinates
        mask = bernoulli_keep(take(uniforms), params.prune_frac) * valid
        return params.sigma_init * take(normals) * mask, mask

    def span(coefficients: jax.Array, take) -> jax.Array:
        """Σ_b coefficients_b R_b, (K, m, s), of coefficients (K, m, B) over the rows, at the
        coordinates `take` selects."""
        noise = jnp.einsum("kmn,nd->kmd", coefficients[..., : n * q], take(z_rows))
        return noise + jnp.einsum("kmc,cd->kmd", coefficients[..., n * q :], take(rows_c))

    def filters(params: Params, dims: Dims, run: GramRun, coefficients: jax.Array, take):
        """w(0) ⊙ M + M ⊙ (Σ_b coefficients_b R_b), (K, m, s), of one run at the coordinates
        `take` selects, from its coefficients (K, m, B) over the rows."""
        weights, mask = initial_filters(params, dims, run, take)
        return weights + mask * span(coefficients, take)

    def row_products(run: GramRun, coefficients: jax.Array) -> jax.Array:
        """v = u + G a (K, m, B): the run's filters' products with the rows."""
        return run.initial + jnp.einsum("kmab,kmb->kma", run.gram, coefficients)

    def init(params: Params, dims: Dims) -> tuple[GramRun, GramState]:
        """One run's constants, formed in one pass over d: its masked Gram matrices, its initial
        filters' products with the rows and its mask's counts."""
        if streams(config):
            held = None
            bias = jnp.zeros((config.num_classes, config.width))
        else:
            dense = init_state(config, params, key, train, dims)
            held = GramRun(None, None, None, None, dense.weights, dense.mask)
            bias = dense.bias
        k, m = config.num_classes, config.width

        def part(take):
            weights, mask = initial_filters(params, dims, held, take)
            return (
                pair_products(take(z_rows), mask),
                jnp.einsum("kmd,nd->kmn", weights, take(z_rows)),
                mask.sum(),
            )

        pairs = n * q * (n * q + 1) // 2
        zero = (jnp.zeros((k, m, pairs)), jnp.zeros((k, m, n * q)), jnp.zeros(()))
        pairs, noise_products, kept = over_blocks(config.dim, block, part, zero)
        weights_c, mask_c = initial_filters(params, dims, held, take_coords)  # (K, m, C)
        run = GramRun(
            gram=gram_of(pairs_to_gram(pairs, n * q), mask_c, z_rows[:, coords]),
            initial=jnp.concatenate([noise_products, weights_c], axis=-1),
            kept_signal=mask_c[jnp.arange(k), :, class_row],
            kept=kept,
            weights=None if held is None else held.weights,
            mask=None if held is None else held.mask,
        )
        coefficients = jnp.zeros_like(run.initial)
        state = GramState(
            coefficients=coefficients,
            bias=bias,
            step=jnp.zeros((), jnp.int32),
            converged_step=jnp.full((), -1, jnp.int32),
            diverged=jnp.zeros((), bool),
            opt_state=optimizer(config, params.lr).init((coefficients, bias)),
        )
        return run, state

    def step(params: Params, dims: Dims, run: GramRun, state: GramState, indices) -> GramState:
        """One step, as `dense.gd_step` takes it on the filters."""
        v = row_products(run, state.coefficients)
        value, grads = jax.value_and_grad(loss, argnums=(2, 3))(
            params, dims, v, state.bias, indices
        )
        (step_a, step_b), opt_state = optimizer(config, params.lr).update(
            grads, state.opt_state, (state.coefficients, state.bias)
        )
        return step_unless_frozen(
            config,
            state,
            value,
            opt_state,
            full_loss=indices is None,
            coefficients=state.coefficients + step_a,
            bias=state.bias + step_b,
        )

    def run_state(params: Params, dims: Dims, run: GramRun, state: GramState) -> RunState:
        """The run as the dense engine holds it: weights and mask rebuilt (K m B d), the
        optimizer's state mapped back to the filters, the coefficients under `coefficients`."""
        k, m = config.num_classes, config.width
        whole = lambda x: x  # noqa: E731
        initial_weights, mask = initial_filters(params, dims, run, whole)
        opt_state = optax.tree_utils.tree_map_params(
            optimizer(config, params.lr),
            lambda leaf: mask * span(leaf, whole) if leaf.ndim == 3 else leaf,
            state.opt_state,
        )
        return RunState(
            weights=initial_weights + mask * span(state.coefficients, whole),
            bias=state.bias,
            mask=mask,
            step=state.step,
            converged_step=state.converged_step,
            diverged=state.diverged,
            opt_state=opt_state,
            coefficients=Coefficients(
                noise=state.coefficients[..., : n * q].reshape(k, m, n, q),
                signal=state.coefficients[..., n * q :],
            ),
        )

    def run_products(params: Params, dims: Dims, run: GramRun, state: GramState, test):
        """The measurements' `metrics.FilterProducts` of one run without its filters: the
        training rows' products and the signal alignments from v = u + G a, the test noise's
        (its covariance, or its explicit rows' products) in one pass over d."""
        v = row_products(run, state.coefficients)
        train_noise, alignment = products(v)
        neurons = config.num_classes * config.width

        def part(take):
            w = filters(params, dims, run, state.coefficients, take)  # (K, m, s)
            if isinstance(test, ProjectedTest):
                u = w.reshape(neurons, -1) * take(noise_cols)
                return u @ u.T
            return jnp.einsum("nqd,kmd->nqkm", take(test.z), w)

        if isinstance(test, ProjectedTest):
            covariance = over_blocks(config.dim, block, part, jnp.zeros((neurons, neurons)))
            test_noise = covariance_preactivations(covariance, test)
        else:
            zero = jnp.zeros(test.z.shape[:2] + (config.num_classes, config.width))
            test_noise = over_blocks(config.dim, block, part, zero)
        return FilterProducts(
            train_noise=train_noise,
            test_noise=test_noise,
            alignment=alignment,
            kept_signal=run.kept_signal,
            kept=run.kept,
        )

    def gradient(params: Params, dims: Dims, run: GramRun, state: GramState):
        """The full-batch loss of one run's state and the direction of a 'gd' step in its
        coefficients and bias (for flow): ∂L/∂v and ∂L/∂b, as in `step`."""
        v = row_products(run, state.coefficients)
        value, (grad_v, grad_b) = jax.value_and_grad(loss, argnums=(2, 3))(
            params, dims, v, state.bias, None
        )
        return value, {"coefficients": grad_v, "bias": grad_b}

    runs, initial = jax.vmap(init)(points, dims)
    return Engine(
        initial=initial,
        step=lambda states, indices: jax.vmap(lambda p, d, r, s: step(p, d, r, s, indices))(
            points, dims, runs, states
        ),
        run_state=lambda states: jax.vmap(run_state)(points, dims, runs, states),
        variables=("coefficients", "bias"),
        constants=runs,
        gradient=gradient,
        products=lambda states, test: jax.vmap(lambda p, d, r, s: run_products(p, d, r, s, test))(
            points, dims, runs, states
        ),
    )


def gram_rows(config: Config) -> int:
    """B: the rows of a neuron's Gram matrix, n Q noise rows and the C signal coordinates."""
    signals = config.num_classes if config.signal == "orthogonal" else 1
    return config.n_train * num_noise_rows(config) + signals


def supports(config: Config) -> str | None:
    """None where the optimizer's update is linear in the gradients (it stays in the span of
    the training patches that the coefficients cover), else why not."""
    if not OPTIMIZERS[config.optimizer].linear:
        return (
            f"optimizer={config.optimizer!r} is not linear in the gradients, so its update "
            "leaves the span of the training patches that 'gram' trains in"
        )
    return None


def cost(config: Config) -> Cost:
    """One run: forming G (2 T d K m + 2 n Q d K m FLOPs, K m d words), S Gram steps (2 B² K m
    FLOPs, B² K m words each) and building the filters' d-blocks at the L logs (2 n Q d K m
    FLOPs, 3 K m d words each); T = n Q (n Q + 1) / 2, S = `Optimizer.evaluations`."""
    neurons, d, rows = config.num_classes * config.width, config.dim, gram_rows(config)
    noise = config.n_train * num_noise_rows(config)
    steps = OPTIMIZERS[config.optimizer].evaluations(config)
    logs = len(config.logged_steps())
    return Cost(
        2 * (noise * (noise + 1) / 2) * d * neurons
        + 2 * noise * d * neurons
        + steps * 2 * rows**2 * neurons
        + logs * 2 * noise * d * neurons,
        (neurons * d + steps * rows**2 * neurons + logs * 3 * neurons * d) * BYTES_PER_WORD,
    )


def seed_words(config: Config) -> float:
    """One d-block of the noise rows' outer products (`pair_products`), and the signal
    coordinates' rows e_c (C, d) with the noise's columns (d,)."""
    noise = config.n_train * num_noise_rows(config)
    signals = config.num_classes if config.signal == "orthogonal" else 1
    return min(BLOCK_WORDS, noise * (noise + 1) // 2 * config.dim) + (signals + 1) * config.dim


def run_words(config: Config) -> float:
    """The Gram matrices of the B rows (2 K m B²: built, then kept), the pairs accumulated while
    forming them (K m T), the coefficients with their gradient and moments ((2 + 2 o) K m B),
    the noise covariance (K² m²), 6 copies of a d-block of the filters (K m block: mask,
    initial filters, span, filters, their products) and, where the engine does not `stream`
    them, the initial filters, the mask and the filters rebuilt at a measurement with a
    temporary (4 K m d) and the criterion's scores."""
    neurons, rows = config.num_classes * config.width, gram_rows(config)
    noise = config.n_train * num_noise_rows(config)
    moments = OPTIMIZERS[config.optimizer].moments
    coefficients = (2 + 2 * moments) * rows + 2 * rows**2 + noise * (noise + 1) // 2
    words = (coefficients + neurons + 6 * block_size(config)) * neurons
    if not streams(config):
        words += (4 + CRITERIA[config.mask].score_copies) * neurons * config.dim
    return words


GRAM = EngineKind("gram", make_engine, cost, run_words, seed_words, supports)
