"""The process engine: Linux process isolation without root, KVM or external programs.

Security level 7. Every execution gets a fresh sandbox built by the runner
(:mod:`sandbox_tool.runner.layers.namespaces`) before any user code runs:

- **namespaces**: user, pid, net, ipc, uts and mount. The code sees only its
  own processes, has no network but its own loopback, and cannot signal,
  ptrace or read the environment of anything on the host. Its pid 1 reaps and,
  when the code ends, kills everything left in the namespace.
- **a private root**: an empty tmpfs holding read-only binds of the
  interpreter, its venv, ``/usr`` and the few ``/etc`` files Python needs, and
  the execution's work, temp and private dirs in a tmpfs of ``max_disk_mb``
  (their files are copied in, and copied back out when the code is done);
  nothing else of the host (not ``$HOME``, not the project, not other users'
  files).
- **an unprivileged uid**: uid 1000 inside, mapped to an unused host uid
  (root callers) or to the caller's uid; every capability dropped;
  ``no_new_privs``.
- **landlock**: read-only access to the bound system paths, read-write access
  to the execution's dirs only, no ``execve``, TCP bind and connect denied,
  signals and abstract unix sockets scoped, as far as the running ABI knows.
- **seccomp**: ptrace, process_vm_*, mount and friends, bpf, keyctl,
  perf_event_open, module loading, kexec, io_uring, userfaultfd, memfd_create,
  new namespaces and every socket family but ``AF_UNIX`` are refused
  (``clone3`` answers ENOSYS so glibc falls back to ``clone``).
- **limits**: the native engine's rlimits, plus a process/thread cap that
  counts only this sandbox's tasks (for root and non-root callers alike), and
  the host-side wall-clock kill of the whole sandbox and output cap.

What it does not stop: kernel bugs (it shares the host kernel; a VM or
gVisor engine is the stronger choice), reading the world-readable system
files it binds (``/usr``, the interpreter), CPU and memory contention with
the host beyond the rlimits (no cgroups here; the tmpfs's ``max_disk_mb`` is
memory that ``RLIMIT_AS`` does not count). With ``network=True`` the code shares the
host's network (TCP/UDP over IPv4/IPv6 only): the weaker setting.

On macOS the same engine runs the runner under ``sandbox-exec`` with a
Seatbelt profile of the same intent (:mod:`sandbox_tool.engines.seatbelt`),
**untested on real macOS**, without a pid namespace or a per-sandbox process cap.

The engine refuses to start (``EngineUnavailable``) when a layer cannot be
applied on this host, unless built with ``accept_degraded=True``; then every
result lists the missing layers in ``degraded``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from sandbox_tool.engines import seatbelt
from sandbox_tool.engines.base import EngineInfo
from sandbox_tool.engines.native import DEFAULT_PRELOAD, RUNNER_PARENT, NativeEngine
from sandbox_tool.engines.workspace import Workspace
from sandbox_tool.errors import EngineUnavailable
from sandbox_tool.options import ExecutionOptions

__all__ = ["ProcessEngine"]

_PROBE = (
    "import json, sys; sys.path.insert(0, sys.argv[1]); "
    "from runner.layers.probe import probe; plan = None\n"
    "if len(sys.argv) > 2:\n"
    "    plan = {'ro_binds': ['/usr'], 'rw_binds': [], 'files': {}, 'cwd': '/',\n"
    "            'landlock': {'read_only': ['/usr']}, 'seccomp': {}}\n"
    "    for layer in sys.argv[2].split(','): plan[layer] = None\n"
    "print(json.dumps(probe(plan)))"
)
#: Layers that can be left out when the caller accepts a degraded sandbox.
OPTIONAL_LAYERS = ("landlock", "seccomp")


_PREFIXES = (
    "import json, sys; print(json.dumps(sorted({sys.prefix, sys.base_prefix, sys.exec_prefix,"
    " sys.base_exec_prefix})))"
)
_MACOS = sys.platform == "darwin"


def _interpreter_prefixes(python: str) -> list[str]:
    out = subprocess.run(
        [python, "-I", "-c", _PREFIXES], capture_output=True, text=True, timeout=30, check=True
    )
    prefixes: list[str] = json.loads(out.stdout)
    return prefixes


def _run_probe(python: str, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    cmd = [python, "-I", "-B", "-c", _PROBE, RUNNER_PARENT, *([",".join(skip)] if skip else [])]
    try:
        out = subprocess.run(
            cmd, capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"},
            stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
        result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        return result
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError) as exc:
        return {"available": False, "reason": f"the probe failed: {exc}", "report": None}


class ProcessEngine(NativeEngine):
    """The runner in a fresh namespaces + landlock + seccomp sandbox per execution.

    >>> engine = ProcessEngine()                       # refuses to start if a layer is missing
    >>> engine = ProcessEngine(accept_degraded=True)   # runs without it, and says so
    """

    name = "process"
    security_level = 7
    summary = (
        "Linux user/pid/net/ipc/uts/mount namespaces with a private read-only root, an "
        "unprivileged uid without capabilities, landlock, seccomp and rlimits; no network "
        "unless asked; shares the host kernel (macOS: a Seatbelt profile, untested there)"
    )
    _probes: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(
        self,
        interpreter: str | None = None,
        *,
        work_root: Path | None = None,
        accept_degraded: bool = False,
        warm: bool = True,
        preload: Sequence[str] = DEFAULT_PRELOAD,
        pool_size: int = 2,
        max_concurrent: int | None = None,
        max_queued: int = 64,
    ) -> None:
        # a Seatbelt profile names the execution's dirs: no template to fork from on macOS
        super().__init__(
            interpreter, work_root=work_root, warm=warm and not _MACOS, preload=preload,
            pool_size=pool_size, max_concurrent=max_concurrent, max_queued=max_queued,
        )  # fmt: skip
        self.accept_degraded = accept_degraded
        self._skip_layers: tuple[str, ...] = ()
        self._prefixes: list[str] | None = None

    @classmethod
    def _probe_cached(cls, python: str) -> dict[str, Any]:
        if python not in cls._probes:
            cls._probes[python] = _run_probe(python)
        return cls._probes[python]

    @classmethod
    def probe(cls, interpreter: str | None = None) -> EngineInfo:
        python = interpreter or sys.executable
        if _MACOS:
            if not os.access(seatbelt.SANDBOX_EXEC, os.X_OK):
                return EngineInfo(cls.name, False, cls.security_level, "sandbox-exec not found")
            return EngineInfo(
                cls.name, True, cls.security_level,
                "Seatbelt profile via sandbox-exec; UNTESTED on real macOS",
            )  # fmt: skip
        if not sys.platform.startswith("linux"):
            return EngineInfo(
                cls.name, False, cls.security_level, "needs Linux namespaces or macOS Seatbelt"
            )
        base = super().probe(python)
        if not base.available:
            return EngineInfo(cls.name, False, cls.security_level, base.reason)
        result = cls._probe_cached(python)
        return EngineInfo(cls.name, bool(result.get("available")), cls.security_level,
                          str(result.get("reason")))  # fmt: skip

    def _missing_layers(self) -> tuple[str, ...] | None:
        """The optional layers to leave out for a degraded sandbox, or None if none helps."""
        for skip in [(layer,) for layer in OPTIONAL_LAYERS] + [OPTIONAL_LAYERS]:
            if _run_probe(self.interpreter, skip).get("available"):
                return skip
        return None

    async def start(self) -> None:
        if self._started:
            return
        info = self.probe(self.interpreter)
        if not info.available:
            skip = self._missing_layers() if self.accept_degraded else None
            if skip is None:
                hint = (
                    "; accept_degraded=True runs without landlock or seccomp where only those "
                    "are missing"
                    if not self.accept_degraded
                    else ""
                )
                raise EngineUnavailable(
                    f"process engine: {info.reason}{hint}; or use the native engine, which "
                    "is not a security boundary",
                    engine=self.name,
                )
            self._skip_layers = skip
        await super().start()

    def degraded(self, options: ExecutionOptions) -> list[str]:
        notes = [
            f"{layer}: not applied on this host (accept_degraded)" for layer in self._skip_layers
        ]
        if _MACOS:
            notes += [
                "isolation: Seatbelt profile, untested on real macOS; no pid namespace",
                "max_processes: RLIMIT_NPROC counts every process of the user on macOS",
                "max_disk_mb: not enforced on macOS",
                "memory_mb: macOS does not enforce RLIMIT_AS",
            ]
        if options.network:
            notes.append("network: the code shares the host's network (network=True)")
        return notes

    def runner_argv(self, ws: Workspace, options: ExecutionOptions) -> list[str]:
        argv = super().runner_argv(ws, options)
        if not _MACOS:
            return argv
        if self._prefixes is None:
            self._prefixes = _interpreter_prefixes(self.interpreter)
        profile = seatbelt.seatbelt_profile(
            read_only=[*self._prefixes, RUNNER_PARENT],
            read_write=[str(ws.work), str(ws.tmp), str(ws.meta)],
            executables=[self.interpreter],
            network=options.network,
        )
        return [seatbelt.SANDBOX_EXEC, "-p", profile, *argv]

    #: On a timeout the sandbox's pid 1 gets this long to stop the code and copy its
    #: files out of the size-capped tmpfs before everything is killed.
    stop_grace = 2.0

    def pool_key(self, options: ExecutionOptions) -> Hashable:
        return (options.network, options.max_processes, options.max_disk_mb,
                options.max_artifact_bytes, tuple(sorted(options.files)))  # fmt: skip

    def runner_setup(self, ws: Workspace, key: Hashable) -> dict[str, Any]:
        setup = super().runner_setup(ws, key)
        if _MACOS:
            return setup
        assert isinstance(key, tuple)
        network, max_processes, disk_mb, artifact_bytes, files = key
        setup["isolation"] = {
            "network": bool(network),
            "nproc": int(max_processes),
            "skip_layers": list(self._skip_layers),
            # the writable dirs live in a tmpfs of max_disk_mb, not on the host's disk;
            # exposed files are bound read-only and do not count against it
            "scratch_mb": int(disk_mb),
            "ro_files": [str(ws.work / name) for name in files],
            # the code's files, plus the runner's report and figures
            "copy_out_max_bytes": int(artifact_bytes) + (64 << 20),
        }
        return setup

    def execution_request(
        self, code: str, inputs: Any, options: ExecutionOptions, ws: Workspace
    ) -> dict[str, Any]:
        request = super().execution_request(code, inputs, options, ws)
        if not _MACOS:
            # the sandbox's own process cap replaces RLIMIT_NPROC's per-user count
            request["limits"]["processes"] = None
        return request
