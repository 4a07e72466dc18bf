"""Driving ``sandbox-tool mcp`` with the MCP SDK's own client, as an MCP client would.

Servers run as subprocesses (stdio: one per client; HTTP: one per module, on loopback)
with the native engine: what is tested here is the protocol, not the isolation.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

pytest.importorskip("mcp", reason="the MCP SDK is not installed: pip install 'sandbox-tool[mcp]'")

from mcp import Client, StdioServerParameters

SERVER = [sys.executable, "-m", "sandbox_tool", "mcp", "--engine", "native"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def stdio_server(*flags: str) -> StdioServerParameters:
    return StdioServerParameters(command=SERVER[0], args=[*SERVER[1:], *flags])


@dataclass
class Listener:
    """What a client heard while its calls ran: log messages and progress."""

    logs: list[tuple[str | None, Any]] = field(default_factory=list)
    progress: list[tuple[float, str | None]] = field(default_factory=list)
    got_log: asyncio.Event = field(default_factory=asyncio.Event)

    async def on_log(self, params: Any) -> None:
        self.logs.append((params.logger, params.data))
        self.got_log.set()

    async def on_progress(self, progress: float, total: float | None, message: str | None) -> None:
        self.progress.append((progress, message))


def client(server: Any, listener: Listener, mode: str = "auto") -> Client:
    """An SDK client that opts in to log messages (needed on 2026-07-28 connections)."""
    return Client(
        server, mode=mode, logging_callback=listener.on_log, log_level="info",
        read_timeout_seconds=120,
    )  # fmt: skip


def text_of(result: Any) -> str:
    return str(result.content[0].text)


def pids_in(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"pid=(\d+)", text)]


#: Two processes that would run for five minutes, unless the sandbox is killed.
# one process: the native engine's filter refuses fork (the contract suite checks that a
# killed sandbox takes the code's children with it)
LONG = """
import os, time
print(f"pid={os.getpid()}", flush=True)
time.sleep(300)
"""


async def cancel_once_running(c: Client, listener: Listener, then: str) -> tuple[list[int], Any]:
    """Start :data:`LONG`; once it printed its pids (so it surely runs), send a call of
    ``then`` (it waits for the long one in the same session) and cancel the long one.
    The long call's pids, and the result of ``then``."""
    listener.got_log.clear()
    long = asyncio.ensure_future(c.call_tool("run_python", {"code": LONG}))
    while not any("pid=" in str(data) for _, data in listener.logs):
        await asyncio.wait_for(listener.got_log.wait(), 60)
        listener.got_log.clear()
    pids = pids_in(" ".join(str(data) for _, data in listener.logs))
    following = asyncio.ensure_future(c.call_tool("run_python", {"code": then}))
    await asyncio.sleep(0.2)  # let it reach the server first
    long.cancel()
    with pytest.raises(asyncio.CancelledError):
        await long
    return pids, await following


def wait_gone(pids: list[int], seconds: float = 15.0) -> list[int]:
    """The pids still alive (not zombies) after up to ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                continue
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


@contextlib.contextmanager
def http_server(tmp: Path, *flags: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """A server on streamable HTTP on a free loopback port; its URL. It must stop cleanly
    (status 0) on SIGTERM."""
    log = tmp / "server.log"
    with log.open("w") as err:
        proc = subprocess.Popen([*SERVER, "--http", "127.0.0.1:0", *flags], stderr=err,
                                env=None if env is None else {**os.environ, **env})  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (found := re.search(r"serving (http://\S+)", log.read_text())):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield found.group(1)
    finally:
        proc.terminate()
        assert proc.wait(30) == 0, f"the server did not stop cleanly: {log.read_text()}"


@pytest.fixture(scope="module")
def http_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One HTTP server for the module."""
    with http_server(tmp_path_factory.mktemp("http")) as url:
        yield url
