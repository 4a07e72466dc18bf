"""Can this host boot a microsandbox microVM? Each check names what is missing and the
remedy, without booting anything.

microsandbox runs each VM with libkrun: on Linux on KVM (the CPU's VT-x or AMD-V, and a
``/dev/kvm`` the user can open read-write), on macOS on Hypervisor.framework (Apple
Silicon). The SDK has no availability call of its own; a boot on a host without
virtualization fails seconds later with a bare message (the cause is only in the VM's
runtime log, :mod:`.bootlog`). So the checks here come first, cheapest first, and all
failures are reported together:

1. the platform (Linux x86_64 or aarch64, macOS on arm64);
2. the SDK (``pip install 'sandbox-tool[microsandbox]'``) at the version this engine
   is written for, and the runtime its wheel bundles (``msb`` and ``libkrunfw``);
3. virtualization: the CPU's ``vmx``/``svm`` flag in ``/proc/cpuinfo`` (x86), a
   ``/dev/kvm`` character device, openable read-write; ``kern.hv_support`` on macOS;
4. then, only if all of those hold: the image is here (a rootfs directory, a disk image
   file, or an OCI reference in the local image cache, ``msb image inspect``: nothing is
   pulled), and ``msb doctor`` agrees.
"""

from __future__ import annotations

import importlib.util
import os
import platform as _platform
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["EXTRA", "SDK_SERIES", "Host", "Runtime", "check", "find_runtime", "image_problem"]

EXTRA = "pip install 'sandbox-tool[microsandbox]'"
#: The SDK series this engine is written against (its API changes between minors).
SDK_SERIES = "0.7."
_KVM_GROUP = "add your user to the kvm group (sudo usermod -aG kvm $USER, then log in again)"
_NESTED = (
    "enable VT-x/AMD-V in the firmware, or, inside a VM, enable nested virtualization on "
    "its host (or use a bare-metal host)"
)


def _sysctl(name: str) -> str | None:
    try:
        out = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True,
                             timeout=5, check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@dataclass(frozen=True)
class Host:
    """Where the checks look; tests point them at fakes."""

    platform: str = sys.platform
    machine: str = field(default_factory=_platform.machine)
    cpuinfo: str = "/proc/cpuinfo"
    kvm: str = "/dev/kvm"
    sysctl: Callable[[str], str | None] = _sysctl
    open_device: Callable[[str, int], int] = os.open


@dataclass(frozen=True)
class Runtime:
    """The SDK's runtime: its version, ``msb`` and ``libkrunfw``."""

    version: str
    msb: str
    libkrunfw: str


def virtualization_problems(host: Host) -> list[str]:
    """What stops this host from running a VM, each with its remedy (empty: nothing)."""
    if host.platform == "darwin":
        if host.machine != "arm64":
            return ["microsandbox on macOS needs Apple Silicon (this is an Intel Mac)"]
        if host.sysctl("kern.hv_support") != "1":
            return ["Hypervisor.framework is not available (kern.hv_support is not 1): "
                    "use macOS 11 or later on the Mac itself, not inside a VM"]  # fmt: skip
        return []
    if not host.platform.startswith("linux"):
        return [f"microsandbox needs Linux with KVM or macOS on Apple Silicon ({host.platform})"]
    problems = []
    x86 = host.machine in ("x86_64", "amd64", "i686")
    if x86 and not _cpu_flags(host.cpuinfo) & {"vmx", "svm"}:
        problems.append("the CPU exposes no virtualization (no vmx or svm flag in "
                        f"{host.cpuinfo}): {_NESTED}")  # fmt: skip
    problems += _kvm_problems(host)
    return problems


def _cpu_flags(cpuinfo: str) -> set[str]:
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "flags":
                    return set(value.split())
    except OSError:
        pass
    return set()


def _kvm_problems(host: Host) -> list[str]:
    device = host.kvm
    try:
        st = os.stat(device)
    except FileNotFoundError:
        return [f"there is no {device}: load the kvm module (modprobe kvm_intel or kvm_amd) "
                f"on a host with virtualization; {_NESTED}"]  # fmt: skip
    except OSError as exc:
        return [f"cannot look at {device}: {exc.strerror}"]
    if not stat.S_ISCHR(st.st_mode):
        return [f"{device} is not a character device: the KVM module is not loaded properly"]
    try:
        fd = host.open_device(device, os.O_RDWR | os.O_CLOEXEC)
    except PermissionError:
        return [f"cannot open {device} read-write (permission denied): {_KVM_GROUP}"]
    except OSError as exc:
        return [f"cannot open {device} read-write ({exc.strerror})"]
    os.close(fd)
    return []


