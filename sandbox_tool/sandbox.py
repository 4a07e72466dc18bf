"""``PythonSandbox``: the front door. Chooses an engine, validates calls, runs code."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

from sandbox_tool.calls import check_call
from sandbox_tool.engines import ENGINES, Engine, EngineInfo, probe_all
from sandbox_tool.engines.base import EngineSession
from sandbox_tool.errors import EngineUnavailable, UsageError
from sandbox_tool.options import ExecutionOptions
from sandbox_tool.result import ExecutionResult

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
    for info in infos:
        if info.available:
            return ENGINES[info.name], [i for i in infos if i.security_level > info.security_level]
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
    """

    def __init__(
        self,
        engine: Engine | str = "auto",
        *,
        interpreter: str | None = None,
        options: ExecutionOptions | None = None,
        warm: bool = True,
    ) -> None:
        self.passed_over: list[EngineInfo] = []
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

    async def start(self) -> PythonSandbox:
        """Warm the engine up now rather than on the first execution."""
        await self.engine.start()
        return self

    async def execute(
        self,
        code: str,
        inputs: Any = None,
        options: ExecutionOptions | dict[str, Any] | None = None,
    ) -> ExecutionResult:
        """Run ``code``; ``inputs`` (JSON-serialisable) is the variable ``inputs`` there.

        Returns an :class:`ExecutionResult` or raises a
        :class:`~sandbox_tool.errors.SandboxError` carrying the output produced so far.
        """
        opts = check_call(code, inputs, options, self.default_options)
        return await self.engine.execute(code, inputs, opts)

    def execute_sync(
        self,
        code: str,
        inputs: Any = None,
        options: ExecutionOptions | dict[str, Any] | None = None,
    ) -> ExecutionResult:
        """:meth:`execute` for code without an event loop."""
        return run_sync(self.execute(code, inputs, options))

    async def open_session(
        self,
        options: ExecutionOptions | dict[str, Any] | None = None,
        *,
        idle_timeout: float = 600.0,
    ) -> EngineSession:
        """A started :class:`~sandbox_tool.session.Session`; ``aclose()`` it when done
        (or use :meth:`session`)."""
        opts = check_call("", None, options, self.default_options)
        return await self.engine.open_session(opts, idle_timeout)

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
