"""The two claims of Yang et al. in their own model: mild pruning helps, over-pruning memorizes.

    python sweeps/paper_claims.py [--out DIR] [--quick | --smoke]

The paper's model (`yang2023` preset: orthogonal 1-sparse signals, K classes, noise orthogonal
to the signals, ReLU CNN with fixed second layer 1/m, Bernoulli mask at initialization). Every
run trains by full-batch GD until its training loss reaches LOSS_TOL (capped at a size's step
budget). Sweeps, each a subdirectory of DIR (default results/paper_claims[-quick|-smoke]):

- mild/: (a) test accuracy over p in [0, 0.9] x signal strengths around the benign/harmful
  transition x init scale sigma_0 (the paper's small init and a large one), >= 32 seeds, for
  differences to p = 0 paired by seed.
- overprune/: (b) p up to 0.999 x width m at a signal strength that is benign at p = 0, in a
  larger dimension (so that a pruned neuron can still memorize noise); also the p x width
  phase diagram of (c).
- phase_mu/: (c) test accuracy over p x signal strength.
- dynamics/: signal_max and noise_max every few steps for p = 0, a mild and an over-pruned p.
- regime-NAME/: where does mild pruning help? For settings that vary what the theory says
  matters (d, n, m, K, sigma_0), p in {0, mild...} at signal strengths placed by the benign
  score n ||mu||^4 / (sigma^4 d) around the transition.
- NAME-control/ for mild, overprune and every regime-NAME: the matched dense control of each
  pruned cell, p = 0 at init scale sigma_0 sqrt(1 - p) (`jaxprune.theory.init_matched_sigma`),
  same seeds (so same data, same init directions): it tells the effect of pruning apart from
  the smaller effective init a Bernoulli mask makes.

Re-running the same command resumes; `python -m analysis.report --size SIZE` builds the report.
"""

from __future__ import annotations

import jaxprune
from jaxprune.experiment import Recorder, parser
from jaxprune.theory import init_matched_sigma

LOSS_TOL = 0.05  # train until the mean training cross-entropy reaches this (or the step cap)

# Per size: step cap, then each sweep's grid and seeds.
SIZES = {
    "full": {
        "steps": 2000,
        "mild": dict(
            p=[round(0.1 * i, 1) for i in range(10)],
            mu=[1.0, 1.5, 2.0, 3.0],
            sigma_init=[0.01, 0.1, 0.3, 1.0],
            seeds=128,
        ),
        "overprune": dict(
            p=[0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999],
            widths=[1, 2, 5, 10, 20, 50],
            seeds=32,
        ),
        "phase_mu": dict(
            p=[0.0, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999],
            mu=[0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0],
            seeds=32,
        ),
        "dynamics": dict(p=[0.0, 0.5, 0.95], seeds=16, log_every=10),
        "regime": dict(
            p=[0.0, 0.25, 0.5, 0.75],
            benign=[0.25, 1.0, 4.0],
            sigma_init=[0.01, 0.1, 0.3, 1.0],
            seeds=64,
            settings=["base", "d800", "n10", "n160", "m5", "m80", "K4"],
        ),
    },
    "quick": {
        "steps": 500,
        "mild": dict(
            p=[0.0, 0.2, 0.4, 0.6, 0.8, 0.9],
            mu=[1.0, 1.5, 2.0, 3.0],
            sigma_init=[0.01, 0.3, 1.0],
            seeds=32,
        ),
        "overprune": dict(
            p=[0.0, 0.5, 0.8, 0.9, 0.95, 0.99, 0.999],
            widths=[2, 5, 20],
            seeds=16,
        ),
        "phase_mu": dict(
            p=[0.0, 0.4, 0.8, 0.9, 0.95, 0.99, 0.999],
            mu=[0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 8.0],
            seeds=8,
        ),
        "dynamics": dict(p=[0.0, 0.5, 0.95], seeds=8, log_every=10),
        "regime": dict(
            p=[0.0, 0.5],
            benign=[0.25, 1.0, 4.0],
            sigma_init=[0.01, 1.0],
            seeds=16,
            settings=["m5", "n10", "K4", "d800"],
        ),
    },
    # One Config and one chunk shape for every sweep: a single compilation (CI time).
    "smoke": {
        "steps": 30,
        "mild": dict(p=[0.0, 0.5], mu=[1.0, 3.0], sigma_init=[0.01], seeds=4),
        "overprune": dict(p=[0.0, 0.9, 0.999], widths=[20], seeds=4),
        "phase_mu": dict(p=[0.0, 0.9], mu=[1.0, 3.0], seeds=2),
        "dynamics": dict(p=[0.0, 0.5, 0.95], seeds=4, log_every=10),
        "regime": dict(p=[0.0, 0.5], benign=[1.0], sigma_init=[0.01], seeds=4, settings=["base"]),
    },
}

