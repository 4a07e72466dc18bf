"""What workload (d) costs matplotlib alone here: the bound under the warm path's (d).

    python benchmarks/plot_cost.py [--runs 20]

In a process that has imported the stack and drawn one figure already (as the
warm template does), times ``plt.plot`` of a four-point line and saving it as
PNG the way captured figures are saved (dpi 100, zlib level 1): in that warm
process itself, where every cache is hot, and in a child forked from it, which
is what a warm runner is. Medians in milliseconds.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ["MPLBACKEND"] = "Agg"


def plot_and_save() -> tuple[float, float]:
    import matplotlib.pyplot as plt

    start = time.perf_counter()
    plt.plot([1, 3, 2, 4])
    plotted = time.perf_counter()
    plt.gcf().savefig(io.BytesIO(), format="png", dpi=100, pil_kwargs={"compress_level": 1})
    saved = time.perf_counter()
    plt.close("all")
    return (plotted - start) * 1000, (saved - plotted) * 1000


def in_child() -> tuple[float, float]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        plot_ms, save_ms = plot_and_save()
        os.write(write, f"{plot_ms} {save_ms}".encode())
        os._exit(0)
    os.close(write)
    data = os.read(read, 100).split()
    os.close(read)
    os.waitpid(pid, 0)
    return float(data[0]), float(data[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    import gc

    import numpy  # noqa: F401
    import pandas  # noqa: F401

    plot_and_save()  # the template's warm-up
    gc.collect()
    gc.freeze()
    for label, run in (("warm process", plot_and_save), ("forked child", in_child)):
        samples = [run() for _ in range(args.runs)]
        plot_ms = statistics.median(s[0] for s in samples)
        save_ms = statistics.median(s[1] for s in samples)
        print(f"{label:<13} plot {plot_ms:6.1f} ms, savefig {save_ms:6.1f} ms, "
              f"both {plot_ms + save_ms:6.1f} ms")  # fmt: skip
    return 0 if hasattr(os, "fork") else 1


if __name__ == "__main__":
    sys.exit(main())
