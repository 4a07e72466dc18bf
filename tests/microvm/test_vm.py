"""The microsandbox engine on a real microVM: the engine contract, and what only a VM
shows (another kernel, none of the host's files, no network).

They need a host that can boot one (KVM with the CPU's virtualization, or macOS on Apple
Silicon), the SDK, and the image (``docs/microsandbox.md``; ``$SANDBOX_TOOL_MICROSANDBOX_IMAGE``
names another). Elsewhere they skip with the host check's reason, which is what
``sandbox-tool engines`` says.
"""

from __future__ import annotations

import platform
import uuid
from pathlib import Path

import pytest

from sandbox_tool import BuiltinsPolicy, ImportPolicy
from sandbox_tool.engines.microvm import MicrosandboxEngine

from ..contract.engine_contract import EngineContract, SessionContract

_INFO = MicrosandboxEngine.probe()
pytestmark = pytest.mark.skipif(
    not _INFO.available, reason=f"no microVM can boot here: {_INFO.reason}"
)


class TestMicrosandboxEngine(EngineContract, SessionContract):
    """Executions in one running VM, each in its own sandbox inside the guest."""

    warm = True  # one VM for the class, as the engine is meant to be used

    def make_engine(self, work_root: Path) -> MicrosandboxEngine:
        return MicrosandboxEngine(work_root=work_root)

    def test_the_code_runs_on_the_guests_kernel(self) -> None:
        result = self.run("import platform\nresult = platform.release()")
        assert result.result != platform.release()

    def test_the_hosts_files_are_not_there(self, tmp_path: Path) -> None:
        token = tmp_path / f"host-{uuid.uuid4().hex}"
        token.write_text("secret")
        code = f"import os\nresult = os.path.exists({str(token)!r})"
        assert self.run(code, builtins_policy=BuiltinsPolicy.allow_all()).result is False

    def test_there_is_no_network(self) -> None:
        code = (
            "import socket\n"
            "try:\n"
            "    socket.create_connection(('1.1.1.1', 53), timeout=3)\n"
            "    result = 'connected'\n"
            "except OSError as exc:\n"
            "    result = type(exc).__name__\n"
        )
        result = self.run(code, import_policy=ImportPolicy.allow_all())
        assert result.result != "connected"

    def test_results_say_what_the_guest_could_not_apply(self) -> None:
        result = self.run("result = 1")
        assert result.engine == "microsandbox"
        assert result.isolation is not None and all(result.isolation["namespaces"].values())
        assert any(note.startswith("memory_mb, cpu_seconds") for note in result.degraded)
        if not result.isolation["landlock"]["applied"]:
            assert any(note.startswith("landlock: the guest kernel") for note in result.degraded)
