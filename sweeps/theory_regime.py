"""Yang et al.'s claims in the theorems' regime: d >> n^2, small init, small steps.

    PYTHONPATH=. python sweeps/theory_regime.py [--out DIR] [--quick | --smoke]

The paper's model (`yang2023` preset: K = 2 orthogonal 1-sparse signals, noise orthogonal to
them, ReLU CNN with the second layer fixed to 1/m, Bernoulli masks) at fixed n = N_TRAIN and
m = WIDTH, over dimensions d from 10^3 to 10^6 (full size), with the initial scale and the step
placed in the theorems' regime *in the model's own scaling*:

- The network is F_k = (1/m) sum_r sum_q ReLU(<w_kr ⊙ M_kr, x_q>) and the loss the mean
  cross-entropy over the n samples: the normalization of Cao et al. (2022) and Kou et al.
  (2023), whose F_j carries the same 1/m and whose loss the same 1/n. So `Params.lr` is their
  step eta, and a GD step moves <w_kr, xi_i> by at most eta ||xi_i ⊙ M||^2 / (n m) ~
  eta sigma^2 (1-p) d / (n m) and <w_kr, mu_k> by at most eta ||mu||^2 / m.
- Step: their condition eta <= O~(min(||mu||^-2, (sigma^2 d)^-1)) reads LR_SCALE = eta sigma^2 d
  <= 1 here (||mu||^2 << sigma^2 d in every cell). We hold eta sigma^2 d = LR_SCALE = 1 at
  every d: a step then moves a noise pre-activation by at most (1-p)/(n m) << 1 (near the
  gradient-flow limit), a factor ~ n m below where GD on this loss turns unstable.
- Init: their sigma_0 <= O~(1/n) min((sigma sqrt(d))^-1, ||mu||^-1): we hold the initial
  pre-activation scale sigma_0 sigma sqrt(d) = INIT_SCALE = 0.1 (about 1/n) at every d.
- Dimension: every analysis needs the n noise patches nearly orthogonal, sum_j |<xi_i, xi_j>| /
  ||xi_i||^2 ~ n / sqrt(d) << 1, i.e. d >> n^2 (the papers' own conditions are stronger
  polynomials in n and m, e.g. d >~ m^2 n^4 up to logs). With n = 8: d/n^2 from 16 (d = 10^3)
  to 15625 (d = 10^6). The conditions are quoted from the papers as recalled by the author of
  this script (their bodies are not in this repository); Yang et al.'s own conditions are not
  available here.

Signal strengths are set per d by the benign score n ||mu||^4 / (sigma^4 d) (Kou et al.), so the
curves of different d can be compared at equal scores. Every run trains by full-batch GD until
its training loss reaches LOSS_TOL (or the size's step cap; the report gives the fraction that
fitted its training set). GD, not gradient flow: at eta sigma^2 d = 1 GD's training loss is
within 0.15% of GD's at eta/8 at every logged time at d = 10^4 (at d = 10^3 one run in 96 takes
another branch at a ReLU kink, 6.8% away), test accuracies agree to 0.0005, and a flow run
costs 6-70x a GD run at d <= 10^4 with kink errors of its own (docs/flow.md). The test set is
projected where `test_eval="auto"` finds that cheaper (docs/test-eval.md).
Results under DIR (default results/theory_regime[-quick|-smoke]):

- mild-dD/: test accuracy over benign scores x p in [0, 0.5] at sigma_0: the mild-pruning
  contrast near p = 0, and at p = 0 the accuracy-against-score curves (collapse across d);
  with, in the same sweep (`mild_pairs`: a seed's runs share its draws and one compilation),
  the matched control: p = 0 at sigma_init = sigma_0 sqrt(1 - p) for each p > 0 and the same
  seeds (a Bernoulli mask shrinks the initial scale by sqrt(1 - p)).
- overprune-dD/: p up to 0.95 at a benign score where p = 0 learns: the over-pruning threshold.
- classes.parquet: per run and class k of the over-pruning sweeps, the realised number of
  neurons of class k that keep its signal coordinate and the accuracy on class-k test samples
  (from the trained weights: `jaxprune.train(..., return_state=True)` of a seed's runs in one
  call), checked against the sweep's test_acc.
- coefficients.parquet: the proofs' coefficients gamma_{k,r}(t) = <w_kr(t) - w_kr(0), mu_k> /
  ||mu_k||^2 and rho_{k,r,i}(t) = <w_kr(t) - w_kr(0), xi_i> / ||xi_i||^2 at a few step counts
  (a run is deterministic per seed, so training for t steps reproduces its trajectory at t).

Re-running the same command resumes the sweeps and reuses the parquet files of a finished
pass; `analysis/regime.py` (compute) and `analysis/regime_render.py` (render) turn DIR into the
report's superseded regime section (the E0-E2 section of `sweeps/regime_boundary.py` replaces it).
"""

