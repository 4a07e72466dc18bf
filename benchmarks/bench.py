"""Latency, throughput and memory of every available engine, cold and warm, side by side.

    make bench                      # or: python benchmarks/bench.py [--runs 50]

Prints, in one run: the baseline (a cold interpreter importing numpy, pandas and
matplotlib and computing ``np.mean``); per engine and path (cold: a fresh
interpreter per execution; warm: runners forked from a template; for gVisor, whose
sandbox is kept either way, cold forks each runner on demand from a template that
imported nothing), the engine's start (gVisor's sandbox included), latency
min / median / p95 over ``--runs`` runs (at most ``BUDGET_SECONDS`` a workload) of four
workloads and the ratio of the
baseline's median to each; a session cell; the CPU one execution of (b) costs the
whole machine (which bounds throughput), split into this host process, the warm
template and its runners; throughput of (b) with 1, 2 and 4 concurrent clients, and
(engines with a batch scope) as a batch of 2 concurrent items sharing a sandbox per
slot (``map(..., scope="batch")``); and the warm pool's memory. Warm latency is at low
load: each run waits for the pool to have replaced the runner it took; throughput shows
the loaded case. Wall-clock figures on a noisy machine: quote medians and ratios from a
single run.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import psutil

from sandbox_tool import ENGINES, ExecutionOptions, PythonSandbox
from sandbox_tool.engines import Engine

WORKLOADS = {
    "a result = 1": "result = 1",
    "b np.mean": "import numpy as np\nresult = float(np.mean([1, 2, 3, 4, 5]))",
    "c groupby 10k rows": (
        "import numpy as np, pandas as pd\n"
        "rng = np.random.default_rng(0)\n"
        "df = pd.DataFrame({'k': rng.integers(0, 50, 10_000), 'v': rng.random(10_000)})\n"
        "result = float(df.groupby('k')['v'].mean().sum())"
    ),
    "d line plot PNG": "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2, 4])",
}
COLD_BASELINE = (
    "import numpy as np, pandas, matplotlib\nmatplotlib.use('Agg')\n"
    "import matplotlib.pyplot\nnp.mean([1, 2, 3, 4, 5])"
)
OPTIONS = ExecutionOptions(timeout=60)


def _row(label: str, samples: list[float], baseline: float | None = None) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    median = statistics.median(ordered)
    ratio = f"   baseline/this {baseline / median:6.1f}x" if baseline else ""
    return f"{label:<40} {ordered[0]:8.2f} {median:8.2f} {p95:8.2f}{ratio}"


#: A workload stops sampling after this long (at least 5 samples): gVisor's cold path
#: imports the stack under its kernel in seconds, 50 of those would take minutes.
BUDGET_SECONDS = 40.0


async def _timed(
    fn: Callable[[], Awaitable[object]], runs: int, settle: Callable[[], Awaitable[object]]
) -> list[float]:
    samples: list[float] = []
    deadline = time.perf_counter() + BUDGET_SECONDS
    for _ in range(runs):
        start = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - start) * 1000)
        if len(samples) >= 5 and time.perf_counter() > deadline:
            break
        await settle()
    return samples


def _settle(sandbox: PythonSandbox) -> Callable[[], Awaitable[object]]:
    """Low load: wait until the pool has replaced the runner (a gVisor runner takes a
    few hundred ms to fork, a process engine's a few ms); nothing to wait for cold."""
    pool = getattr(sandbox.engine, "pool", None)
    if pool is None or not pool.size:
        return functools.partial(asyncio.sleep, 0)
    return functools.partial(asyncio.to_thread, pool.wait_idle)


def cold_interpreter(runs: int) -> list[float]:
    cmd = [sys.executable, "-I", "-c", COLD_BASELINE]
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, env={"MPLBACKEND": "Agg"})
        samples.append((time.perf_counter() - start) * 1000)
    return samples


async def _throughput(sandbox: PythonSandbox, clients: int, seconds: float) -> float:
    done = 0
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await sandbox.execute(WORKLOADS["b np.mean"], options=OPTIONS)
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return done / (time.perf_counter() - start)


