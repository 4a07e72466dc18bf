"""``PythonSandbox``: the front door. Chooses an engine, validates calls, runs code."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from sandbox_tool.batch.items import BatchResult
from sandbox_tool.batch.mapping import (
    BatchStream,
    ItemExecutor,
    Items,
    check_concurrency,
    default_concurrency,
    iterate_sync,
    local_results,
)
from sandbox_tool.batch.scope import ScopedExecutor, check_scope
from sandbox_tool.calls import check_call
from sandbox_tool.engines import ENGINES, Engine, EngineInfo, probe_all
from sandbox_tool.engines.base import EngineSession
from sandbox_tool.errors import EngineUnavailable, UsageError
from sandbox_tool.options import ExecutionOptions
from sandbox_tool.result import ExecutionResult
from sandbox_tool.streaming import OnOutput

if TYPE_CHECKING:
    from sandbox_tool.environments.manager import EnvironmentManager

__all__ = ["PythonSandbox", "create_default_sandbox", "run_sync"]

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from synchronous code, even inside a running loop
    (then in a helper thread with its own loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sandbox-tool") as pool:
        return pool.submit(asyncio.run, coro).result()


def _choose(interpreter: str | None) -> tuple[type[Engine], list[EngineInfo]]:
    infos = probe_all(interpreter)
    for at, info in enumerate(infos):
        if info.available:  # the ones before it are preferred (stronger, or first among equals)
            return ENGINES[info.name], infos[:at]
    reasons = "; ".join(f"{i.name}: {i.reason}" for i in infos)
    raise EngineUnavailable(f"no engine can run on this host ({reasons})")


class PythonSandbox:
    """Runs Python code on one engine.

    >>> sandbox = PythonSandbox()                       # the strongest engine available
    >>> sandbox = PythonSandbox(engine="native")        # by name
    >>> sandbox = PythonSandbox(warm=False)             # a fresh interpreter per execution
    >>> res = sandbox.execute_sync("result = 6 * 7")    # doctest: +SKIP
    >>> res.result                                      # doctest: +SKIP
    42

    ``passed_over`` lists the stronger engines that were not chosen, each with
    the reason it cannot run here. With ``warm`` (the default) the engine forks
    runners from a template that has numpy, pandas and matplotlib imported,
    started on first use; ``aclose()`` stops it (so does the end of the process).

    ``ExecutionOptions(packages=[...])`` runs the code in an environment that has them,
    found or built (outside the sandbox) by ``environments``, an
    :class:`~sandbox_tool.environments.EnvironmentManager` (default: one for the
    engine's interpreter, the user's cache dir and the default install policy).
    """

    def __init__(
        self,
        engine: Engine | str = "auto",
        *,
        interpreter: str | None = None,
        options: ExecutionOptions | None = None,
        warm: bool = True,
        environments: EnvironmentManager | None = None,
    ) -> None:
        self.passed_over: list[EngineInfo] = []
        self._environments = environments
        self._owns_environments = environments is None
        if isinstance(engine, Engine):
            self.engine = engine
        elif engine == "auto":
            cls, self.passed_over = _choose(interpreter)
            self.engine = cls.create(interpreter, warm=warm)
        elif engine in ENGINES:
            info = ENGINES[engine].probe(interpreter)
            if not info.available:
                raise EngineUnavailable(f"{engine} engine: {info.reason}", engine=engine)
            self.engine = ENGINES[engine].create(interpreter, warm=warm)
        else:
            known = ", ".join(["auto", *ENGINES])
            raise UsageError(f"unknown engine {engine!r}; choose one of: {known}")
        self.default_options = options or ExecutionOptions()

    @property
    def engine_name(self) -> str:
        return self.engine.name

    @property
    def environments(self) -> EnvironmentManager:
        """What finds and builds the environments ``packages`` ask for (made on first use)."""
        if self._environments is None:
            from sandbox_tool.environments.manager import EnvironmentManager

            self._environments = EnvironmentManager(python=self.engine.interpreter)
        return self._environments

    async def _in_environment(self, options: ExecutionOptions) -> ExecutionOptions:
        """``options`` with the environment their packages need (built if needed)."""
        if not options.packages and options.environment is None:
            return options
        if not self.engine.supports_environments:
            raise UsageError(
                f"the {self.engine.name} engine cannot run code in another environment; "
                "drop ExecutionOptions.packages or choose an engine that can "
                f"({', '.join(n for n, c in ENGINES.items() if c.supports_environments)})"
            )
        return await self.environments.resolve(options)

    async def start(self) -> PythonSandbox:
        """Warm the engine up now rather than on the first execution."""
        await self.engine.start()
        return self

    async def prepare(self, options: ExecutionOptions | dict[str, Any] | None = None) -> None:
        """Make ready what executions with ``options`` need: their environment (built if
        needed) and, on a warm engine, its pool, so that the next execution is warm."""
        opts = await self._in_environment(check_call("", None, options, self.default_options))
        if opts.environment is not None:
            await self.engine.prepare_environment(opts.environment)

    async def execute(
        self,
        code: str,
        inputs: Any = None,
        options: ExecutionOptions | dict[str, Any] | None = None,
        *,
        on_output: OnOutput | None = None,
    ) -> ExecutionResult:
        """Run ``code``; ``inputs`` (JSON-serialisable) is the variable ``inputs`` there.

        Returns an :class:`ExecutionResult` or raises a
        :class:`~sandbox_tool.errors.SandboxError` carrying the output produced so far.
        ``on_output`` (a function or a coroutine function) gets what the code prints, line
        by line, while it runs: see :mod:`sandbox_tool.streaming`.
        """
        opts = check_call(code, inputs, options, self.default_options)
        opts = await self._in_environment(opts)
        if on_output is None:  # an engine written before streaming still runs
            return await self.engine.execute(code, inputs, opts)
        return await self.engine.execute(code, inputs, opts, on_output=on_output)

    def execute_sync(
        self,
        code: str,
        inputs: Any = None,
        options: ExecutionOptions | dict[str, Any] | None = None,
        *,
        on_output: OnOutput | None = None,
    ) -> ExecutionResult:
        """:meth:`execute` for code without an event loop (``on_output`` is called on the
        loop this runs, in this thread or a helper thread)."""
        return run_sync(self.execute(code, inputs, options, on_output=on_output))

    def map(
        self, items: Items, concurrency: int | None = None, *, scope: str = "execution"
    ) -> BatchStream:
        """Run many programs; their results come back as they complete, each tagged with
        its item's id.

        >>> async with sandbox.map(BatchItem(id=i, code="result = inputs * 2", inputs=i)
        ...                        for i in range(1000)) as results:   # doctest: +SKIP
        ...     async for res in results:
        ...         print(res.id, res.result.result if res.ok else res.error)

        An item is a :class:`~sandbox_tool.batch.BatchItem` (code, inputs, files, option
        overrides of this sandbox's options), a dict of its fields, or a str of code (its
        id is then its position). ``items`` may be any iterable or async iterable: it is
        read as slots free up, never all at once. At most ``concurrency`` items run at
        once (default: the engine's ``max_concurrent``). An item's failure, timeout or
        limit, and a malformed item, are that item's ``error``; the others go on.
        Leaving the iteration stops the items still running; nothing is left behind.

        ``scope="batch"`` (opt-in, engines with ``supports_batch_scope``): the items share
        one sandbox per concurrent slot, each item still in a fresh process with a fresh
        work dir and nothing left by the item before it; what that does and does not
        isolate between items is in docs/batch.md. Default: a sandbox per item.
        """
        limit = check_concurrency(concurrency, default_concurrency(self.engine))
        executor = functools.partial(self.batch_executor, check_scope(scope, self.engine))
        return BatchStream(local_results(items, executor, limit, self.default_options))

    def map_sync(
        self, items: Items, concurrency: int | None = None, *, scope: str = "execution"
    ) -> Iterator[BatchResult]:
        """:meth:`map` for code without an event loop: a plain iterator of the results.
        Breaking off (or closing it) stops the items still running."""
        limit = check_concurrency(concurrency, default_concurrency(self.engine))
        check_scope(scope, self.engine)
        return iterate_sync(lambda: self.map(items, limit, scope=scope), buffer=limit)

    @contextlib.asynccontextmanager
    async def batch_executor(self, scope: str = "execution") -> AsyncIterator[ItemExecutor]:
        """How each item of a batch runs (for :meth:`map` and the Ray workers), chosen
        here once per batch: an ordinary :meth:`execute` each, or under ``scope="batch"``
        in shared sandboxes (:mod:`sandbox_tool.batch.scope`)."""
        if check_scope(scope, self.engine) == "execution":
            yield self.execute
            return
        await self.start()
        scoped = ScopedExecutor(self.engine.open_scope, self.default_options, self.execute)
        try:
            yield scoped.execute
        finally:
            await asyncio.shield(scoped.aclose())

    async def open_session(
        self,
        options: ExecutionOptions | dict[str, Any] | None = None,
        *,
        idle_timeout: float = 600.0,
    ) -> EngineSession:
        """A started :class:`~sandbox_tool.session.Session`; ``aclose()`` it when done
        (or use :meth:`session`)."""
        opts = check_call("", None, options, self.default_options)
        return await self.engine.open_session(await self._in_environment(opts), idle_timeout)

    @contextlib.asynccontextmanager
    async def session(
        self,
        options: ExecutionOptions | dict[str, Any] | None = None,
        *,
        idle_timeout: float = 600.0,
    ) -> AsyncIterator[EngineSession]:
        """A stateful session: variables, imports and DataFrames last across its cells.

        >>> async with sandbox.session() as s:                    # doctest: +SKIP
        ...     await s.execute("x = 21")
        ...     (await s.execute("x * 2")).result
        42

        ``options`` are the session's (memory, policies, files) and each cell's default
        limits; idle for ``idle_timeout`` seconds, it ends. See :mod:`sandbox_tool.session`.
        """
        session = await self.open_session(options, idle_timeout=idle_timeout)
        try:
            yield session
        finally:
            await session.aclose()

    async def aclose(self) -> None:
        await self.engine.aclose()
        if self._owns_environments and self._environments is not None:
            self._environments.close()

    async def __aenter__(self) -> PythonSandbox:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def create_default_sandbox(
    interpreter: str | None = None, *, options: ExecutionOptions | None = None, warm: bool = True
) -> PythonSandbox:
    """A started :class:`PythonSandbox` on the most secure engine available here, with its
    warm pool running (``warm=False``: a fresh interpreter per execution).

    An engine whose probe passed but which cannot start after all (gVisor's ``runsc``
    installed where its sandbox cannot run) is passed over for the next one.
    ``sandbox.passed_over`` records why each stronger engine was not chosen.
    Raises :class:`~sandbox_tool.errors.EngineUnavailable` if none can run.
    """
    passed_over: list[EngineInfo] = []
    for info in probe_all(interpreter):
        if not info.available:
            passed_over.append(info)
            continue
        engine = ENGINES[info.name].create(interpreter, warm=warm)
        sandbox = PythonSandbox(engine, options=options)
        sandbox.passed_over = list(passed_over)
        try:
            return await sandbox.start()
        except EngineUnavailable as exc:
            await sandbox.aclose()
            reason = f"did not start: {exc}"
            passed_over.append(EngineInfo(info.name, False, info.security_level, reason))
    reasons = "; ".join(f"{i.name}: {i.reason}" for i in passed_over)
    raise EngineUnavailable(f"no engine can run on this host ({reasons})")
