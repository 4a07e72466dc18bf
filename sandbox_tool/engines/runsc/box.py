"""One running gVisor sandbox: ``runsc run`` of its bundle, its template, and the host's
unix socket that the template and every runner inside connect to.

``runsc run`` runs attached (its sandbox and gofer die with it) from a thread that lives
as long as it does, wrapped so that it dies with this process too (``PR_SET_PDEATHSIG``):
a host that is killed leaves no sandbox behind. The template's stdout and stderr, and
runsc's own errors, go to a log file in the box's private directory: a failed start
reports its end.

Every connection to the socket starts with one frame saying who it is: the template
(with the box's token), or one channel of a runner (with the runner's secret id, which
only the host and that runner's keeper know). The template's connection is the link the
host asks on (:meth:`Box.request`); a runner's four connections are handed to whoever
waits for that runner (:meth:`Box.expect`).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import psutil

from sandbox_tool.engines.runners.pipes import close_quietly
from sandbox_tool.engines.runsc.bundle import write_bundle
from sandbox_tool.engines.runsc.command import Runsc
from sandbox_tool.errors import EngineError, EngineUnavailable
from sandbox_tool.runner.framing import HEADER, encode_frame
from sandbox_tool.runner.roles.boxed import BOXED_BOOTSTRAP

__all__ = ["Box", "BoxSpec", "Expected"]

#: Dies with the thread that starts it (then runsc's attached sandbox dies with runsc).
_DIE_WITH_PARENT = (
    "import ctypes, os, sys; ctypes.CDLL(None).prctl(1, 9); os.execv(sys.argv[1], sys.argv[1:])"
)
_HELLO_SECONDS = 5.0
_LINK_SECONDS = 60.0
#: The template imports the data-science stack under gVisor: seconds, more when loaded.
_READY_SECONDS = 180.0


class Expected:
    """The channels of one runner, as they arrive."""

    def __init__(self) -> None:
        self.fds: dict[str, int] = {}
        self.complete = threading.Event()

    def close(self) -> None:
        for fd in self.fds.values():
            close_quietly(fd)
        self.fds.clear()


@dataclass(frozen=True)
class BoxSpec:
    """What every sandbox of an engine is made of."""

    runsc: Runsc
    python: str
    """The interpreter (inside the sandbox at the same path)."""
    env: dict[str, str]
    """The template's environment."""
    preload: list[str]
    read_only: list[str]
    """Host paths bound read-only (with ``/usr`` and the ``/etc`` files)."""
    read_write: list[str]
    """Host paths bound read-write (the workspaces' directory)."""
    runner_parent: str
    """The directory holding the ``runner`` package."""


