"""How a runner that is not taken from a warm pool starts: a fresh process (cold), and
the thread every blocking start runs in, so that a caller cancelled meanwhile leaves no
runner behind."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from typing import Any

from sandbox_tool.engines.runners.pipes import RunnerPipes
from sandbox_tool.engines.runners.runner import Runner
from sandbox_tool.engines.runners.workspace import Workspace
from sandbox_tool.runner import protocol
from sandbox_tool.runner.framing import encode_frame, write_all

__all__ = ["shielded", "start_cold"]


def start_cold(argv: list[str], setup: protocol.RunnerSetup, ws: Workspace) -> Runner:
    """A fresh runner process (``argv``: the bootstrap, to which the control fd number
    and ``framed`` are appended) with ``setup`` written first on its channel.
    Blocking: call it in a thread."""
    pipes = RunnerPipes.create()
    try:
        process = subprocess.Popen(
            [*argv, str(pipes.control_w), "framed"],
            stdin=pipes.request_r, stdout=pipes.stdout_w, stderr=pipes.stderr_w,
            pass_fds=(pipes.control_w,), start_new_session=True,
            env=setup["env"], cwd=str(ws.work),
        )  # fmt: skip
    except BaseException:
        pipes.close_all()
        raise
    pipes.close_runner_ends()
    runner = Runner(process.pid, pipes, ws, None, process)
    try:
        write_all(pipes.request_w, encode_frame(setup))
    except BrokenPipeError:
        pass  # it died at once: its supervisor's report says why
    except BaseException:
        runner.discard()
        raise
    return runner


async def shielded(start: Callable[..., Runner], *args: Any) -> Runner:
    """``start(*args)`` in a thread; a runner that comes after its caller was cancelled
    is discarded."""
    taking = asyncio.get_running_loop().run_in_executor(None, start, *args)
    try:
        return await asyncio.shield(taking)
    except asyncio.CancelledError:
        taking.add_done_callback(_discard_when_taken)
        raise


def _discard_when_taken(future: asyncio.Future[Runner]) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result().discard()
