"""The batch scope (``map(..., scope="batch")``) on the real process engine: items share a
sandbox, yet nothing of one item (files, processes, environment, module state, random
state) reaches the next; failures stay with their item; and nothing is left afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox_tool import (
    EngineError,
    ExecutionError,
    ExecutionOptions,
    MemoryLimitExceeded,
    OutputLimitExceeded,
    PythonSandbox,
    Timeout,
    UsageError,
)
from sandbox_tool.batch import BatchItem, BatchResult
from sandbox_tool.engines.native import NativeEngine
from sandbox_tool.engines.process import ProcessEngine
from tests.contract.engine_contract import _assert_clean, _processes, open_fds

_INFO = ProcessEngine.probe()
pytestmark = pytest.mark.skipif(
    not _INFO.available, reason=f"process engine unavailable here: {_INFO.reason}"
)

#: Where the item runs: its pid namespace, its own pid, and every process it can see.
WHERE = """
import os
result = {"ns": os.readlink("/proc/self/ns/pid"), "pid": os.getpid(),
          "procs": sorted(int(p) for p in os.listdir("/proc") if p.isdigit())}
"""

#: Leaves everything it can behind: files in the work dir, /tmp and HOME (one in a dir it
#: makes unreadable), an environment variable, module and builtins state, a module in
#: sys.modules, a daemon in a session of its own and a double-forked orphan.
LITTER = """
import builtins, json, os, sys, tempfile, types
open("left.txt", "w").write("from the previous item")
os.makedirs("deep/er", exist_ok=True)
open("deep/er/file", "w").write("x")
os.chmod("deep", 0o000)
open(os.path.join(tempfile.gettempdir(), "tmp-left"), "w").write("x")
open(os.path.join(os.environ["HOME"], "home-left"), "w").write("x")
os.environ["LEFT_BEHIND"] = "1"
json.left_behind = True
builtins.left_behind = True
sys.modules["left_behind"] = types.ModuleType("left_behind")
if os.fork() == 0:
    os.setsid()
    import time
    time.sleep(300)
if os.fork() == 0:
    if os.fork() == 0:
        import time
        time.sleep(300)
    os._exit(0)
os.wait()
result = "littered"
"""

#: What the next item sees of all that.
INSPECT = """
import builtins, json, os, sys, tempfile
result = {
    "ns": os.readlink("/proc/self/ns/pid"),
    "work": sorted(os.listdir(".")),
    "tmp": sorted(os.listdir(tempfile.gettempdir())),
    "home": sorted(os.listdir(os.environ["HOME"])),
    "env": "LEFT_BEHIND" in os.environ,
    "module_attr": hasattr(json, "left_behind"),
    "builtin": hasattr(builtins, "left_behind"),
    "sys_modules": "left_behind" in sys.modules,
    "procs": len([p for p in os.listdir("/proc") if p.isdigit()]),
}
"""


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PythonSandbox]:
    work_root = tmp_path_factory.mktemp("scope-root")
    fds, procs = open_fds(), _processes()
    box = PythonSandbox(
        ProcessEngine(work_root=work_root, warm=True, max_concurrent=4),
        options=ExecutionOptions.for_evaluation(timeout=20),
    )
    asyncio.run(box.start())
    yield box
    asyncio.run(box.aclose())
    _assert_clean(work_root, fds, procs)


@pytest.fixture(autouse=True)
def nothing_left(sandbox: PythonSandbox) -> Iterator[None]:
    """After each test: nothing but the warm pool's own runners and their dirs (every
    shared sandbox is gone once its batch has ended)."""
    engine: Any = sandbox.engine
    fds, procs = open_fds(), _processes()
    yield
    engine.pool.wait_idle()
    _assert_clean(engine.work_root, fds, procs, engine.pool)


def run_all(sandbox: PythonSandbox, items: list[Any], concurrency: int = 1) -> list[BatchResult]:
    async def main() -> list[BatchResult]:
        async with sandbox.map(items, concurrency, scope="batch") as results:
            return [res async for res in results]

    return asyncio.run(main())


def value(res: BatchResult) -> Any:
    assert res.result is not None, res.error
    return res.result.result


def test_items_share_a_sandbox_each_in_a_fresh_process(sandbox: PythonSandbox) -> None:
    first, second, third = (value(r) for r in run_all(sandbox, [WHERE] * 3))
    assert first["ns"] == second["ns"] == third["ns"]  # one sandbox (its pid namespace)
    assert len({first["pid"], second["pid"], third["pid"]}) == 3  # three processes
    # pid 1, the scope's parent and the item: nothing else in the sandbox
    assert len(first["procs"]) == len(second["procs"]) == 3


def test_nothing_of_an_item_reaches_the_next(sandbox: PythonSandbox) -> None:
    before, littered, after = run_all(sandbox, [INSPECT, LITTER, INSPECT])
    assert value(littered) == "littered"
    assert value(after) == value(before)  # in the same sandbox (its pid namespace)
    assert value(after)["work"] == []
    assert not any(value(after)[k] for k in ("env", "module_attr", "builtin", "sys_modules"))
    assert value(after)["procs"] == 3  # the daemon and the orphan were killed


def test_items_draw_their_own_random_numbers(sandbox: PythonSandbox) -> None:
    code = "import random\nimport numpy as np\nresult = [random.random(), float(np.random.rand())]"
    draws = [value(r) for r in run_all(sandbox, [code] * 3)]
    assert len({d[0] for d in draws}) == 3 and len({d[1] for d in draws}) == 3


def test_every_layer_applies_to_every_item(sandbox: PythonSandbox) -> None:
    code = """
