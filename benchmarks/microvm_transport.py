"""What the microsandbox engine's transport costs per execution, beside the process engine.

    python benchmarks/microvm_transport.py [--runs 15]      # as root, on Linux

On machines that cannot boot a microVM this runs the engine on the SDK double of its
tests (``tests/microvm/sdk_double.py``: this host stands in for the guest), so it
measures the relay, the multiplexed exec, the guest role and the runner's sandbox inside
it, against the process engine's cold path (the same sandbox, started directly), in one
run, alternating. It does not measure a VM: the double's exec is a local process, so a
real VM's exec latency and guest interpreter start come on top. Medians in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sandbox_tool import PythonSandbox
from sandbox_tool.engines.process import ProcessEngine

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = {
    "result = 1": "result = 1",
    "np.mean": "import numpy as np\nresult = float(np.mean([1, 2, 3, 4, 5]))",
}


async def _timed(sandbox: PythonSandbox, code: str) -> float:
    started = time.perf_counter()
    await sandbox.execute(code)
    return (time.perf_counter() - started) * 1000


async def run(runs: int, base: Path) -> None:
    sys.path.insert(0, str(ROOT))
    conftest = importlib.import_module("tests.microvm.conftest")
    why = conftest.double_unavailable()
    if why is not None:
        print(f"the SDK double cannot run here: {why}")
        return
    (base / "work").mkdir()
    vm = PythonSandbox(engine=conftest.double_engine(base / "work", base / "guest"))
    process = PythonSandbox(engine=ProcessEngine(warm=False))
    started = time.perf_counter()
    await vm.start()
    boot = time.perf_counter() - started
    print(f"microsandbox on the double: start (boot + prepare) {boot:.2f} s")
    await process.start()
    try:
        for label, code in WORKLOADS.items():
            await vm.execute(code)
            samples: dict[str, list[float]] = {"process": [], "vm": []}
            for _ in range(runs):
                samples["process"].append(await _timed(process, code))
                samples["vm"].append(await _timed(vm, code))
            cold, relayed = (statistics.median(samples[k]) for k in ("process", "vm"))
            print(f"{label:<12} process cold {cold:7.1f}   microsandbox on the double "
                  f"{relayed:7.1f}   ratio {relayed / cold:4.2f}")  # fmt: skip
    finally:
        await vm.aclose()
        await process.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="microvm-bench-"))
    os.environ["MSB_HOME"] = str(base / "msb")
    try:
        asyncio.run(run(args.runs, base))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
