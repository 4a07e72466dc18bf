"""The microsandbox engine: the runner in a microVM with its own guest kernel.

Security level 9. Through the microsandbox SDK (``pip install
'sandbox-tool[microsandbox]'``, no server, no API key: each VM is a child process of
this one, run by libkrun on KVM or on macOS's Hypervisor.framework), the engine boots a
VM from an image that holds Python and the libraries the code may import
(``docs/microsandbox.md``), keeps it running, and starts a fresh runner in it for every
execution (:class:`~sandbox_tool.engines.isolation.microvm.MicroVM`).

What it stops: everything the process engine stops, inside the guest (namespaces, a
private root, an unprivileged uid, seccomp, rlimits, the process cap, a size-capped
tmpfs; landlock only where the guest kernel has it, and libkrunfw's shows none); and,
around that, a hardware
virtualization boundary: the code runs on the guest's kernel, sees none of the host's
files, processes or devices, and has no network (``network=True``: the public internet,
never the host's loopback or private networks).

What it does not stop: bugs in KVM or libkrun's device emulation (the VM boundary);
within one VM, the guest kernel is shared by the executions running in it (a guest kernel
exploit reaches the other executions of that VM, not the host); the memory of the VM is
shared by the executions running in it at once. microsandbox writes a copy of every
exec's output (here: the runner's channel, so results and artifacts) to the VM's
``exec.log`` under ``$MSB_HOME`` (rotated at 3 x 10 MiB), removed with the VM when the
engine closes.

It needs hardware virtualization: ``sandbox-tool engines`` says what is missing (no
vmx/svm flag, no ``/dev/kvm``, no permission on it, no SDK, no image) and the remedy.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from sandbox_tool.engines.isolation.microvm import MicroVM, default_image
from sandbox_tool.engines.runner_engine import DEFAULT_PRELOAD, RunnerEngine
from sandbox_tool.engines.runners.runner import Runner
from sandbox_tool.engines.vm.machines import VMSpec
from sandbox_tool.options import ExecutionOptions

__all__ = ["MicrosandboxEngine"]


def _default_cpus() -> int:
    return min(2, os.cpu_count() or 1)


class MicrosandboxEngine(RunnerEngine):
    """The runner in a shared microVM, each execution in its own sandbox inside it.

    >>> engine = MicrosandboxEngine()                                  # the default image
    >>> engine = MicrosandboxEngine(image="/srv/rootfs-datascience", cpus=2)

    ``image``: a root file system directory, a disk image file or an OCI reference in
    microsandbox's local cache (default ``$SANDBOX_TOOL_MICROSANDBOX_IMAGE``, else
    ``sandbox-tool-datascience:latest``); ``cpus``: the VMs' CPUs; ``guest_python``: the
    guest's Python 3.10+; ``boot_timeout``: seconds a VM gets to boot and be prepared;
    ``accept_degraded``: run without the runner's sandbox inside the guest when its
    kernel cannot build it (and say so in every result).
    """

    name = "microsandbox"
    security_level = 9
    summary = (
        "a microVM with its own guest kernel (microsandbox: libkrun on KVM or macOS "
        "Hypervisor.framework), booted once per settings and shared; each execution a fresh "
        "runner in the guest's own namespaces, private root, unprivileged uid, seccomp and "
        "rlimits (no landlock in the guest kernel); no network unless asked; needs hardware "
        "virtualization and an image with Python"
    )
    offers_warm = False
    #: Environments are host venvs; the guest has only its image's Python.
    supports_environments = False

    def __init__(
        self,
        interpreter: str | None = None,
        *,
        image: str | None = None,
        cpus: int | None = None,
        guest_python: str = "python3",
        boot_timeout: float = 300.0,
        work_root: Path | None = None,
        accept_degraded: bool = False,
        isolation: MicroVM | None = None,
        warm: bool = True,
        preload: Sequence[str] = DEFAULT_PRELOAD,
        max_concurrent: int | None = None,
        max_queued: int = 64,
    ) -> None:
        if isolation is None:
            spec = VMSpec(image=image or default_image(), cpus=cpus or _default_cpus(),
                          python=guest_python, boot_timeout=boot_timeout,
                          work_root=str(work_root or tempfile.gettempdir()))  # fmt: skip
            isolation = MicroVM(spec, accept_degraded=accept_degraded)
        super().__init__(
            interpreter, isolation=isolation, work_root=work_root, warm=False, preload=preload,
            max_concurrent=max_concurrent, max_queued=max_queued,
        )  # fmt: skip
        #: The strategy, typed (``isolation`` is the same object).
        self.vm = isolation

    @classmethod
    def make_isolation(cls, *, accept_degraded: bool = False) -> MicroVM:
        spec = VMSpec(image=default_image(), cpus=_default_cpus())
        return MicroVM(spec, accept_degraded=accept_degraded)

    async def _take(self, options: ExecutionOptions) -> tuple[Runner, bool]:
        # the VM for these settings must run before the runner's relay is started
        await asyncio.to_thread(self.vm.ensure_vm, options)
        return await super()._take(options)

    async def aclose(self) -> None:
        await super().aclose()
        await asyncio.to_thread(self.vm.close)
