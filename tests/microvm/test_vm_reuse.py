"""What the microsandbox engine does with its VMs, on the SDK double: one per settings,
booted once and shared, executions inside it apart from each other, a stopped one
replaced, all of them gone after ``aclose``."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox_tool import EngineError, ExecutionOptions, PythonSandbox

from . import sdk_double
from .conftest import double_engine, needs_double

pytestmark = needs_double


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    previous = os.environ.get("MSB_HOME")
    path = tmp_path_factory.mktemp("msb-home")
    os.environ["MSB_HOME"] = str(path)
    yield path
    if previous is None:
        del os.environ["MSB_HOME"]
    else:
        os.environ["MSB_HOME"] = previous


@pytest.fixture(scope="module")
def sandbox(home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PythonSandbox]:
    root = tmp_path_factory.mktemp("engine")
    (root / "work").mkdir()
    sandbox = PythonSandbox(engine=double_engine(root / "work", root / "guest"))
    asyncio.run(sandbox.start())
    yield sandbox
    asyncio.run(sandbox.aclose())


def _record(home: Path, name: str) -> dict[str, Any]:
    return dict(json.loads((home / "double" / name / "record.json").read_text()))


def _machines(sandbox: PythonSandbox) -> list[Any]:
    return list(sandbox.engine.vm.machines.machines())  # type: ignore[attr-defined]


def test_executions_share_one_vm_and_nothing_else(sandbox: PythonSandbox, home: Path) -> None:
    first = sandbox.execute_sync(
        "import os\nopen('mine.txt', 'w').write('1')\n"
        "open(os.path.join(os.environ['TMPDIR'], 'left'), 'w').write('1')\n"
        "result = [os.listdir('.'), os.listdir(os.environ['TMPDIR'])]"
    )
    assert first.result[0] == ["mine.txt"] and "left" in first.result[1]
    second = sandbox.execute_sync(
        "import os\nresult = [os.listdir('.'), os.listdir(os.environ['TMPDIR'])]"
    )
    assert second.result[0] == [] and "left" not in second.result[1]
    assert len(_machines(sandbox)) == 1
    # the guest's copies of the executions' dirs are gone (the VM's tmpfs at the work root)
    [machine] = _machines(sandbox)
    volumes = _record(home, machine.name)["volumes"]
    work_root = sandbox.engine.work_root  # type: ignore[attr-defined]
    assert os.listdir(volumes[str(work_root)]) == []


def test_settings_map_onto_their_own_vm(sandbox: PythonSandbox, home: Path) -> None:
    sandbox.execute_sync("result = 1", options=ExecutionOptions(memory_mb=512, max_disk_mb=64))
    memories = sorted(_record(home, m.name)["memory"] for m in _machines(sandbox))
    assert memories == [512 + 64 + 256, 1024 + 512 + 256]
    assert all(_record(home, m.name)["network"] is False for m in _machines(sandbox))


def test_a_stopped_vm_is_replaced(sandbox: PythonSandbox) -> None:
    before = {m.name for m in _machines(sandbox)}
    default = [m.name for m in _machines(sandbox) if m.key.memory_mib == 1024 + 512 + 256]

    async def kill_them() -> None:
        for name in before:
            vm = await (await sdk_double.Sandbox.get(name)).connect()
            await vm.kill()

    asyncio.run(kill_them())
    assert sandbox.execute_sync("result = 6 * 7").result == 42
    now = [m.name for m in _machines(sandbox) if m.key.memory_mib == 1024 + 512 + 256]
    assert len(now) == 1 and now != default and now[0] not in before


def test_a_vm_gone_under_the_relay_is_an_engine_error_naming_it(
    sandbox: PythonSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    machines = sandbox.engine.vm.machines  # type: ignore[attr-defined]
    [machine] = [m for m in _machines(sandbox) if m.key.memory_mib == 1024 + 512 + 256]

    async def running(name: str) -> bool:
        return True  # the engine believes it runs: the relay finds out

    monkeypatch.setattr(machines, "_running", running)
    monkeypatch.setattr(machine, "name", "sandbox-tool-vanished")
    with pytest.raises(EngineError) as raised:
        sandbox.execute_sync("result = 1")
    assert "the microVM 'sandbox-tool-vanished' could not start the runner" in str(raised.value)
    assert "SandboxNotFoundError" in str(raised.value)


def test_engines_have_their_own_vms_and_close_them(home: Path, tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    engines = [double_engine(tmp_path / "work", tmp_path / f"guest{i}") for i in range(2)]
    sandboxes = [PythonSandbox(engine=engine) for engine in engines]
    names = []
    for sandbox in sandboxes:
        assert sandbox.execute_sync("result = 1").result == 1
        names += [m.name for m in _machines(sandbox)]
    assert len(set(names)) == 2
    for sandbox in sandboxes:
        asyncio.run(sandbox.aclose())
    assert not any((home / "double" / name).exists() for name in names)
