"""Draw a phase diagram from a sweep's output.

    python analysis/phase_diagram.py RESULTS [--x prune_frac] [--y mu_norm] [--value test_acc]
                                             [--facet F] [--mean-over F] [--out FIGURE.png] ...

The same command as `jaxprune plot` (every option of `jaxprune plot --help`): the seed-mean of
the final `value` over the two axes.
"""

import sys

from jaxprune.cli import main

if __name__ == "__main__":
    main(["plot", *sys.argv[1:]])
