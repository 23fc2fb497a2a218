"""The test set of a run (`Config.test_eval`): drawn in d dimensions, or projected onto the
trained filters.

The network meets a test sample's noise patches only through their inner products with its
K m masked filters. A test sample is drawn independently of everything training sees (its own
key, `state.TEST_STREAM`), so given the filters W (K m, d) those products, for one noise patch
with standard rows z ~ N(0, I_d) (zero on the signal coordinates when
`config.noise_orthogonal`), are exactly Gaussian:

    W z ~ N(0, U Uᵀ),   U = W with the signal coordinates' columns removed when the noise is
                        orthogonal to them (else U = W),

independently across patches and samples (the network scales them by sigma_noise:
covariance sigma² U Uᵀ). The signal patch's pre-activations, mu_norm <w_{k,r}, mu_y / ||mu_y||>,
are deterministic given the label. So 'projected' evaluation draws, once per seed, the labels
(with their flips and signal positions: the same draws as the explicit test set's) and
standard normals (n_test, Q, K, m), and at every measurement maps the normals by a factor L of
U Uᵀ (L Lᵀ = U Uᵀ): cost O(K² m² d) to form U Uᵀ, O(K³ m³) to factor it and O(n_test Q K² m²)
to map, instead of the explicit set's n_test Q d normals and O(n_test Q d K m) products. It is
exact in distribution at each measurement (not draw for draw; across measurements the same
normals are mapped by each measurement's own factor, so the joint law of a run's test
trajectory is not that of one fixed test set: each logged point is exact on its own).

The factor is a semidefinite Cholesky factor (`cholesky_factor`): U Uᵀ is singular whenever a
neuron is pruned whole, padded (a bucket's padding) or a combination of others (e.g. more
neurons than the filters' span), which LAPACK's Cholesky refuses and a jitter would alter. A
pivot at or below K m eps times its diagonal drops its column (in exact arithmetic it is 0),
so L Lᵀ = U Uᵀ to float rounding (Cholesky is backward stable on positive semidefinite
matrices) without altering any variance. Ordered by neuron (k, r) with each neuron's normals
drawn from its own key (`model.neuron_draws`), a run padded into a larger bucket (more
neurons, coordinates or test samples) gets the same test draws as alone: its padded neurons
have zero pivots and columns.

'projected' is valid for every Config of this model (the test noise is Gaussian and
independent of the filters whatever the mask criterion, activation, layout or signal). 'auto'
picks the cheaper by `costs` (per run, at the Config's shape: roughly, projected wins once
n_test Q exceeds K m, i.e. for every preset).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxprune import model
from jaxprune.config import Config
from jaxprune.data import Sample, draw_sample, draw_samples, num_noise_rows, signal_coordinates
from jaxprune.engine import FLOP_RATE, Cost

# Seconds per standard normal drawn (threefry on a 2-core CPU, about 20-30 ns), as FLOPs.
NORMAL_FLOPS = 2.5e-8 * FLOP_RATE
# Seconds per step of the factor's sequential loop (one per neuron), as FLOPs.
LOOP_FLOPS = 2e-6 * FLOP_RATE


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ProjectedTest:
    """The Params-free draws of a projected test set of n samples (see the module docstring).

    y_true, flip_uniform, other_label, signal_patch: (n,) as in `data.Sample` (the same draws
    as the explicit test set of the same key). normals: (n, Q, K, m) standard normals, one per
    noise patch and neuron, mapped onto the filters' noise projections at each measurement.
    """

    y_true: jax.Array
    flip_uniform: jax.Array
    other_label: jax.Array
    signal_patch: jax.Array
    normals: jax.Array


def costs(config: Config) -> dict[str, Cost]:
    """Estimated cost of one run's test evaluation by each method (L measurements, Q noise rows
    per sample, K m neurons): 'draw': n_test Q d normals and L (2 n_test Q d K m) FLOPs;
    'projected': n_test Q K m normals and L (2 K² m² d + 2 K³ m³ + 2 n_test Q K² m² FLOPs + K m
    loop steps). The normals are drawn once per seed and shared by the runs of the seed in a
    chunk; they are counted whole here (one run per seed, as `train` runs it)."""
    neurons, dim, logs = config.num_classes * config.width, config.dim, len(config.logged_steps())
    patches = config.n_test * num_noise_rows(config)
    draw = Cost(patches * dim * NORMAL_FLOPS + logs * 2 * patches * dim * neurons, 0.0)
    projected = Cost(
        patches * neurons * NORMAL_FLOPS
        + logs
        * (
            2 * neurons**2 * dim
            + 2 * neurons**3
            + 2 * patches * neurons**2
            + neurons * LOOP_FLOPS
        ),
        0.0,
    )
    return {"draw": draw, "projected": projected}


def resolve(config: Config) -> str:
    """The test evaluation of `config`: config.test_eval, or for 'auto' the cheaper by `costs`
    ('projected' on ties)."""
    if config.test_eval != "auto":
        return config.test_eval
    estimate = costs(config)
    return "projected" if estimate["projected"].seconds <= estimate["draw"].seconds else "draw"


def draw_projected(config: Config, key: jax.Array, n: int) -> ProjectedTest:
    """The projected test set of n samples from `key` (pure): the labels, flips and signal
    positions of `data.draw_sample(config, key, n)`, and for noise row q of sample i a (K, m)
    standard normal per neuron (neuron (k, r) from its own key, `model.neuron_draws`), so the
    first n' samples and first m' neurons of each class are the draws at (n', m')."""

    def row(row_key: jax.Array) -> jax.Array:
        return model.neuron_draws(config, row_key, lambda k: jax.random.normal(k))

    sample = draw_samples(config, key, n, row)
    return ProjectedTest(
        y_true=sample.y_true,
        flip_uniform=sample.flip_uniform,
        other_label=sample.other_label,
        signal_patch=sample.signal_patch,
        normals=sample.z,
    )


def draw_test(config: Config, key: jax.Array, n: int) -> Sample | ProjectedTest:
    """The test set of n samples from `key` as `resolve(config)` evaluates it: the explicit
    `data.draw_sample`, or `draw_projected`."""
    if resolve(config) == "projected":
        return draw_projected(config, key, n)
    return draw_sample(config, key, n)


def noise_filters(config: Config, w_eff: jax.Array) -> jax.Array:
    """U (K m, d): the masked filters w_eff (K, m, d) as the noise sees them, with the signal
    coordinates' columns zeroed when config.noise_orthogonal (the noise has none there)."""
    u = jnp.asarray(w_eff).reshape(-1, w_eff.shape[-1])
    if config.noise_orthogonal:
        u = u.at[:, signal_coordinates(config)].set(0.0)
    return u


