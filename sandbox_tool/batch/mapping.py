"""Running a batch: at most ``concurrency`` items at once, results as they complete.

:class:`BatchStream` is what :meth:`sandbox_tool.PythonSandbox.map` returns: an async
iterator of :class:`~sandbox_tool.batch.items.BatchResult` that is also an async context
manager. The input is read lazily, one item for each free slot, so a generator of a
million items is never held in memory; leaving the iteration (``break``, an exception,
a cancelled task) cancels the items still running and waits until their sandboxes are
gone. :func:`iterate_sync` is the same for code without an event loop.

How each item runs is an :data:`ItemExecutor` (``execute(code, inputs, options)``),
handed over by an async context manager that lives as long as the batch: that is where
a caller chooses it, once per batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
)
from types import TracebackType
from typing import Any

from sandbox_tool.batch.items import BatchResult, RawItem, coerce_item
from sandbox_tool.engines.base import Engine
from sandbox_tool.errors import EngineError, SandboxError, UsageError
from sandbox_tool.options import ExecutionOptions
from sandbox_tool.result import ExecutionResult

__all__ = [
    "BatchStream",
    "ExecutorScope",
    "ItemExecutor",
    "Items",
    "default_concurrency",
    "iterate_sync",
    "limited",
    "local_results",
]

#: Runs one item: ``await execute(code, inputs, options)`` returns its result or raises
#: a ``SandboxError``, as :meth:`sandbox_tool.PythonSandbox.execute` does.
ItemExecutor = Callable[[str, Any, ExecutionOptions], Awaitable[ExecutionResult]]
#: Opens the executor for one batch and closes it when the batch ends.
ExecutorScope = Callable[[], contextlib.AbstractAsyncContextManager[ItemExecutor]]
#: The items of a batch: any iterable or async iterable, read lazily.
Items = Iterable[RawItem] | AsyncIterable[RawItem]


def default_concurrency(engine: Engine) -> int:
    """As many items at once as the engine runs at once (its gate's ``max_concurrent``,
    twice the CPUs by default), or the number of CPUs for an engine without a gate."""
    gate = getattr(engine, "gate", None)
    limit = getattr(gate, "limit", None)
    return limit if isinstance(limit, int) and limit > 0 else os.cpu_count() or 1


def check_concurrency(concurrency: int | None, default: int) -> int:
    if concurrency is None:
        return default
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise UsageError(f"concurrency must be a positive int, not {concurrency!r}")
    return concurrency


async def run_item(
    execute: ItemExecutor, raw: Any, position: int, defaults: ExecutionOptions
) -> BatchResult:
    """One item's tagged result; whatever goes wrong with it is its error."""
    item_id: Any = position
    try:
        item = coerce_item(raw, position)
        item_id = item.id
        options = item.options_for(defaults)
        return BatchResult(item_id, result=await execute(item.code, item.inputs, options))
    except SandboxError as exc:
        return BatchResult(item_id, error=exc)
    except Exception as exc:  # noqa: BLE001 - a bug must not end the other items
        return BatchResult(item_id, error=EngineError(f"the item could not run: {exc!r}"))


async def _next_item(source: Any, is_async: bool) -> tuple[bool, Any]:
    """(True, item) or (False, None) at the end of ``source``."""
    try:
        return True, (await source.__anext__() if is_async else next(source))
    except (StopIteration, StopAsyncIteration):
        return False, None


async def local_results(
    items: Items, scope: ExecutorScope, concurrency: int, defaults: ExecutionOptions
) -> AsyncGenerator[BatchResult, None]:
    """The results of ``items`` run by the executor ``scope`` opens, ``concurrency`` at
    once, in the order they complete; stopping the generator cancels what still runs."""
    is_async = isinstance(items, AsyncIterable)
    source: Any = items.__aiter__() if isinstance(items, AsyncIterable) else iter(items)
    running: set[asyncio.Task[BatchResult]] = set()
    async with scope() as execute:
        try:
            position, more = 0, True
            while True:
                while more and len(running) < concurrency:
                    more, raw = await _next_item(source, is_async)
                    if more:
                        job = run_item(execute, raw, position, defaults)
                        running.add(asyncio.ensure_future(job))
                        position += 1
                if not running:
                    return
                done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    yield task.result()
        finally:
            await _cancel_all(running)


