"""Whether this host can boot a microVM: each missing prerequisite is named with its
remedy, checked against faked /proc/cpuinfo, device and SDK states (nothing boots)."""

from __future__ import annotations

import errno
import importlib.metadata
import importlib.util
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sandbox_tool import PythonSandbox
from sandbox_tool.engines import ENGINES
from sandbox_tool.engines.isolation.microvm import MicroVM
from sandbox_tool.engines.microvm import MicrosandboxEngine
from sandbox_tool.engines.vm import host
from sandbox_tool.engines.vm.host import Host, check, doctor_problem, image_problem

FLAGS_WITH_VMX = "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr vmx sse2\n"
FLAGS_WITHOUT = "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr sse2 hypervisor\n"


def _cpuinfo(tmp_path: Path, text: str) -> str:
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    return str(path)


def _refused(code: int) -> Any:
    def opener(path: str, flags: int) -> int:
        raise OSError(code, os.strerror(code), path)

    return opener


def _linux(tmp_path: Path, cpu: str = FLAGS_WITH_VMX, **kw: Any) -> Host:
    # /dev/null stands in for a KVM device: a character device anyone can open read-write
    defaults: dict[str, Any] = {
        "platform": "linux",
        "machine": "x86_64",
        "cpuinfo": _cpuinfo(tmp_path, cpu),
        "kvm": "/dev/null",
    }
    defaults.update(kw)
    return Host(**defaults)


@pytest.mark.parametrize(
    ("state", "remedy"),
    [
        pytest.param({"cpu": FLAGS_WITHOUT}, "enable nested virtualization", id="no-vmx-or-svm"),
        pytest.param({"kvm": "/nonexistent/kvm"}, "modprobe kvm_intel", id="no-kvm-device"),
        pytest.param({"kvm": "FILE"}, "not a character device", id="kvm-not-a-device"),
        pytest.param(
            {"open_device": _refused(errno.EACCES)},
            "add your user to the kvm group",
            id="kvm-permission-denied",
        ),
        pytest.param(
            {"open_device": _refused(errno.EBUSY)},
            "read-write (Device or resource busy)",
            id="kvm-busy",
        ),
    ],
)
def test_each_missing_piece_names_its_remedy(
    tmp_path: Path, state: dict[str, Any], remedy: str
) -> None:
    if state.get("kvm") == "FILE":
        state["kvm"] = str(tmp_path / "kvm")
        Path(state["kvm"]).write_text("")
    cpu = state.pop("cpu", FLAGS_WITH_VMX)
    problems = host.virtualization_problems(_linux(tmp_path, cpu, **state))
    assert len(problems) == 1 and remedy in problems[0]


def test_a_ready_linux_host_has_no_problem(tmp_path: Path) -> None:
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert host.virtualization_problems(_linux(tmp_path)) == []
    amd = "flags\t\t: fpu svm sse2\n"
    assert host.virtualization_problems(_linux(tmp_path, amd)) == []


def test_arm_linux_needs_no_cpu_flag(tmp_path: Path) -> None:
    # KVM on arm64 runs at EL2, which /proc/cpuinfo does not list
    assert host.virtualization_problems(_linux(tmp_path, FLAGS_WITHOUT, machine="aarch64")) == []


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    problems = host.virtualization_problems(
        _linux(tmp_path, FLAGS_WITHOUT, open_device=_refused(errno.EACCES))
    )
    assert len(problems) == 2
    assert "vmx" in problems[0] and "kvm group" in problems[1]


@pytest.mark.parametrize(
    ("machine", "hv_support", "expected"),
    [
        pytest.param("arm64", "1", None, id="apple-silicon"),
        pytest.param("x86_64", "1", "Apple Silicon", id="intel-mac"),
        pytest.param("arm64", "0", "kern.hv_support", id="no-hypervisor-framework"),
        pytest.param("arm64", None, "kern.hv_support", id="sysctl-fails"),
    ],
)
def test_macos(machine: str, hv_support: str | None, expected: str | None) -> None:
    fake = Host(platform="darwin", machine=machine, sysctl=lambda name: hv_support)
    problems = host.virtualization_problems(fake)
    if expected is None:
        assert problems == []
    else:
        assert len(problems) == 1 and expected in problems[0]


