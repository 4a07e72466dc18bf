"""Streaming output to a callback: lines, callbacks that are async, slow or broken, and
cancellation (the engines' side is in tests/contract)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from sandbox_tool import ExecutionError, ExecutionResult, Output, PythonSandbox
from sandbox_tool.engines.fake import FakeEngine
from sandbox_tool.streaming import MAX_PIECE, OutputRelay, relay


def _feed(chunks: list[tuple[str, bytes]], **relay_options: Any) -> list[Output]:
    """What a callback gets when an engine reads ``chunks``."""
    events: list[Output] = []

    async def go() -> None:
        output = OutputRelay(events.append, **relay_options)
        for stream, data in chunks:
            output.feed(stream, data)  # type: ignore[arg-type]
        await output.finish()

    asyncio.run(go())
    return events


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        pytest.param(
            [("stdout", b"ab"), ("stdout", b"c\nd"), ("stdout", b"e\nf\n")],
            [("stdout", "abc\n"), ("stdout", "de\nf\n")],
            id="whole-lines-as-they-complete",
        ),
        pytest.param(
            [("stdout", b"no newline at the end")],
            [("stdout", "no newline at the end")],
            id="the-rest-comes-at-the-end",
        ),
        pytest.param(
            [("stdout", "caf\u00e9\n".encode()[:4]), ("stdout", "caf\u00e9\n".encode()[4:])],
            [("stdout", "caf\u00e9\n")],
            id="utf8-split-across-reads",
        ),
        pytest.param(
            [("stdout", b"bad \xff byte\n")],
            [("stdout", "bad \ufffd byte\n")],
            id="bad-bytes-replaced-as-in-the-result",
        ),
        pytest.param(
            [("stdout", b"out-"), ("stderr", b"err\n"), ("stdout", b"line\n")],
            [("stderr", "err\n"), ("stdout", "out-line\n")],
            id="streams-kept-apart",
        ),
    ],
)
def test_output_is_delivered_in_whole_lines(
    chunks: list[tuple[str, bytes]], expected: list[tuple[str, str]]
) -> None:
    assert [(e.stream, e.text) for e in _feed(chunks)] == expected


def test_a_very_long_line_comes_in_pieces() -> None:
    events = _feed([("stdout", b"x" * (MAX_PIECE + 10))])
    assert len(events) == 1 and events[0].text == "x" * (MAX_PIECE + 10)
    events = _feed([("stdout", b"x" * MAX_PIECE), ("stdout", b"y\n")])
    assert [e.text for e in events] == ["x" * MAX_PIECE, "y\n"]


def _fake(stdout: str = "", error: bool = False) -> PythonSandbox:
    def answer(code: str, inputs: Any, options: Any) -> ExecutionResult:
        if error:
            raise ExecutionError("boom", stdout=stdout, exception="ValueError")
        return ExecutionResult(result=1, stdout=stdout)

    return PythonSandbox(FakeEngine(answer))


def test_sync_and_async_callbacks_are_both_called() -> None:
    seen: list[str] = []

    async def slow_but_fine(event: Output) -> None:
        await asyncio.sleep(0.01)
        seen.append("async " + event.text)

    sandbox = _fake("a\nb\n")
    sandbox.execute_sync("x", on_output=lambda e: seen.append("sync " + e.text))
    sandbox.execute_sync("x", on_output=slow_but_fine)
    assert seen == ["sync a\nb\n", "async a\nb\n"]


def test_an_error_delivers_what_was_printed_before_it() -> None:
    seen: list[Output] = []
    with pytest.raises(ExecutionError):
        _fake("partial\n", error=True).execute_sync("x", on_output=seen.append)
    assert seen == [Output("stdout", "partial\n")]


def test_a_callback_that_raises_changes_nothing_but_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []

    def broken(event: Output) -> None:
        calls.append(event.text)
        raise RuntimeError("a bug in the callback")

    async def go() -> list[Output]:
        output = OutputRelay(broken)
        output.feed("stdout", b"one\n")
        await asyncio.sleep(0.05)  # delivered, and raised
        output.feed("stdout", b"two\n")
        await output.finish()
        return []

    with caplog.at_level(logging.ERROR, logger="sandbox_tool.streaming"):
        asyncio.run(go())
        res = _fake("a\n").execute_sync("x", on_output=broken)
    assert calls == ["one\n", "a\n"], "a callback that raised was called again"
    assert res.result == 1 and res.stdout == "a\n"
    assert "on_output callback raised" in caplog.text and "a bug in the callback" in caplog.text


def test_a_callback_still_busy_after_the_end_is_dropped_not_waited_for(
    caplog: pytest.LogCaptureFixture,
) -> None:
    started = asyncio.Event()

    async def stuck(event: Output) -> None:
        started.set()
        await asyncio.sleep(3600)

    async def go() -> None:
        output = OutputRelay(stuck, grace=0.2)
        output.feed("stdout", b"one\ntwo\n")
        output.feed("stderr", b"three\n")
        await started.wait()
        await asyncio.wait_for(output.finish(), 10)  # the grace, not the hour

    with caplog.at_level(logging.WARNING, logger="sandbox_tool.streaming"):
        asyncio.run(go())
    assert "still busy" in caplog.text and "1 more events" in caplog.text


def test_cancelling_the_execution_stops_the_delivery() -> None:
    seen: list[str] = []
    gate = asyncio.Event()

    async def waits(event: Output) -> None:
        await gate.wait()
        seen.append(event.text)

    async def go() -> None:
        async def execution() -> None:
            async with relay(waits) as tap:
                assert tap is not None
                tap("stdout", b"one\n")
                await asyncio.sleep(3600)

        task = asyncio.ensure_future(execution())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gate.set()
        await asyncio.sleep(0.05)

    asyncio.run(go())
    assert seen == []


def test_no_callback_costs_nothing() -> None:
    async def go() -> object:
        async with relay(None) as tap:
            return tap

    assert asyncio.run(go()) is None


class _BeforeStreaming(FakeEngine):
    """An engine whose execute predates on_output."""

    async def execute(self, code: str, inputs: Any, options: Any) -> ExecutionResult:  # type: ignore[override]
        return ExecutionResult(result="old engine")


def test_an_engine_written_before_streaming_runs_without_a_callback() -> None:
    sandbox = PythonSandbox(_BeforeStreaming(lambda *a: ExecutionResult()))
    assert sandbox.execute_sync("x").result == "old engine"
    with pytest.raises(TypeError, match="on_output"):  # the contract tests say what is missing
        sandbox.execute_sync("x", on_output=print)
