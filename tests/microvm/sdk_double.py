"""A double of the microsandbox SDK (0.7.x) whose "VMs" are this host, for the tests of
the microsandbox engine on machines that cannot boot a microVM.

It has the classes, methods and signatures the engine uses (``test_sdk_surface.py``
compares them with the installed SDK's), and behaves as the real SDK does where the
engine depends on it:

- a sandbox is a record under ``$MSB_HOME/double/`` (so the relay, another process,
  finds it by name); ``Sandbox.create`` "boots" it, or fails as a VM that cannot boot
  does (a bare ``MicrosandboxError`` and the cause in ``logs/runtime.log``) when
  ``$MSB_HOME/double/fail-boot`` holds a runtime log (written that many seconds late
  if ``$MSB_HOME/double/fail-boot-log-seconds`` says so), or takes the seconds
  ``$MSB_HOME/double/boot-seconds`` says;
- an exec runs the command on this host in a private mount namespace where each of the
  sandbox's tmpfs volumes is a directory of its own (so the guest's work root and
  runner dir are not the host's), without network for ``Network.none()``, in a process
  group of its own that dies with the process that started it (the VM's agent kills an
  exec's group when its client disconnects);
- ``fs.write`` writes into those volumes.

Root only (mount namespaces with binds). Not a VM: nothing here isolates anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import enum
import functools
import json
import os
import shutil
import signal
import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ExecEvent",
    "ExecEventType",
    "ExecHandle",
    "ExecOutput",
    "ExecSink",
    "Image",
    "MicrosandboxError",
    "Network",
    "NetworkProfile",
    "PullPolicy",
    "Sandbox",
    "SandboxHandle",
    "SandboxPage",
    "SandboxStatus",
    "Stdin",
    "Volume",
]


# ---------------------------------------------------------------- errors (as the SDK's)


class MicrosandboxError(Exception):
    code: str = "microsandbox-error"


class RuntimeNotInstalledError(MicrosandboxError):
    code = "runtime-not-installed"


class InvalidConfigError(MicrosandboxError):
    code = "invalid-config"


class SandboxNotFoundError(MicrosandboxError):
    code = "sandbox-not-found"


class SandboxNotRunningError(MicrosandboxError):
    code = "sandbox-not-running"


class SandboxStillRunningError(MicrosandboxError):
    code = "sandbox-still-running"


class ExecFailedError(MicrosandboxError):
    code = "exec-failed"


class ImageNotFoundError(MicrosandboxError):
    code = "image-not-found"


# ---------------------------------------------------------------- value types


class StrEnum(str, enum.Enum):
    def __str__(self) -> str:
        return str(self.value)


class SandboxStatus(StrEnum):
    CREATED = "created"
    STARTING = "starting"
    RUNNING = "running"
    STOPPED = "stopped"
    CRASHED = "crashed"
    DRAINING = "draining"
    PAUSED = "paused"


class ExecEventType(StrEnum):
    STARTED = "started"
    STDOUT = "stdout"
    STDERR = "stderr"
    EXITED = "exited"
    FAILED = "failed"
    STDIN_ERROR = "stdin_error"


class PullPolicy(StrEnum):
    ALWAYS = "always"
    IF_MISSING = "if-missing"
    NEVER = "never"


class NetworkProfile(StrEnum):
    PUBLIC = "public"
    PRIVATE = "private"
    HOST = "host"


@dataclass(frozen=True)
class Network:
    profiles: tuple[str, ...] = ()

    @classmethod
    def none(cls) -> Network:
        return cls(())

    @classmethod
    def from_profiles(cls, *profiles: NetworkProfile) -> Network:
        return cls(tuple(str(p) for p in profiles))


@dataclass(frozen=True)
class Stdin:
    _mode: str
    _data: bytes | None = None

    @classmethod
    def null(cls) -> Stdin:
        return cls("null")

    @classmethod
    def pipe(cls) -> Stdin:
        return cls("pipe")


@dataclass(frozen=True)
class MountConfig:
    kind: str
    size_mib: int | None = None


class Volume:
    @staticmethod
    def tmpfs(
        *,
        size_mib: int | None = None,
        readonly: bool = False,
        noexec: bool = False,
        nosuid: bool = False,
        nodev: bool = False,
    ) -> MountConfig:
        return MountConfig("tmpfs", size_mib)


@dataclass(frozen=True)
class ImageSource:
    kind: str
    path: str


class Image:
    @staticmethod
    def bind(path: str) -> ImageSource:
        return ImageSource("bind", path)

    @staticmethod
    def disk(path: str, *, fstype: str | None = None) -> ImageSource:
        return ImageSource("disk", path)


# ---------------------------------------------------------------- the records


def _root() -> Path:
    home = Path(os.environ.get("MSB_HOME") or Path.home() / ".microsandbox")
    return home / "double"


def _record(name: str) -> Path:
    return _root() / name / "record.json"


def _load(name: str) -> dict[str, Any]:
    try:
        return dict(json.loads(_record(name).read_text()))
    except FileNotFoundError:
        raise SandboxNotFoundError(f"sandbox {name!r} not found") from None


def _save(name: str, record: dict[str, Any]) -> None:
    path = _record(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(path)


@dataclass(frozen=True)
class ExecOutput:
    exit_code: int
    stdout_bytes: bytes
    stderr_bytes: bytes

    @property
    def success(self) -> bool:
        return self.exit_code == 0

    @property
    def stdout_text(self) -> str:
        return self.stdout_bytes.decode()

    @property
    def stderr_text(self) -> str:
        return self.stderr_bytes.decode()


@dataclass
class ExecEvent:
    event_type: ExecEventType
    pid: int | None = None
    data: bytes | None = None
    code: int | None = None


class ExecSink:
    def __init__(self, stream: asyncio.StreamWriter) -> None:
        self._stream = stream

    async def write(self, data: bytes) -> None:
        self._stream.write(data)
        await self._stream.drain()

    async def close(self) -> None:
        self._stream.close()


class ExecHandle:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc
        self._events: asyncio.Queue[ExecEvent | None] = asyncio.Queue()
        self._stdin_taken = False
        self._events.put_nowait(ExecEvent(ExecEventType.STARTED, pid=proc.pid))
        self._pumps = asyncio.ensure_future(self._pump())

    async def _pump(self) -> None:
        async def copy(stream: asyncio.StreamReader | None, kind: ExecEventType) -> None:
            assert stream is not None
            while chunk := await stream.read(1 << 16):
                await self._events.put(ExecEvent(kind, data=chunk))

        await asyncio.gather(
            copy(self._proc.stdout, ExecEventType.STDOUT),
            copy(self._proc.stderr, ExecEventType.STDERR),
        )
        code = await self._proc.wait()
        await self._events.put(ExecEvent(ExecEventType.EXITED, code=code))
        await self._events.put(None)

    @property
    def id(self) -> str:
        return str(self._proc.pid)

    def take_stdin(self) -> ExecSink | None:
        if self._stdin_taken or self._proc.stdin is None:
            return None
        self._stdin_taken = True
        return ExecSink(self._proc.stdin)

    async def recv(self) -> ExecEvent | None:
        return await self._events.get()

    async def wait(self) -> tuple[int, bool]:
        code = await self._proc.wait()
        return code, code == 0

    async def collect(self) -> ExecOutput:
        out, err = bytearray(), bytearray()
        code = 0
        while (event := await self.recv()) is not None:
            if event.event_type == ExecEventType.STDOUT:
                out += event.data or b""
            elif event.event_type == ExecEventType.STDERR:
                err += event.data or b""
            elif event.event_type == ExecEventType.EXITED:
                code = event.code or 0
        return ExecOutput(code, bytes(out), bytes(err))

    async def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, sig)

    async def kill(self) -> None:
        await self.signal(signal.SIGKILL)

    def __aiter__(self) -> AsyncIterator[ExecEvent]:
        return self

    async def __anext__(self) -> ExecEvent:
        event = await self.recv()
        if event is None:
            raise StopAsyncIteration
        return event


# binds each volume's backing dir over its guest path, then runs the command there
_MOUNTS = (
    'set -e; while [ "$1" != -- ]; do mkdir -p "$2"; mount --bind "$1" "$2"; shift 2; done; '
    'shift; cd "$1"; shift; exec "$@"'
)


def _die_with_parent() -> None:
    os.setsid()
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class SandboxFsOps:
    def __init__(self, name: str) -> None:
        self._name = name

    async def write(self, path: str, data: bytes) -> None:
        target = _in_volume(_load(self._name), path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def _in_volume(record: dict[str, Any], path: str) -> Path:
    for guest, backing in record["volumes"].items():
        if path == guest or path.startswith(guest.rstrip("/") + "/"):
            return Path(backing) / os.path.relpath(path, guest)
    raise MicrosandboxError(f"the double writes only into tmpfs volumes, not {path}")


class Sandbox:
    """A running "sandbox" (this host, in a mount namespace per exec)."""

    def __init__(self, name: str, owns: bool) -> None:
        self._name = name
        self._owns = owns

    @staticmethod
    async def create(
        name: str,
        *,
        image: str | os.PathLike[str] | ImageSource | None = None,
        memory: int | None = None,
        cpus: int | None = None,
        max_memory: int | None = None,
        max_cpus: int | None = None,
        workdir: str | None = None,
        shell: str | None = None,
        security: Any = None,
        hostname: str | None = None,
        user: str | None = None,
        entrypoint: Sequence[str] | None = None,
        cmd: Sequence[str] | None = None,
        init: Any = None,
        replace: bool = False,
        replace_with_timeout: float | None = None,
        max_duration: float | None = None,
        idle_timeout: float | None = None,
        ephemeral: bool = False,
        env: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        scripts: Mapping[str, str] | None = None,
        pull_policy: PullPolicy | None = None,
        log_level: Any = None,
        registry_auth: Any = None,
        registry_insecure: bool = False,
        registry_ca_certs: list[Any] | None = None,
        volumes: Mapping[str, MountConfig] | None = None,
        patches: Sequence[Any] | None = None,
        ports: Any = None,
        vsock: Any = None,
        network: Network | None = None,
        intercept_tls: bool = False,
        secrets: Sequence[Any] | None = None,
        secret_violation_action: Any = None,
        detached: bool = False,
    ) -> Sandbox:
        home = _root()
        slow = home / "boot-seconds"
        if slow.exists():
            await asyncio.sleep(float(slow.read_text()))
        failure = home / "fail-boot"
        if failure.exists():
            logs = home.parent / "sandboxes" / name / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            late = home / "fail-boot-log-seconds"
            log = functools.partial((logs / "runtime.log").write_text, failure.read_text())
            if late.exists():  # a runtime still writing its log as the SDK gives up
                threading.Timer(float(late.read_text()), log).start()
            else:
                log()
            _save(name, {"status": "stopped", "volumes": {}, "network": False, "labels": {}})
            raise MicrosandboxError(
                f'failed to start "{name}": sandbox process exited (exit '
                "status: 1) before agent relay became available"
            )
        if _record(name).exists() and not replace:
            raise MicrosandboxError(f"sandbox {name!r} already exists")
        backing = {}
        for index, (guest, mount) in enumerate(sorted((volumes or {}).items())):
            if mount.kind != "tmpfs":
                raise InvalidConfigError("the double has tmpfs volumes only")
            path = home / name / f"volume-{index}"
            path.mkdir(parents=True, exist_ok=True)
            backing[guest] = str(path)
        record = {
            "status": "running",
            "volumes": backing,
            "labels": dict(labels or {}),
            "network": bool(network is not None and network.profiles),
            "memory": memory,
            "cpus": cpus,
            "image": str(image),
            "workdir": workdir or "/",
        }
        _save(name, record)
        return Sandbox(name, owns=True)

    @staticmethod
    async def get(name: str) -> SandboxHandle:
        return SandboxHandle(name, SandboxStatus(_load(name)["status"]))

    @staticmethod
    async def list_with(
        *,
        cursor: str | None = None,
        limit: int | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> SandboxPage:
        root = _root()
        names = (
            sorted(p.name for p in root.iterdir() if (p / "record.json").exists())
            if root.is_dir()
            else []
        )
        return SandboxPage([await Sandbox.get(n) for n in names], None)

    @staticmethod
    async def remove(name: str) -> None:
        if _load(name)["status"] == "running":
            raise SandboxStillRunningError(f"sandbox {name!r} is running")
        shutil.rmtree(_root() / name, ignore_errors=True)
        shutil.rmtree(_root().parent / "sandboxes" / name, ignore_errors=True)

    @property
    def fs(self) -> SandboxFsOps:
        return SandboxFsOps(self._name)

    def _running(self) -> dict[str, Any]:
        record = _load(self._name)
        if record["status"] != "running":
            raise SandboxNotRunningError(f"sandbox {self._name!r} is not running")
        return record

    async def _spawn(
        self,
        cmd: str,
        args: list[str] | None,
        cwd: str | None,
        env: Mapping[str, str] | None,
        stdin: Any,
    ) -> asyncio.subprocess.Process:
        record = self._running()
        binds = [path for guest, backing in record["volumes"].items() for path in (backing, guest)]
        unshare = ["unshare", "--mount", "--propagation", "private"]
        if not record["network"]:
            unshare.append("--net")
        argv = [
            *unshare,
            "sh",
            "-c",
            _MOUNTS,
            "sh",
            *binds,
            "--",
            cwd or record["workdir"],
            cmd,
            *(args or []),
        ]
        piped = stdin is not None and getattr(stdin, "_mode", None) == "pipe"
        proc = await asyncio.create_subprocess_exec(
            *argv,
            env=dict(env or {"PATH": "/usr/bin:/bin"}),
            stdin=asyncio.subprocess.PIPE if piped else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=_die_with_parent,
        )
        execs = _root() / self._name / "execs"
        execs.mkdir(parents=True, exist_ok=True)
        (execs / str(proc.pid)).touch()
        return proc

    async def exec(
        self,
        cmd: str,
        args: list[str] | None = None,
        *,
        cwd: str | None = None,
        user: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        stdin: Stdin | bytes | None = None,
        tty: bool = False,
        rlimits: list[Any] | None = None,
    ) -> ExecOutput:
        proc = await self._spawn(cmd, args, cwd, env, None)
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
        return ExecOutput(proc.returncode or 0, out, err)

    async def exec_stream(
        self,
        cmd: str,
        args: list[str] | None = None,
        *,
        cwd: str | None = None,
        user: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        stdin: Stdin | bytes | None = None,
        tty: bool = False,
        rlimits: list[Any] | None = None,
    ) -> ExecHandle:
        return ExecHandle(await self._spawn(cmd, args, cwd, env, stdin))

    async def kill(self, timeout: float | None = None) -> None:
        record = _load(self._name)
        for pid in (_root() / self._name / "execs").glob("*"):
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.killpg(int(pid.name), signal.SIGKILL)
        record["status"] = "stopped"
        _save(self._name, record)


@dataclass
class SandboxHandle:
    name: str
    status: SandboxStatus

    async def connect(self, timeout: float | None = None) -> Sandbox:
        if self.status != SandboxStatus.RUNNING:
            raise SandboxNotRunningError(f"sandbox {self.name!r} is not running")
        return Sandbox(self.name, owns=False)


@dataclass
class SandboxPage:
    sandboxes: list[SandboxHandle] = field(default_factory=list)
    next_cursor: str | None = None
