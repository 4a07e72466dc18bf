"""The adapter's mapping, without a VM: options onto the SDK's settings (checked against
the installed SDK's own types and ``Sandbox.create``'s declared parameters), the SDK's
results onto the engine's preparation, its errors onto the ``SandboxError`` tree, and the
strategy's options onto the guest's sandbox."""

from __future__ import annotations

import ast
import asyncio
import importlib.util
import inspect
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sandbox_tool import EngineError, EngineUnavailable, ExecutionOptions, SandboxError, UsageError
from sandbox_tool.engines.isolation.microvm import MicroVM
from sandbox_tool.engines.runners.workspace import Workspace
from sandbox_tool.engines.vm.machines import PREFIX, Machine, Machines, VMSpec, owner_tag
from sandbox_tool.engines.vm.sdk import (
    GUEST_RESERVE_MIB,
    VMKey,
    create_kwargs,
    image_source,
    map_error,
)

from . import sdk_double
from .conftest import DOUBLE, REPO

needs_sdk = pytest.mark.skipif(
    importlib.util.find_spec("microsandbox") is None, reason="the microsandbox SDK is not installed"
)


def _sdk() -> Any:
    import microsandbox

    return microsandbox


def test_the_vm_has_room_for_one_executions_memory_and_files() -> None:
    assert VMKey.of(False, 1024, 512) == VMKey(False, 1024 + 512 + GUEST_RESERVE_MIB)
    key = MicroVM.vm_key(ExecutionOptions(memory_mb=2048, max_disk_mb=100, network=True))
    assert key == VMKey(True, 2048 + 100 + GUEST_RESERVE_MIB)


@needs_sdk
@pytest.mark.parametrize("network", [False, True], ids=["no-network", "network"])
def test_settings_map_onto_the_real_sdk(tmp_path: Path, network: bool) -> None:
    sdk = _sdk()
    key = VMKey(network, 1792)
    kwargs = create_kwargs(
        sdk,
        image="sandbox-tool-datascience:latest",
        key=key,
        cpus=2,
        work_root="/tmp",
        guest_dir="/run/sandbox-tool",
        owner="1.2",
    )
    assert kwargs["memory"] == 1792 and kwargs["cpus"] == 2
    expected = (
        sdk.Network.from_profiles(sdk.NetworkProfile.PUBLIC) if network else sdk.Network.none()
    )
    assert kwargs["network"] == expected
    assert kwargs["network"]._to_dict()  # the SDK can serialise it
    volumes = kwargs["volumes"]
    assert set(volumes) == {"/tmp", "/run/sandbox-tool"}
    assert all(v.kind == sdk.MountKind.TMPFS for v in volumes.values())
    assert kwargs["pull_policy"] == sdk.PullPolicy.NEVER  # never a registry at boot
    assert kwargs["image"] == "sandbox-tool-datascience:latest"
    assert kwargs["labels"] == {"sandbox-tool": "1.2"}
    # every keyword is one Sandbox.create declares, with a value of its declared kind
    declared = _declared_create()
    assert set(kwargs) <= set(declared)
    inspect.signature(sdk_double.Sandbox.create).bind("name", **kwargs)


def _declared_create() -> dict[str, str]:
    import microsandbox

    stub = ast.parse((Path(microsandbox.__file__).parent / "_microsandbox.pyi").read_text())
    sandbox = next(n for n in stub.body if isinstance(n, ast.ClassDef) and n.name == "Sandbox")
    create = next(
        n for n in sandbox.body if isinstance(n, ast.AsyncFunctionDef) and n.name == "create"
    )
    return {a.arg: ast.unparse(a.annotation) for a in create.args.kwonlyargs if a.annotation}


@needs_sdk
def test_images_map_onto_sources(tmp_path: Path) -> None:
    sdk = _sdk()
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    disk = tmp_path / "root.ext4"
    disk.write_bytes(b"")
    bound = image_source(sdk, str(rootfs))
    assert bound._type == sdk.ImageSourceKind.BIND and bound._path == str(rootfs)
    as_disk = image_source(sdk, str(disk))
    assert as_disk._type == sdk.ImageSourceKind.DISK and as_disk._path == str(disk)
    assert image_source(sdk, "sandbox-tool-datascience:latest") == "sandbox-tool-datascience:latest"