def noise_covariance(config: Config, w_eff: jax.Array) -> jax.Array:
    """U Uᵀ (K m, K m): the covariance of the filters' products with one standard noise row
    (`noise_filters`; the patch xi = sigma_noise z has sigma_noise² U Uᵀ)."""
    u = noise_filters(config, w_eff)
    return u @ u.T


def cholesky_factor(covariance: jax.Array) -> jax.Array:
    """Lower-triangular L (N, N) with L Lᵀ = covariance (N, N), positive semidefinite, possibly
    singular: column j is dropped (zero) where its pivot is <= N eps covariance[j, j] (exactly
    where a row is zero, e.g. a pruned or padded neuron; in exact arithmetic wherever neuron
    j is a combination of neurons before it). Left-looking, one column per loop step."""
    size = covariance.shape[-1]
    diagonal = jnp.diagonal(covariance)
    tolerance = size * jnp.finfo(covariance.dtype).eps
    below = jnp.arange(size)

    def column(j: jax.Array, factor: jax.Array) -> jax.Array:
        residual = covariance[:, j] - factor @ factor[j]  # (N,): column j of the Schur complement
        pivot = residual[j]
        keep = pivot > tolerance * diagonal[j]
        values = residual / jnp.sqrt(jnp.where(keep, pivot, 1.0))
        return factor.at[:, j].set(jnp.where(keep & (below >= j), values, 0.0))

    return jax.lax.fori_loop(0, size, column, jnp.zeros_like(covariance))


def projected_noise_preactivations(
    config: Config, w_eff: jax.Array, test: ProjectedTest
) -> jax.Array:
    """The filters' products with the test set's standard noise rows, (n, Q, K, m), for masked
    filters w_eff (K, m, d): the normals mapped by the `cholesky_factor` of `noise_covariance`.
    The law of `model.noise_preactivations(w_eff, draw_sample(...))`."""
    return covariance_preactivations(noise_covariance(config, w_eff), test)


def covariance_preactivations(covariance: jax.Array, test: ProjectedTest) -> jax.Array:
    """(n, Q, K, m): the projected test set's normals mapped by the `cholesky_factor` of the
    filters' noise covariance (K m, K m) (`noise_covariance`, or an engine's own: the Gram
    engine forms it blockwise over d without the filters)."""
    n, q, k, m = test.normals.shape
    mapped = test.normals.reshape(n, q, k * m) @ cholesky_factor(covariance).T
    return mapped.reshape(n, q, k, m)


def test_noise_preactivations(
    config: Config, w_eff: jax.Array, test: Sample | ProjectedTest
) -> jax.Array:
    """(n, Q, K, m): the masked filters' products with the test set's standard noise rows,
    explicit (`model.noise_preactivations`) or projected (`projected_noise_preactivations`)."""
    if isinstance(test, ProjectedTest):
        return projected_noise_preactivations(config, w_eff, test)
    return model.noise_preactivations(w_eff, test)
