"""The microsandbox engine's strategy: the runner in a microVM with its own guest kernel.

- **One VM per settings, shared.** A VM is booted for the first execution of a
  ``(network, memory)`` setting and kept running (:mod:`sandbox_tool.engines.vm.machines`);
  each execution is a fresh runner started in it by one exec, so no execution pays a boot.
- **The runner's own sandbox inside the guest.** Executions that share a VM are kept
  apart by the same layers the process engine builds on the host (user, pid, net, ipc,
  uts, mount namespaces, a private read-only root, an unprivileged uid, seccomp, the
  process cap and a size-capped tmpfs), built by the guest kernel. The guest role probes
  them at boot; the bundled guest kernel (libkrunfw's) shows no landlock, and a layer left
  out is said in every result. A guest whose kernel cannot build the sandbox makes the
  engine refuse to start, unless ``accept_degraded=True``.
- **The transport.** A VM has no host file descriptors, so ``wrap_argv`` makes the
  runner process a relay (:mod:`sandbox_tool.engines.vm.relay`) that carries the
  runner's four channels over the VM's exec; the driver, its timeout, output cap and
  kill, and the answers are the shared machinery's.
- **Limits.** The VM has ``memory_mb + max_disk_mb + 256`` MiB and the engine's CPUs;
  inside it, the worker's rlimits bound each process. Network: the VM's policy denies all
  traffic (``Network.none()``) and the execution's namespace has only loopback; with
  ``network=True``, DNS and the public internet only.

What the guest and host share: nothing but what the VM's devices carry (the exec's
streams, the two tmpfs volumes are the guest's own memory); the runner's files are
copied in at boot, the inputs per execution, the outputs come back as answers (and, when
a runner did not answer, as files within the copy-out budget).
"""

from __future__ import annotations

import json
import os
import sys
import weakref
from collections.abc import Callable, Hashable
from typing import Any

from sandbox_tool.budgets import Budgets
from sandbox_tool.engines.isolation.base import Isolation, Probe
from sandbox_tool.engines.isolation.linux import LinuxNamespaces
from sandbox_tool.engines.runners.workspace import Workspace
from sandbox_tool.engines.vm import host
from sandbox_tool.engines.vm.machines import Machine, Machines, VMSpec
from sandbox_tool.engines.vm.relay import RELAY_BOOTSTRAP, RelayConfig
from sandbox_tool.engines.vm.sdk import VMKey
from sandbox_tool.errors import EngineError, EngineUnavailable
from sandbox_tool.options import ExecutionOptions
from sandbox_tool.runner.protocol import IsolationSetup

__all__ = ["DEFAULT_IMAGE", "IMAGE_ENV", "MicroVM", "default_image"]

#: The image the engine boots unless told otherwise (``docs/microsandbox.md`` builds it).
DEFAULT_IMAGE = "sandbox-tool-datascience:latest"
IMAGE_ENV = "SANDBOX_TOOL_MICROSANDBOX_IMAGE"
_ENGINE = "microsandbox"
_PACKAGE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def default_image() -> str:
    """``$SANDBOX_TOOL_MICROSANDBOX_IMAGE``, or :data:`DEFAULT_IMAGE`."""
    return os.environ.get(IMAGE_ENV) or DEFAULT_IMAGE


