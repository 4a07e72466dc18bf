"""The warm template process: started from a thread that lives as long as it does, told
what to preload, then asked over a SOCK_SEQPACKET socket to fork runners
(:mod:`sandbox_tool.runner.roles.template` is its other side)."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any, Protocol

from sandbox_tool.engines.runners import requests
from sandbox_tool.engines.runners.pipes import RunnerPipes
from sandbox_tool.engines.runners.proctree import ProcessTree, kill_tree
from sandbox_tool.errors import EngineError, EngineUnavailable
from sandbox_tool.runner.protocol import ForkMessage, RunnerSetup

__all__ = ["TEMPLATE_BOOTSTRAP", "Template", "TemplateLike", "template_argv", "template_env"]


class TemplateLike(Protocol):
    """What the warm pool needs of the process its runners come from (:class:`Template`,
    or a strategy's own, such as gVisor's, whose runners live in its sandbox)."""

    info: dict[str, Any]

    def start(self) -> None: ...
    def alive(self) -> bool: ...
    @property
    def pid(self) -> int | None: ...
    def spawn(self, setup: RunnerSetup) -> tuple[int, RunnerPipes, ProcessTree | None]:
        """A new runner with ``setup``: its pid, the host's ends of its channels, and how
        to kill and watch it (None: it is this host's process ``pid``)."""
        ...

    def stop(self) -> str: ...
    def close(self) -> None: ...
    def fds(self) -> set[int]: ...
    def resident_pids(self) -> set[int]:
        """The host processes it keeps while it runs (for leak checks)."""
        ...


TEMPLATE_BOOTSTRAP = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from runner.roles.template import main; main(int(sys.argv[2]))"
)
_READY_TIMEOUT = 120.0


def template_argv(python: str) -> list[str]:
    """The command that starts a template on ``python`` (the socket's fd number follows)."""
    return [python, "-I", "-B", "-c", TEMPLATE_BOOTSTRAP, requests.RUNNER_PARENT]


def template_env(font_cache: Path | None) -> dict[str, str]:
    """A template's environment: the usual one, matplotlib's backend and font cache."""
    env = requests.base_env()
    env["HOME"] = "/"
    env["MPLBACKEND"] = "module://runner.mplbackend"
    if font_cache is not None:
        env["MPLCONFIGDIR"] = str(font_cache)
    return env


class Template:
    """One template process (``argv``: its bootstrap, to which the socket's fd number is
    appended); :meth:`start` again after it died. Not thread-safe: its pool's lock guards
    it."""

    def __init__(self, argv: list[str], env: dict[str, str], preload: list[str]) -> None:
        self.argv = argv
        self.env = env
        self.preload = preload
        #: What the template said when it was ready (its preloaded modules, timings).
        self.info: dict[str, Any] = {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None
        # its stderr, read when it fails: a file, not a pipe nobody drains (the template
        # must never block on it)
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115

    def start(self) -> None:
        """Start it and wait until it has preloaded; ``EngineUnavailable`` if it cannot.

        It is started from a thread that lives as long as it does (its PR_SET_PDEATHSIG
        fires when the thread that started it ends)."""
        started = threading.Event()
        failure: list[BaseException] = []

        def own_template() -> None:
            host, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                proc = subprocess.Popen(
                    [*self.argv, str(child.fileno())], pass_fds=(child.fileno(),),
                    env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=self.stderr, start_new_session=True,
                )  # fmt: skip
            except BaseException as exc:  # noqa: BLE001 - reported to the caller
                failure.append(exc)
                host.close()
                child.close()
                started.set()
                return
            child.close()
            self.proc, self.sock = proc, host
            started.set()
            proc.wait()  # until the template ends, crash or shutdown

        threading.Thread(target=own_template, name="sandbox-tool-template", daemon=True).start()
        started.wait()
        if failure:
            raise EngineUnavailable(f"could not start the warm template: {failure[0]}")
        assert self.sock is not None
        self.sock.send(json.dumps({"preload": self.preload}).encode())
        self.sock.settimeout(_READY_TIMEOUT)
        try:
            hello = json.loads(self.sock.recv(1 << 20) or b"{}")
        except (OSError, ValueError) as exc:
            hello = {"error": str(exc)}
        self.sock.settimeout(None)
        if not hello.get("ready"):
            detail = self.stop()
            raise EngineUnavailable(f"the warm template did not start: {hello} {detail}")
        self.info = hello

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        """Its pid while it runs."""
        return self.proc.pid if self.alive() and self.proc is not None else None

    def spawn(self, setup: RunnerSetup) -> tuple[int, RunnerPipes, ProcessTree | None]:
        pipes = RunnerPipes.create()
        try:
            pid = self.fork(setup, list(pipes.runner_ends()))
        except BaseException:
            pipes.close_all()
            raise
        finally:
            pipes.close_runner_ends()
        return pid, pipes, None

    def resident_pids(self) -> set[int]:
        return {self.proc.pid} if self.proc is not None else set()

    def fork(self, setup: RunnerSetup, fds: list[int]) -> int:
        """Ask it for a runner with ``setup`` on the runner's ends ``fds``; its pid."""
        assert self.sock is not None
        message: ForkMessage = {"setup": setup}
        socket.send_fds(self.sock, [json.dumps(message).encode()], fds)
        answer = json.loads(self.sock.recv(1 << 16) or b"{}")
        if "pid" not in answer:
            raise EngineError(f"the warm template could not fork a runner: {answer}")
        return int(answer["pid"])

    def stop(self) -> str:
        """Stop it; return the end of what it printed to stderr."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.proc is not None:
            kill_tree(self.proc.pid)
            with contextlib.suppress(Exception):
                self.proc.wait(timeout=5)
            self.proc = None
        self.stderr.seek(0)
        detail = self.stderr.read()[-500:].decode(errors="replace")
        self.stderr.seek(0)
        self.stderr.truncate()
        return detail

    def close(self) -> None:
        self.stop()
        self.stderr.close()

    def fds(self) -> set[int]:
        """The descriptors it holds in this process."""
        fds = {self.sock.fileno()} if self.sock is not None else set()
        if not self.stderr.closed:
            fds.add(self.stderr.fileno())
        return fds
