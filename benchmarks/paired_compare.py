"""Warm ``np.mean`` executions of two sandbox_tool checkouts, paired: one process per
checkout, taking turns one execution each, so that whatever the machine does at a
moment hits both alike. Each side has its own sandbox and warm pool; a token passed
through two FIFOs says whose turn it is. A side runs its execution as soon as the token
comes, then pauses (its event loop running, so that its pool tears down and refills
within its own turn) and passes the token on. Whichever side goes second is a little
slower whatever its tree, so both orders run and the difference is their average:

    git worktree add --detach /tmp/old 9c25b14
    .venv/bin/python benchmarks/paired_compare.py /tmp/old "$PWD" --turns 400

Each side runs this file with ``--side`` under its checkout's ``PYTHONPATH``, using only
the API every version since 9c25b14 has (``ENGINES``, ``PythonSandbox``, ``execute``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MEAN = "import numpy as np\nresult = float(np.mean([1, 2, 3]))"


async def side(
    turns: int, wait_fifo: str, pass_fifo: str, first: bool, pause: float
) -> list[float]:
    """This side's execution times, one per turn."""
    from sandbox_tool import ENGINES, ExecutionOptions, PythonSandbox

    sandbox = PythonSandbox(ENGINES["process"]())
    options = ExecutionOptions(timeout=30)
    times: list[float] = []
    # read-write: opening never waits for the other side (the parent ends a side whose
    # other side died)
    waiting, passing = os.open(wait_fifo, os.O_RDWR), os.open(pass_fifo, os.O_RDWR)
    try:
        await sandbox.execute(MEAN, options=options)
        await asyncio.sleep(pause)
        for turn in range(turns):
            if turn or not first:
                await asyncio.to_thread(os.read, waiting, 1)  # the loop runs meanwhile
            start = time.perf_counter()
            await sandbox.execute(MEAN, options=options)
            times.append(time.perf_counter() - start)
            await asyncio.sleep(pause)
            os.write(passing, b"t")
    finally:
        os.close(waiting)
        os.close(passing)
        await sandbox.aclose()
    return times


def run_pair(
    first: Path, second: Path, turns: int, pause: float
) -> tuple[list[float], list[float]]:
    """The two sides' times, ``first`` taking the first turn."""
    with tempfile.TemporaryDirectory() as tmp:
        one, two = os.path.join(tmp, "to-first"), os.path.join(tmp, "to-second")
        os.mkfifo(one)
        os.mkfifo(two)
        outs = [os.path.join(tmp, "first.json"), os.path.join(tmp, "second.json")]
        options = ["--turns", str(turns), "--pause", str(pause)]
        sides: list[tuple[Path, str, str, str, list[str]]] = [
            (first, outs[0], one, two, ["--first"]),
            (second, outs[1], two, one, []),
        ]
        procs = [
            subprocess.Popen(
                [sys.executable, __file__, "--side", out, "--wait", wait, "--pass", give,
                 *options, *flag],
                env={**os.environ, "PYTHONPATH": str(tree)},
            )
            for tree, out, wait, give, flag in sides
        ]  # fmt: skip
        try:
            while any(proc.poll() is None for proc in procs):
                if any(proc.returncode not in (None, 0) for proc in procs):
                    raise SystemExit("a side failed: see its error above")
                time.sleep(0.2)
            if any(proc.returncode != 0 for proc in procs):
                raise SystemExit("a side failed: see its error above")
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        first_times, second_times = (json.loads(Path(out).read_text()) for out in outs)
    return first_times, second_times


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.3f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", nargs="?", type=Path)
    parser.add_argument("new", nargs="?", type=Path)
    parser.add_argument("--turns", type=int, default=400)
    parser.add_argument("--pause", type=float, default=0.08, help="seconds after each execution")
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--wait", help=argparse.SUPPRESS)
    parser.add_argument("--pass", dest="give", help=argparse.SUPPRESS)
    parser.add_argument("--first", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        times = asyncio.run(side(args.turns, args.wait, args.give, args.first, args.pause))
        Path(args.side).write_text(json.dumps(times))
        return
    if args.old is None or args.new is None:
        parser.error("give the two checkouts: OLD NEW")
    shifts = []
    for first, second in ((args.old, args.new), (args.new, args.old)):
        a, b = run_pair(first, second, args.turns, args.pause)
        old, new = (a, b) if first == args.old else (b, a)
        shift = statistics.median(n - o for o, n in zip(old, new, strict=True))
        shifts.append(shift)
        print(f"{first} first: {args.old} {_ms(old)}, {args.new} {_ms(new)}, "
              f"median paired difference (new - old) {shift * 1000:+.3f} ms "
              f"({len(old)} turns each)")  # fmt: skip
    print(f"new - old, both orders averaged: {statistics.mean(shifts) * 1000:+.3f} ms")


if __name__ == "__main__":
    main()
