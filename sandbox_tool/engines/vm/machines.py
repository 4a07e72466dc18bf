"""The microVMs of one engine: booted on first use for a settings key, kept running and
shared by that key's executions, destroyed when the engine closes.

A VM is booted (``Sandbox.create``, in this process: it dies with it), then prepared
once: the runner package is written into a tmpfs of the guest and unpacked by the
guest's Python, the guest role probes which sandbox layers the guest kernel supports,
and matplotlib's font cache is built there. Each execution then costs one exec in the
running VM (:mod:`.relay`), never a boot. A VM found stopped when an execution comes is
replaced.

The SDK is async-only and its objects are used from one event loop: this module runs
them on a loop of its own, in a daemon thread, so the engine works from any caller's
loop (``execute_sync`` makes a new one per call) and from its start-up thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import io
import itertools
import json
import os
import tempfile
import threading
import zipfile
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sandbox_tool.engines.runners.runner import running
from sandbox_tool.engines.vm import bootlog
from sandbox_tool.engines.vm.sdk import (
    VMKey,
    boot_error,
    boot_error_uses_logs,
    create_kwargs,
    import_sdk,
    map_error,
)
from sandbox_tool.errors import EngineUnavailable, SandboxError
from sandbox_tool.runner import mux

__all__ = ["PREFIX", "Machine", "Machines", "VMSpec", "owner_tag", "runner_zip"]

T = TypeVar("T")
PREFIX = "sandbox-tool-"
_RUNNER = Path(__file__).resolve().parents[2] / "runner"
_UNPACK = "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])"
_FONTS = "import matplotlib.font_manager"
#: How long one preparation step in a fresh VM may take (the font cache: ~1 s).
_STEP_SECONDS = 120.0
_ENGINE = "microsandbox"
#: VM names are unique in this process, across engines (a name is replaced on create).
_NAMES = itertools.count(1)
#: How long a failed boot's logs are read again while they say nothing: the runtime may
#: still be writing them when the SDK reports the failure (seen on a loaded machine).
_LOG_WAIT_SECONDS, _LOG_POLL_SECONDS = 2.0, 0.05


@dataclass(frozen=True)
class VMSpec:
    """How this engine's VMs are made (the key adds network and memory)."""

    image: str
    """A root file system directory, a disk image file, or a cached OCI reference."""
    cpus: int = 1
    python: str = "python3"
    """The guest's Python (3.10+, with the libraries the code may import)."""
    guest_dir: str = "/run/sandbox-tool"
    """Where the runner lives in the guest (a tmpfs)."""
    work_root: str = field(default_factory=tempfile.gettempdir)
    """The host's parent of the executions' dirs; the guest has a tmpfs at the same path."""
    sdk: str = "microsandbox"
    sdk_path: str | None = None
    boot_timeout: float = 300.0


@dataclass
class Machine:
    """A running VM of this engine."""

    name: str
    key: VMKey
    vm: Any
    layers: dict[str, Any]
    """What the guest role's probe said: ``available``, ``skip``, ``reason``, ``python``."""


def owner_tag() -> str:
    """``<pid namespace>.<pid>`` of this process: whose VMs these are."""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        namespace = 0
    return f"{namespace}.{os.getpid()}"