def find_runtime() -> tuple[Runtime | None, list[str]]:
    """The installed SDK's runtime, or the problems that stop it, without importing it."""
    spec = importlib.util.find_spec("microsandbox")
    if spec is None or spec.origin is None:
        return None, [f"the microsandbox SDK is not installed: {EXTRA}"]
    from importlib.metadata import version as installed

    version = installed("microsandbox")
    if not version.startswith(SDK_SERIES):
        return None, [f"microsandbox {version} is installed but this engine is written for "
                      f"{SDK_SERIES}x: {EXTRA}"]  # fmt: skip
    bundled = Path(spec.origin).parent / "_bundled"
    msb = os.environ.get("MSB_PATH") or str(bundled / "bin" / "msb")
    libs = sorted((bundled / "lib").glob("libkrunfw*")) if (bundled / "lib").is_dir() else []
    libkrunfw = os.environ.get("MSB_LIBKRUNFW_PATH") or (str(libs[0]) if libs else "")
    problems = []
    if not (os.path.isfile(msb) and os.access(msb, os.X_OK)):
        problems.append(f"the microsandbox runtime has no executable msb at {msb}: "
                        f"reinstall it ({EXTRA} --force-reinstall)")  # fmt: skip
    if not (libkrunfw and os.path.isfile(libkrunfw)):
        problems.append(f"the microsandbox runtime has no libkrunfw in {bundled / 'lib'}: "
                        f"reinstall it ({EXTRA} --force-reinstall)")  # fmt: skip
    return (None if problems else Runtime(version, msb, libkrunfw)), problems


def image_problem(image: str, msb: str) -> str | None:
    """Why ``image`` cannot be booted from here, or None. A directory is a root file
    system (it needs a Python), a file a disk image, anything else an OCI reference that
    must be in the local image cache (the engine never pulls)."""
    hint = "see docs/microsandbox.md to build one, then pass image= or set " \
           "SANDBOX_TOOL_MICROSANDBOX_IMAGE"  # fmt: skip
    if image.startswith(("/", "./", "../", "~")):
        path = Path(image).expanduser()
        if path.is_dir():
            pythons = ("usr/bin/python3", "usr/local/bin/python3", "bin/python3")
            if not any(os.path.lexists(path / p) for p in pythons):
                return f"the root file system {path} has no python3: {hint}"
            return None
        if path.is_file():
            return None
        return f"the image {path} does not exist: {hint}"
    try:
        out = subprocess.run([msb, "image", "inspect", image], capture_output=True, text=True,
                             timeout=30, check=False, stdin=subprocess.DEVNULL)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot ask msb about the image {image}: {exc}"
    if out.returncode != 0:
        return (f"the image {image} is not in microsandbox's local cache (the engine never "
                f"pulls): load it with msb load, or {hint}")  # fmt: skip
    return None


def doctor_problem(msb: str) -> str | None:
    """``msb doctor``'s complaint (its error and hint lines), or None if it is happy."""
    try:
        out = subprocess.run([msb, "doctor"], capture_output=True, text=True, timeout=60,
                             check=False, stdin=subprocess.DEVNULL)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"msb doctor could not run: {exc}"
    if out.returncode == 0:
        return None
    lines = [ln.strip() for ln in (out.stderr + out.stdout).splitlines()]
    said = [ln for ln in lines if ln.startswith(("error:", "→"))]
    return "msb doctor: " + " ".join(said or lines[-3:])


def check(image: str, host: Host | None = None) -> tuple[bool, str]:
    """Whether this host can boot ``image`` as a microVM, and why (not)."""
    host = host or Host()
    problems = virtualization_problems(host)
    runtime, missing = find_runtime()
    problems += missing
    if not problems and runtime is not None:
        late = image_problem(image, runtime.msb) or doctor_problem(runtime.msb)
        problems += [late] if late else []
    if problems:
        return False, "; ".join(problems)
    assert runtime is not None
    return True, f"microVMs (microsandbox {runtime.version}, libkrun) from the image {image}"
