"""What a desktop app waits for when it starts the ``sandbox-tool mcp`` sidecar.

    python benchmarks/mcp_startup.py [--runs 5] [--engine process]

Starts the sidecar as an app does (stdin/stdout, JSON-RPC lines, the 2025-11-25
handshake) and times, from the spawn: the ``initialize`` answer, the ``tools/list``
answer; then the first call (a pandas sum, in the client's fresh session) and a second
one, each from its request; and the memory of the sidecar's whole process tree (unique
set size) a second after. Warm (the default) and ``--cold`` side by side, medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Any

import psutil

CODE = "import pandas as pd\npd.DataFrame({'a': [1, 2]})['a'].sum()"


def _send(proc: subprocess.Popen[str], message: dict[str, Any]) -> None:
    assert proc.stdin is not None
    proc.stdin.write(json.dumps({"jsonrpc": "2.0", **message}) + "\n")
    proc.stdin.flush()


def _answer(proc: subprocess.Popen[str], request_id: int) -> dict[str, Any]:
    assert proc.stdout is not None
    while True:
        message: dict[str, Any] = json.loads(proc.stdout.readline())
        if message.get("id") == request_id:
            return message


def _timed(proc: subprocess.Popen[str], request_id: int, method: str, params: Any) -> float:
    started = time.perf_counter()
    _send(proc, {"id": request_id, "method": method, "params": params})
    _answer(proc, request_id)
    return time.perf_counter() - started


def once(flags: list[str]) -> list[float]:
    """Seconds to initialize, to list the tool, of the first and second call; MiB."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox_tool", "mcp", *flags],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    hello = {"protocolVersion": "2025-11-25", "capabilities": {},
             "clientInfo": {"name": "bench", "version": "0"}}  # fmt: skip
    _timed(proc, 1, "initialize", hello)
    initialized = time.perf_counter() - started
    _send(proc, {"method": "notifications/initialized"})
    _timed(proc, 2, "tools/list", {})
    listed = time.perf_counter() - started
    call = {"name": "run_python", "arguments": {"code": CODE}}
    first, second = _timed(proc, 3, "tools/call", call), _timed(proc, 4, "tools/call", call)
    time.sleep(1.0)
    tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    memory = 0.0
    for part in tree:
        try:
            memory += part.memory_full_info().uss / 2**20
        except psutil.Error:
            continue
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(30)
    return [initialized, listed, first, second, memory]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--engine", default="process")
    args = parser.parse_args()
    for mode in ([], ["--cold"]):
        runs = [once(["--engine", args.engine, *mode]) for _ in range(args.runs)]
        init, listed, first, second, memory = (statistics.median(r[i] for r in runs)
                                               for i in range(5))  # fmt: skip
        print(
            f"{args.engine} {'cold' if mode else 'warm'}: initialize {init:.2f} s, tools/list "
            f"{listed:.2f} s, first call {first * 1000:.0f} ms, second {second * 1000:.0f} ms, "
            f"{memory:.0f} MiB (medians of {args.runs})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
