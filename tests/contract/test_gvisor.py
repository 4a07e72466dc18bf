"""The gvisor engine against the engine contract: one started engine (one gVisor sandbox,
its template and pool) for the whole class, as a long-lived sandbox is meant to be used.

Skipped, with the reason, where runsc cannot run (not installed, no user namespaces for a
non-root user): ``make test`` installs nothing; ``.ci/run`` installs runsc.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sandbox_tool.engines.gvisor import GvisorEngine

from .engine_contract import EngineContract, SessionContract

_INFO = GvisorEngine.probe()
pytestmark = pytest.mark.skipif(
    not _INFO.available, reason=f"gvisor engine unavailable here: {_INFO.reason}"
)


class TestGvisorEngine(EngineContract, SessionContract):
    """Runners forked from a template inside one gVisor sandbox, each in its own root."""

    warm = True  # one engine (one gVisor sandbox) for the class: it starts in seconds

    def make_engine(self, work_root: Path) -> GvisorEngine:
        return GvisorEngine(work_root=work_root, warm=True)

    def test_results_name_the_layers_they_ran_under(self) -> None:
        _assert_gvisor_layers(self.run("result = 1").isolation)

    def test_session_cells_name_the_layers_they_ran_under(self) -> None:
        for cell in self.cells("x = 1", "x + 1"):
            _assert_gvisor_layers(cell.isolation)


def _assert_gvisor_layers(isolation: dict[str, Any] | None) -> None:
    assert isolation is not None
    assert isolation["kernel"] == "gvisor" and isolation["gvisor"]["runsc"]
    assert isolation["private_root"] and isolation["capabilities_dropped"]
    assert isolation["no_new_privs"] and isolation["seccomp"]["applied"]
    assert isolation["seccomp"]["programs"] is False
    assert isolation["namespaces"]["pid"] and isolation["namespaces"]["net"]
