"""A microVM that does not boot: the real cause comes from its logs, not the SDK's bare
"exited before agent relay became available"."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
import tempfile
from pathlib import Path

import pytest

from sandbox_tool import EngineUnavailable, PythonSandbox
from sandbox_tool.engines.vm import bootlog, host
from sandbox_tool.engines.vm.machines import Machines, VMSpec
from sandbox_tool.engines.vm.sdk import VMKey, boot_error_uses_logs

from .conftest import DOUBLE, REPO, double_engine, needs_double

RUNTIME_LOG = (
    "2026-12-06T20:08:20.733448Z  INFO microsandbox_runtime::runner::vm: sandbox starting\n"
    "2026-12-06T20:08:20.740306Z  INFO microsandbox_runtime::runner::vm: entering VM\n"
    "2026-12-06T20:08:25.550206Z ERROR msb_krun_vmm::linux::vstate: Received "
    "KVM_EXIT_INTERNAL_ERROR signal\n"
    "2026-12-06T20:08:25.552265Z  INFO msb_krun_vmm: Vmm is stopping.\n"
)


def test_the_vmm_error_and_its_remedy(tmp_path: Path) -> None:
    logs = bootlog.logs_dir(tmp_path, "vm")
    logs.mkdir(parents=True)
    (logs / "runtime.log").write_text(RUNTIME_LOG)
    failure = bootlog.read_cause(tmp_path, "vm")
    assert failure is not None
    assert failure.cause == "msb_krun_vmm::linux::vstate: Received KVM_EXIT_INTERNAL_ERROR signal"
    assert failure.remedy is not None and "nested virtualization" in failure.remedy
    assert failure.describe().startswith(f"{failure.cause} (from {logs})")


def test_a_boot_error_file_comes_first(tmp_path: Path) -> None:
    error = {
        "t": "2026-04-30T20:32:59Z",
        "stage": "mount",
        "errno": 2,
        "message": "mount tmp_x: No such file or directory (os error 2)",
    }
    (bootlog.logs_dir(tmp_path, "vm")).mkdir(parents=True)
    (bootlog.logs_dir(tmp_path, "vm") / "boot-error.json").write_text(json.dumps(error))
    (bootlog.logs_dir(tmp_path, "vm") / "runtime.log").write_text(RUNTIME_LOG)
    failure = bootlog.read_cause(tmp_path, "vm")
    assert failure is not None
    assert failure.cause == "mount: mount tmp_x: No such file or directory (os error 2)"
    assert failure.remedy is not None and "image=" in failure.remedy


def test_the_kernel_log_when_the_vmm_said_nothing(tmp_path: Path) -> None:
    logs = bootlog.logs_dir(tmp_path, "vm")
    logs.mkdir(parents=True)
    (logs / "runtime.log").write_text("2026-12-06T20:08:20Z  INFO vm: starting\n")
    (logs / "kernel.log").write_text("[ 0.1] booting\n[ 0.2] Kernel panic - not syncing: VFS\n")
    failure = bootlog.read_cause(tmp_path, "vm")
    assert failure is not None and "Kernel panic" in failure.cause
    assert failure.remedy is not None and "memory" in failure.remedy


def test_no_logs_no_cause(tmp_path: Path) -> None:
    assert bootlog.read_cause(tmp_path, "never-booted") is None


def test_only_the_end_of_a_big_log_is_read(tmp_path: Path) -> None:
    logs = bootlog.logs_dir(tmp_path, "vm")
    logs.mkdir(parents=True)
    noise = "2026-12-06T20:08:20Z ERROR old: an early error\n" + "x" * (1 << 20) + "\n"
    (logs / "runtime.log").write_text(noise + RUNTIME_LOG)
    failure = bootlog.read_cause(tmp_path, "vm")
    assert failure is not None and "early error" not in failure.cause
    assert "KVM_EXIT_INTERNAL_ERROR" in failure.cause


def _machines(tmp_path: Path) -> Machines:
    return Machines(
        VMSpec(
            image="x", work_root=str(tmp_path / "w"), guest_dir="/g", sdk=DOUBLE, sdk_path=str(REPO)
        )
    )


@pytest.mark.parametrize("late", [None, 0.3], ids=["log-written", "log-written-late"])
def test_a_failed_boot_is_unavailable_with_the_logs_cause(
    tmp_path: Path, msb_home: Path, late: float | None
) -> None:
    """Also when the runtime writes its log just after the SDK reported the failure (a
    loaded machine): the logs are read again for a moment."""
    (msb_home / "double").mkdir()
    (msb_home / "double" / "fail-boot").write_text(RUNTIME_LOG)
    if late is not None:
        (msb_home / "double" / "fail-boot-log-seconds").write_text(str(late))
    machines = _machines(tmp_path)
    try:
        with pytest.raises(EngineUnavailable) as raised:
            machines.ensure(VMKey(False, 2048))
    finally:
        machines.close()
    message = str(raised.value)
    assert (
        "the microVM did not boot: msb_krun_vmm::linux::vstate: Received "
        "KVM_EXIT_INTERNAL_ERROR signal" in message
    )
    assert "enable nested virtualization" in message
    assert "before agent relay became available" in message  # the SDK's words, kept after
    # its logs stay where the message points
    logs = message.split("(from ")[1].split(")")[0]
    assert "KVM_EXIT_INTERNAL_ERROR" in (Path(logs) / "runtime.log").read_text()


def test_a_boot_that_takes_too_long_is_unavailable(tmp_path: Path, msb_home: Path) -> None:
    (msb_home / "double").mkdir()
    (msb_home / "double" / "boot-seconds").write_text("30")
    spec = VMSpec(
        image="x",
        work_root=str(tmp_path / "w"),
        guest_dir="/g",
        sdk=DOUBLE,
        sdk_path=str(REPO),
        boot_timeout=0.5,
    )
    machines = Machines(spec)
    try:
        with pytest.raises(EngineUnavailable, match=r"within 0.5 s \(raise boot_timeout\)"):
            machines.ensure(VMKey(False, 2048))
    finally:
        machines.close()


@needs_double
def test_the_engine_does_not_start_and_says_why(tmp_path: Path, msb_home: Path) -> None:
    (msb_home / "double").mkdir()
    (msb_home / "double" / "fail-boot").write_text(RUNTIME_LOG)
    sandbox = PythonSandbox(engine=double_engine(tmp_path / "w", tmp_path / "g"))
    (tmp_path / "w").mkdir()
    with pytest.raises(EngineUnavailable, match="KVM_EXIT_INTERNAL_ERROR"):
        asyncio.run(sandbox.start())
    asyncio.run(sandbox.aclose())


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("microsandbox") is None, reason="the microsandbox SDK is not installed"
)
def test_the_real_sdk_on_this_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the real SDK: a boot that fails (on a host that cannot run the VM, or from an
    empty root file system) is reported with the cause its logs give."""
    # the runtime's unix socket paths must stay under 108 bytes: a short home
    home = Path(tempfile.mkdtemp(prefix="msb-", dir="/tmp"))
    monkeypatch.setenv("MSB_HOME", str(home))
    rootfs = tmp_path / "empty-rootfs"
    rootfs.mkdir()
    machines = Machines(VMSpec(image=str(rootfs), work_root=str(tmp_path / "w")))
    try:
        with pytest.raises(EngineUnavailable) as raised:
            machines.ensure(VMKey(False, 256))
    finally:
        machines.close()
        shutil.rmtree(home, ignore_errors=True)
    message = str(raised.value)
    if host.virtualization_problems(host.Host()):  # this host cannot run the VM at all
        assert "the microVM did not boot" in message and "(from " in message
        assert "KVM_EXIT_INTERNAL_ERROR" in message
    else:  # an empty root file system: no Python to prepare the VM with, at best
        assert "microsandbox engine:" in message


def test_the_logs_are_waited_for_only_where_the_message_uses_them() -> None:
    """A boot error whose SDK class says more than the logs (a refused setting) does not
    wait for them."""

    class MicrosandboxError(Exception):
        pass

    class InvalidConfigError(MicrosandboxError):
        pass

    assert boot_error_uses_logs(MicrosandboxError("failed to start: exited before relay"))
    assert not boot_error_uses_logs(InvalidConfigError("cpus must be at least 1"))
