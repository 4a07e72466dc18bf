"""The adapter to the microsandbox SDK: options in, errors out, in one place.

Everything the engine asks of the SDK goes through the few calls named here
(``Sandbox.create`` with the settings :func:`create_kwargs` maps, ``fs.write``, ``exec``,
``kill``, ``Sandbox.get``/``list_with``/``remove``, and the relay's ``exec_stream``), so
that a change of the SDK's surface shows up in one module and in the test that compares
the SDK double's signatures with the installed SDK's. The SDK is imported lazily
(:func:`import_sdk`): ``import sandbox_tool`` never loads it.

:func:`map_error` turns each of the SDK's exception classes into the ``SandboxError``
that names the remedy; a boot failure gets its cause from the VM's logs
(:func:`boot_error`).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from sandbox_tool.engines.vm.bootlog import BootFailure
from sandbox_tool.engines.vm.host import EXTRA
from sandbox_tool.errors import EngineError, EngineUnavailable, SandboxError, UsageError

__all__ = [
    "GUEST_RESERVE_MIB",
    "VMKey",
    "boot_error",
    "boot_error_uses_logs",
    "create_kwargs",
    "image_source",
    "import_sdk",
    "map_error",
    "network",
]

#: Guest memory beyond the execution's own: the guest kernel, its agent, the runner.
GUEST_RESERVE_MIB = 256
_ENGINE = "microsandbox"


@dataclass(frozen=True)
class VMKey:
    """The settings a VM is booted with; executions with the same key share a VM."""

    network: bool
    memory_mib: int

    @classmethod
    def of(cls, network: bool, memory_mb: int, max_disk_mb: int) -> VMKey:
        """Room for one execution's memory (``memory_mb``) and files (``max_disk_mb``, a
        tmpfs in the guest's memory) beside the guest's own."""
        return cls(network, memory_mb + max_disk_mb + GUEST_RESERVE_MIB)


def import_sdk(module: str = "microsandbox") -> ModuleType:
    """The SDK module, or ``EngineUnavailable`` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise EngineUnavailable(
            f"microsandbox engine: the SDK cannot be imported ({exc}): {EXTRA}", engine=_ENGINE
        ) from exc


def image_source(sdk: Any, image: str) -> Any:
    """A root file system directory (``Image.bind``), a disk image file (``Image.disk``),
    or an OCI reference from the local cache (passed as is)."""
    path = os.path.expanduser(image)
    if image.startswith(("/", "./", "../", "~")):
        if os.path.isdir(path):
            return sdk.Image.bind(os.path.abspath(path))
        return sdk.Image.disk(os.path.abspath(path))
    return image


def network(sdk: Any, enabled: bool) -> Any:
    """All traffic denied both ways, or DNS and the public internet only (never the
    host's loopback or its private networks)."""
    if not enabled:
        return sdk.Network.none()
    return sdk.Network.from_profiles(sdk.NetworkProfile.PUBLIC)


def create_kwargs(
    sdk: Any,
    *,
    image: str,
    key: VMKey,
    cpus: int,
    work_root: str,
    guest_dir: str,
    owner: str,
) -> dict[str, Any]:
    """``Sandbox.create``'s keyword arguments for a VM of ``key``.

    Two tmpfs volumes keep the guest's writes off its image: ``work_root`` (the
    executions' dirs live at the host's paths there) and ``guest_dir`` (the runner's
    files). Nothing is pulled: an OCI image must be in the local cache."""
    return {
        "image": image_source(sdk, image),
        "memory": key.memory_mib,
        "cpus": cpus,
        "network": network(sdk, key.network),
        "volumes": {work_root: sdk.Volume.tmpfs(), guest_dir: sdk.Volume.tmpfs(size_mib=64)},
        "workdir": "/",
        "labels": {"sandbox-tool": owner},
        "pull_policy": sdk.PullPolicy.NEVER,
        "replace": True,
    }


# What each SDK error means for an engine (matched by class name, most specific first).
_UNAVAILABLE = {
    "RuntimeNotInstalledError": f"the microsandbox runtime is missing: {EXTRA} --force-reinstall",
    "RuntimeIncompleteError": "the microsandbox runtime is incomplete (check MSB_PATH, "
    f"MSB_LIBKRUNFW_PATH and MSB_HOME, or {EXTRA} --force-reinstall)",
    "ImageNotFoundError": "the image is not in microsandbox's local cache (the engine never "
    "pulls): load it with msb load or pass a root file system directory as image= "
    "(docs/microsandbox.md)",
    "ImagePullFailedError": "the image is not in microsandbox's local cache (the engine never "
    "pulls): load it with msb load or pass a root file system directory as image= "
    "(docs/microsandbox.md)",
    "UnsupportedError": "this microsandbox backend cannot run the engine's VMs: use the local "
    "backend",
    "UnsupportedOperationError": f"the microsandbox runtime is too old for this SDK: {EXTRA} "
    "--force-reinstall",
}
_GONE = ("SandboxNotFoundError", "SandboxNotRunningError", "SandboxReplacedError",
         "SandboxStopTimedOutError", "StopTimeoutError")  # fmt: skip


def map_error(exc: BaseException, *, what: str) -> SandboxError:
    """The ``SandboxError`` for an SDK exception raised while doing ``what`` (a phrase:
    "boot the microVM", "start the runner"); ``raise map_error(...) from exc``."""
    names = [cls.__name__ for cls in type(exc).__mro__]
    detail = f"{type(exc).__name__}: {exc}"
    for name in names:
        if name in _UNAVAILABLE:
            return EngineUnavailable(
                f"microsandbox engine: could not {what} ({detail}): {_UNAVAILABLE[name]}",
                engine=_ENGINE,
            )
        if name == "InvalidConfigError":
            return UsageError(
                f"microsandbox refused the VM's settings when asked to {what} ({detail}); "
                "check image=, cpus=, work_root= and the execution's memory_mb"
            )
        if name in _GONE:
            return EngineError(
                f"the microVM stopped while the engine tried to {what} ({detail}); the next "
                "execution boots a new one"
            )
        if name == "ExecFailedError":
            return EngineError(
                f"the microVM could not run its Python to {what} ({detail}): the image needs "
                "Python 3.10+ as python3 (or pass guest_python=)"
            )
    return EngineError(f"microsandbox failed to {what} ({detail})")


def boot_error_uses_logs(exc: BaseException) -> bool:
    """Whether :func:`boot_error` gives ``exc`` the cause from the VM's logs (not when the
    SDK's own error class says something more precise)."""
    return isinstance(map_error(exc, what="boot the microVM"), EngineError)


def boot_error(exc: BaseException, failure: BootFailure | None, logs: str) -> SandboxError:
    """A VM that did not boot: unavailable, with the cause from its logs unless the SDK's
    own error class says something more precise."""
    if not boot_error_uses_logs(exc):
        return map_error(exc, what="boot the microVM")
    cause = failure.describe() if failure is not None else f"its logs ({logs}) say nothing"
    return EngineUnavailable(
        f"microsandbox engine: the microVM did not boot: {cause} (the SDK said: {exc})",
        engine=_ENGINE,
    )