def test_other_systems_are_refused() -> None:
    problems = host.virtualization_problems(Host(platform="win32", machine="AMD64"))
    assert "Linux with KVM or macOS on Apple Silicon" in problems[0]


def test_missing_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "microsandbox" else real(name, *a),
    )
    runtime, problems = host.find_runtime()
    assert runtime is None
    assert problems == [
        "the microsandbox SDK is not installed: pip install 'sandbox-tool[microsandbox]'"
    ]


needs_sdk = pytest.mark.skipif(
    importlib.util.find_spec("microsandbox") is None, reason="the microsandbox SDK is not installed"
)


@needs_sdk
def test_another_sdk_series_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.8.0")
    runtime, problems = host.find_runtime()
    assert runtime is None and "0.8.0" in problems[0] and "0.7.x" in problems[0]


@needs_sdk
def test_the_bundled_runtime_is_found_and_a_missing_one_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    runtime, problems = host.find_runtime()
    assert problems == [] and runtime is not None
    assert os.access(runtime.msb, os.X_OK) and "libkrunfw" in runtime.libkrunfw
    monkeypatch.setenv("MSB_PATH", str(tmp_path / "no-msb"))
    runtime, problems = host.find_runtime()
    assert (
        runtime is None
        and "no executable msb" in problems[0]
        and "--force-reinstall" in problems[0]
    )


def _fake_msb(tmp_path: Path, status: int, output: str = "") -> str:
    script = tmp_path / "msb"
    script.write_text(f"#!/bin/sh\nprintf '%s' '{output}' >&2\nexit {status}\n")
    script.chmod(0o755)
    return str(script)


def test_images(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    (rootfs / "usr" / "bin").mkdir(parents=True)
    assert "has no python3" in str(image_problem(str(rootfs), "msb"))
    (rootfs / "usr" / "bin" / "python3").write_text("")
    assert image_problem(str(rootfs), "msb") is None
    assert "does not exist" in str(image_problem(str(tmp_path / "nope.img"), "msb"))
    disk = tmp_path / "root.img"
    disk.write_bytes(b"\0" * 512)
    assert image_problem(str(disk), "msb") is None
    # an OCI reference must be in the local cache: the engine never pulls
    missing = image_problem("python:3.12", _fake_msb(tmp_path, 1, "error: image not found"))
    assert missing is not None and "msb load" in missing and "never pulls" in missing
    assert image_problem("python:3.12", _fake_msb(tmp_path, 0)) is None


def test_doctor_says_what_is_wrong(tmp_path: Path) -> None:
    said = "error: CPU virtualization is not available\n  → enable nested virtualization\n"
    problem = doctor_problem(_fake_msb(tmp_path, 1, said))
    assert problem == (
        "msb doctor: error: CPU virtualization is not available → enable nested virtualization"
    )
    assert doctor_problem(_fake_msb(tmp_path, 0)) is None


def test_the_host_check_on_this_machine_is_the_engines_probe() -> None:
    """``sandbox-tool engines`` reports exactly what the host check says here."""
    info = MicrosandboxEngine.probe()
    assert (info.available, info.reason) == check(MicrosandboxEngine.make_isolation().spec.image)
    assert info.security_level == 9 and info.name in ENGINES


def test_the_default_falls_back_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    reason = "the CPU exposes no virtualization (no vmx or svm flag): enable nested virtualization"
    monkeypatch.setattr(MicroVM, "probe", lambda self, interpreter: (False, reason))
    sandbox = PythonSandbox("auto", warm=False)
    assert sandbox.engine_name != "microsandbox"
    passed = {info.name: info for info in sandbox.passed_over}
    assert passed["microsandbox"].reason == reason
    assert not passed["microsandbox"].available


def test_sandbox_tool_engines_reports_it_first_with_the_reason() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sandbox_tool", "engines", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    listed = json.loads(out.stdout)
    assert listed[0]["name"] == "microsandbox" and listed[0]["security_level"] == 9
    probe = MicrosandboxEngine.probe()
    assert (listed[0]["available"], listed[0]["reason"]) == (probe.available, probe.reason)
