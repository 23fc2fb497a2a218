"""A sweep in a child process, for the tests of devices, hosts and kills (tests/test_scale.py).

    python tests/sweep_child.py OUT [--chunk-size N] [--steps N] [--distributed PID PORT]
                                    [--fail-writes PID] [--dims]

Runs the sweep `sweep_args(steps, dims)` into OUT (with --dims, over three dimensions as well,
padded into one shape bucket). With --distributed, first joins a two-process
`jax.distributed` job on 127.0.0.1:PORT as process PID. With --fail-writes PID, process PID
cannot write its chunk files (PermissionError). Set XLA_FLAGS in the environment for several
CPU devices. `sweep_spec(steps)` is the same sweep as a `jaxprune sweep` JSON specification.
"""

from __future__ import annotations

import argparse

import jax

GRID = {"prune_frac": [0.0, 0.5, 0.9], "mu_norm": [0.5, 3.0]}
SEEDS = [4, 7, 11]
DIMS = [12, 14, 16]


def sweep_args(steps: int = 20, dims: bool = False) -> tuple:
    """(config, grid, seeds, base) of the test sweep; with `dims`, its grid has dim too."""
    from jaxprune import Config, Params

    config = Config(
        num_classes=2, num_patches=2, dim=16, width=4, n_train=8, n_test=32, steps=steps,
        log_every=5,
    )  # fmt: skip
    base = Params(prune_frac=0.3, mu_norm=2.0, sigma_noise=0.5, sigma_init=0.05, lr=0.5)
    return config, {"dim": DIMS, **GRID} if dims else GRID, SEEDS, base


def sweep_spec(steps: int = 20) -> dict:
    """The test sweep as a JSON specification for `jaxprune sweep SPEC`."""
    import dataclasses

    config, grid, seeds, base = sweep_args(steps)
    fields = ("num_classes", "num_patches", "dim", "width", "n_train", "n_test", "steps")
    return {
        "config": {name: getattr(config, name) for name in (*fields, "log_every")},
        "params": dataclasses.asdict(base),
        "grid": grid,
        "seeds": seeds,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--distributed", nargs=2, type=int, metavar=("PID", "PORT"))
    parser.add_argument("--fail-writes", type=int, default=None, metavar="PID")
    parser.add_argument("--dims", action="store_true")
    args = parser.parse_args()
    if args.distributed:
        pid, port = args.distributed
        jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=pid)
    import jaxprune

    if args.fail_writes == jax.process_index():

        def refuse(frame, path, metadata):
            raise PermissionError(f"cannot write {path.name} (test)")

        jaxprune.results.write_parquet = refuse
    config, grid, seeds, base = sweep_args(args.steps, args.dims)
    frame = jaxprune.sweep(config, grid, seeds, base=base, out=args.out, chunk_size=args.chunk_size)
    print(f"process {jax.process_index()}: {len(jaxprune.final(frame))} runs, "
          f"{jax.local_device_count()} local devices", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
