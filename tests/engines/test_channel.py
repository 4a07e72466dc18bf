"""A warm runner's framed channel: the host's parsing, and code that abuses the channel."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sandbox_tool import EngineError, ExecutionOptions, ImportPolicy, PythonSandbox
from sandbox_tool.engines.native import NativeEngine
from sandbox_tool.engines.runners import answers, frames
from sandbox_tool.engines.runners.driver import CellLimits, Exchange, RunnerChannel
from sandbox_tool.engines.runners.pipes import RunnerPipes
from sandbox_tool.engines.runners.treewatch import TreeUsage
from sandbox_tool.runner.framing import encode_frame
from sandbox_tool.runner.protocol import MAX_ARTIFACT_FILES


def _reader(data: bytes, *, chunks: int = 1) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    step = max(1, len(data) // chunks)
    for i in range(0, len(data), step):
        reader.feed_data(data[i : i + step])
    reader.feed_eof()
    return reader


def test_a_frame_round_trips() -> None:
    async def go() -> dict[str, object] | None:
        return await frames.read_frame(_reader(encode_frame({"a": [1, "x"]}), chunks=3), 1000)

    assert asyncio.run(go()) == {"a": [1, "x"]}


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ((1 << 31).to_bytes(4, "big"), "frame of 2147483648 bytes"),
        (len(b"{nope").to_bytes(4, "big") + b"{nope", "not JSON"),
        (len(b"[1]").to_bytes(4, "big") + b"[1]", "not a JSON object"),
    ],
)
def test_a_bad_frame_is_refused_before_it_is_read(data: bytes, match: str) -> None:
    async def go() -> None:
        await frames.read_frame(_reader(data), 1 << 20)

    with pytest.raises(frames.ChannelError, match=match):
        asyncio.run(go())


def test_the_end_of_the_channel_is_none() -> None:
    async def go() -> dict[str, object] | None:
        return await frames.read_frame(_reader(encode_frame({"a": 1})[:5]), 1000)

    assert asyncio.run(go()) is None


def _stream_cell(
    data: bytes, *, chunks: int = 1, limit: int = 100, before: bytes = b"", eof: bool = True
) -> tuple[bool | None, bytes, list[bytes], frames.OutputBudget]:
    """Feed ``data`` in ``chunks`` to an output stream reading one cell (``before``
    arrives before the cell starts); what the cell read, what its tap saw, its budget."""
    marker = MARKER

    async def go() -> tuple[bool | None, bytes, list[bytes], frames.OutputBudget]:
        stream = frames.OutputStream()
        if before:
            stream.data_received(before)
        sink, seen, budget = bytearray(), [], frames.OutputBudget(limit)
        done = stream.read_cell(marker, sink, budget, seen.append)
        step = max(1, len(data) // chunks)
        for i in range(0, len(data), step):
            stream.data_received(data[i : i + step])
        if eof:
            stream.eof_received()
        return (done.result() if done.done() else None), bytes(sink), seen, budget

    return asyncio.run(go())


MARKER = frames.new_marker()


def test_output_is_cut_at_the_marker_even_when_it_is_split() -> None:
    found, out, _, budget = _stream_cell(b"hello\n" + MARKER + b"late", chunks=7, eof=False)
    assert found is True and out == b"hello\n"
    assert budget.left == 100 - len(b"hello\n")


def test_output_before_the_cell_is_the_cells_and_the_end_of_the_stream_ends_it() -> None:
    found, out, _, _ = _stream_cell(b"two\n", before=b"one\n")
    assert found is False and out == b"one\ntwo\n"  # no marker: the worker died
    found, out, _, _ = _stream_cell(b"", eof=False)
    assert found is None and out == b""  # still waiting for its marker


@pytest.mark.parametrize(
    ("chunk", "released"),
    [
        pytest.param(b"a line\n", b"a line\n", id="a-line-is-not-held-back"),
        pytest.param(b"x\x1esandbox-to", b"x", id="what-may-start-the-marker-is-held"),
        pytest.param(b"x\x1esandbox-tool-cellX", b"x\x1esandbox-tool-cellX", id="until-it-cannot"),
    ],
)
def test_only_a_possible_start_of_the_marker_is_held_back(chunk: bytes, released: bytes) -> None:
    # what the code printed reaches the host (and a streaming callback) as it is read
    assert frames.MarkerCutter(frames.new_marker()).feed(chunk) == released


def test_the_tap_sees_what_the_sink_gets_as_it_gets_it() -> None:
    found, sink, seen, _ = _stream_cell(b"one\ntwo\n" + MARKER, chunks=11)
    assert found is True and len(seen) > 1
    assert b"".join(seen) == sink == b"one\ntwo\n"


def test_output_past_the_budget_is_cut_and_resolves_the_flood() -> None:
    async def go() -> tuple[bool, bool, bytes]:
        flooded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        stream, sink = frames.OutputStream(), bytearray()
        budget = frames.OutputBudget(100, flooded)
        done = stream.read_cell(MARKER, sink, budget)
        stream.data_received(b"x" * 200 + MARKER)
        return flooded.done(), done.done(), bytes(sink)

    flooded, done, sink = asyncio.run(go())
    assert flooded and done and sink == b"x" * 100


def test_output_between_cells_waits_with_reading_paused_past_its_limit() -> None:
    class Transport(asyncio.ReadTransport):
        paused = False

        def pause_reading(self) -> None:
            self.paused = True

        def resume_reading(self) -> None:
            self.paused = False

    async def go() -> tuple[bool, bool, bytes]:
        stream, transport = frames.OutputStream(held_limit=10), Transport()
        stream.connection_made(transport)
        stream.data_received(b"0123456789ab")  # a background thread printing between cells
        paused = transport.paused
        sink = bytearray()
        stream.read_cell(MARKER, sink, frames.OutputBudget(100))
        return paused, transport.paused, bytes(sink)

    assert asyncio.run(go()) == (True, False, b"0123456789ab")


def test_artifact_names_stay_unique_and_contents_must_match() -> None:
    items = [{"name": "a.png", "kind": "figure", "size": 3},
             {"name": "a.png", "kind": "file", "size": 3}]  # fmt: skip
    names = [
        a.name for a in answers.artifacts_from_answer({"artifacts": items * 2}, [b"png"] * 4, 100)
    ]
    assert names == ["a.png", "2_a.png", "3_a.png", "4_a.png"]
    with pytest.raises(frames.ChannelError, match="malformed artifact"):
        answers.artifacts_from_answer({"artifacts": [{"kind": "file", "size": 1}]}, [b"x"], 100)
    with pytest.raises(frames.ChannelError, match="1 contents for 2 artifacts"):
        answers.artifacts_from_answer({"artifacts": items}, [b"png"], 100)


@pytest.mark.parametrize(
    ("count", "limit", "match"),
    [(MAX_ARTIFACT_FILES + 1, 1 << 20, "more than 100 artifacts"), (3, 8, "more than 8 bytes")],
)
def test_more_artifacts_than_a_runner_sends_is_a_protocol_error(
    count: int, limit: int, match: str
) -> None:
    item = {"name": "a", "kind": "file", "size": 3}
    started = time.monotonic()
    with pytest.raises(frames.ChannelError, match=match):
        answers.artifacts_from_answer({"artifacts": [item] * count}, [b"xyz"] * count, limit)
    assert time.monotonic() - started < 1


def test_an_artifact_of_another_size_than_declared_is_refused() -> None:
    async def go() -> bytes | None:
        return await frames.read_raw(_reader((5).to_bytes(4, "big") + b"12345"), 3)

    with pytest.raises(frames.ChannelError, match="5 bytes for an artifact of 3"):
        asyncio.run(go())


# -- code that abuses its channel, on a real warm runner ---------------------------

_FIND_CHANNEL = (
    "import os\n"
    "fd = next(int(n) for n in os.listdir('/proc/self/fd')\n"
    "          if os.readlink(f'/proc/self/fd/{n}').startswith('socket:'))\n"
)

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the warm pool runs on Linux"
)


@linux_only
@pytest.mark.parametrize(
    "forgery",
    [
        pytest.param("os.write(fd, (1 << 31).to_bytes(4, 'big'))", id="huge-frame"),
        pytest.param("os.write(fd, (5).to_bytes(4, 'big') + b'{nope')", id="not-json"),
    ],
)
def test_a_forged_frame_ends_the_execution_not_the_host(tmp_path: Path, forgery: str) -> None:
    code = _FIND_CHANNEL + forgery + "\nimport time\ntime.sleep(30)"

    async def go() -> tuple[object, float, object]:
        sandbox = PythonSandbox(engine=NativeEngine(work_root=tmp_path))
        try:
            started = time.monotonic()
            outcome = await asyncio.gather(
                sandbox.execute(code, options=ExecutionOptions(
                    import_policy=ImportPolicy.allow_all(), timeout=20)),
                return_exceptions=True,
            )  # fmt: skip
            took = time.monotonic() - started
            after = await sandbox.execute("result = 'next'")
            return outcome[0], took, after
        finally:
            await sandbox.aclose()

    error, took, after = asyncio.run(go())
    assert isinstance(error, EngineError) and "broke its protocol" in str(error)
    assert took < 10  # refused when the frame came, not at the timeout
    assert getattr(after, "result", None) == "next"
    assert not any(tmp_path.iterdir())  # its workspace is gone too


@linux_only
def test_a_forged_frame_ends_a_session(tmp_path: Path) -> None:
    async def go() -> tuple[object, object]:
        sandbox = PythonSandbox(engine=NativeEngine(work_root=tmp_path))
        try:
            opts = ExecutionOptions(import_policy=ImportPolicy.allow_all(), timeout=20)
            async with sandbox.session(opts) as session:
                await session.execute("x = 1")
                forged = await asyncio.gather(
                    session.execute(_FIND_CHANNEL + "os.write(fd, (1 << 31).to_bytes(4, 'big'))"
                                    "\nimport time\ntime.sleep(30)"),
                    return_exceptions=True,
                )  # fmt: skip
                later = await asyncio.gather(session.execute("x"), return_exceptions=True)
            return forged[0], later[0]
        finally:
            await sandbox.aclose()

    forged, later = asyncio.run(go())
    assert isinstance(forged, EngineError) and "state is lost" in str(forged)
    assert "has ended" in str(later)


@linux_only
@pytest.mark.parametrize("slack", [0, 1, 10, 40])
def test_output_just_under_the_limit_is_not_cut(tmp_path: Path, slack: int) -> None:
    limit = 2000
    size = limit - slack - 1  # print() adds the newline

    async def go() -> object:
        sandbox = PythonSandbox(engine=NativeEngine(work_root=tmp_path))
        try:
            return await sandbox.execute(
                f"print('x' * {size})\nresult = 1",
                options=ExecutionOptions(max_output_bytes=limit),
            )
        finally:
            await sandbox.aclose()

    res = asyncio.run(go())
    assert getattr(res, "stdout", None) == "x" * size + "\n"


@linux_only
@pytest.mark.parametrize(
    "code",
    [
        pytest.param("raise ValueError('x' * 5_000_000)", id="ascii"),
        pytest.param("raise ValueError('\\U0001f600' * 2_000_000)", id="astral"),
        pytest.param("import sys\nsys.exit('q' * 4_000_000)", id="exit"),
    ],
)
def test_a_huge_error_message_is_cut_not_refused(tmp_path: Path, code: str) -> None:
    # the answer frame is capped from the options: the worker must keep its report within
    async def go() -> object:
        sandbox = PythonSandbox(engine=NativeEngine(work_root=tmp_path))
        try:
            return (await asyncio.gather(sandbox.execute(code), return_exceptions=True))[0]
        finally:
            await sandbox.aclose()

    error = asyncio.run(go())
    assert not isinstance(error, EngineError), error
    assert "characters cut" in str(error)
    assert len(str(error)) < 1 << 20


class FakeTree:
    """A runner's process tree as the driver sees it: killing it closes the runner's ends
    of the pipes (its processes are gone); ``usage`` is scripted."""

    def __init__(self, pipes: RunnerPipes, usage: Callable[[], TreeUsage]) -> None:
        self.pipes, self._usage, self.killed = pipes, usage, False

    def kill(self, wait: float = 0.0) -> None:
        self.killed = True
        self.pipes.close_runner_ends()

    def terminate(self) -> None: ...

    def end(self) -> None: ...

    def alive(self) -> bool:
        return not self.killed

    def usage(self) -> TreeUsage:
        return self._usage()


CELL = CellLimits(marker=MARKER, max_output_bytes=1000, max_frame=1 << 20,
                  max_artifact_bytes=1000, cpu_seconds=1.0)  # fmt: skip


async def _exchange(
    usage: Callable[[], TreeUsage], write: bytes = b"", on_output: Any = None
) -> tuple[Exchange | BaseException, bool]:
    """One cell on a runner that prints ``write`` and never answers."""
    pipes = RunnerPipes.create()
    tree = FakeTree(pipes, usage)
    channel = RunnerChannel(0, pipes, tree)
    try:
        if write:
            os.write(pipes.stdout_w, write)
        try:
            result: Exchange | BaseException = await channel.exchange(
                b"", ready=False, cell=CELL, timeout=2.0, on_output=on_output
            )
        except Exception as exc:  # noqa: BLE001  # what the exchange raised is the result
            result = exc
        return result, tree.killed
    finally:
        await channel.close()
        pipes.close_all()


def test_a_tree_that_cannot_be_measured_fails_the_exchange_and_kills_it() -> None:
    def usage() -> TreeUsage:
        raise OSError("no such process tree")

    result, killed = asyncio.run(_exchange(usage))
    assert isinstance(result, OSError) and killed


def test_the_tree_passing_its_cpu_budget_is_an_overrun() -> None:
    result, killed = asyncio.run(_exchange(lambda: TreeUsage(cpu_seconds=5.0, memory_bytes=0)))
    assert isinstance(result, Exchange) and killed
    assert result.overrun is not None and result.overrun.kind == "cpu"
    assert not result.timed_out


def test_a_streaming_callback_that_raises_fails_the_exchange_and_kills_it() -> None:
    def tap(stream: str, data: bytes) -> None:
        raise RuntimeError("the callback's bug")

    result, killed = asyncio.run(_exchange(lambda: TreeUsage(0.0, 0), b"printed\n", tap))
    assert isinstance(result, RuntimeError) and killed


def test_a_flood_is_cut_at_the_budget_without_waiting_for_the_streams() -> None:
    started = time.perf_counter()
    result, killed = asyncio.run(_exchange(lambda: TreeUsage(0.0, 0), b"x" * 5000))
    assert isinstance(result, Exchange) and killed and result.output_exceeded
    assert result.stdout == b"x" * 1000
    assert time.perf_counter() - started < 1.5  # the drain after a kill is for a timeout