async def _cancel_all(tasks: set[asyncio.Task[BatchResult]]) -> None:
    """Cancel ``tasks`` and wait until each has cleaned up (its sandbox killed and
    removed), even if this wait is itself cancelled."""
    for task in tasks:
        task.cancel()
    if tasks:
        ending = asyncio.gather(*tasks, return_exceptions=True)
        try:
            await asyncio.shield(ending)
        except asyncio.CancelledError:
            await asyncio.wait({ending})
            raise


def limited(scope: ExecutorScope, slots: asyncio.Semaphore) -> ExecutorScope:
    """``scope``'s executor, running at most as many items at once as ``slots`` allows
    (shared by several batches at once)."""

    @contextlib.asynccontextmanager
    async def opened() -> AsyncIterator[ItemExecutor]:
        async with scope() as execute:

            async def run(code: str, inputs: Any, options: ExecutionOptions) -> ExecutionResult:
                async with slots:
                    return await execute(code, inputs, options)

            yield run

    return opened


class BatchStream:
    """The results of a batch as they complete (see :meth:`sandbox_tool.PythonSandbox.map`).

    >>> async with sandbox.map(["result = 1", "1/0"]) as results:   # doctest: +SKIP
    ...     async for res in results:
    ...         print(res.id, res.ok)
    1 False
    0 True

    Leaving an ``async with`` block stops what is still running at once; a bare
    ``async for`` that breaks off is stopped when the event loop finalizes the
    abandoned iterator (or by :meth:`aclose`).
    """

    def __init__(self, results: AsyncGenerator[BatchResult, None]) -> None:
        self._results = results

    def __aiter__(self) -> BatchStream:
        return self

    async def __anext__(self) -> BatchResult:
        return await self._results.__anext__()

    async def aclose(self) -> None:
        """Stop the items still running and wait until they are gone."""
        await self._results.aclose()

    async def __aenter__(self) -> BatchStream:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


_END = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def iterate_sync(open_stream: Callable[[], BatchStream], buffer: int) -> Iterator[BatchResult]:
    """The results of ``open_stream()`` for synchronous code, from an event loop in a
    helper thread; at most ``buffer`` results wait for the caller. Closing the iterator
    (``break`` in a ``for`` loop) stops the batch and waits until nothing is left."""
    results: queue.Queue[Any] = queue.Queue()
    started = threading.Event()
    handle: dict[str, Any] = {}

    async def pump() -> None:
        handle["loop"], handle["task"] = asyncio.get_running_loop(), asyncio.current_task()
        room = handle["room"] = asyncio.Semaphore(buffer)
        started.set()
        try:
            async with open_stream() as stream:
                async for res in stream:
                    await room.acquire()
                    results.put(res)
            results.put(_END)
        except asyncio.CancelledError:
            results.put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            results.put(_Failure(exc))

    thread = threading.Thread(target=asyncio.run, args=(pump(),), name="sandbox-tool-map")
    thread.start()
    started.wait()
    try:
        while True:
            got = results.get()
            if got is _END:
                return
            if isinstance(got, _Failure):
                raise got.exc
            _call_in(handle["loop"], handle["room"].release)
            yield got
    finally:
        _call_in(handle["loop"], handle["task"].cancel)
        thread.join()


def _call_in(loop: asyncio.AbstractEventLoop, callback: Callable[[], object]) -> None:
    """``callback`` on ``loop`` from another thread; nothing when that loop has already
    ended (the batch finished while the caller was taking its last results)."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback)
