"""The microsandbox engine against the engine contract, on the SDK double: every case
goes through the relay, the multiplexed exec, the guest role and the runner's sandbox
built inside the "guest" (this host, in a mount namespace per exec). What it cannot show
is the VM boundary itself (``test_vm.py``).

One difference with a real VM: the double's guest processes are children of the relay,
so the host's poll of the runner's tree sees them (in a VM it sees only the relay, and
the guest's rlimits stop runaway CPU and memory instead).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox_tool.engines.microvm import MicrosandboxEngine

from ..contract.engine_contract import EngineContract, SessionContract
from .conftest import double_engine, needs_double

pytestmark = needs_double


@pytest.fixture(scope="module", autouse=True)
def _msb_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    previous = os.environ.get("MSB_HOME")
    os.environ["MSB_HOME"] = str(tmp_path_factory.mktemp("msb-home"))
    yield
    if previous is None:
        del os.environ["MSB_HOME"]
    else:
        os.environ["MSB_HOME"] = previous


class TestMicrosandboxOnTheDouble(EngineContract, SessionContract):
    """Each execution a fresh runner in the shared "VM", in its own sandbox there."""

    #: One sandbox (one running VM) for the class, as the engine is meant to be used:
    #: executions share a VM; the leftover checks run after every test all the same.
    warm = True

    def make_engine(self, work_root: Path) -> MicrosandboxEngine:
        return double_engine(work_root, work_root.parent / "guest")

    def test_results_name_the_guest_sandbox_layers(self) -> None:
        result = self.run("result = 1")
        assert result.engine == "microsandbox"
        assert result.isolation is not None and all(result.isolation["namespaces"].values())
        assert result.isolation["seccomp"]["applied"] and result.isolation["private_root"]
