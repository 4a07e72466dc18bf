"""Latency and throughput of every available engine, measured side by side.

    make bench                      # or: python benchmarks/bench.py [--runs 50]

Prints, per engine: latency min / median / p95 over ``--runs`` runs of four
workloads, throughput with 1, 2 and 4 concurrent clients, and the baseline
measured in the same run: a cold interpreter importing numpy, pandas and
matplotlib and computing ``np.mean``. Figures are wall-clock on this machine;
quote medians and ratios from one run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from sandbox_tool import ENGINES, ExecutionOptions, PythonSandbox

WORKLOADS = {
    "a: result = 1": "result = 1",
    "b: np.mean": "import numpy as np\nresult = float(np.mean([1, 2, 3, 4, 5]))",
    "c: pandas groupby 10k": (
        "import numpy as np, pandas as pd\n"
        "rng = np.random.default_rng(0)\n"
        "df = pd.DataFrame({'k': rng.integers(0, 50, 10_000), 'v': rng.random(10_000)})\n"
        "result = float(df.groupby('k')['v'].mean().sum())"
    ),
    "d: matplotlib PNG": (
        "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2, 4])\nplt.savefig('line.png')"
    ),
}
COLD_BASELINE = (
    "import numpy as np, pandas, matplotlib\nmatplotlib.use('Agg')\n"
    "import matplotlib.pyplot\nnp.mean([1, 2, 3, 4, 5])"
)


def _stats(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"{ordered[0]:8.1f} {statistics.median(ordered):8.1f} {p95:8.1f}"


def _time(fn: Callable[[], object], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def cold_interpreter(runs: int) -> list[float]:
    cmd = [sys.executable, "-I", "-c", COLD_BASELINE]
    return _time(lambda: subprocess.run(cmd, check=True, env={"MPLBACKEND": "Agg"}), runs)


async def _throughput(sandbox: PythonSandbox, code: str, clients: int, seconds: float) -> float:
    done = 0
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await sandbox.execute(code)
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return done / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0, help="per throughput point")
    args = parser.parse_args()

    print(f"{'what':<36} {'min ms':>8} {'median':>8} {'p95':>8}")
    cold = cold_interpreter(max(10, args.runs // 5))
    cold_median = statistics.median(cold)
    print(f"{'cold python + numpy/pandas/mpl':<36} {_stats(cold)}")

    options = ExecutionOptions(timeout=60)
    for name, cls in ENGINES.items():
        info = cls.probe()
        if not info.available:
            print(f"{name}: unavailable ({info.reason})")
            continue
        sandbox = PythonSandbox(engine=name, options=options)
        sandbox.execute_sync("result = 1")  # warm caches
        for label, code in WORKLOADS.items():
            samples = _time(lambda sb=sandbox, code=code: sb.execute_sync(code), args.runs)
            ratio = cold_median / statistics.median(samples)
            print(f"{name + ' ' + label:<36} {_stats(samples)}   cold/this {ratio:5.1f}x")
        for clients in (1, 2, 4):
            rate = asyncio.run(_throughput(sandbox, WORKLOADS["b: np.mean"], clients, args.seconds))
            print(f"{name} throughput b, {clients} client(s): {rate:6.1f} exec/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
