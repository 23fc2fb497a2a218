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

The factor is the triangular R of a QR decomposition of Uᵀ (`noise_factor`): Rᵀ R = U Uᵀ to float
rounding, and the QR is backward stable even where U Uᵀ is singular (a neuron pruned whole,
padded, or a combination of others, e.g. more neurons than the filters' span), where a Cholesky
of U Uᵀ divides rounding noise by rounding noise. Each neuron's normals are drawn from its own
key (`model.neuron_draws`) and the all-zero neurons are put last, so a run padded into a larger
bucket (more neurons, coordinates or test samples) gets the same test draws as alone, to float
rounding.

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


def noise_factor(config: Config, w_eff: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(R, order): R (k, K m) with Rᵀ R = U_order U_orderᵀ, k = min(d, K m), U = `noise_filters`
    of the masked filters w_eff (K, m, d) with its rows in `order` (K m,): the neurons whose
    filter is not all zero first, in (k, r) order, then the zero ones (pruned whole or padded).
    R is the triangular factor of a QR decomposition of U_orderᵀ (d, K m): backward stable
    without forming U Uᵀ, so a singular U Uᵀ (zero rows, more neurons than the filters' span)
    gives entries of R at rounding size where a Cholesky of U Uᵀ would divide rounding noise by
    rounding noise. Zero rows last make R's columns of the nonzero neurons independent of how
    many zero neurons a bucket pads in."""
    u = noise_filters(config, w_eff)
    zero = ~(u != 0).any(axis=1)
    order = jnp.argsort(zero, stable=True)
    return jnp.linalg.qr(u[order].T, mode="r"), order


def projected_noise_preactivations(
    config: Config, w_eff: jax.Array, test: ProjectedTest
) -> jax.Array:
    """The filters' products with the test set's standard noise rows, (n, Q, K, m), for masked
    filters w_eff (K, m, d): each neuron's normals mapped by the factor R of `noise_factor`.
    The law of `model.noise_preactivations(w_eff, draw_sample(...))`."""
    n, q, k, m = test.normals.shape
    factor, order = noise_factor(config, w_eff)  # (rows, K m), rows = min(d, K m)
    normals = test.normals.reshape(n, q, k * m)[..., order][..., : factor.shape[0]]
    mapped = (normals @ factor)[..., jnp.argsort(order)]  # back to (k, r) order
    return mapped.reshape(n, q, k, m)


def test_noise_preactivations(
    config: Config, w_eff: jax.Array, test: Sample | ProjectedTest
) -> jax.Array:
    """(n, Q, K, m): the masked filters' products with the test set's standard noise rows,
    explicit (`model.noise_preactivations`) or projected (`projected_noise_preactivations`)."""
    if isinstance(test, ProjectedTest):
        return projected_noise_preactivations(config, w_eff, test)
    return model.noise_preactivations(w_eff, test)