def _every_sdk_error() -> list[type[BaseException]]:
    import microsandbox.errors

    return [
        c
        for c in vars(microsandbox.errors).values()
        if inspect.isclass(c) and issubclass(c, microsandbox.errors.MicrosandboxError)
    ]


@needs_sdk
@pytest.mark.parametrize(
    ("name", "kind", "says"),
    [
        ("RuntimeNotInstalledError", EngineUnavailable, "--force-reinstall"),
        ("RuntimeIncompleteError", EngineUnavailable, "MSB_PATH"),
        ("ImageNotFoundError", EngineUnavailable, "msb load"),
        ("ImagePullFailedError", EngineUnavailable, "never pulls"),
        ("InvalidConfigError", UsageError, "memory_mb"),
        ("SandboxNotFoundError", EngineError, "the next execution boots a new one"),
        ("SandboxNotRunningError", EngineError, "the next execution boots a new one"),
        ("ExecFailedError", EngineError, "Python 3.10+ as python3"),
        ("MicrosandboxError", EngineError, "microsandbox failed to start the runner"),
    ],
)
def test_sdk_errors_name_the_remedy(name: str, kind: type[SandboxError], says: str) -> None:
    error_class = next(c for c in _every_sdk_error() if c.__name__ == name)
    mapped = map_error(error_class("the SDK's words"), what="start the runner")
    assert type(mapped) is kind
    assert says in mapped.message and f"{name}: the SDK's words" in mapped.message


@needs_sdk
def test_no_sdk_error_is_left_unmapped() -> None:
    for error_class in _every_sdk_error():
        try:
            exc = error_class("boom")
        except TypeError:  # those with required keyword fields
            exc = error_class.__new__(error_class)
            Exception.__init__(exc, "boom")
        mapped = map_error(exc, what="boot the microVM")
        assert isinstance(mapped, SandboxError), error_class
        assert f"{error_class.__name__}: boom" in mapped.message


# -- the SDK's results while a fresh VM is prepared ---------------------------------------


@dataclass
class _Output:
    exit_code: int = 0
    stdout_text: str = ""
    stderr_text: str = ""


@dataclass
class _VM:
    """Answers the preparation's calls in order."""

    outputs: list[_Output]
    writes: list[str] = field(default_factory=list)
    fs: Any = None

    def __post_init__(self) -> None:
        vm = self

        class _Fs:
            async def write(self, path: str, data: bytes) -> None:
                vm.writes.append(path)

        self.fs = _Fs()

    async def exec(self, cmd: str, args: list[str], **kw: Any) -> _Output:
        return self.outputs.pop(0)


PROBE_OK = '{"available": true, "skip": ["landlock"], "reason": "r", "python": "3.11.2"}'


@pytest.mark.parametrize(
    ("outputs", "says"),
    [
        pytest.param(
            [_Output(1, "", "No module named 'zipfile'")],
            "could not unpack the runner",
            id="unpack-fails",
        ),
        pytest.param(
            [_Output(), _Output(1, "", "Traceback...")], "layer probe failed", id="probe-fails"
        ),
        pytest.param(
            [_Output(), _Output(0, PROBE_OK.replace("3.11.2", "3.9.18"))],
            "needs 3.10 or later",
            id="old-python",
        ),
    ],
)
def test_a_vm_that_cannot_be_prepared_is_unavailable(
    tmp_path: Path, msb_home: Path, outputs: list[_Output], says: str
) -> None:
    machines = Machines(VMSpec(image="x", sdk=DOUBLE, sdk_path=str(REPO)))
    with pytest.raises(EngineUnavailable, match=says) as raised:
        asyncio.run(machines._prepare(_VM(outputs)))
    assert "the microVM booted but" in str(raised.value)


def test_a_prepared_vm_says_what_its_guest_supports(msb_home: Path) -> None:
    vm = _VM([_Output(), _Output(0, "noise\n" + PROBE_OK), _Output(1)])  # no matplotlib: fine
    machines = Machines(VMSpec(image="x", guest_dir="/run/st", sdk=DOUBLE, sdk_path=str(REPO)))
    layers = asyncio.run(machines._prepare(vm))
    assert layers["skip"] == ["landlock"] and layers["python"] == "3.11.2"
    assert vm.writes == ["/run/st/runner.zip"]


