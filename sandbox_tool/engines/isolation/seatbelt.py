"""The process engine's macOS backend: a Seatbelt profile for ``sandbox-exec``.

**Untested on real macOS**: no macOS host runs this project's CI. The profile
is generated and unit-tested here (``tests/engines/test_seatbelt.py``); the
engine says so in its ``reason``.

The intent matches the Linux sandbox: deny by default; read-only access to the
interpreter, its libraries and the system's; read-write access to the
execution's work, temp and private dirs only; only the interpreter may be
executed; signals only within the sandbox; no network unless asked. Unlike
Linux it has no pid namespace (the code can see host processes, though not
signal them) and no per-sandbox process cap.

>>> "(deny default)" in seatbelt_profile(read_only=["/usr/lib"], read_write=["/tmp/w"],
...                                      executables=["/usr/bin/python3"])
True
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable

from sandbox_tool.engines.isolation.base import Isolation, Probe
from sandbox_tool.engines.runners.requests import RUNNER_PARENT
from sandbox_tool.engines.runners.workspace import Workspace
from sandbox_tool.options import ExecutionOptions

__all__ = ["SANDBOX_EXEC", "SYSTEM_READ_ONLY", "Seatbelt", "sbpl_string", "seatbelt_profile"]

SANDBOX_EXEC = "/usr/bin/sandbox-exec"

#: What any macOS process needs to read: system libraries, frameworks, dyld's cache.
SYSTEM_READ_ONLY = (
    "/usr/lib",
    "/usr/share",
    "/System/Library",
    "/Library/Frameworks",
    "/private/var/db/dyld",
    "/private/etc/localtime",
)
_DEVICES_RW = ("/dev/null", "/dev/zero")
_DEVICES_RO = ("/dev/urandom", "/dev/random")


def sbpl_string(text: str) -> str:
    """``text`` as an SBPL (Scheme) string literal: quotes and backslashes escaped."""
    if "\0" in text or "\n" in text:
        raise ValueError(f"path not representable in a Seatbelt profile: {text!r}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _subpaths(paths: Iterable[str]) -> str:
    # Seatbelt matches resolved paths (/tmp is /private/tmp): resolve, then dedupe
    real = sorted({os.path.realpath(p) for p in paths})
    return " ".join(f"(subpath {sbpl_string(p)})" for p in real)


def _literals(paths: Iterable[str]) -> str:
    return " ".join(f"(literal {sbpl_string(p)})" for p in paths)


def seatbelt_profile(
    *,
    read_only: Iterable[str],
    read_write: Iterable[str],
    executables: Iterable[str],
    network: bool = False,
) -> str:
    """An SBPL profile: deny everything, then allow exactly what the runner needs.

    ``read_only`` and ``read_write`` are directory trees (resolved with
    ``realpath``); ``executables`` the only programs ``execve`` may start.
    """
    ro = _subpaths([*SYSTEM_READ_ONLY, *read_only])
    rw = _subpaths(read_write)
    exe = _literals(sorted({os.path.realpath(p) for p in executables}))
    rules = [
        "(version 1)",
        "(deny default)",
        # Python resolves paths by stat-ing their parents; contents stay denied
        "(allow file-read-metadata)",
        f"(allow file-read* {ro})",
        f"(allow file-read* file-write* {rw})" if rw else "",
        f"(allow file-read* file-write-data {_literals(_DEVICES_RW)})",
        f"(allow file-read* {_literals(_DEVICES_RO)})",
        "(allow process-fork)",
        f"(allow process-exec {exe})" if exe else "",
        "(allow signal (target same-sandbox))",
        "(allow process-info* (target same-sandbox))",
        "(allow sysctl-read)",
        "(allow ipc-posix-sem)",
    ]
    if network:
        rules += ["(allow network-outbound)", "(allow network-inbound)", "(allow system-socket)"]
    else:
        rules.append("(deny network*)")
    return "\n".join(rule for rule in rules if rule) + "\n"


_PREFIXES = (
    "import json, sys; print(json.dumps(sorted({sys.prefix, sys.base_prefix, sys.exec_prefix,"
    " sys.base_exec_prefix})))"
)


class Seatbelt(Isolation):
    """The runner under ``sandbox-exec`` with a profile naming the execution's dirs.

    A profile is fixed when the process starts, so runners are never forked from a warm
    template. Untested on real macOS."""

    name = "seatbelt"
    forks_warm = False

    def __init__(self) -> None:
        self._prefixes: list[str] | None = None

    def probe(self, interpreter: str) -> Probe:
        if not os.access(SANDBOX_EXEC, os.X_OK):
            return False, "sandbox-exec not found"
        return True, "Seatbelt profile via sandbox-exec; UNTESTED on real macOS"

    def degraded(self, options: ExecutionOptions) -> list[str]:
        notes = [
            "isolation: Seatbelt profile, untested on real macOS; no pid namespace",
            "max_processes: RLIMIT_NPROC counts every process of the user on macOS",
            "max_disk_mb: not enforced on macOS",
            "memory_mb: macOS does not enforce RLIMIT_AS",
        ]
        if options.network:
            notes.append("network: the code shares the host's network (network=True)")
        return notes

    def _interpreter_prefixes(self, python: str) -> list[str]:
        if self._prefixes is None:
            out = subprocess.run(
                [python, "-I", "-c", _PREFIXES], capture_output=True, text=True, timeout=30,
                check=True,
            )  # fmt: skip
            self._prefixes = list(json.loads(out.stdout))
        return self._prefixes

    def wrap_argv(self, argv: list[str], ws: Workspace, options: ExecutionOptions) -> list[str]:
        python = argv[0]
        profile = seatbelt_profile(
            read_only=[*self._interpreter_prefixes(python), RUNNER_PARENT],
            read_write=[str(ws.work), str(ws.tmp), str(ws.meta)],
            executables=[python],
            network=options.network,
        )
        return [SANDBOX_EXEC, "-p", profile, *argv]