# Regime settings: changes to the base Config (K = 2, P = 2, d = 200, m = 20, n = 40).
SETTINGS = {
    "base": {},
    "d800": {"dim": 800},
    "n10": {"n_train": 10},
    "n160": {"n_train": 160},
    "m5": {"width": 5},
    "m80": {"width": 80},
    "K4": {"num_classes": 4},
}

OVERPRUNE_DIM, OVERPRUNE_MU = 500, 5.0  # benign score n mu^4 / d = 50 at p = 0: benign


def mu_for_benign_score(score: float, config: jaxprune.Config, sigma_noise: float) -> float:
    """The signal strength whose unpruned benign score n mu^4 / (sigma^4 d) equals `score`."""
    return round(float((score * sigma_noise**4 * config.dim / config.n_train) ** 0.25), 4)


def control_inits(sigma_inits, prune_fracs) -> list[float]:
    """The dense-control init scales sigma_0 sqrt(1 - p) (6 significant digits) of every
    sigma_0 and pruned p > 0, sorted and without repeats."""
    values = {
        float(f"{init_matched_sigma(s, p):.6g}") for s in sigma_inits for p in prune_fracs if p > 0
    }
    return sorted(values)


def control_sweep(rec, key, config, grid, seeds, params, sigma_inits, prune_fracs) -> None:
    """The matched dense controls of sweep `key`: p = 0, sigma_init over `control_inits`, the
    rest of `grid` unchanged, same seeds, into KEY-control."""
    rec.sweep(
        f"{key}-control",
        config,
        {**grid, "sigma_init": control_inits(sigma_inits, prune_fracs), "prune_frac": [0.0]},
        seeds,
        params,
        purpose=f"dense controls of {key}: p = 0 at init scale sigma_0 sqrt(1 - p)",
        controls=key,
    )


def main(argv=None) -> None:
    args = parser(__doc__).parse_args(argv)
    rec = Recorder("sweeps/paper_claims.py", args, "paper_claims")
    size = SIZES[rec.size]
    config, params = jaxprune.presets.yang2023()
    steps = size["steps"]
    config = config.replace(steps=steps, log_every=steps, loss_tol=LOSS_TOL)
    smoke = rec.size == "smoke"
    if smoke:
        config = config.replace(dim=60, n_test=100, log_every=10)
        if args.chunk_size is None:
            args.chunk_size = 4

    s = size["mild"]
    seeds = args.seeds or s["seeds"]
    rec.sweep(
        "mild",
        config,
        {"sigma_init": s["sigma_init"], "mu_norm": s["mu"], "prune_frac": s["p"]},
        seeds,
        params,
        purpose="(a) mild pruning: test accuracy over p at signal strengths near the transition",
    )
    control_sweep(rec, "mild", config, {"mu_norm": s["mu"]}, seeds, params, s["sigma_init"], s["p"])

    s = size["overprune"]
    big = config if smoke else config.replace(dim=OVERPRUNE_DIM)
    seeds, over_params = args.seeds or s["seeds"], params.replace(mu_norm=OVERPRUNE_MU)
    rec.sweep(
        "overprune",
        big,
        {"width": s["widths"], "prune_frac": s["p"]},
        seeds,
        over_params,
        purpose="(b) over-pruning: p up to 0.999 x width m at a benign signal strength",
    )
    control_sweep(
        rec,
        "overprune",
        big,
        {"width": s["widths"]},
        seeds,
        over_params,
        [params.sigma_init],
        s["p"],
    )

    s = size["phase_mu"]
    rec.sweep(
        "phase_mu",
        config,
        {"mu_norm": s["mu"], "prune_frac": s["p"]},
        args.seeds or s["seeds"],
        params,
        purpose="(c) phase diagram of test accuracy over p x signal strength",
    )

    s = size["dynamics"]
    dyn = config if smoke else big.replace(width=5, log_every=s["log_every"], loss_tol=None)
    rec.sweep(
        "dynamics",
        dyn,
        {"prune_frac": s["p"]},
        args.seeds or s["seeds"],
        params.replace(mu_norm=OVERPRUNE_MU),
        purpose="signal_max and noise_max over steps: unpruned, mildly and over-pruned",
    )

    s = size["regime"]
    for name in s["settings"]:
        cfg = config.replace(**SETTINGS[name])
        mus = [mu_for_benign_score(b, cfg, params.sigma_noise) for b in s["benign"]]
        seeds = args.seeds or s["seeds"]
        rec.sweep(
            f"regime-{name}",
            cfg,
            {"sigma_init": s["sigma_init"], "mu_norm": mus, "prune_frac": s["p"]},
            seeds,
            params,
            purpose=f"regime: mild pruning in setting {name} {SETTINGS[name]}",
            setting=name,
            changes=SETTINGS[name],
            benign_scores=s["benign"],
        )
        control_sweep(
            rec, f"regime-{name}", cfg, {"mu_norm": mus}, seeds, params, s["sigma_init"], s["p"]
        )
    rec.done()


if __name__ == "__main__":
    main()