@functools.cache
def runner_zip() -> bytes:
    """The runner package (its Python files only) as a zip, ``runner/...`` inside."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(_RUNNER.rglob("*.py")):
            archive.write(path, str(Path("runner") / path.relative_to(_RUNNER)))
    return buffer.getvalue()


class _Loop:
    """An event loop in a daemon thread, for the SDK's coroutines."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="sandbox-tool-vm",
                                       daemon=True)  # fmt: skip
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """``coro``'s result; past ``timeout`` seconds it is cancelled and
        ``TimeoutError`` raised."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError from None

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        if not self.thread.is_alive():
            self.loop.close()


class Machines:
    """This engine's VMs, one per :class:`VMKey` in use. Thread-safe; blocking."""

    def __init__(self, spec: VMSpec) -> None:
        self.spec = spec
        self.home = bootlog.msb_home()
        self.owner = owner_tag()
        self._lock = threading.Lock()
        self._machines: dict[VMKey, Machine] = {}
        self._loop: _Loop | None = None
        self._sdk: Any = None

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        if self._loop is None:
            self._loop = _Loop()
        return self._loop.run(coro, timeout)

    @property
    def sdk(self) -> Any:
        if self._sdk is None:
            self._sdk = import_sdk(self.spec.sdk)
        return self._sdk

    def ensure(self, key: VMKey) -> Machine:
        """The running VM for ``key``, booted now if there is none or it stopped."""
        with self._lock:
            machine = self._machines.get(key)
            if machine is not None and self._run(self._running(machine.name)):
                return machine
            if machine is not None:  # it stopped (crashed, killed): replace it
                del self._machines[key]
                self._run(self._destroy(machine.name, machine.vm))
            try:
                machine = self._run(self._boot(key), self.spec.boot_timeout)
            except TimeoutError:
                raise EngineUnavailable(
                    f"microsandbox engine: the microVM did not boot and get ready within "
                    f"{self.spec.boot_timeout:g} s (raise boot_timeout)",
                    engine=_ENGINE,
                ) from None
            self._machines[key] = machine
            return machine

    def machines(self) -> list[Machine]:
        with self._lock:
            return list(self._machines.values())

    def close(self) -> None:
        """Kill and remove every VM (their logs go with them); nothing is left running."""
        with self._lock:
            machines, self._machines = list(self._machines.values()), {}
            loop, self._loop = self._loop, None
        if loop is None:
            return
        for machine in machines:
            loop.run(self._destroy(machine.name, machine.vm), 60)
        loop.stop()

    def sweep_stale(self) -> int:
        """Remove the VMs (stopped, with their logs) that engines of processes of this pid
        namespace that are gone left behind; return how many."""
        return self._run(self._sweep(), 60)

    # -- on the loop ------------------------------------------------------------------

    async def _running(self, name: str) -> bool:
        sdk = self.sdk
        try:
            handle = await sdk.Sandbox.get(name)
        except sdk.MicrosandboxError:
            return False
        return bool(handle.status == sdk.SandboxStatus.RUNNING)

    async def _boot_cause(self, name: str) -> bootlog.BootFailure | None:
        """The cause in failed VM ``name``'s logs, read again for up to
        :data:`_LOG_WAIT_SECONDS` while they say nothing."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _LOG_WAIT_SECONDS
        failure = bootlog.read_cause(self.home, name)
        while failure is None and loop.time() < deadline:
            await asyncio.sleep(_LOG_POLL_SECONDS)
            failure = bootlog.read_cause(self.home, name)
        return failure

    async def _boot(self, key: VMKey) -> Machine:
        sdk, spec = self.sdk, self.spec
        name = f"{PREFIX}{self.owner}-{next(_NAMES)}"
        kwargs = create_kwargs(sdk, image=spec.image, key=key, cpus=spec.cpus,
                               work_root=spec.work_root, guest_dir=spec.guest_dir,
                               owner=self.owner)  # fmt: skip
        try:
            vm = await sdk.Sandbox.create(name, **kwargs)
        except sdk.MicrosandboxError as exc:
            # its logs stay where the message points (the next engine's sweep removes
            # them once this process is gone)
            failure = await self._boot_cause(name) if boot_error_uses_logs(exc) else None
            raise boot_error(exc, failure, str(bootlog.logs_dir(self.home, name))) from exc
        try:
            layers = await self._prepare(vm)
        except BaseException:
            await self._destroy(name, vm)
            raise
        return Machine(name, key, vm, layers)

    async def _prepare(self, vm: Any) -> dict[str, Any]:
        """Put the runner into the fresh VM, ask the guest what it supports, build the
        font cache. Each step's failure makes the engine unavailable, with the reason."""
        spec = self.spec
        archive = f"{spec.guest_dir}/runner.zip"
        await self._step(vm.fs.write(archive, runner_zip()), "write the runner into the VM")
        unpacked = await self._step(
            vm.exec(spec.python, ["-I", "-c", _UNPACK, archive, spec.guest_dir],
                    timeout=_STEP_SECONDS), "unpack the runner in the VM")  # fmt: skip
        if unpacked.exit_code != 0:
            raise self._unavailable(
                f"the image's {spec.python} could not unpack the runner (status "
                f"{unpacked.exit_code}): {unpacked.stderr_text[-500:]}"
            )
        probed = await self._step(
            vm.exec(spec.python, ["-I", "-B", "-c", mux.GUEST_BOOTSTRAP, spec.guest_dir, "probe"],
                    timeout=_STEP_SECONDS), "probe the guest's sandbox layers")  # fmt: skip
        try:
            layers: dict[str, Any] = json.loads(probed.stdout_text.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise self._unavailable(f"the guest's layer probe failed (status {probed.exit_code}): "
                                    f"{probed.stderr_text[-500:]}") from None  # fmt: skip
        if tuple(int(n) for n in str(layers.get("python", "0.0")).split(".")[:2]) < (3, 10):
            raise self._unavailable(f"the image's Python is {layers.get('python')}; the runner "
                                    "needs 3.10 or later")  # fmt: skip
        env = {"MPLCONFIGDIR": f"{spec.guest_dir}/mplconfig", "MPLBACKEND": "Agg"}
        # without matplotlib in the image this fails, and that is fine
        await self._step(vm.exec(spec.python, ["-I", "-c", _FONTS], env=env,
                                 timeout=_STEP_SECONDS), "build the font cache")  # fmt: skip
        return layers

    async def _step(self, call: Coroutine[Any, Any, T], what: str) -> T:
        try:
            return await call
        except self.sdk.MicrosandboxError as exc:
            raise self._unavailable(str(map_error(exc, what=what))) from exc

    def _unavailable(self, reason: str) -> SandboxError:
        return EngineUnavailable(f"microsandbox engine: the microVM booted but {reason}",
                                 engine=_ENGINE)  # fmt: skip

    async def _destroy(self, name: str, vm: Any) -> None:
        """Kill ``vm`` (when there is one) and remove its state; best effort: a VM this
        process started dies with it anyway."""
        sdk = self.sdk
        if vm is not None:
            try:
                await vm.kill()
            except sdk.MicrosandboxError:
                pass
        try:
            await sdk.Sandbox.remove(name)
        except sdk.MicrosandboxError:
            pass

    async def _sweep(self) -> int:
        sdk = self.sdk
        namespace = self.owner.split(".")[0]
        removed, cursor = 0, None
        while True:
            page = await sdk.Sandbox.list_with(cursor=cursor)
            for handle in page.sandboxes:
                owner = handle.name[len(PREFIX) :].split("-", 1)[0]
                ns, _, pid = owner.partition(".")
                if not handle.name.startswith(PREFIX) or ns != namespace or not pid.isdigit():
                    continue
                if running(int(pid)) or handle.status == sdk.SandboxStatus.RUNNING:
                    continue
                try:
                    await sdk.Sandbox.remove(handle.name)
                    removed += 1
                except sdk.MicrosandboxError:
                    continue
            cursor = page.next_cursor
            if cursor is None:
                return removed
