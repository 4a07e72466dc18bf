"""Session-cell and warm ``np.mean`` medians of whichever sandbox_tool checkout is first on
``PYTHONPATH``, to compare two checkouts side by side (an older commit in a worktree and
this one), alternating runs so that the machine's noise hits both:

    git worktree add --detach /tmp/old 9c25b14
    for i in 1 2 3; do for tree in /tmp/old "$PWD"; do
        PYTHONPATH=$tree .venv/bin/python benchmarks/checkout_compare.py --engine process
    done; done

It uses only the API every version since 9c25b14 has (``ENGINES``, ``PythonSandbox``,
``session``, ``execute``)."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

import sandbox_tool
from sandbox_tool import ENGINES, ExecutionOptions, PythonSandbox

MEAN = "import numpy as np\nresult = float(np.mean([1, 2, 3]))"


async def measure(engine: str, cells: int, executions: int) -> tuple[float, float]:
    """Median seconds of a session cell running ``result = 1``, and of a warm ``np.mean``
    execution at low load (each one after a pause that lets the pool refill)."""
    sandbox = PythonSandbox(ENGINES[engine]())
    options = ExecutionOptions(timeout=30)
    try:
        cell_times: list[float] = []
        async with sandbox.session(options) as session:
            await session.execute("result = 1")
            for _ in range(cells):
                start = time.perf_counter()
                await session.execute("result = 1")
                cell_times.append(time.perf_counter() - start)
        warm_times: list[float] = []
        await sandbox.execute(MEAN, options=options)
        for _ in range(executions):
            await asyncio.sleep(0.15)
            start = time.perf_counter()
            await sandbox.execute(MEAN, options=options)
            warm_times.append(time.perf_counter() - start)
    finally:
        await sandbox.aclose()
    return statistics.median(cell_times), statistics.median(warm_times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default="process")
    parser.add_argument("--cells", type=int, default=300)
    parser.add_argument("--executions", type=int, default=40)
    args = parser.parse_args()
    cell, warm = asyncio.run(measure(args.engine, args.cells, args.executions))
    checkout = Path(sandbox_tool.__file__).resolve().parents[1]
    print(f"{checkout} {args.engine}: session cell (a) median {cell * 1000:.3f} ms, "
          f"warm np.mean median {warm * 1000:.2f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
