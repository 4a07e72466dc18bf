"""What one process forked from a warm template costs here: the bound under the warm pool.

    python benchmarks/fork_cost.py [--runs 50]

Imports numpy, pandas and matplotlib (as the warm template does), then times
``fork()`` and the child's exit (until the parent has reaped it) for a child
that does nothing, first on the plain heap, then with the heap backed by huge
pages (``MADV_COLLAPSE``, as the template does on Linux 6.1+). Each sandboxed
warm execution pays this for three processes (its supervisor, the sandbox's
pid 1 and the code's process), plus the sandbox's set-up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def fork_and_reap(runs: int) -> tuple[float, float]:
    """Median milliseconds of fork() in the parent, and of the child's exit and reaping."""
    forks, exits = [], []
    for _ in range(runs):
        start = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        forked = time.perf_counter()
        os.waitpid(pid, 0)
        forks.append((forked - start) * 1000)
        exits.append((time.perf_counter() - forked) * 1000)
    return statistics.median(forks), statistics.median(exits)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    if not hasattr(os, "fork"):
        print("needs fork()")
        return 1
    import gc

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot
    import numpy  # noqa: F401
    import pandas  # noqa: F401

    from sandbox_tool.runner.roles.template import HugeHeap  # the template's own class

    gc.collect()
    gc.freeze()
    fork_ms, exit_ms = fork_and_reap(args.runs)
    print(f"plain heap:      fork {fork_ms:5.2f} ms, exit and reap {exit_ms:5.2f} ms")
    regions = HugeHeap().collapse() if sys.platform.startswith("linux") else 0
    fork_ms, exit_ms = fork_and_reap(args.runs)
    print(f"huge-page heap:  fork {fork_ms:5.2f} ms, exit and reap {exit_ms:5.2f} ms "
          f"({regions} regions collapsed)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