from __future__ import annotations

import concurrent.futures
import functools
import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

import jaxprune
from jaxprune import outcomes
from jaxprune.chunking import cpu_seeds_in_flight
from jaxprune.data import observed_labels
from jaxprune.experiment import Recorder, parser
from jaxprune.results import write_json

N_TRAIN = 8  # fixed n: d / n^2 >= 16 from d = 1000 up
WIDTH = 5  # fixed m: (1 - p) m = 1 at p = 0.8, p^m = 1/2 at p = 0.87
SIGMA_NOISE = 1.0
INIT_SCALE = 0.1  # sigma_0 sigma sqrt(d): the initial pre-activation scale
LR_SCALE = 1.0  # eta sigma^2 d: the step condition of Cao et al. / Kou et al. is <= 1
LOSS_TOL = 0.1  # train until the mean training cross-entropy reaches this (or the step cap)
OVERPRUNE_SCORE = 32.0  # benign score of the over-pruning sweeps: p = 0 learns the signal

SIZES = {
    "full": dict(
        dims=[1000, 3000, 10000, 30000, 100000, 300000, 1000000],
        scores=[1 / 16, 1 / 4, 1.0, 4.0, 16.0],
        mild_p=[0.0, 0.1, 0.2, 0.3, 0.4, 0.5],
        over_dims=[1000, 10000, 100000],
        over_p=[0.0, 0.5, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95],
        dyn_dims=[1000, 10000, 100000],
        dyn_p=[0.0, 0.5, 0.9],
        dyn_steps=[25, 50, 100, 200, 400, 800, 1600],
        dyn_seeds=4,
        seeds=64,
        steps=200_000,
        n_test=1000,
    ),
    "quick": dict(
        dims=[500, 1000, 2000],
        scores=[1 / 4, 1.0, 4.0],
        mild_p=[0.0, 0.25, 0.5],
        over_dims=[500, 2000],
        over_p=[0.0, 0.6, 0.8, 0.9, 0.95],
        dyn_dims=[500, 2000],
        dyn_p=[0.0, 0.5, 0.9],
        dyn_steps=[50, 100, 200, 400, 800],
        dyn_seeds=2,
        seeds=12,
        steps=30_000,
        n_test=500,
    ),
    "smoke": dict(
        dims=[100, 200],
        scores=[1.0, 16.0],
        mild_p=[0.0, 0.5],
        over_dims=[200],
        over_p=[0.0, 0.5, 0.9],
        dyn_dims=[100],
        dyn_p=[0.0, 0.5],
        dyn_steps=[20, 40],
        dyn_seeds=1,
        seeds=3,
        steps=200,
        n_test=100,
    ),
}