class Box:
    """One sandbox of ``spec`` in ``home``, a private dir (``network``: the host's, else
    none)."""

    def __init__(self, spec: BoxSpec, home: Path, *, network: bool) -> None:
        self.spec = spec
        self.runsc = spec.runsc
        self.home = home
        self.network = network
        self.id = f"sandbox-tool-{secrets.token_hex(8)}"  # host-wide: runsc's control socket
        self.token = secrets.token_hex(16)
        self.ctl = home / "ctl"
        self.socket_path = str(self.ctl / "host.sock")
        self.log_path = home / "box.log"
        self.info: dict[str, Any] = {}
        self._args = [spec.python, "-I", "-B", "-c", BOXED_BOOTSTRAP, spec.runner_parent,
                      self.socket_path]  # fmt: skip
        self._proc: subprocess.Popen[bytes] | None = None
        self._listener: socket.socket | None = None
        self._link: socket.socket | None = None
        self._linked = threading.Event()
        self._lock = threading.Lock()  # one request on the link at a time
        self._expected: dict[str, Expected] = {}
        self._expected_lock = threading.Lock()
        self._log: BinaryIO | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the sandbox and wait until its template has preloaded; raises
        ``EngineUnavailable`` with the end of its log if it cannot."""
        self.home.mkdir(mode=0o700)
        self.ctl.mkdir(mode=0o700)
        (self.home / "state").mkdir(mode=0o700)
        spec = self.spec
        write_bundle(self.home / "bundle", args=self._args, env=spec.env,
                     read_only=spec.read_only, read_write=[*spec.read_write, str(self.ctl)],
                     network=self.network)  # fmt: skip
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.socket_path)
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, name="sandbox-tool-gvisor-accept",
                         daemon=True).start()  # fmt: skip
        self._run()
        try:
            if not self._linked.wait(_LINK_SECONDS) or self._link is None:
                raise EngineUnavailable(
                    self._failure("the sandbox's template did not connect"), engine="gvisor"
                )
            self._send({"preload": spec.preload})
            hello = self._receive(_READY_SECONDS)
            if not hello.get("ready"):
                raise EngineUnavailable(
                    self._failure(f"the template failed: {hello}"), engine="gvisor"
                )
            self.info = hello
        except BaseException:
            self.stop()
            raise

    def _run(self) -> None:
        started = threading.Event()
        failure: list[BaseException] = []
        state = str(self.home / "state")
        argv = [*self.runsc.flags(state, self.network), "run",
                "--bundle", str(self.home / "bundle"), self.id]  # fmt: skip
        wrapped = [self._args[0], "-I", "-c", _DIE_WITH_PARENT, *argv]

        def own_sandbox() -> None:
            self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
            try:
                proc = subprocess.Popen(
                    wrapped, stdin=subprocess.PIPE, stdout=self._log, stderr=self._log,
                    start_new_session=True, env={"PATH": "/usr/bin:/bin"},
                )  # fmt: skip
            except BaseException as exc:  # noqa: BLE001 - reported to the caller
                failure.append(exc)
                started.set()
                return
            assert proc.stdin is not None
            # the template's stdin: its token, then the end (runsc dead already: its log says)
            with contextlib.suppress(OSError), proc.stdin:
                proc.stdin.write(self.token.encode() + b"\n")
            self._proc = proc
            started.set()
            proc.wait()  # until the sandbox ends
            self._linked.set()  # whoever waits for the template stops waiting

        threading.Thread(target=own_sandbox, name="sandbox-tool-gvisor", daemon=True).start()
        started.wait()
        if failure:
            raise EngineUnavailable(f"could not start runsc: {failure[0]}", engine="gvisor")

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None and self._link is not None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def stop(self) -> str:
        """Stop the sandbox, close every fd; the end of its log."""
        for sock in (self._link, self._listener):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()
        self._link = self._listener = None
        with self._expected_lock:
            for expected in self._expected.values():
                expected.close()
                expected.complete.set()
            self._expected.clear()
        procs = _processes(self.resident_pids())
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)  # runsc run; its attached sandbox and gofer follow
            for child in procs:
                with contextlib.suppress(psutil.Error):
                    child.kill()
            psutil.wait_procs(procs, timeout=10)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.log_tail()

    def remove(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)

    def log_tail(self, size: int = 2000) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-size:].decode(errors="replace").strip()

    def _failure(self, what: str) -> str:
        return (f"gVisor sandbox ({self.runsc.describe()}): {what}; runsc and the template "
                f"said: {self.log_tail() or '(nothing)'}")  # fmt: skip

    def resident_pids(self) -> set[int]:
        """runsc and every process it started (gofer, sandbox, platform stubs)."""
        if self._proc is None:
            return set()
        try:
            root = psutil.Process(self._proc.pid)
            return {root.pid, *(p.pid for p in root.children(recursive=True))}
        except psutil.Error:
            return set()

    def fds(self) -> set[int]:
        socks = [s for s in (self._link, self._listener) if s is not None]
        fds = {s.fileno() for s in socks}
        if self._log is not None:
            fds.add(self._log.fileno())
        with self._expected_lock:
            for expected in self._expected.values():
                fds |= set(expected.fds.values())
        return fds

    # -- the socket ----------------------------------------------------------------------

    def _accept(self) -> None:
        while True:
            listener = self._listener
            if listener is None:
                return
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed: the box stopped
            try:
                hello = _read_hello(conn)
            except (OSError, ValueError):
                conn.close()
                continue
            self._route(conn, hello)

    def _route(self, conn: socket.socket, hello: dict[str, Any]) -> None:
        if hello.get("role") == "template" and hello.get("token") == self.token:
            if self._link is None:
                self._link = conn
                self._linked.set()
                return
        elif hello.get("role") == "runner":
            with self._expected_lock:
                expected = self._expected.get(str(hello.get("rid")))
                name = str(hello.get("channel"))
                if expected is not None and name not in expected.fds:
                    expected.fds[name] = conn.detach()
                    if len(expected.fds) == 4:
                        expected.complete.set()
                    return
        conn.close()  # nobody it claims to be

    def expect(self, rid: str) -> Expected:
        with self._expected_lock:
            expected = self._expected[rid] = Expected()
            return expected

    def forget(self, rid: str) -> None:
        with self._expected_lock:
            self._expected.pop(rid, None)

    # -- the template's link ---------------------------------------------------------------

    def _send(self, frame: dict[str, Any]) -> None:
        link = self._link
        if link is None:
            raise EngineError(self._failure("the sandbox's template is gone"))
        try:
            link.sendall(encode_frame(frame))
        except OSError as exc:
            raise EngineError(self._failure(f"the sandbox's template is gone ({exc})")) from exc

    def _receive(self, timeout: float) -> dict[str, Any]:
        link = self._link
        if link is None:
            raise EngineError(self._failure("the sandbox's template is gone"))
        frame = _read_frame(link, timeout)
        if frame is None:
            self._link = None
            with contextlib.suppress(OSError):
                link.close()
            raise EngineError(self._failure("the sandbox's template did not answer"))
        return frame

    def request(self, frame: dict[str, Any], timeout: float = _LINK_SECONDS) -> dict[str, Any]:
        """Ask the template; its answer."""
        with self._lock:
            self._send(frame)
            return self._receive(timeout)

    def post(self, frame: dict[str, Any]) -> None:
        """Tell the template (no answer); a box already gone has nothing to be told."""
        with self._lock, contextlib.suppress(EngineError):
            self._send(frame)


def _read_frame(sock: socket.socket, timeout: float) -> dict[str, Any] | None:
    """One frame from ``sock`` within ``timeout`` seconds (None: ended or too slow)."""
    deadline = time.monotonic() + timeout
    data = b""
    size = None
    while size is None or len(data) < HEADER.size + size:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([sock], [], [], left)[0]:
            return None
        try:
            chunk = sock.recv(1 << 16)
        except OSError:
            return None
        if not chunk:
            return None
        data += chunk
        if size is None and len(data) >= HEADER.size:
            (size,) = HEADER.unpack(data[: HEADER.size])
    value = json.loads(data[HEADER.size : HEADER.size + size])
    return value if isinstance(value, dict) else None


def _read_hello(conn: socket.socket) -> dict[str, Any]:
    """The first frame of a new connection, read byte-exact (what follows is the runner's)."""
    conn.settimeout(_HELLO_SECONDS)
    header = _recv_exactly(conn, HEADER.size)
    (size,) = HEADER.unpack(header)
    if size > 4096:
        raise ValueError("hello too large")
    hello = json.loads(_recv_exactly(conn, size))
    conn.settimeout(None)
    if not isinstance(hello, dict):
        raise ValueError("hello is not an object")
    return hello


def _recv_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ValueError("connection ended in its hello")
        data += chunk
    return data


def _processes(pids: set[int]) -> list[psutil.Process]:
    found = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            found.append(psutil.Process(pid))
    return found
