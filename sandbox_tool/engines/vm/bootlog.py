"""Why a microVM did not boot, from its own logs rather than the SDK's bare message.

When a VM dies before its agent answers, the SDK raises ``MicrosandboxError("failed to
start ...: sandbox process exited (exit status: 1) before agent relay became
available")``. The cause is on disk, in the sandbox's log directory
(``$MSB_HOME/sandboxes/<name>/logs/``): ``boot-error.json`` (a failed mount, image or
network set-up: its stage and message), else the ``ERROR`` lines of ``runtime.log`` (the
VMM, e.g. ``Received KVM_EXIT_INTERNAL_ERROR signal``), else the end of ``kernel.log``
(the guest kernel). Known causes get their remedy.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BootFailure", "logs_dir", "msb_home", "read_cause"]

#: How much of the end of each log is read (they rotate at 10 MiB).
_TAIL_BYTES = 64 << 10
_TIMESTAMP = re.compile(r"^\S+Z\s+")
_REMEDIES = (
    ("KVM_EXIT_INTERNAL_ERROR", "the CPU's virtualization cannot run the guest: on a VM, "
     "enable nested virtualization on its host, or use a bare-metal host"),
    ("KVM_CREATE_VM", "KVM refused to create a VM: check that VT-x/AMD-V is enabled and that "
     "no other hypervisor holds it"),
    ("/dev/kvm", "add your user to the kvm group (sudo usermod -aG kvm $USER, then log in "
     "again)"),
    ("Kernel panic", "the guest kernel panicked: give the VM more memory (memory_mb) or check "
     "the image"),
    ("No such file or directory", "a path the VM needs does not exist: check image= and the "
     "work root"),
)  # fmt: skip


@dataclass(frozen=True)
class BootFailure:
    """The cause found in a VM's logs, the remedy when it is a known one, and where the
    logs are."""

    cause: str
    remedy: str | None
    logs: Path

    def describe(self) -> str:
        text = f"{self.cause} (from {self.logs})"
        return f"{text}; {self.remedy}" if self.remedy else text


def msb_home() -> Path:
    """The runtime's home: ``MSB_HOME``, or ``~/.microsandbox``."""
    return Path(os.environ.get("MSB_HOME") or Path.home() / ".microsandbox")


def logs_dir(home: Path, name: str) -> Path:
    return home / "sandboxes" / name / "logs"


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - _TAIL_BYTES))
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _boot_error(logs: Path) -> str | None:
    text = _tail(logs / "boot-error.json")
    if not text:
        return None
    try:
        error = json.loads(text)
        return f"{error.get('stage', 'boot')}: {error['message']}"
    except (ValueError, KeyError, TypeError, AttributeError):
        return text.strip()[-500:]


def _runtime_errors(logs: Path) -> str | None:
    lines = [_TIMESTAMP.sub("", ln).strip() for ln in _tail(logs / "runtime.log").splitlines()]
    errors = [ln for ln in lines if ln.startswith("ERROR")]
    if not errors:
        return None
    return " / ".join(ln.removeprefix("ERROR").strip() for ln in errors[-3:])


def _kernel_end(logs: Path) -> str | None:
    lines = [ln.strip() for ln in _tail(logs / "kernel.log").splitlines() if ln.strip()]
    return " / ".join(lines[-3:]) or None


def read_cause(home: Path, name: str) -> BootFailure | None:
    """The cause of sandbox ``name``'s failed boot, or None when its logs say nothing."""
    logs = logs_dir(home, name)
    cause = _boot_error(logs) or _runtime_errors(logs) or _kernel_end(logs)
    if cause is None:
        return None
    remedy = next((fix for sign, fix in _REMEDIES if sign in cause), None)
    return BootFailure(cause[-1000:], remedy, logs)