def regime_setting(dim: int, size: str) -> tuple[jaxprune.Config, jaxprune.Params]:
    """The Config and base Params at dimension `dim`: n = N_TRAIN, m = WIDTH, sigma_0 =
    INIT_SCALE / (sigma sqrt(d)), lr = LR_SCALE / (sigma^2 d), trained to LOSS_TOL."""
    s = SIZES[size]
    config, params = jaxprune.presets.yang2023()
    config = config.replace(
        dim=dim,
        n_train=N_TRAIN,
        width=WIDTH,
        n_test=s["n_test"],
        steps=s["steps"],
        log_every=s["steps"],
        loss_tol=LOSS_TOL,
    )
    params = params.replace(
        sigma_noise=SIGMA_NOISE,
        sigma_init=float(INIT_SCALE / (SIGMA_NOISE * np.sqrt(dim))),
        lr=float(LR_SCALE / (SIGMA_NOISE**2 * dim)),
    )
    return config, params


def mu_for_score(score: float, dim: int) -> float:
    """The signal strength whose benign score n ||mu||^4 / (sigma^4 d) equals `score`."""
    return round(float((score * SIGMA_NOISE**4 * dim / N_TRAIN) ** 0.25), 5)


def mild_pairs(sigma_init: float, size: dict) -> list[tuple[float, float]]:
    """The (prune_frac, sigma_init) pairs of a mild sweep: each mild p at sigma_0, then the
    matched control of each p > 0, dense (p = 0) at sigma_0 sqrt(1 - p) (a Bernoulli mask
    shrinks the initial scale by sqrt(1 - p)). One sweep holds both, so a seed's runs share
    its draws and one compilation."""
    pruned = [(float(p), sigma_init) for p in size["mild_p"]]
    shrunk = [(0.0, round(sigma_init * float(np.sqrt(1 - p)), 9)) for p in size["mild_p"] if p]
    return pruned + shrunk


def mild_grid(dim: int, sigma_init: float, size: dict) -> dict:
    """The grid of the mild sweep at `dim`: the size's benign scores (as mu_norm) x
    `mild_pairs`."""
    mus = [mu_for_score(b, dim) for b in size["scores"]]
    return {"mu_norm": mus, ("prune_frac", "sigma_init"): mild_pairs(sigma_init, size)}


def test_sample(config: jaxprune.Config, seed: int):
    """The seed's test set, as every run of the seed is measured on it (n_test samples)."""
    return outcomes.test_set(config, seed)


def seed_points(params: jaxprune.Params, prune_fracs) -> jaxprune.Params:
    """`params` at each of `prune_fracs` (R,): the runs of one seed, as `jaxprune.train` trains
    them in one call."""
    return params.replace(prune_frac=np.asarray(prune_fracs, np.float64))


def run_points(points: jaxprune.Params) -> jaxprune.Params:
    """`points` (leaves (R,) or scalars) as float32 leaves (R,), as the runs trained on them."""
    runs = len(points.prune_frac)
    return jax.tree.map(lambda v: jnp.broadcast_to(jnp.asarray(v, jnp.float32), (runs,)), points)


@functools.cache
def class_function(config: jaxprune.Config):
    """jit((points, states, seed, test) -> outcomes.ClassOutcomes of leaves (R, K)): the
    per-class outcomes of a seed's R runs from their final states, compiled once per Config
    (the seed is traced)."""

    def one(params, state, seed, test):
        start = outcomes.initial_state(config, params, seed)
        return outcomes.class_outcomes(config, params, state, start, test)

    return jax.jit(jax.vmap(one, in_axes=(0, 0, None, None)))


@functools.cache
def coefficient_function(config: jaxprune.Config):
    """jit((points, weights, seed, train) -> dict of (R, ...) arrays): `coefficients`' arrays
    of a seed's R runs from their final masked weights (R, K, m, d), compiled once per Config
    (the seed is traced)."""

    def one(params, weights, seed, train):
        start = outcomes.initial_state(config, params, seed)
        kept = outcomes.kept_signal(config, start.mask)
        return {
            "gamma": outcomes.signal_coefficients(config, params, weights, start.weights),
            "rho": outcomes.noise_coefficients(config, params, weights, start.weights, train),
            "y": observed_labels(config, train, params.label_flip),
            "kept": kept,
            "live": kept & (outcomes.own_signal_alignment(config, start.weights) > 0),
        }

    return jax.jit(jax.vmap(one, in_axes=(0, 0, None, None)))


