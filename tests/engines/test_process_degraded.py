"""The process engine refuses to run without a layer, unless told to; then it says so."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox_tool import EngineUnavailable, PythonSandbox
from sandbox_tool.engines.isolation import linux
from sandbox_tool.engines.process import ProcessEngine

REAL = ProcessEngine.probe()
pytestmark = pytest.mark.skipif(not REAL.available, reason=f"process engine: {REAL.reason}")


@pytest.fixture
def no_landlock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A host whose kernel has no landlock: the full probe fails, one without it passes."""
    real_probe = linux.run_probe

    def probe(python: str, skip: tuple[str, ...] = ()) -> dict[str, Any]:
        if "landlock" not in skip:
            return {"available": False, "reason": "landlock: not supported by this kernel"}
        return real_probe(python, skip)

    monkeypatch.setattr(linux, "run_probe", probe)
    yield


def test_refuses_and_names_the_missing_layer(no_landlock: None, tmp_path: Path) -> None:
    engine = ProcessEngine(work_root=tmp_path, warm=False)
    assert not ProcessEngine.probe().available
    with pytest.raises(EngineUnavailable, match="landlock") as info:
        asyncio.run(engine.start())
    assert "accept_degraded" in str(info.value)


def test_degraded_mode_runs_and_says_so_in_every_result(no_landlock: None, tmp_path: Path) -> None:
    sandbox = PythonSandbox(ProcessEngine(work_root=tmp_path, warm=False, accept_degraded=True))
    try:
        for _ in range(2):
            res = sandbox.execute_sync("import os\nresult = os.getpid()")
            assert "landlock: not applied on this host (accept_degraded)" in res.degraded
            assert res.isolation is not None
            assert res.isolation["landlock"]["applied"] is False
            assert res.isolation["seccomp"]["applied"] is True
            assert res.result == 2  # still in its own pid namespace (pid 1 is the reaper)
    finally:
        asyncio.run(sandbox.aclose())
