"""The escape suite's harness: run attack code on one side, and the host-side helpers.

Every attack runs twice, through the same :meth:`Side.attack`:

- on the **baseline** (the ``native`` engine without its seccomp filter: not a
  security boundary), where the attack must work, which proves the attack is real;
- on the **sandbox** (the ``process`` engine), where it must fail in a specific,
  named way (an errno, a typed limit error) with no secret in what comes back.

Attack code is the body of a function: it may ``return`` a JSON-ready value and
call ``stage(name)`` before each step, so a refusal says where it happened. It
sees ``inputs`` and these helpers (defined by :data:`PRELUDE`):

- ``stage(name)``: mark the step about to run;
- ``attempt(fn, *args)``: ``{"ok": True, "value": ...}`` or the refusal as a dict;
- ``refusal(exc)``: an ``OSError``/``RuntimeError`` as ``{"ok": False, "errno": "EPERM", ...}``;
- ``check_libc(ret)``: raise ``OSError`` with ``ctypes.get_errno()`` when ``ret == -1``.

The harness turns the whole run into ``result = {"ok": ..., "stage": ..., "value"
| "errno": ...}``; anything else the code raises becomes a typed ``SandboxError``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import psutil

from sandbox_tool import (
    BuiltinsPolicy,
    ExecutionError,
    ExecutionOptions,
    ImportPolicy,
    PythonSandbox,
    SandboxError,
)

# -- expected refusals ----------------------------------------------------------------

#: Opening a host path from the sandbox. ENOENT: the path does not exist in the
#: sandbox's mount namespace; EACCES: landlock (or file permissions, the sandbox
#: uid being unprivileged on the host); EPERM: landlock or seccomp.
FS_DENIED = frozenset({"ENOENT", "EACCES", "EPERM"})
#: Writing a host path: as above, or the path is mounted read-only.
FS_WRITE_DENIED = FS_DENIED | {"EROFS"}
#: socket() refused by seccomp (or a missing capability, for raw sockets).
SOCKET_REFUSED = frozenset({"EPERM", "EACCES", "EAFNOSUPPORT"})
#: Signalling or tracing a host pid: ESRCH, it does not exist in the sandbox's pid
#: namespace; EPERM, seccomp, landlock signal scoping or a foreign user namespace.
PID_DENIED = frozenset({"ESRCH", "EPERM"})

# -- the code wrapped around every attack ---------------------------------------------

PRELUDE = """\
import errno as _errno
import os as _os

_stages = ["start"]


def stage(name):
    _stages.append(name)


def _errname(num):
    if not isinstance(num, int):
        return None
    return _errno.errorcode.get(num, str(num))


def refusal(exc):
    return {
        "ok": False,
        "stage": _stages[-1],
        "exc": type(exc).__name__,
        "errno": _errname(getattr(exc, "errno", None)),
        "msg": str(exc)[:300],
    }


def attempt(fn, *args, **kwargs):
    try:
        return {"ok": True, "value": fn(*args, **kwargs)}
    except (OSError, RuntimeError) as exc:
        return refusal(exc)


def check_libc(ret):
    if ret == -1:
        import ctypes

        num = ctypes.get_errno()
        raise OSError(num, _os.strerror(num))
    return ret
"""

_EPILOGUE = """
try:
    _value = _attack()
    result = {"ok": True, "stage": _stages[-1], "value": _value}
except (OSError, RuntimeError) as _exc:
    result = refusal(_exc)
