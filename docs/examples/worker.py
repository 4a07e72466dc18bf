"""A worker process: JSON-lines jobs on stdin, one JSON line per result on stdout.

    echo '{"id": 1, "code": "sum(range(10))"}' | python docs/examples/worker.py

One warm sandbox serves every job; ``CONCURRENCY`` jobs run at once; a job's failure is
its result (``ok: false`` and the message), never the worker's end. The worker stops at
the end of its input, after the running jobs, and closes the sandbox.
"""

import asyncio
import json
import sys
from typing import Any

from sandbox_tool import ExecutionOptions, PythonSandbox
from sandbox_tool.tool import PythonTool

CONCURRENCY = 2


async def handle(tool: PythonTool, line: str, slots: asyncio.Semaphore) -> dict[str, Any]:
    try:
        job = json.loads(line)
        code = job["code"]
    except (ValueError, KeyError, TypeError) as exc:
        return {"id": None, "ok": False, "text": f"not a job: {exc}"}
    async with slots:
        outcome = await tool.run(code)
    result = outcome.result.result if outcome.result else None
    return {"id": job.get("id"), "ok": outcome.ok, "result": result, "text": outcome.text}


async def main() -> None:
    sandbox = PythonSandbox(options=ExecutionOptions(timeout=20))
    tool = PythonTool(sandbox)
    slots = asyncio.Semaphore(CONCURRENCY)
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[dict[str, Any]]] = set()
    try:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            if line.strip():
                task = asyncio.create_task(handle(tool, line, slots))
                task.add_done_callback(lambda t: print(json.dumps(t.result()), flush=True))
                pending.add(task)
                task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)
    finally:
        await sandbox.aclose()


asyncio.run(main())
