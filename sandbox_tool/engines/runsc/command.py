"""Finding ``runsc``, what it is, and the flags every call shares.

Debian ships gVisor as the ``runsc`` package (``apt-get install runsc``; 0.0~20221219 on
Debian 12, with the ptrace and kvm platforms). As root it runs its sandbox with the host's
privileges dropped; as any other user it needs ``--rootless`` (its sandbox then runs in a
user namespace of that user, which the kernel must allow).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

__all__ = ["PLATFORMS", "Runsc", "find_runsc"]

#: The platforms this project knows how to check; ptrace needs nothing but the kernel.
PLATFORMS = ("ptrace", "kvm")
_SEARCH = ("/usr/bin/runsc", "/usr/local/bin/runsc", "/usr/sbin/runsc")


@dataclass(frozen=True)
class Runsc:
    """One ``runsc`` binary and how this process calls it."""

    path: str
    version: str
    platform: str
    rootless: bool

    def flags(self, state: str, network: bool) -> list[str]:
        """The global flags of every call on the sandboxes kept in ``state``."""
        flags = [
            self.path,
            f"--root={state}",
            f"--platform={self.platform}",
            f"--network={'host' if network else 'none'}",
            "--ignore-cgroups",  # no host cgroup is created or needed
            "--host-uds=open",  # runners connect to the host's socket; they create none
        ]
        return flags + (["--rootless"] if self.rootless else [])

    def describe(self) -> str:
        mode = "rootless" if self.rootless else "as root"
        return f"runsc {self.version}, platform {self.platform}, {mode}"


def find_runsc(path: str | None = None) -> str | None:
    """``path``, or ``runsc`` on PATH or in the usual places; None if there is none."""
    if path:
        return path if os.access(path, os.X_OK) else None
    found = shutil.which("runsc")
    if found:
        return found
    return next((p for p in _SEARCH if os.access(p, os.X_OK)), None)


@functools.cache
def _version(path: str) -> str | None:
    try:
        out = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"runsc version (\S+)", out.stdout)
    return match.group(1) if match else None


def check(path: str | None, platform: str) -> tuple[Runsc | None, str]:
    """The ``runsc`` to use here, or None and why not (the remedy named)."""
    runsc = find_runsc(path)
    if runsc is None:
        return None, "runsc not found: install gVisor (Debian/Ubuntu: apt-get install runsc)"
    version = _version(runsc)
    if version is None:
        return None, f"{runsc} --version failed: reinstall gVisor"
    if platform not in PLATFORMS:
        return None, f"unknown gVisor platform {platform!r}; use one of {', '.join(PLATFORMS)}"
    if platform == "kvm" and not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return None, (
            "the kvm platform needs read-write access to /dev/kvm (add your user to the kvm "
            "group) and hardware virtualization; or use platform='ptrace'"
        )
    rootless = os.geteuid() != 0
    if rootless:
        reason = _userns_refused()
        if reason:
            return None, reason
    return Runsc(runsc, version, platform, rootless), ""


def _userns_refused() -> str | None:
    """Why an unprivileged user cannot create the user namespace rootless runsc needs."""
    for path, what in (
        ("/proc/sys/user/max_user_namespaces", "user.max_user_namespaces is 0"),
        ("/proc/sys/kernel/unprivileged_userns_clone", "kernel.unprivileged_userns_clone is 0"),
    ):
        try:
            with open(path) as f:
                if f.read().strip() == "0":
                    return (
                        f"rootless runsc needs unprivileged user namespaces ({what}): enable "
                        "them with sysctl, or run as root"
                    )
        except OSError:
            continue
    return None