import os
try:
    open(f"/proc/{os.getppid()}/environ", "rb").read()
    parent = "readable"
except OSError as exc:
    parent = type(exc).__name__
try:
    open("/etc/shadow").read()
    shadow = "readable"
except OSError as exc:
    shadow = type(exc).__name__
result = {"uid": os.getuid(), "parent": parent, "shadow": shadow}
"""
    for res in run_all(sandbox, [code] * 2):
        assert value(res)["uid"] == 1000
        assert value(res)["parent"] == "PermissionError"  # the scope's parent: not dumpable
        assert value(res)["shadow"] in ("FileNotFoundError", "PermissionError")
        assert res.result is not None and res.result.isolation is not None
        layers = res.result.isolation
        assert layers["landlock"]["applied"] and layers["seccomp"]["applied"]
        assert layers["namespaces"]["pid"] and layers["namespaces"]["net"]


def test_each_failure_stays_with_its_item(sandbox: PythonSandbox) -> None:
    items = [
        BatchItem(id="raises", code="1/0"),
        BatchItem(id="exits", code="import os\nos._exit(3)"),
        BatchItem(id="after-exit", code=WHERE),
        BatchItem(id="timeout", code="import time\ntime.sleep(60)", options={"timeout": 1}),
        BatchItem(id="memory", code="x = bytearray(2000 * 2**20)"),  # the scope's 1024 MB
        BatchItem(
            id="flood", code="while True: print('x' * 1000)", options={"max_output_bytes": 4096}
        ),
        BatchItem(id="kills-parent", code="import os, signal\nos.kill(os.getppid(), 9)"),
        BatchItem(id="prints", code="print('mine')\nresult = 'fine'"),
    ]
    results = {r.id: r for r in run_all(sandbox, items)}
    assert isinstance(results["raises"].error, ExecutionError)
    assert isinstance(results["exits"].error, ExecutionError)
    assert isinstance(results["timeout"].error, Timeout)
    assert isinstance(results["memory"].error, MemoryLimitExceeded)
    assert isinstance(results["flood"].error, OutputLimitExceeded)
    assert isinstance(results["kills-parent"].error, (ExecutionError, EngineError))
    assert value(results["after-exit"])["procs"].__len__() == 3
    final = results["prints"]
    assert value(final) == "fine" and final.result is not None
    assert final.result.stdout == "mine\n"  # nothing of the flood before it


def test_an_item_that_changes_what_was_there_ends_its_sandbox(sandbox: PythonSandbox) -> None:
    listing = """
import os
top = os.environ["MPLCONFIGDIR"]
result = {"ns": os.readlink("/proc/self/ns/pid"), "mode": os.stat(top).st_mode}
"""
    tamper = """
import os
top = os.environ["MPLCONFIGDIR"]
os.chmod(top, 0o700 if os.stat(top).st_mode & 0o777 != 0o700 else 0o755)
result = "tampered"
"""
    before, tampered, after = run_all(sandbox, [listing, tamper, listing])
    assert value(tampered) == "tampered"
    assert value(after)["mode"] == value(before)["mode"]
    assert value(after)["ns"] != value(before)["ns"]  # a new sandbox


def test_items_that_need_another_sandbox_get_one(sandbox: PythonSandbox, tmp_path: Path) -> None:
    data = tmp_path / "n.txt"
    data.write_text("1 2 3")
    items = [
        BatchItem(id="shared", code=WHERE),
        BatchItem(
            id="file", code=WHERE + "result['n'] = open('n.txt').read()", files={"n.txt": data}
        ),
        BatchItem(id="network", code=WHERE, options={"network": True}),
        BatchItem(id="shared-again", code=WHERE),
    ]
    results = {r.id: value(r) for r in run_all(sandbox, items)}
    assert results["file"]["n"] == "1 2 3"
    assert results["shared"]["ns"] == results["shared-again"]["ns"]
    assert results["file"]["ns"] != results["shared"]["ns"]
    assert results["network"]["ns"] != results["shared"]["ns"]


def test_breaking_out_of_a_scoped_batch_kills_what_still_runs(sandbox: PythonSandbox) -> None:
    items = ["result = 1"] + ["import time\ntime.sleep(60)"] * 6

    async def main() -> list[Any]:
        async with sandbox.map(items, concurrency=3, scope="batch") as results:
            async for res in results:
                return [res.id]
        return []

    assert asyncio.run(main()) == [0]  # the fixture checks that nothing is left


def test_scope_is_checked(sandbox: PythonSandbox) -> None:
    with pytest.raises(UsageError, match="scope must be one of"):
        sandbox.map(["result = 1"], scope="sandbox")
    native = PythonSandbox(NativeEngine(warm=False))
    with pytest.raises(UsageError, match="no batch scope"):
        native.map(["result = 1"], scope="batch")
