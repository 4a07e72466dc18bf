"""Output while the code runs: what it prints, delivered to a callback line by line.

>>> seen = []
>>> res = await sandbox.execute("print('a')\\nprint('b')", on_output=seen.append)  # doctest: +SKIP
>>> seen                                                                        # doctest: +SKIP
[Output(stream='stdout', text='a\\nb\\n')]

Every engine and every session takes ``on_output``. What it promises:

- **Events**: :class:`Output` (``stream`` is ``"stdout"`` or ``"stderr"``, ``text`` whole
  lines, one or more, as they arrived together). A line longer than 64 KiB comes in
  pieces, and the end of a stream without a final newline comes when the code ends.
  Each stream's events are in the order it was written; how the two interleave is the
  order the host read them. Figures, files and the result come with the result.
- **Limits hold**: only output within ``ExecutionOptions.max_output_bytes`` is
  delivered; the code's limits run on the host's clock, never the callback's. The result
  (or the error) carries the same text, decoded the same way: it stays the reference.
- **Sync or async**: a plain function is called on the event loop (keep it quick: a
  print, a queue put; one that blocks blocks the loop, and the host's timeout with it);
  a coroutine function is awaited, and may take its time (``await
  asyncio.to_thread(...)`` for blocking work). Either way the sandbox is never held up:
  output is queued while the callback works.
- **Before the return**: every event is delivered before ``execute`` returns or raises,
  unless the callback is still busy :data:`DELIVERY_GRACE` seconds after the code
  ended; the rest is then dropped and a warning is logged.
- **A callback that raises** gets nothing more for that execution; the code runs on
  to its end and its result comes back as usual. The exception is logged (logger
  ``sandbox_tool.streaming``) with its traceback: an observer never changes an outcome.
- **Cancelling** the execution stops the delivery at once.

Engines feed raw bytes as they read them (:data:`Tap`); :func:`relay` turns a caller's
callback into such a tap for the length of one execution.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import inspect
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

__all__ = ["DELIVERY_GRACE", "OnOutput", "Output", "OutputRelay", "Stream", "Tap", "relay"]

logger = logging.getLogger(__name__)

Stream = Literal["stdout", "stderr"]

#: Seconds a busy callback gets, once the code has ended, to take the rest of the output.
DELIVERY_GRACE = 5.0
#: A line longer than this (in characters) is delivered in pieces of about this size.
MAX_PIECE = 64 * 1024


@dataclass(frozen=True)
class Output:
    """A piece of what the code printed, delivered while it runs."""

    stream: Stream
    """``"stdout"`` or ``"stderr"``."""
    text: str
    """Whole lines (each ending in ``"\\n"``), but for the last piece of a stream that
    did not end with a newline, or a piece of a line longer than 64 KiB."""


#: What ``execute(..., on_output=...)`` takes: a function or a coroutine function.
OnOutput = Callable[[Output], Awaitable[None] | None]
#: What an engine feeds while it reads the code's output: the stream and the raw bytes.
Tap = Callable[[Stream, bytes], None]


class _Lines:
    """One stream's bytes, decoded (UTF-8, bad bytes replaced as in the result) and cut
    after its last newline."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._held = ""

    def feed(self, data: bytes) -> str:
        text = self._held + self._decoder.decode(data)
        cut = text.rfind("\n") + 1
        if cut == 0 and len(text) < MAX_PIECE:
            self._held = text
            return ""
        cut = cut or len(text)
        self._held = text[cut:]
        return text[:cut]

    def flush(self) -> str:
        text, self._held = self._held + self._decoder.decode(b"", final=True), ""
        return text


class OutputRelay:
    """Delivers one execution's output to ``callback`` from a task of its own, so that
    reading the sandbox's streams never waits for the callback."""

    def __init__(self, callback: OnOutput, *, grace: float = DELIVERY_GRACE) -> None:
        self._callback = callback
        self._grace = grace
        self._lines: dict[Stream, _Lines] = {"stdout": _Lines(), "stderr": _Lines()}
        self._queue: deque[Output] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._stopped = False

    def feed(self, stream: Stream, data: bytes) -> None:
        """Raw output as the engine read it; returns at once."""
        text = self._lines[stream].feed(data)
        if text:
            self._push(Output(stream, text))

    def _push(self, event: Output) -> None:
        if self._stopped:
            return
        self._queue.append(event)
        self._wake.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._deliver())
            self._task.add_done_callback(_retrieve)

    async def _deliver(self) -> None:
        while True:
            while self._queue:
                event = self._queue.popleft()
                try:
                    answer = self._callback(event)
                    if inspect.isawaitable(answer):
                        await answer
                except Exception:
                    self._stop()
                    logger.exception(
                        "the on_output callback raised: it gets no more output for this "
                        "execution, which goes on"
                    )
                    return
            if self._closing:
                return
            self._wake.clear()
            await self._wake.wait()

    def _stop(self) -> None:
        self._stopped = True
        self._queue.clear()

    async def finish(self) -> None:
        """The code has ended: deliver what is left (within the grace), then stop."""
        for stream, lines in self._lines.items():
            text = lines.flush()
            if text:
                self._push(Output(stream, text))
        self._closing = True
        self._wake.set()
        task = self._task
        if task is None:
            return
        done, _ = await asyncio.wait({task}, timeout=self._grace)
        if done:
            task.result()  # a BaseException of the callback's (KeyboardInterrupt) goes on up
            return
        dropped = len(self._queue)
        self.cancel()
        await asyncio.wait({task}, timeout=self._grace)
        logger.warning(
            "the on_output callback was still busy %g s after the code ended: the rest of "
            "the output (%d more events) was not delivered to it; it is in the result",
            self._grace,
            dropped,
        )

    def cancel(self) -> None:
        """Stop delivering now (the execution was cancelled or failed on the host)."""
        self._stop()
        if self._task is not None:
            self._task.cancel()


def _retrieve(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()  # seen by finish(), or not wanted: never "never retrieved"


@contextlib.asynccontextmanager
async def relay(on_output: OnOutput | None) -> AsyncIterator[Tap | None]:
    """The tap for one execution's output (``None`` without a callback: nothing to do).

    When the block ends, or raises an ``Exception`` (an error is an outcome too), the rest
    of the output is delivered; when it is cancelled (or interrupted) the delivery stops
    at once."""
    if on_output is None:
        yield None
        return
    output = OutputRelay(on_output)
    try:
        yield output.feed
    except Exception:
        await output.finish()
        raise
    except BaseException:
        output.cancel()
        raise
    await output.finish()