"""

#: Printed before the result by :func:`bare_run`, which has no runner to report it.
_BARE_MARK = "\n@@sandbox-tool-security-result@@"


def wrap(body: str) -> str:
    """The full program for an attack body."""
    inner = textwrap.indent(textwrap.dedent(body).strip("\n"), "    ")
    return f"{PRELUDE}\n\ndef _attack():\n{inner}\n{_EPILOGUE}"


#: The policies the suite always runs with: the OS boundary must hold on its own.
ALLOW_ALL: dict[str, Any] = {
    "import_policy": ImportPolicy.allow_all(),
    "builtins_policy": BuiltinsPolicy.allow_all(),
}

# -- outcomes -------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one attack produced: the harness's report, or the typed error."""

    side: str
    result: Any = None
    stdout: str = ""
    stderr: str = ""
    error: SandboxError | None = None
    wall: float = 0.0

    @property
    def report(self) -> dict[str, Any]:
        """The harness report; fails the test (with the error) if the code did not finish."""
        if self.error is not None:
            detail = self.error.message
            if isinstance(self.error, ExecutionError) and self.error.traceback:
                detail += "\n" + self.error.traceback
            raise AssertionError(
                f"[{self.side}] the attack did not complete: {type(self.error).__name__}: "
                f"{detail}\nstderr: {self.stderr[-2000:]}"
            )
        assert isinstance(self.result, dict), f"[{self.side}] no harness report: {self.result!r}"
        return self.result

    @property
    def value(self) -> Any:
        """The attack's return value; fails the test if the attack was refused."""
        report = self.report
        assert report["ok"], f"[{self.side}] the attack was refused: {report}"
        return report["value"]

    def text(self) -> str:
        """Everything that came back to the caller, for leak checks."""
        parts = [self.stdout, self.stderr, json.dumps(self.result)]
        if self.error is not None:
            parts.append(self.error.message)
            parts.append(getattr(self.error, "traceback", "") or "")
        return "\n".join(parts)

    def assert_no_leak(self, *secret_values: str) -> None:
        text = self.text()
        for value in secret_values:
            assert value not in text, f"[{self.side}] {value!r} leaked out of the sandbox"


def assert_refused(
    step: dict[str, Any], errnos: frozenset[str] | set[str], *, stages: set[str] | None = None
) -> None:
    """``step`` (a harness report or an ``attempt``) failed with one of ``errnos``."""
    assert step.get("ok") is False, f"the sandbox let it through: {step}"
    assert step.get("errno") in errnos, f"refused, but not as expected ({sorted(errnos)}): {step}"
    if stages is not None:
        assert step.get("stage") in stages, f"refused at an unexpected step ({stages}): {step}"


def assert_refused_as(step: dict[str, Any], allowed: dict[str, frozenset[str]]) -> None:
    """Refused at one of the stages in ``allowed``, with an errno listed for that stage."""
    assert step.get("ok") is False, f"the sandbox let it through: {step}"
    stage = step.get("stage")
    assert stage in allowed, f"refused at an unexpected step (expected {sorted(allowed)}): {step}"
    assert step.get("errno") in allowed[stage], (
        f"refused at {stage!r}, but not as expected ({sorted(allowed[stage])}): {step}"
    )


# -- the two sides ----------------------------------------------------------------------


@dataclass
class Side:
    """One engine under attack: the unsandboxed baseline or the sandbox."""

    role: Literal["baseline", "sandbox"]
    engine_name: str
    sandbox: PythonSandbox

    @property
    def is_baseline(self) -> bool:
        return self.role == "baseline"

    def attack(
        self,
        body: str,
        inputs: Any = None,
        *,
        baseline_overrides: dict[str, Any] | None = None,
        **options: Any,
    ) -> Outcome:
        """Run the attack ``body``. ``baseline_overrides`` lifts the limit under test on the
        baseline side only, to show what the attack does when nothing stops it."""
        opts = {"timeout": 30.0, **options}
        if self.is_baseline and baseline_overrides:
            opts.update(baseline_overrides)
        outcome = Outcome(side=f"{self.role}:{self.engine_name}")
        started = time.monotonic()
        try:
            res = self.sandbox.execute_sync(
                wrap(body), inputs, ExecutionOptions(**ALLOW_ALL, **opts)
            )
        except SandboxError as exc:
            outcome.error = exc
            outcome.stdout, outcome.stderr = exc.stdout, exc.stderr
        else:
            outcome.result, outcome.stdout, outcome.stderr = res.result, res.stdout, res.stderr
        outcome.wall = time.monotonic() - started
        return outcome


