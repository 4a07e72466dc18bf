"""Fixtures of the microsandbox engine's tests.

Most of them run without a VM: against the SDK's installed surface, against fake host
states, or end to end through the SDK double (``sdk_double.py``: the relay, the
multiplexed exec, the guest role and the runner's own sandbox, with this host standing
in for the guest). The double needs root (a mount namespace per exec) and the process
engine's layers (the guest's sandbox); without them those tests skip and say why.
``test_vm.py`` runs on a real microVM and skips with the host check's reason where none
can boot.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import pytest

from sandbox_tool.engines.isolation.microvm import MicroVM
from sandbox_tool.engines.microvm import MicrosandboxEngine
from sandbox_tool.engines.process import ProcessEngine
from sandbox_tool.engines.vm.machines import VMSpec

REPO = Path(__file__).resolve().parents[2]
DOUBLE = "tests.microvm.sdk_double"

# OpenBLAS must not start threads in a process that forks into namespaces (FIELD_NOTES 1-2).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


@functools.cache
def double_unavailable() -> str | None:
    """Why the SDK double cannot run here, or None."""
    if not sys.platform.startswith("linux"):
        return "the SDK double uses Linux mount namespaces"
    if os.geteuid() != 0:
        return "the SDK double needs root (a mount namespace with binds per exec)"
    info = ProcessEngine.probe()
    if not info.available:
        return f"the guest's sandbox is the process engine's layers: {info.reason}"
    return None


needs_double = pytest.mark.skipif(
    double_unavailable() is not None, reason=str(double_unavailable())
)


@pytest.fixture
def msb_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private ``MSB_HOME`` (the double keeps its records there)."""
    home = tmp_path / "msb-home"
    home.mkdir()
    monkeypatch.setenv("MSB_HOME", str(home))
    return home


def double_spec(work_root: Path, guest_dir: Path, **overrides: object) -> VMSpec:
    """A VM spec whose "VMs" are the SDK double's, running this interpreter as the guest's."""
    values: dict[str, object] = {
        "image": "sandbox-tool-double:latest",
        "python": sys.executable,
        "guest_dir": str(guest_dir),
        "work_root": str(work_root),
        "sdk": DOUBLE,
        "sdk_path": str(REPO),
    }
    values.update(overrides)
    return VMSpec(**values)  # type: ignore[arg-type]


def double_engine(work_root: Path, guest_dir: Path, **engine: object) -> MicrosandboxEngine:
    """The microsandbox engine on the SDK double (the host checks stand aside)."""
    isolation = MicroVM(double_spec(work_root, guest_dir), check=lambda image: (True, "double"))
    return MicrosandboxEngine(isolation=isolation, work_root=work_root, **engine)  # type: ignore[arg-type]
