"""``PythonSandbox.map`` on the real process engine: every kind of failure stays with its
item, and leaving a batch early leaves no process, descriptor or directory behind."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox_tool import (
    ExecutionError,
    MemoryLimitExceeded,
    OutputLimitExceeded,
    PythonSandbox,
    Timeout,
)
from sandbox_tool.batch import BatchItem, BatchResult
from sandbox_tool.engines.process import ProcessEngine
from tests.contract.engine_contract import _assert_clean, _processes, open_fds

_INFO = ProcessEngine.probe()
pytestmark = pytest.mark.skipif(
    not _INFO.available, reason=f"process engine unavailable here: {_INFO.reason}"
)

SLEEPER = "import time\ntime.sleep(60)"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PythonSandbox]:
    work_root = tmp_path_factory.mktemp("batch-root")
    fds, procs = open_fds(), _processes()
    box = PythonSandbox(ProcessEngine(work_root=work_root, warm=True, max_concurrent=4))
    asyncio.run(box.start())
    yield box
    asyncio.run(box.aclose())
    _assert_clean(work_root, fds, procs)


@pytest.fixture(autouse=True)
def nothing_left(sandbox: PythonSandbox) -> Iterator[None]:
    """After each test: nothing but the warm pool's own runners and their dirs."""
    engine: Any = sandbox.engine
    fds, procs = open_fds(), _processes()
    yield
    engine.pool.wait_idle()
    _assert_clean(engine.work_root, fds, procs, engine.pool)


def run_all(sandbox: PythonSandbox, items: list[Any], concurrency: int) -> dict[Any, BatchResult]:
    async def main() -> dict[Any, BatchResult]:
        async with sandbox.map(items, concurrency) as results:
            return {res.id: res async for res in results}

    return asyncio.run(main())


def test_each_failure_and_limit_stays_with_its_item(sandbox: PythonSandbox) -> None:
    items = [
        BatchItem(id="ok", code="result = sum(inputs)", inputs=[1, 2]),
        BatchItem(id="raises", code="1/0"),
        BatchItem(id="timeout", code=SLEEPER, options={"timeout": 1}),
        BatchItem(id="memory", code="x = bytearray(600 * 2**20)", options={"memory_mb": 300}),
        BatchItem(
            id="flood", code="while True: print('x' * 1000)", options={"max_output_bytes": 4096}
        ),
        BatchItem(id="exits", code="import os\nos._exit(3)"),
        BatchItem(id="ok-after", code="result = 'still fine'"),
    ]
    results = run_all(sandbox, items, concurrency=4)
    assert results["ok"].result is not None and results["ok"].result.result == 3
    assert results["ok-after"].result is not None
    assert results["ok-after"].result.result == "still fine"
    expected = {
        "raises": ExecutionError,
        "timeout": Timeout,
        "memory": MemoryLimitExceeded,
        "flood": OutputLimitExceeded,
        "exits": ExecutionError,
    }
    for item_id, error in expected.items():
        assert isinstance(results[item_id].error, error), (item_id, results[item_id].error)


def test_breaking_out_of_a_batch_kills_what_still_runs(sandbox: PythonSandbox) -> None:
    items = [BatchItem(id="quick", code="result = 1")] + [
        BatchItem(id=i, code=SLEEPER) for i in range(20)
    ]

    async def main() -> list[Any]:
        seen = []
        async with sandbox.map(items, concurrency=4) as results:
            async for res in results:
                seen.append(res.id)
                break  # three sleepers are running now; sixteen were never read
        return seen

    assert asyncio.run(main()) == ["quick"]
    # the fixture checks that nothing is left; the sandbox still works
    assert sandbox.execute_sync("result = 2").result == 2


def test_cancelling_the_task_that_iterates_kills_what_still_runs(
    sandbox: PythonSandbox,
) -> None:
    async def consume(started: asyncio.Event) -> None:
        async with sandbox.map([SLEEPER] * 3, concurrency=3) as results:
            started.set()
            async for _ in results:
                pass

    async def main() -> None:
        started = asyncio.Event()
        task = asyncio.ensure_future(consume(started))
        await started.wait()
        await asyncio.sleep(1.0)  # the sandboxes are up and their code is sleeping
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_breaking_out_of_map_sync_kills_what_still_runs(sandbox: PythonSandbox) -> None:
    items = ["result = 1", SLEEPER, SLEEPER]
    for res in sandbox.map_sync(items, concurrency=3):
        assert res.id == 0
        break


def test_files_and_inputs_reach_their_item(sandbox: PythonSandbox, tmp_path: Path) -> None:
    data = tmp_path / "numbers.txt"
    data.write_text("1 2 3")
    items = [
        BatchItem(id="file", code="result = open('n.txt').read()", files={"n.txt": data}),
        BatchItem(id="no-file", code="import os\nresult = os.path.exists('n.txt')"),
    ]
    results = run_all(sandbox, items, concurrency=2)
    assert results["file"].result is not None and results["file"].result.result == "1 2 3"
    assert results["no-file"].result is not None and results["no-file"].result.result is False
