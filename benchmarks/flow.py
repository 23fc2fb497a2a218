"""Gradient flow is the limit of GD, measured in the `theory_regime` setting.

    PYTHONPATH=. python benchmarks/flow.py [--dims 1000 10000] [--seeds 32] [--n-test 1000]
        [--flow-rtol R] [--flow-atol A]

The setting of sweeps/theory_regime.py (yang2023 preset, n = 8, m = 5, eta sigma^2 d = 1,
sigma_0 sigma sqrt(d) = 0.1, trained to loss 0.1, Gram engine, benign score 32), at each d and
p in {0, 0.5, 0.9}, `--seeds` seeds, logged every LOG_EVERY GD steps up to STEPS. For each d it
prints:

- GD (lr = eta) against flow at every logged time: the largest relative difference of the
  training loss over runs and times, and the largest difference of the cell-mean test accuracy;
- the GD-to-flow gap (the largest relative training-loss difference) at eta, eta/2, eta/4 and
  eta/8 (STEPS and LOG_EVERY scaled up, so the logged times are the same), and its ratios;
  its 99th percentile over runs and times, and the runs with a gap over 1%;
- GD's own distance from its small-step limit: the largest relative difference of GD at eta,
  eta/2 and eta/4 from GD at eta/8;
- per-run wall time of GD and of flow at eta (a second call of each sweep: compilation
  excluded).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jaxprune  # noqa: E402
from sweeps.theory_regime import OVERPRUNE_SCORE, mu_for_score, regime_setting  # noqa: E402

PRUNE_FRACS = [0.0, 0.5, 0.9]
STEPS, LOG_EVERY = 5000, 250  # at eta; runs reach loss 0.1 in 700-4300 steps


def sweep(config, params, seeds, optimizer, halvings=0):
    """The frame of the cell's runs trained by `optimizer` at lr = eta / 2^halvings, and its
    seconds per run (at eta: of a second, compiled call; else None)."""
    scale = 2**halvings
    config = config.replace(optimizer=optimizer, steps=STEPS * scale, log_every=LOG_EVERY * scale)
    params = params.replace(lr=params.lr / scale)
    run = lambda: jaxprune.sweep(  # noqa: E731
        config, {"prune_frac": PRUNE_FRACS}, seeds, base=params, progress=False
    )
    frame = run()
    if halvings:
        return frame, None
    start = time.perf_counter()
    frame = run()
    return frame, (time.perf_counter() - start) / (len(PRUNE_FRACS) * seeds)


def relative_gaps(frame, reference) -> np.ndarray:
    """|L - L_reference| / L_reference at every run and logged time (matched by run and time)."""
    loss, ref = frame.train_loss.to_numpy(), reference.train_loss.to_numpy()
    return np.abs(loss - ref) / ref


def loss_gap(gd, flow) -> float:
    """Largest |L_gd - L_flow| / L_flow over runs and logged times."""
    return float(relative_gaps(gd, flow).max())


def acc_gap(gd, flow) -> float:
    """Largest difference of the cell-mean test accuracy (cell = p) over logged times."""
    keys = ["prune_frac", "time"]
    mean_gd = gd.groupby(keys).test_acc.mean()
    mean_flow = flow.groupby(keys).test_acc.mean()
    return float(np.max(np.abs(mean_gd - mean_flow)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--seeds", type=int, default=32)
    parser.add_argument("--n-test", type=int, default=1000)
    defaults = jaxprune.Config()
    parser.add_argument("--flow-rtol", type=float, default=defaults.flow_rtol)
    parser.add_argument("--flow-atol", type=float, default=defaults.flow_atol)
    args = parser.parse_args()
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, "
          f"{' '.join(sys.argv)}")  # fmt: skip
    for dim in args.dims:
        config, params = regime_setting(dim, "full")
        config = config.replace(
            n_test=args.n_test, engine="gram", flow_rtol=args.flow_rtol, flow_atol=args.flow_atol
        )
        params = params.replace(mu_norm=mu_for_score(OVERPRUNE_SCORE, dim))
        flow, flow_seconds = sweep(config, params, args.seeds, "flow")
        gaps, gds = [], []
        for halvings in range(4):
            gd, gd_seconds = sweep(config, params, args.seeds, "gd", halvings)
            np.testing.assert_allclose(gd.time, flow.time, rtol=1e-9)  # the same logged times
            gaps.append(loss_gap(gd, flow))
            gds.append(gd)
            if halvings == 0:
                converged = flow.groupby("run").converged_step.last()
                print(f"d = {dim}: {len(converged)} runs per optimizer, n_test = {args.n_test}, "
                      f"eta = {params.lr:.3g}, flow converged {int((converged >= 0).sum())}, "
                      f"solver failed {int(flow.solver_failed.sum())}; "
                      f"steps to loss 0.1 (flow): median {converged.median():.0f}, "
                      f"max {converged.max()}")  # fmt: skip
                print(
                    f"  at eta: max relative train-loss gap {gaps[0]:.2e} (target <= 1e-2), "
                    f"max cell-mean test-acc gap {acc_gap(gd, flow):.4f} (target <= 0.01)"
                )
                print(
                    f"  per run: GD {1e3 * gd_seconds:.1f} ms, flow {1e3 * flow_seconds:.1f} ms"
                    f" ({gd_seconds / flow_seconds:.1f}x)"
                )
        print(f"  gap at eta, eta/2, eta/4, eta/8: {', '.join(f'{g:.2e}' for g in gaps)}; "
              f"ratios {', '.join(f'{a / b:.2f}' for a, b in zip(gaps, gaps[1:], strict=False))}"
              f" (proportional: 2)", flush=True)  # fmt: skip
        for halvings, gd in enumerate(gds):
            rel = relative_gaps(gd, flow)
            print(f"  flow against GD at eta/{2**halvings}: 99th percentile "
                  f"{np.quantile(rel, 0.99):.2e}, runs with a gap over 1%: "
                  f"{gd[rel > 0.01].run.nunique()}")  # fmt: skip
        limit = gds[-1]
        print("  GD against GD at eta/8 (its own small-step limit): "
              + ", ".join(f"eta/{2**h} {relative_gaps(gd, limit).max():.2e}"
                          for h, gd in enumerate(gds[:-1])), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
