"""``PythonSandbox.map`` on the fake engine: what comes back, in which order, how much of
the input is read, and what leaving early stops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox_tool import (
    EngineError,
    ExecutionError,
    ExecutionOptions,
    ExecutionResult,
    PythonSandbox,
    UsageError,
)
from sandbox_tool.batch import BatchItem, BatchResult
from sandbox_tool.engines.fake import FakeEngine
from sandbox_tool.engines.native import NativeEngine


class Recorder:
    """A fake engine's handler: sleeps ``inputs`` seconds, then answers ``inputs``;
    records how many run at once and which were cancelled."""

    def __init__(self) -> None:
        self.running = 0
        self.peak = 0
        self.cancelled = 0
        self.finished = 0

    async def __call__(self, code: str, inputs: Any, options: ExecutionOptions) -> ExecutionResult:
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            if code == "raise":
                raise ExecutionError("ValueError: boom", exception="ValueError")
            if code == "bug":
                raise RuntimeError("a bug in the engine")
            await asyncio.sleep(inputs or 0)
            self.finished += 1
            return ExecutionResult(result=inputs, stdout=code, duration_ms=1.0)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.running -= 1


def sandbox(recorder: Recorder, **options: Any) -> PythonSandbox:
    return PythonSandbox(FakeEngine(recorder), options=ExecutionOptions(**options))


async def collect(stream: Any) -> list[BatchResult]:
    async with stream as results:
        return [res async for res in results]


def test_results_come_as_they_complete_each_tagged_with_its_id() -> None:
    items = [BatchItem(id=name, code="x", inputs=delay) for name, delay in
             [("slow", 0.3), ("fast", 0.0), ("middle", 0.1)]]  # fmt: skip
    results = asyncio.run(collect(sandbox(Recorder()).map(items, concurrency=3)))
    assert [r.id for r in results] == ["fast", "middle", "slow"]
    assert [r.result.result for r in results if r.result] == [0.0, 0.1, 0.3]


def test_an_item_without_an_id_is_tagged_with_its_position() -> None:
    results = asyncio.run(collect(sandbox(Recorder()).map(["a", {"code": "b"}], concurrency=1)))
    assert [(r.id, r.result.stdout if r.result else None) for r in results] == [(0, "a"), (1, "b")]


def test_one_items_failure_is_its_own_result_and_the_others_go_on() -> None:
    items: list[Any] = [
        BatchItem(id="ok", code="x", inputs=1),
        BatchItem(id="raises", code="raise"),
        BatchItem(id="engine-bug", code="bug"),
        {"id": "malformed", "code": "x", "timeout": 5},  # an option outside "options"
        BatchItem(id="bad-override", code="x", options={"timeout": -1}),
        BatchItem(id="not-json", code="x", inputs={1, 2}),
        42,
        BatchItem(id="ok-too", code="x", inputs=2),
    ]
    results = {r.id: r for r in asyncio.run(collect(sandbox(Recorder()).map(items)))}
    expected = {"ok", "raises", "engine-bug", 3, "bad-override", "not-json", 6, "ok-too"}
    assert set(results) == expected
    assert results["ok"].ok and results["ok-too"].ok
    assert isinstance(results["raises"].error, ExecutionError)
    assert isinstance(results["engine-bug"].error, EngineError)
    assert "a bug in the engine" in str(results["engine-bug"].error)
    assert "timeout" in str(results[3].error) and isinstance(results[3].error, UsageError)
    assert "timeout" in str(results["bad-override"].error)
    assert isinstance(results["not-json"].error, UsageError)
    assert "not int" in str(results[6].error)


def test_options_overrides_and_files_apply_to_their_item_only(tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("a,b\n")
    recorder = Recorder()
    engine = FakeEngine(recorder)
    items = [
        BatchItem(id=1, code="x", options={"timeout": 5, "memory_mb": 512}, files={"d.csv": data}),
        BatchItem(id=2, code="x"),
    ]
    box = PythonSandbox(engine, options=ExecutionOptions(timeout=9))
    asyncio.run(collect(box.map(items, concurrency=1)))
    first, second = engine.calls[0][2], engine.calls[1][2]
    assert (first.timeout, first.memory_mb, first.files) == (5.0, 512, {"d.csv": data})
    assert (second.timeout, second.memory_mb, second.files) == (9.0, 1024, {})


def test_at_most_concurrency_run_at_once_and_the_input_is_read_lazily() -> None:
    recorder = Recorder()
    pulled = 0

    def endless() -> Iterator[BatchItem]:
        nonlocal pulled
        while True:
            pulled += 1
            yield BatchItem(id=pulled, code="x", inputs=0.01 if pulled <= 10 else 60)

    async def first_ten() -> list[BatchResult]:
        got = []
        async with sandbox(recorder).map(endless(), concurrency=3) as results:
            async for res in results:
                got.append(res)
                if len(got) == 10:
                    break
        return got

    assert len(asyncio.run(first_ten())) == 10
    assert recorder.peak == 3
    assert pulled <= 10 + 3  # never more than the slots ahead of what came back
    assert recorder.running == 0 and recorder.cancelled >= 1  # the slow ones after the tenth


def test_an_async_iterable_is_accepted() -> None:
    async def items() -> AsyncIterator[str]:
        for code in ("a", "b", "c"):
            yield code

    results = asyncio.run(collect(sandbox(Recorder()).map(items(), concurrency=2)))
    assert sorted(r.id for r in results) == [0, 1, 2]


def test_cancelling_the_consumer_cancels_every_running_item() -> None:
    recorder = Recorder()

    async def consume() -> None:
        async with sandbox(recorder).map([BatchItem(code="x", inputs=60)] * 5, 5) as results:
            async for _ in results:
                pass

    async def main() -> None:
        task = asyncio.ensure_future(consume())
        while recorder.running < 5:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert (recorder.cancelled, recorder.running, recorder.finished) == (5, 0, 0)


def test_map_sync_iterates_and_breaking_off_stops_the_rest() -> None:
    recorder = Recorder()
    items = [BatchItem(id=i, code="x", inputs=0 if i < 2 else 60) for i in range(6)]
    got = []
    for res in sandbox(recorder).map_sync(items, concurrency=4):
        got.append(res.id)
        if len(got) == 2:
            break
    assert sorted(got) == [0, 1]
    assert recorder.running == 0 and recorder.cancelled == 4  # the slow ones filling the slots


def test_map_sync_returns_everything_when_run_to_the_end() -> None:
    results = list(sandbox(Recorder()).map_sync(["a", "raise", "b"], concurrency=2))
    assert sorted((r.id, r.ok) for r in results) == [(0, True), (1, False), (2, True)]


def test_concurrency_defaults_to_the_engines_max_concurrent() -> None:
    engine = NativeEngine(max_concurrent=3, warm=False)
    assert PythonSandbox(engine).map([]).__class__.__name__ == "BatchStream"
    from sandbox_tool.batch.mapping import default_concurrency

    assert default_concurrency(engine) == 3
    assert default_concurrency(FakeEngine(Recorder())) >= 1


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_a_bad_concurrency_is_a_usage_error_at_once(bad: Any) -> None:
    with pytest.raises(UsageError, match="concurrency"):
        sandbox(Recorder()).map([], concurrency=bad)


def test_results_cross_the_wire_unchanged() -> None:
    from sandbox_tool import Artifact, Timeout

    art = Artifact(name="a.png", mime_type="image/png", data=b"\x89PNG\0\xff")
    ok = BatchResult("a", result=ExecutionResult(result={"x": [1]}, artifacts=[art], stdout="o"))
    err = BatchResult(7, error=Timeout("slow", limit=3.0, stdout="partial", artifacts=[art]))
    back_ok, back_err = (BatchResult.from_wire(r.to_wire()) for r in (ok, err))
    assert back_ok == ok
    assert back_err.id == 7 and isinstance(back_err.error, Timeout)
    assert back_err.error.limit == 3.0 and back_err.error.stdout == "partial"
    assert back_err.artifacts == [art]


def test_taking_a_result_after_the_batch_loop_ended_is_harmless() -> None:
    # the batch's loop may end while the caller takes its last results: handing that loop
    # "room for one more" must then do nothing (it raised "Event loop is closed")
    from sandbox_tool.batch.mapping import _call_in

    loop = asyncio.new_event_loop()
    loop.close()
    called: list[int] = []
    _call_in(loop, lambda: called.append(1))
    assert called == []
