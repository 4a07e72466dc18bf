"""Environments: the time to create the default environment (numpy, pandas, matplotlib)
with uv (an empty cache, then a warm one) and with pip, and the latency of an execution
in a non-default environment (its first, which starts its warm pool, then warm ones; and
cold, a fresh interpreter each), beside the same in the engine's own interpreter, in one
run.

    make bench                     # or: python benchmarks/environments.py [--repeat 3]

Needs the package index (the builds download); every environment and cache it makes is
in a temporary directory, removed at the end. Wall-clock figures on a noisy machine:
quote medians and ratios from a single run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sandbox_tool import ExecutionOptions, PythonSandbox
from sandbox_tool.environments import DEFAULT_PACKAGES, Environment, EnvironmentManager
from sandbox_tool.environments.installers import InstallerName, find_uv, looks_offline

CODE = "import numpy as np\nresult = float(np.mean(inputs))"


def _median(samples: list[float]) -> str:
    return f"median {statistics.median(samples):8.1f}  (min {min(samples):.1f}, n={len(samples)})"


class StepTimes:
    """A build's progress, timed: when each step started."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, float]] = []

    def begin(self, title: str, steps: int) -> None:
        self.steps = [("begin", time.perf_counter())]

    def step(self, text: str) -> None:
        self.steps.append((text, time.perf_counter()))

    def detail(self, line: str) -> None:
        pass

    def notice(self, text: str) -> None:
        print(f"  note: {text}")

    def end(self, text: str) -> None:
        self.steps.append(("end", time.perf_counter()))

    def seconds(self, prefix: str) -> float:
        """How long the step whose text starts with ``prefix`` took."""
        for (text, at), (_, following) in zip(self.steps, self.steps[1:], strict=False):
            if text.startswith(prefix):
                return following - at
        return float("nan")


def _create(
    root: Path, installer: InstallerName, cache: Path | None
) -> tuple[float, float, Environment]:
    """The whole creation's seconds, its install step's, and the environment."""
    times = StepTimes()
    manager = EnvironmentManager(root=root, installer=installer, cache_dir=cache, progress=times)
    started = time.perf_counter()
    env = manager.ensure_sync()
    elapsed = time.perf_counter() - started
    manager.close()
    return elapsed, times.seconds("installing"), env


def creation(tmp: Path, repeat: int, pip: bool) -> Environment:
    """Create the default environment ``repeat`` times per installer; returns one."""
    print(f"creating the default environment ({', '.join(DEFAULT_PACKAGES)}), seconds:")
    rows: dict[str, tuple[list[float], list[float]]] = {}
    env = None
    for i in range(repeat):
        cache = tmp / f"uv-cache-{i}"
        runs: list[tuple[str, InstallerName, Path | None]] = [
            ("uv, empty cache (downloads)", "uv", cache),
            ("uv, warm cache", "uv", cache),
        ]
        if pip:
            runs.append(("pip (its own cache)", "pip", None))
        for n, (label, installer, uv_cache) in enumerate(runs):
            total, install, env = _create(tmp / f"{i}-{n}", installer, uv_cache)
            rows.setdefault(label, ([], []))[0].append(total)
            rows[label][1].append(install)
    print("  (whole creation; then its install step alone)")
    for label, (totals, installs) in rows.items():
        print(f"  {label:<30} {_median(totals)}")
        print(f"  {'  install step':<30} {_median(installs)}")
    if pip:
        uv_step = statistics.median(rows["uv, warm cache"][1])
        pip_step = statistics.median(rows["pip (its own cache)"][1])
        print(f"  install step, pip / uv warm    {pip_step / uv_step:8.1f}x")
    assert env is not None
    return env


async def execution(env: Environment, repeat: int, runs: int, engine: str) -> None:
    """The first execution in ``env`` on a started engine, then warm ones, beside warm
    ones in the engine's own interpreter."""
    first: list[float] = []
    warm: list[float] = []
    default: list[float] = []
    in_env = ExecutionOptions(environment=env)
    for _ in range(repeat):
        sandbox = PythonSandbox(engine)
        await sandbox.start()
        for _ in range(3):  # the engine's own pool, settled
            await sandbox.execute(CODE, [1, 2, 3])
        started = time.perf_counter()
        await sandbox.execute(CODE, [1, 2, 3], options=in_env)
        first.append((time.perf_counter() - started) * 1000)
        for _ in range(runs):
            for options, samples in ((in_env, warm), (ExecutionOptions(), default)):
                started = time.perf_counter()
                await sandbox.execute(CODE, [1, 2, 3], options=options)
                samples.append((time.perf_counter() - started) * 1000)
                await asyncio.sleep(0.02)  # let the pools refill, as between model turns
        await sandbox.aclose()
    cold_env: list[float] = []
    cold_own: list[float] = []
    cold = PythonSandbox(engine, warm=False)  # a fresh interpreter per execution
    for _ in range(max(3, runs // 5)):
        for options, samples in ((in_env, cold_env), (ExecutionOptions(), cold_own)):
            started = time.perf_counter()
            await cold.execute(CODE, [1, 2, 3], options=options)
            samples.append((time.perf_counter() - started) * 1000)
    await cold.aclose()
    print(f"np.mean on the {engine} engine, milliseconds:")
    print(f"  other environment, first (starts its pool)  {_median(first)}")
    print(f"  other environment, warm                     {_median(warm)}")
    print(f"  engine's own interpreter, warm              {_median(default)}")
    ratio = statistics.median(warm) / statistics.median(default)
    print(f"  warm other / warm own                       {ratio:8.2f}x")
    print(f"  other environment, cold (warm=False)        {_median(cold_env)}")
    print(f"  engine's own interpreter, cold              {_median(cold_own)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3, help="builds and engine starts")
    parser.add_argument("--runs", type=int, default=30, help="warm executions per start")
    parser.add_argument("--no-pip", action="store_true", help="skip the pip builds")
    parser.add_argument("--engine", default="auto")
    args = parser.parse_args()
    if find_uv() is None:
        print("uv is not installed: pip install 'sandbox-tool[environments]'", file=sys.stderr)
        return 2
    if looks_offline(None):
        print("the package index cannot be reached: these builds download", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="sandbox-tool-bench-") as tmp:
        env = creation(Path(tmp), args.repeat, pip=not args.no_pip)
        engine = args.engine if args.engine != "auto" else PythonSandbox().engine_name
        asyncio.run(execution(env, args.repeat, args.runs, engine))
    return 0


if __name__ == "__main__":
    sys.exit(main())