def class_outcomes(
    config: jaxprune.Config, params: jaxprune.Params, seed: int, prune_fracs
) -> pd.DataFrame:
    """One row per run (params at each of `prune_fracs`, one seed) and class k, from the runs'
    trained weights (`jaxprune.outcomes.class_outcomes`).

    signal_neurons_class: neurons of class k whose mask keeps k's signal coordinate (realised,
    not expected); signal_neurons_live: those of them whose initial weight on it is > 0. With
    ReLU and noise orthogonal to the signals, a filter with <w_kr(0), mu_k> <= 0 is inactive on
    k's signal patch, and its weight on k's coordinate gets no gradient from any sample: it never
    learns mu_k. class_test_acc: accuracy on the test samples of true class k; class_signal:
    max_r <w_kr, mu_k> / ||mu_k||. Run-level test_acc, train_acc, converged_step come along
    (from the same training; test_acc from the per-class accuracies), so the caller can check
    them against its sweep.

    The seed's runs are trained in one call with n_test = 1 (the test set does not enter
    training, and each sample is its own draw, so the training is the same) and scored on the
    seed's test set (`test_sample`, drawn once for them).
    """
    points = seed_points(params, prune_fracs)
    frame, states = jaxprune.train(config.replace(n_test=1), points, seed, return_state=True)
    result = class_function(config)(run_points(points), states, seed, test_sample(config, seed))
    counts, correct = np.asarray(result.test_samples), np.asarray(result.test_correct)  # (R, K)
    with np.errstate(invalid="ignore"):  # a class without test samples: NaN
        class_acc = correct / counts
    last = jaxprune.final(frame).sort_values("run")
    k, runs = config.num_classes, len(prune_fracs)
    per_run = lambda v: np.repeat(np.asarray(v), k)  # noqa: E731
    return pd.DataFrame(
        {
            "seed": seed,
            "dim": config.dim,
            "prune_frac": per_run(prune_fracs).astype(float),
            "mu_norm": float(params.mu_norm),
            "class": np.tile(np.arange(k), runs),
            "signal_neurons_class": np.asarray(result.signal_neurons).ravel().astype(np.int64),
            "signal_neurons_live": np.asarray(result.live_neurons).ravel().astype(np.int64),
            "class_test_acc": class_acc.ravel(),
            "class_test_samples": counts.ravel().astype(np.int64),
            "class_signal": np.asarray(result.signal_max).ravel(),
            "test_acc": per_run(correct.sum(axis=1) / counts.sum(axis=1)),
            "train_acc": per_run(last.train_acc),
            "converged_step": per_run(last.converged_step).astype(np.int64),
        }
    )


def coefficients(
    config: jaxprune.Config, params: jaxprune.Params, seed: int, steps: int, prune_fracs
) -> dict[str, np.ndarray]:
    """The proofs' coefficients of the runs (params at each of `prune_fracs`, one seed, trained
    in one call) after `steps` plain GD steps (no loss_tol), by `jaxprune.outcomes`; each array
    has a leading axis (R,) over the runs.

    gamma (R, K, m): <w_kr(t) - w_kr(0), mu_k> / ||mu_k||^2; rho (R, K, m, n, Q):
    <w_kr(t) - w_kr(0), xi_iq> / ||xi_iq||^2 over the training noise patches xi_iq = sigma
    z_iq; y (R, n) observed training labels; kept (R, K, m): whether the mask keeps the signal
    coordinate; live (R, K, m): kept, with a positive initial weight on it (see
    `class_outcomes`). w are the masked weights; w(0) is the run's pruned initialization.
    """
    run = config.replace(steps=steps, log_every=steps, loss_tol=None, n_test=1)  # no test set
    points = seed_points(params, prune_fracs)
    _, states = jaxprune.train(run, points, seed, return_state=True)
    arrays = coefficient_function(config.replace(n_test=1))(
        run_points(points), states.weights, seed, outcomes.training_set(run, seed)
    )
    return {name: np.asarray(v) for name, v in arrays.items()}


