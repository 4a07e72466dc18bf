"""A package from the real index, then the index made unreachable (a proxy on a closed
loopback port): the cached environment and the wheel directory still serve, and uv's
cache provides the package again for a new environment.

Skipped, with the reason, when the package index cannot be reached from here."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sandbox_tool import ExecutionOptions, ImportPolicy, PythonSandbox
from sandbox_tool.engines.process import ProcessEngine
from sandbox_tool.environments import EnvironmentManager, InstallPolicy
from sandbox_tool.environments.installers import looks_offline
from tests.environments.conftest import NEEDS_UV, Recorder, closed_index

OFFLINE = looks_offline(None, timeout=5.0)
PROCESS = ProcessEngine.probe()
pytestmark = [
    pytest.mark.network,
    pytest.mark.skipif(OFFLINE, reason="the package index (PyPI) cannot be reached from here"),
    NEEDS_UV,
    pytest.mark.skipif(not PROCESS.available, reason=f"process engine: {PROCESS.reason}"),
]
#: Small, pure Python, no dependencies.
PACKAGE = "iniconfig"
CODE = "import iniconfig\nresult = iniconfig.IniConfig('x', data='[s]\\nk = v\\n')['s']['k']"


def _manager(root: Path, cache: Path, wheels: Path) -> EnvironmentManager:
    return EnvironmentManager(
        root=root, base=(), cache_dir=cache, find_links=[wheels], progress=Recorder(),
        policy=InstallPolicy.only([PACKAGE, "tiny-dist"]),
    )  # fmt: skip


def _run(manager: EnvironmentManager, packages: list[str], code: str) -> object:
    box = PythonSandbox(ProcessEngine(preload=(), pool_size=1), environments=manager)

    async def go() -> object:
        try:
            options = ExecutionOptions(
                packages=packages, import_policy=ImportPolicy.whitelist({"json"})
            )
            return (await box.execute(code, options=options)).result
        finally:
            await box.aclose()

    return asyncio.run(go())


def test_from_the_index_then_offline_from_the_caches(
    tmp_path: Path, wheels: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, cache = tmp_path / "envs", tmp_path / "uv-cache"
    online = _manager(root, cache, wheels)
    assert _run(online, [PACKAGE], CODE) == "v"
    env = online.ensure_sync([PACKAGE])
    assert set(env.packages) == {PACKAGE}
    online.close()

    # the index stops answering: every request goes through a proxy nobody listens on
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, closed_index().removesuffix("/simple"))
    assert looks_offline(None)

    offline = _manager(root, cache, wheels)
    assert offline.ensure_sync([PACKAGE]) == env  # the cached environment serves as it is
    progress = offline.progress
    assert isinstance(progress, Recorder) and progress.said("begin") == []
    assert _run(offline, [PACKAGE], CODE) == "v"

    # a new set: the package from uv's cache, the other from the wheel directory
    both = offline.ensure_sync([PACKAGE, "tiny-dist"])
    assert set(both.packages) == {PACKAGE, "tiny-dist"} and both.key != env.key
    assert any("cannot be reached" in n for n in progress.said("notice"))
    assert _run(offline, [PACKAGE, "tiny-dist"], "import tinymod, iniconfig\ntinymod.VALUE") == 42
    offline.close()