def test_stale_vms_of_dead_owners_are_swept(tmp_path: Path, msb_home: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    namespace = owner_tag().split(".")[0]
    names = {
        "dead": f"{PREFIX}{namespace}.{gone.pid}-1",
        "mine": f"{PREFIX}{owner_tag()}-1",
        "elsewhere": f"{PREFIX}1.{gone.pid}-1",
        "not-ours": "someone-else",
    }

    async def make() -> None:
        for name in names.values():
            vm = await sdk_double.Sandbox.create(name)
            await vm.kill()

    asyncio.run(make())
    machines = Machines(VMSpec(image="x", sdk=DOUBLE, sdk_path=str(REPO)))
    try:
        assert machines.sweep_stale() == 1
    finally:
        machines.close()
    left = {p.name for p in (msb_home / "double").iterdir()}
    assert left == {names["mine"], names["elsewhere"], names["not-ours"]}


# -- the strategy: options onto the guest's sandbox -------------------------------------


def _strategy(layers: dict[str, Any], accept_degraded: bool = False) -> MicroVM:
    vm = MicroVM(
        VMSpec(image="x", sdk=DOUBLE),
        accept_degraded=accept_degraded,
        check=lambda image: (True, "double"),
    )
    vm._adopt(layers)
    return vm


def test_the_guest_sandbox_gets_the_process_engines_layers_without_landlock(
    tmp_path: Path,
) -> None:
    vm = _strategy({"available": True, "skip": ["landlock"], "reason": "ok"})
    assert vm.promises_layers and vm.caps_processes
    options = ExecutionOptions(max_processes=7, max_disk_mb=64, files={})
    ws = Workspace.create(tmp_path, {}, None)
    try:
        setup = vm.setup(ws, vm.pool_key(options))
    finally:
        ws.cleanup()
    assert setup is not None
    assert setup["skip_layers"] == ["landlock"] and setup["nproc"] == 7
    assert setup["scratch_mb"] == 64 and setup["network"] is False
    notes = vm.degraded(options)
    assert any(n.startswith("landlock: the guest kernel has none") for n in notes)
    assert any("1344 MiB" in n for n in notes)  # 1024 + 64 + 256
    assert not any(n.startswith("network") for n in notes)
    assert any(
        n.startswith("network: the VM reaches public internet")
        for n in vm.degraded(ExecutionOptions(network=True))
    )


def test_a_guest_without_the_sandbox_refuses_unless_accepted(tmp_path: Path) -> None:
    layers = {"available": False, "skip": [], "reason": "unshare(CLONE_NEWUSER): EPERM"}
    with pytest.raises(EngineUnavailable, match="accept_degraded=True"):
        _strategy(layers)
    vm = _strategy(layers, accept_degraded=True)
    assert not vm.promises_layers
    ws = Workspace.create(tmp_path, {}, None)
    try:
        assert vm.setup(ws, vm.pool_key(ExecutionOptions())) is None
    finally:
        ws.cleanup()
    notes = vm.degraded(ExecutionOptions())
    assert any("can reach each other's files and processes" in n and "EPERM" in n for n in notes)


def test_the_relay_is_told_where_the_vm_and_the_runner_are(tmp_path: Path) -> None:
    vm = _strategy({"available": True, "skip": [], "reason": "ok"})
    options = ExecutionOptions(max_artifact_bytes=1000)
    with pytest.raises(EngineError, match="ensure_vm first"):
        vm.wrap_argv([], Workspace(tmp_path), options)
    running = Machine("sandbox-tool-1.2-3", vm.vm_key(options), vm=None, layers={})
    vm.machines._machines[running.key] = running
    argv = vm.wrap_argv(["python", "bootstrap"], Workspace(tmp_path), options)
    config = json.loads(argv[-1])
    assert argv[:3] == [sys.executable, "-I", "-B"]
    assert config["vm"] == running.name and config["sdk"] == DOUBLE
    assert config["copy_out_max_bytes"] == 1000 + (64 << 20)
    assert config["msb_home"] == str(vm.machines.home) and os.path.isabs(config["msb_home"])