class MicroVM(Isolation):
    """Runners in shared microVMs, each in its own sandbox inside the guest.

    ``check(image)`` says whether this host can boot the image (default: the host checks
    of :mod:`sandbox_tool.engines.vm.host`)."""

    name = "microvm"
    forks_warm = False
    #: On a timeout: the guest's sandbox saves its files, which then cross the VM.
    stop_grace = 3.0

    def __init__(
        self,
        spec: VMSpec,
        *,
        accept_degraded: bool = False,
        check: Callable[[str], Probe] = host.check,
    ) -> None:
        self.spec = spec
        self.accept_degraded = accept_degraded
        self.check = check
        self.machines = Machines(spec)
        #: What the guest said it supports, once a VM was prepared.
        self.guest_layers: dict[str, Any] | None = None
        self.promises_layers = False
        self.caps_processes = False
        self._sandbox = LinuxNamespaces(accept_degraded=True)
        self._probe: Probe | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    def probe(self, interpreter: str) -> Probe:
        if self._probe is None:
            self._probe = self.check(self.spec.image)
        return self._probe

    def prepare(self, interpreter: str) -> None:
        available, reason = self.probe(interpreter)
        if not available:
            raise EngineUnavailable(f"microsandbox engine: {reason}", engine=_ENGINE)
        if self._finalizer is None:  # an engine dropped without aclose() still stops its VMs
            self._finalizer = weakref.finalize(self, Machines.close, self.machines)
        self.machines.sweep_stale()
        self._adopt(self.machines.ensure(self.vm_key(ExecutionOptions())).layers)

    def _adopt(self, layers: dict[str, Any]) -> None:
        if layers.get("available"):
            self._sandbox.skip_layers = tuple(str(layer) for layer in layers.get("skip") or ())
            self.promises_layers = self.caps_processes = True
        elif not self.accept_degraded:
            raise EngineUnavailable(
                f"microsandbox engine: the guest kernel cannot build the runner's sandbox "
                f"({layers.get('reason')}), so executions sharing a VM would not be isolated "
                "from each other; accept_degraded=True runs them without it (and says so)",
                engine=_ENGINE,
            )
        self.guest_layers = layers

    def degraded(self, options: ExecutionOptions) -> list[str]:
        notes = []
        if "landlock" in self._sandbox.skip_layers:
            notes.append(
                "landlock: the guest kernel has none; inside the VM each execution still has "
                "its own namespaces, private root and seccomp filter"
            )
        if self.guest_layers is not None and not self.promises_layers:
            notes.append(
                "isolation between executions: the guest kernel cannot build the runner's "
                f"sandbox ({self.guest_layers.get('reason')}); executions that share a VM run "
                "as its "
                "root user and can reach each other's files and processes (accept_degraded)"
            )
        if options.network:
            notes.append("network: the VM reaches public internet addresses (network=True); "
                         "the host's loopback and private networks stay unreachable")  # fmt: skip
        memory = self.vm_key(options).memory_mib
        notes.append(
            f"memory_mb, cpu_seconds: rlimits bound each process inside the VM, and the VM's "
            f"{memory} MiB bound everything it runs (executions running in it at once share "
            "them); the host's poll of the runner's tree sees only its relay"
        )
        return notes

    @staticmethod
    def vm_key(options: ExecutionOptions) -> VMKey:
        return VMKey.of(options.network, options.memory_mb, options.max_disk_mb)

    def pool_key(self, options: ExecutionOptions) -> Hashable:
        return self.vm_key(options), self._sandbox.pool_key(options)

    def setup(self, ws: Workspace, key: Hashable) -> IsolationSetup | None:
        assert isinstance(key, tuple)
        return self._sandbox.setup(ws, key[1]) if self.promises_layers else None

    def ensure_vm(self, options: ExecutionOptions) -> Machine:
        """The running VM for ``options``, booted now if needed. Blocking."""
        machine = self.machines.ensure(self.vm_key(options))
        if self.guest_layers is None:
            self._adopt(machine.layers)
        return machine

    def wrap_argv(self, argv: list[str], ws: Workspace, options: ExecutionOptions) -> list[str]:
        """The relay, in place of the runner (``argv``, the host interpreter's bootstrap,
        does not run here: the guest's Python runs the runner)."""
        key = self.vm_key(options)
        machine = next((m for m in self.machines.machines() if m.key == key), None)
        if machine is None:
            raise EngineError("no microVM is running for these settings (ensure_vm first)")
        config: RelayConfig = {
            "vm": machine.name,
            "sdk": self.spec.sdk,
            "sdk_path": self.spec.sdk_path,
            "msb_home": str(self.machines.home),
            "python": self.spec.python,
            "guest_parent": self.spec.guest_dir,
            "mplconfig": f"{self.spec.guest_dir}/mplconfig",
            "copy_out_max_bytes": Budgets.copy_out_for(options.max_artifact_bytes),
            "stop_grace": self.stop_grace,
            "connect_timeout": 30.0,
        }
        engines = os.path.join(_PACKAGE, "engines")
        return [sys.executable, "-I", "-B", "-c", RELAY_BOOTSTRAP, _PACKAGE, engines,
                json.dumps(config)]  # fmt: skip

    def close(self) -> None:
        """Destroy the VMs (blocking)."""
        self.machines.close()