def _busy_ms() -> float:
    """CPU time spent by every process on the machine so far (Linux /proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    # user, nice, system, irq, softirq: not idle, iowait, steal (other VMs), guest (in user)
    busy = sum(fields[i] for i in (0, 1, 2, 5, 6) if i < len(fields))
    return busy * 1000 / os.sysconf("SC_CLK_TCK")


def _own_cpu_ms() -> float:
    """CPU time of this process, every thread (the event loop and the pool's) included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return (usage.ru_utime + usage.ru_stime) * 1000


def _tree_cpu_ms(pool: Any) -> tuple[float, float, float]:
    """CPU used so far by this process (its event loop and the pool's threads), by the
    warm template itself (forking runners), and by every runner it reaped (supervisors,
    sandboxes, workers, the code): the template reaps its runners, so their CPU is in its
    children's times (Linux /proc/<pid>/stat). Other work on the machine is not in it."""
    template = pool.template_pid() if pool is not None else None
    own, kids = 0.0, 0.0
    if template is not None:
        try:
            with open(f"/proc/{template}/stat") as f:
                stat = f.read()
            fields = stat[stat.rfind(")") + 2 :].split()
            tick = os.sysconf("SC_CLK_TCK")
            own = (int(fields[11]) + int(fields[12])) * 1000 / tick
            kids = (int(fields[13]) + int(fields[14])) * 1000 / tick
        except (OSError, ValueError, IndexError):
            pass
    # a cold engine's runners are this process's children
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return _own_cpu_ms(), own, kids + (usage.ru_utime + usage.ru_stime) * 1000


async def _cpu_per_execution(sandbox: PythonSandbox, runs: int) -> str:
    """The CPU that one execution of (b) costs, teardown and replacement of its runner
    included: what bounds throughput once every core is busy. Measured two ways: this
    process tree (host, template, runners; other work on the machine is not in it), and
    every process on the machine (``/proc/stat``, which a shared machine's other work
    inflates)."""
    if not sys.platform.startswith("linux"):
        return "not measured (needs Linux /proc/stat)"
    pool = getattr(sandbox.engine, "pool", None)
    if pool is not None:
        await asyncio.to_thread(pool.wait_idle)
    before, tree_before = _busy_ms(), _tree_cpu_ms(pool)
    setup_ms = []
    for _ in range(runs):
        result = await sandbox.execute(WORKLOADS["b np.mean"], options=OPTIONS)
        if result.isolation and result.isolation.get("setup_ms") is not None:
            setup_ms.append(float(result.isolation["setup_ms"]))
    if pool is not None:
        await asyncio.to_thread(pool.wait_idle)
    return _cost_text(before, tree_before, pool, runs, setup_ms)


def _cost_text(
    before: float, tree_before: tuple[float, float, float], pool: Any, runs: int,
    setup_ms: list[float],
) -> str:  # fmt: skip
    machine = (_busy_ms() - before) / runs
    host, template, runners = (
        (b - a) / runs for a, b in zip(tree_before, _tree_cpu_ms(pool), strict=True)
    )
    cores = os.cpu_count() or 1
    tree = host + template + runners
    text = (
        f"{tree:.1f} ms (host process {host:.1f}, template {template:.1f}, runners "
        f"{runners:.1f}), so at most {cores * 1000 / tree:.0f} exec/s on {cores} cores; "
        f"the whole machine's CPU grew by {machine:.1f} ms per execution"
    )
    if setup_ms:
        text += f"; a runner builds its sandbox in {statistics.median(setup_ms):.1f} ms (wall)"
    return text


async def _batch_scope(sandbox: PythonSandbox, seconds: float) -> str:
    """Throughput of (b) as a batch of 2 concurrent items under the opt-in batch scope
    (a sandbox per slot, a fresh process per item), and its CPU per item."""
    pool = getattr(sandbox.engine, "pool", None)
    code = WORKLOADS["b np.mean"]
    async with sandbox.map([code] * 20, concurrency=2, scope="batch") as results:
        async for res in results:
            if not res.ok:
                return f"failed: {res.error!r}"
    if pool is not None:
        await asyncio.to_thread(pool.wait_idle)
    before, tree_before = _busy_ms(), _tree_cpu_ms(pool)
    done, deadline = 0, time.perf_counter() + seconds

    def items() -> Iterator[str]:
        while time.perf_counter() < deadline:
            yield code

    start = time.perf_counter()
    async with sandbox.map(items(), concurrency=2, scope="batch") as results:
        async for res in results:
            done += res.ok
    rate = done / (time.perf_counter() - start)
    if pool is not None:
        await asyncio.to_thread(pool.wait_idle)
    cost = _cost_text(before, tree_before, pool, max(done, 1), [])
    return f"{rate:7.1f} exec/s; CPU per item: {cost}"


def _pool_memory(sandbox: PythonSandbox) -> str:
    pool = getattr(sandbox.engine, "pool", None)
    if pool is None:
        return "no pool"
    pool.wait_idle()
    template = pool.template_pid()
    rss = pss = 0
    for pid in pool.resident_pids():
        try:
            procs = [psutil.Process(pid)]
            if pid != template:
                procs += procs[0].children(recursive=True)
            for proc in procs:
                info = proc.memory_full_info()
                rss += info.rss
                pss += info.pss
        except psutil.Error:
            continue
    return (
        f"template + {pool.ready_count()} waiting runners: RSS {rss >> 20} MiB, PSS {pss >> 20} MiB"
    )


async def bench_engine(name: str, warm: bool, runs: int, seconds: float, baseline: float) -> None:
    # the Engine base class does not declare ``warm``; every engine in ENGINES takes it
    make_engine: Callable[..., Engine] = ENGINES[name]
    engine = make_engine(warm=warm)
    sandbox = PythonSandbox(engine=engine, options=OPTIONS)
    path = "warm" if warm else "cold"
    started = time.perf_counter()
    await sandbox.start()
    print(f"-- {name}, {path} (start {time.perf_counter() - started:.2f} s)")
    try:
        await sandbox.execute("result = 1")
        settle = _settle(sandbox)
        for label, code in WORKLOADS.items():
            samples = await _timed(functools.partial(sandbox.execute, code), runs, settle)
            print(_row(f"{name} {path} {label}", samples, baseline))
        if warm:
            async with sandbox.session() as session:
                await session.execute("result = 1")
                samples = await _timed(
                    lambda: session.execute("result = 1"), runs, functools.partial(asyncio.sleep, 0)
                )
            print(_row(f"{name} session cell a", samples, baseline))
            print(f"{name} {path} pool memory: {_pool_memory(sandbox)}")
        cost = await _cpu_per_execution(sandbox, runs)
        print(f"{name} {path} CPU per execution of b, all processes: {cost}")
        for clients in (1, 2, 4):
            rate = await _throughput(sandbox, clients, seconds)
            print(f"{name} {path} throughput of b, {clients} client(s): {rate:7.1f} exec/s")
        if warm and getattr(engine, "supports_batch_scope", False):  # absent before 46ae4c2
            scoped = await _batch_scope(sandbox, seconds)
            print(f"{name} {path} throughput of b, batch scope, map with 2 slots: {scoped}")
    finally:
        await sandbox.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0, help="per throughput point")
    parser.add_argument("--engines", nargs="*", default=None, help="default: all available")
    args = parser.parse_args()

    print(f"{'what':<40} {'min ms':>8} {'median':>8} {'p95':>8}")
    cold = cold_interpreter(max(10, args.runs // 5))
    baseline = statistics.median(cold)
    print(_row("baseline: cold python + numpy/pandas/mpl", cold))
    for name, cls in ENGINES.items():
        if args.engines and name not in args.engines:
            continue
        info = cls.probe()
        if not info.available:
            print(f"-- {name}: unavailable ({info.reason})")
            continue
        # an engine without a warm path (microsandbox: a runner per exec in a running VM)
        for warm in (True, False) if getattr(cls, "offers_warm", True) else (False,):
            asyncio.run(bench_engine(name, warm, args.runs, args.seconds, baseline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