def bare_run(body: str, inputs: Any, cwd: Path, *, timeout: float = 30.0) -> Outcome:
    """The attack in a plain ``python -c``: no engine at all (the caller's user, no limits).

    Used for the baseline of attacks the native engine already contains (daemons).
    stdout and stderr go to files, not pipes, so a daemon holding them cannot block this.
    """
    program = (
        "import json, sys\ninputs = json.loads(sys.argv[1])\n"
        + wrap(body)
        + f"\nprint({_BARE_MARK!r} + json.dumps(result), flush=True)\n"
    )
    outcome = Outcome(side="baseline:bare-python")
    started = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.run(
            [sys.executable, "-I", "-c", program, json.dumps(inputs)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=cwd,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            timeout=timeout,
            check=False,
        )
        out.seek(0)
        err.seek(0)
        stdout, outcome.stderr = out.read().decode(errors="replace"), err.read().decode()
    outcome.wall = time.monotonic() - started
    stdout, mark, tail = stdout.partition(_BARE_MARK)
    outcome.stdout = stdout
    assert mark, f"bare run exited {proc.returncode} without a result: {outcome.stderr[-2000:]}"
    outcome.result = json.loads(tail)
    return outcome


# -- host-side helpers ----------------------------------------------------------------


def token(prefix: str) -> str:
    """A unique, greppable secret."""
    return f"{prefix}-{secrets.token_hex(8)}"


def processes_named(name: str) -> list[psutil.Process]:
    """Living processes on the host whose ``comm`` is ``name`` (any parent, any uid)."""
    found = []
    for proc in psutil.process_iter(["name", "status"]):
        if proc.info["name"] == name and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


def kill_all(procs: list[psutil.Process]) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(procs, timeout=3)


def alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def tracer_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("TracerPid:"):
                return int(line.split()[1])
    raise AssertionError(f"no TracerPid in /proc/{pid}/status")


@dataclass
class HostProcess:
    """A process the test starts on the host, as a target: ``sleep 61.<digits>``."""

    proc: subprocess.Popen[bytes]
    argv_marker: str
    secret: str

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        """Alive and not stopped (a ptrace attach leaves a tracee stopped)."""
        try:
            status = psutil.Process(self.pid).status()
        except psutil.NoSuchProcess:
            return False
        return status not in (psutil.STATUS_ZOMBIE, psutil.STATUS_STOPPED, "tracing-stop")

    @classmethod
    @contextlib.contextmanager
    def start(cls, secret_name: str, secret: str) -> Iterator[HostProcess]:
        marker = f"61.{secrets.randbelow(10**6):06d}"
        proc = subprocess.Popen(
            ["sleep", marker],
            env={**os.environ, secret_name: secret},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            yield cls(proc, marker, secret)
        finally:
            if proc.poll() is None:  # never signal a pid that was already reaped
                proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=5)


# -- loopback listeners ---------------------------------------------------------------

ListenerKind = Literal["tcp", "udp", "unix", "abstract"]


@dataclass
class Listener:
    """A server on loopback run by the test: records what reaches it and answers ``ACK``.

    ``tcp``/``udp`` bind 127.0.0.1 on a free port; ``unix`` binds a path in a fresh
    directory (mode 0777 socket, so file permissions are not what stops the sandbox);
    ``abstract`` binds a name in the abstract namespace.
    """

    kind: ListenerKind
    received: list[bytes] = field(default_factory=list)
    _sock: socket.socket | None = None
    _dir: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    address: Any = None

    def start(self) -> Listener:
        if self.kind in ("tcp", "udp"):
            stype = socket.SOCK_STREAM if self.kind == "tcp" else socket.SOCK_DGRAM
            sock = socket.socket(socket.AF_INET, stype)
            sock.bind(("127.0.0.1", 0))
            self.address = list(sock.getsockname())
        else:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            if self.kind == "unix":
                self._dir = tempfile.mkdtemp(prefix="sbx-unix-")
                os.chmod(self._dir, 0o755)
                self.address = os.path.join(self._dir, "s")
                sock.bind(self.address)
                os.chmod(self.address, 0o777)
            else:
                self.address = "\0" + token("sbx-abstract")
                sock.bind(self.address)
        if sock.type == socket.SOCK_STREAM:
            sock.listen(8)
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, name=f"listener-{self.kind}")
        self._thread.start()
        return self

    def _serve(self) -> None:
        sock = self._sock
        assert sock is not None
        while not self._stop.is_set():
            ready, _, _ = select.select([sock], [], [], 0.05)
            if not ready:
                continue
            try:
                if sock.type == socket.SOCK_DGRAM:
                    data, peer = sock.recvfrom(65536)
                    self.received.append(data)
                    with contextlib.suppress(OSError):
                        sock.sendto(b"ACK\n", peer)
                    continue
                conn, _ = sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                data = b""
                with contextlib.suppress(OSError):
                    while not data.endswith(b"\n") and len(data) < 65536:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    self.received.append(data)
                    conn.sendall(b"ACK\n")

    def got(self, needle: str) -> bool:
        return any(needle.encode() in data for data in self.received)

    def settle(self) -> None:
        """Give anything already in flight time to arrive before the checks."""
        time.sleep(0.3)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._sock is not None:
            self._sock.close()
        if self._dir is not None:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self._dir, "s"))
            os.rmdir(self._dir)