def coefficient_rows(
    config: jaxprune.Config, params: jaxprune.Params, seed: int, steps: int, prune_fracs
) -> list[dict]:
    """The rows of coefficients.parquet of the runs (params at each of `prune_fracs`, one
    seed): the summaries the proofs bound, after `steps` steps.

    gamma_max: mean over the classes k with a live signal filter of max_r gamma_kr (signal
    learning; NaN when no class has one); rho_max: mean over the training noise patches
    (i, q) of max_r rho_{y_i, r, i, q} (memorization by the own class); rho_other_min: mean over
    (i, q) of min_r rho_{k != y_i, r, i, q} (the other class's filters, pushed below zero)."""
    c = coefficients(config, params, seed, steps, prune_fracs)
    rows = []
    for i, p in enumerate(prune_fracs):
        gamma, rho, y, live = c["gamma"][i], c["rho"][i], c["y"][i], c["live"][i].any(axis=1)
        n = len(y)
        own = rho[y, :, np.arange(n)]  # (n, m, Q)
        other = rho[(y + 1) % config.num_classes, :, np.arange(n)]
        rows.append({
            "seed": seed,
            "dim": config.dim,
            "prune_frac": float(p),
            "mu_norm": float(params.mu_norm),
            "sigma_noise": float(params.sigma_noise),
            "lr": float(params.lr),
            "n_train": config.n_train,
            "width": config.width,
            "step": steps,
            "gamma_max": float(gamma.max(axis=1)[live].mean()) if live.any() else np.nan,
            "rho_max": float(own.max(axis=1).mean()),
            "rho_other_min": float(other.min(axis=1).mean()),
        })  # fmt: skip
    return rows


def progress(name: str, dim: int, done: int, total: int, unit: str) -> None:
    """One line on stderr per step of a derived pass (they train seed by seed, for minutes)."""
    print(f"{name}: d = {dim}: {done} of {total} {unit} done", file=sys.stderr, flush=True)


def in_flight(fn, *arguments):
    """map(fn, *arguments), in order, with `chunking.cpu_seeds_in_flight()` calls at once on
    their own threads, as a CPU sweep runs its seeds (a seed's step loop uses one core)."""
    with concurrent.futures.ThreadPoolExecutor(cpu_seeds_in_flight()) as pool:
        yield from pool.map(fn, *arguments)


def _derived(rec: Recorder, key: str, rows, spec: dict, trainings=len, **meta) -> pd.DataFrame:
    """A pass that is not a jaxprune sweep (per-class outcomes, coefficients): computed once
    into out/key.parquet with its specification in out/key.json, reused when both are present
    and the specification is the same (a different one is refused unless --overwrite), and
    recorded in run.json like a sweep, with `trainings(frame)` runs (trained now unless
    reused)."""
    path, spec_path = rec.out / f"{key}.parquet", rec.out / f"{key}.json"
    t0 = time.perf_counter()
    reused = path.exists() and spec_path.exists() and not rec.args.overwrite
    if reused:
        if json.loads(spec_path.read_text()) != spec:
            raise SystemExit(
                f"{path} holds a different {key} pass: choose another --out or pass --overwrite."
            )
        frame = pd.read_parquet(path)
    else:
        frame = pd.concat(r if isinstance(r, pd.DataFrame) else pd.DataFrame([r]) for r in rows())
        frame.reset_index(drop=True).to_parquet(path.with_suffix(".tmp"))
        path.with_suffix(".tmp").rename(path)
        write_json(spec_path, spec)
    runs = trainings(frame)
    rec.record_pass(key, runs, 0 if reused else runs, time.perf_counter() - t0, meta)
    return frame


def main(argv=None) -> None:
    args = parser(__doc__).parse_args(argv)
    rec = Recorder("sweeps/theory_regime.py", args, "theory_regime")
    s = SIZES[rec.size]
    seeds = args.seeds or s["seeds"]
    if rec.size == "smoke" and args.chunk_size is None:
        args.chunk_size = 2  # one chunk shape, so one compilation per d for all three sweeps
    constants = dict(
        n_train=N_TRAIN,
        width=WIDTH,
        sigma_noise=SIGMA_NOISE,
        init_scale=INIT_SCALE,
        lr_scale=LR_SCALE,
        loss_tol=LOSS_TOL,
        steps=s["steps"],
    )

    for dim in s["dims"]:
        config, params = regime_setting(dim, rec.size)
        grid = mild_grid(dim, params.sigma_init, s)
        rec.sweep(
            f"mild-d{dim}",
            config,
            grid,
            seeds,
            params,
            purpose="mild pruning near p = 0 in regime (p = 0 gives accuracy against score) and "
            "its matched control: dense at sigma_0 sqrt(1 - p)",
            sigma_init=params.sigma_init,
            mild_p=s["mild_p"],
            control_p=[p for p in s["mild_p"] if p],
            dim=dim,
            scores=s["scores"],
            mus=grid["mu_norm"],
            **constants,
        )

    for dim in s["over_dims"]:
        config, params = regime_setting(dim, rec.size)
        params = params.replace(mu_norm=mu_for_score(OVERPRUNE_SCORE, dim))
        rec.sweep(
            f"overprune-d{dim}",
            config,
            {"prune_frac": s["over_p"]},
            seeds,
            params,
            purpose="over-pruning threshold at a benign score",
            dim=dim,
            score=OVERPRUNE_SCORE,
            mu=params.mu_norm,
            **constants,
        )

    def class_rows():
        for dim in s["over_dims"]:
            config, params = regime_setting(dim, rec.size)
            params = params.replace(mu_norm=mu_for_score(OVERPRUNE_SCORE, dim))
            sweep = jaxprune.final(jaxprune.load(rec.out / f"overprune-d{dim}"))
            one = functools.partial(class_outcomes, config, params, prune_fracs=s["over_p"])
            for seed, rows in enumerate(in_flight(one, range(seeds))):
                progress("classes", dim, seed + 1, seeds, "seeds")
                runs = sweep[sweep.seed == seed].sort_values("prune_frac")
                # the same runs as the sweep's: their accuracies must agree (float32 rounding)
                mine = rows.drop_duplicates("prune_frac").sort_values("prune_frac")
                if not np.allclose(runs.test_acc.to_numpy(), mine.test_acc.to_numpy(), atol=2e-3):
                    raise RuntimeError(f"class pass disagrees with overprune-d{dim}: seed={seed}")
                yield rows

    _derived(
        rec,
        "classes",
        class_rows,
        dict(dims=s["over_dims"], p=s["over_p"], seeds=seeds, score=OVERPRUNE_SCORE, **constants),
        trainings=lambda frame: len(frame.drop_duplicates(["dim", "prune_frac", "seed"])),
        purpose="per-class outcomes of the over-pruning runs",
    )

    def coefficient_rows_all():
        for dim in s["dyn_dims"]:
            config, params = regime_setting(dim, rec.size)
            params = params.replace(mu_norm=mu_for_score(1.0, dim))
            seed_steps = [(seed, t) for seed in range(s["dyn_seeds"]) for t in s["dyn_steps"]]
            one = functools.partial(coefficient_rows, config, params, prune_fracs=s["dyn_p"])
            for done, rows in enumerate(in_flight(one, *zip(*seed_steps, strict=True))):
                progress("coefficients", dim, done + 1, len(seed_steps), "trainings")
                yield from rows

    _derived(
        rec,
        "coefficients",
        coefficient_rows_all,
        dict(
            dims=s["dyn_dims"],
            p=s["dyn_p"],
            seeds=s["dyn_seeds"],
            dyn_steps=s["dyn_steps"],
            **constants,
        ),
        purpose="signal (gamma) and noise (rho) coefficients over steps, score 1",
        **constants,
    )
    rec.done()


if __name__ == "__main__":
    main()
