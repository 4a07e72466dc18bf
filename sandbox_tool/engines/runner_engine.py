"""The engine that runs sandbox_tool's runner as a process tree, under an isolation
strategy: everything the native and process engines share.

One execution, cold or warm, takes the same path:

1. a runner: forked ahead of time from the warm template
   (:mod:`~sandbox_tool.engines.runners.pool`), or started now
   (:mod:`~sandbox_tool.engines.runners.starting`), in both cases with its setup (paths,
   environment, its sandbox's settings) already;
2. its request and its one cell, built from the options in
   :mod:`~sandbox_tool.engines.runners.requests`, go through the one channel driver
   (:class:`~sandbox_tool.engines.runners.driver.RunnerChannel`), which enforces the
   timeout and the output cap and kills the tree when one is hit;
3. the answer, or, when the worker died first, its supervisor's report and the files it
   left, become a result or an error in :mod:`~sandbox_tool.engines.runners.answers`;
4. the runner ends by itself and is removed, off the caller's path when warm.

Sessions (:mod:`sandbox_tool.session`) take a runner the same way and exchange one cell
at a time over the same driver.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from sandbox_tool.engines.base import Engine, EngineInfo
from sandbox_tool.engines.environment_pools import EnvironmentPools
from sandbox_tool.engines.isolation.base import Isolation
from sandbox_tool.engines.runners import fontcache, requests
from sandbox_tool.engines.runners.answers import AnswerContext, read_fallback, to_result
from sandbox_tool.engines.runners.driver import Exchange, RunnerChannel
from sandbox_tool.engines.runners.gate import Gate
from sandbox_tool.engines.runners.pool import WarmPool
from sandbox_tool.engines.runners.runner import Runner
from sandbox_tool.engines.runners.shared import SharedSandbox
from sandbox_tool.engines.runners.starting import shielded, start_cold
from sandbox_tool.engines.runners.template import template_argv, template_env
from sandbox_tool.engines.runners.workspace import Workspace, remove_stale
from sandbox_tool.environments.environment import Environment
from sandbox_tool.environments.requirements import Requirement
from sandbox_tool.errors import EngineUnavailable, UsageError
from sandbox_tool.options import ExecutionOptions
from sandbox_tool.result import ExecutionResult
from sandbox_tool.runner import protocol
from sandbox_tool.session import Session
from sandbox_tool.streaming import OnOutput, relay

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["DEFAULT_PRELOAD", "RunnerEngine"]

#: What a warm template imports once for all its runners.
DEFAULT_PRELOAD = ("numpy", "pandas", "matplotlib", "matplotlib.pyplot")
#: How long a cold runner that answered gets to end by itself before it is killed.
_END_SECONDS = 1.0


class RunnerEngine(Engine):
    """Runs the runner in a process tree whose sandbox ``isolation`` builds.

    Subclasses are thin: a name, a level, a summary and the strategy they use
    (:meth:`make_isolation`). ``isolation`` overrides the default strategy."""

    supports_sessions = True
    supports_environments = True
    #: Offers a warm path (runners forked from a template) where the platform allows.
    offers_warm: ClassVar[bool] = True

    def __init__(
        self,
        interpreter: str | None = None,
        *,
        isolation: Isolation | None = None,
        work_root: Path | None = None,
        warm: bool = True,
        preload: Sequence[str] = DEFAULT_PRELOAD,
        pool_size: int = 2,
        max_concurrent: int | None = None,
        max_queued: int = 64,
    ) -> None:
        super().__init__(interpreter)
        isolation = isolation or self.make_isolation()
        #: How this engine's runners are sandboxed (owns its probe cache).
        self.isolation = isolation
        #: At most this many executions at once (default: twice the CPUs); up to
        #: ``max_queued`` more wait; beyond, ``EngineError``: backpressure, not forking.
        self.gate = Gate(max_concurrent or 2 * (os.cpu_count() or 1), max_queued)
        self.work_root = work_root
        #: Fork runners from a template that has the stack imported (Linux), or start
        #: every runner cold.
        self.warm = warm and sys.platform.startswith("linux") and isolation.forks_warm
        self.preload = list(preload)
        self.pool_size = pool_size
        self._font_cache: Path | None = None
        self._pool: WarmPool | None = None
        #: The warm pools of other environments (``ExecutionOptions.environment``): closed
        #: after ``environment_idle_seconds`` unused, at most ``max_environment_pools``.
        self.environment_idle_seconds = 300.0
        self.max_environment_pools = 4
        self._env_pools: EnvironmentPools | None = None
        self._env_fonts: dict[str, Path | None] = {}
        self._lent: dict[int, str] = {}  # id(runner) -> the environment whose pool lent it
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._started = False
        self._start_lock = threading.Lock()

    @classmethod
    def make_isolation(cls, *, accept_degraded: bool = False) -> Isolation:
        """The strategy this engine uses on this platform, with its defaults."""
        raise NotImplementedError

    @classmethod
    def create(cls, interpreter: str | None = None, *, warm: bool = True) -> Self:
        return cls(interpreter, warm=warm)

    @classmethod
    def probe(cls, interpreter: str | None = None) -> EngineInfo:
        python = interpreter or sys.executable
        ok, reason = _runnable(python)
        if ok:
            ok, reason = cls.make_isolation().probe(python)
        return EngineInfo(cls.name, ok, cls.security_level, reason)

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        ok, reason = _runnable(self.interpreter)
        if not ok:
            raise EngineUnavailable(f"{self.name} engine: {reason}", engine=self.name)
        await asyncio.to_thread(self._start_blocking)

    def _start_blocking(self) -> None:
        with self._start_lock:
            if self._started:
                return
            self.isolation.prepare(self.interpreter)
            self._font_cache = fontcache.warm(self.interpreter)
            remove_stale(self.work_root)  # left by a host that died without cleaning up
            if self.warm or self.isolation.hosts_runners:
                argv, env = template_argv(self.interpreter), template_env(self._font_cache)
                preload = self.preload if self.warm else []
                pool = WarmPool(
                    argv,
                    env=env,
                    preload=preload,
                    make_workspace=lambda: Workspace.create(self._workspace_parent(), {}, None),
                    make_setup=self._setup,
                    default_key=self.isolation.pool_key(ExecutionOptions()),
                    size=self.pool_size if self.warm else 0,
                    template=self.isolation.make_template(argv, env, preload, self.work_root),
                )
                try:
                    pool.start()
                except BaseException:
                    pool.close()  # what its template holds (gVisor's: its sandbox's dirs)
                    raise
                self._pool = pool
                env_pools = EnvironmentPools(
                    self._environment_pool,
                    idle_seconds=self.environment_idle_seconds,
                    max_pools=self.max_environment_pools,
                )
                self._env_pools = env_pools
                # an engine dropped without aclose() still stops its templates
                self._finalizer = weakref.finalize(self, _close_pools, pool, env_pools)
            self._started = True

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        env_pools, self._env_pools = self._env_pools, None
        self._started = False
        if pool is not None:
            if self._finalizer is not None:
                self._finalizer.detach()
            await asyncio.to_thread(_close_pools, pool, env_pools)

    @property
    def pool(self) -> WarmPool | None:
        """The warm pool, once started (None on the cold path)."""
        return self._pool

    @property
    def environment_pools(self) -> EnvironmentPools | None:
        """The warm pools of other environments, once started (None on the cold path)."""
        return self._env_pools

    def degraded(self, options: ExecutionOptions) -> list[str]:
        return self.isolation.degraded(options)

    async def prepare_environment(self, env: Environment) -> None:
        """Start ``env``'s warm pool now (it starts on first use otherwise)."""
        await self.start()
        pools = self._env_pools
        if pools is not None:
            await asyncio.to_thread(pools.acquire, env)
            pools.release(env.key)

    def _workspace_parent(self) -> Path | None:
        return self.isolation.workspace_parent(self.work_root)

    # -- what a runner is given -------------------------------------------------------

    def _runner_argv(self, ws: Workspace, options: ExecutionOptions) -> list[str]:
        python = options.environment.python if options.environment else self.interpreter
        argv = [python, "-I", "-B", "-c", protocol.BOOTSTRAP, requests.RUNNER_PARENT]
        return self.isolation.wrap_argv(argv, ws, options)

    def _fonts_of(self, env: Environment) -> Path | None:
        """matplotlib's font cache for an environment's interpreter (built once)."""
        if env.key not in self._env_fonts:
            has = "matplotlib" in env.packages  # else there is no cache to build
            self._env_fonts[env.key] = fontcache.warm(env.python) if has else None
        return self._env_fonts[env.key]

    def _environment_pool(self, env: Environment) -> WarmPool:
        """A warm pool for ``env`` (not started): its template preloads the usual stack
        and the packages the environment was asked for. Blocking."""
        extra = sorted(env.import_names(Requirement.parse(r).name for r in env.requested))
        return WarmPool(
            template_argv(env.python),
            env=template_env(self._fonts_of(env) or self._font_cache),
            preload=[*self.preload, *(m for m in extra if m not in self.preload)],
            make_workspace=lambda: Workspace.create(self.work_root, {}, None),
            make_setup=self._setup,
            default_key=self.isolation.pool_key(ExecutionOptions()),
            size=self.pool_size,
        )

    def _setup(self, ws: Workspace, key: Any) -> protocol.RunnerSetup:
        setup = requests.runner_setup(ws, self.isolation.setup(ws, key))
        confine = self.isolation.confine(ws, key)
        if confine is not None:
            setup["confine"] = confine
        return setup

    # -- taking a runner ------------------------------------------------------------------

    async def _take(self, options: ExecutionOptions) -> tuple[Runner, bool]:
        """A runner for ``options`` and whether it came from a warm pool."""
        env = options.environment
        if options.packages and env is None:
            raise UsageError(
                "ExecutionOptions.packages are installed before an engine runs the code: run "
                "through PythonSandbox, or resolve them with EnvironmentManager.resolve(options)"
            )
        if env is None or self._env_pools is None:
            return await self._take_from(self._pool, options)
        # its pool, running (never blocks the loop) or started now (in a thread)
        pools = self._env_pools
        pool = pools.acquire_started(env) or await asyncio.to_thread(pools.acquire, env)
        try:
            runner, warm = await self._take_from(pool, options)
        except BaseException:
            pools.release(env.key)
            raise
        self._lent[id(runner)] = env.key
        return runner, warm

    async def _take_from(
        self, pool: WarmPool | None, options: ExecutionOptions
    ) -> tuple[Runner, bool]:
        key = self.isolation.pool_key(options)
        if pool is not None and not options.files:
            ready = pool.take_ready(key)
            return (ready or await shielded(pool.take, key, None)), True
        # exposed files must be in place before the sandbox is built
        fonts = None
        if pool is None:
            env = options.environment
            fonts = (
                self._font_cache if env is None else await asyncio.to_thread(self._fonts_of, env)
            )
        ws = await asyncio.to_thread(
            Workspace.create, self._workspace_parent(), options.files, fonts
        )
        try:
            if pool is not None:
                return await shielded(pool.take, key, ws), True
            argv = self._runner_argv(ws, options)
            return await shielded(start_cold, argv, self._setup(ws, key), ws), False
        except asyncio.CancelledError:
            raise  # the runner being started for it is discarded when it is ready
        except BaseException:
            await asyncio.to_thread(ws.cleanup)
            raise

    async def _give_back(self, runner: Runner, warm: bool, channel: RunnerChannel) -> None:
        """The runner is done with: warm ones go back to the pool, which lets them end
        and removes them in the background; a cold one is waited for here."""
        if self._give_back_warm(runner, warm, channel):
            await asyncio.sleep(0)  # the transports' closing callbacks run
        else:
            await self._finish_cold(runner, channel)

    async def _finish_cold(self, runner: Runner, channel: RunnerChannel) -> None:
        """Wait for a runner no pool takes back to end (kill it after a while), then
        remove it."""
        ended = await channel.ended(_END_SECONDS)
        await channel.close()
        if not ended:
            await asyncio.to_thread(runner.tree.kill)
        await asyncio.to_thread(runner.finish, not ended)

    def _give_back_warm(self, runner: Runner, warm: bool, channel: RunnerChannel) -> bool:
        """Hand a warm runner back to its pool without yielding to the event loop (false
        for a cold one, which :meth:`_give_back` waits for). Its teardown, which wakes
        the pool's thread, is scheduled behind the transports' closing callbacks, so it
        runs once the caller has resumed with its answer, not before (that thread would
        take the GIL from the caller)."""
        env_key, env_pools = self._lent.pop(id(runner), None), self._env_pools
        pool = self._pool if env_key is None or env_pools is None else env_pools.pool_of(env_key)
        if not warm or pool is None:
            return False
        channel.close_now()
        loop = asyncio.get_running_loop()
        loop.call_soon(pool.release, runner)
        if env_key is not None and env_pools is not None:
            # after the runner went back: only then may an idle pool be closed
            loop.call_soon(env_pools.release, env_key)
        return True

    # -- running ----------------------------------------------------------------------

    async def execute(
        self,
        code: str,
        inputs: Any,
        options: ExecutionOptions,
        *,
        on_output: OnOutput | None = None,
    ) -> ExecutionResult:
        await self.start()
        async with self.gate:
            runner, warm = await self._take(options)
            channel = RunnerChannel(runner.pid, runner.pipes, runner.tree)
            try:
                frames, limits = requests.one_shot_frames(
                    code, inputs, options, runner.ws,
                    sandbox_caps_processes=self.isolation.caps_processes,
                )  # fmt: skip
                async with relay(on_output) as tap:
                    ex = await channel.exchange(frames, ready=True, cell=limits,
                                                timeout=options.timeout,
                                                stop_grace=self.isolation.stop_grace,
                                                on_output=tap)  # fmt: skip
                return await self._result(ex, channel, runner, options)
            finally:
                if not self._give_back_warm(runner, warm, channel):
                    await asyncio.shield(self._finish_cold(runner, channel))

    async def _result(
        self, ex: Exchange, channel: RunnerChannel, runner: Runner, options: ExecutionOptions
    ) -> ExecutionResult:
        ready = ex.ready or {}
        if ready.get("status") == "runner_error":
            ex.answer = ready  # the worker could not apply the request
        reported = ready.get("isolation")
        ctx = AnswerContext(
            engine=self.name,
            options=options,
            degraded=self.degraded(options),
            require_isolation=self.isolation.promises_layers,
            isolation=self.isolation.layers(reported if isinstance(reported, dict) else None),
        )
        supervisor, fallback = None, None
        if not ex.answered:
            if not ex.cut_short:  # the worker died: its supervisor says how, once it ended
                supervisor = await channel.supervisor_report()
            fallback = await asyncio.to_thread(read_fallback, runner.ws, options)
        return to_result(ex, ctx, supervisor, fallback)

    async def open_session(self, options: ExecutionOptions, idle_timeout: float) -> Session:
        """A session: one sandboxed interpreter for many cells (see :mod:`sandbox_tool.session`)."""
        await self.start()
        runner, warm = await self._take(options)
        session = Session(self, runner, warm, options, idle_timeout)
        try:
            await session._open()
        except BaseException:
            await asyncio.shield(session.aclose())
            raise
        return session

    async def open_scope(self, options: ExecutionOptions) -> SharedSandbox:
        """A sandbox shared by a batch's items, each in a fresh process forked inside it
        (:mod:`sandbox_tool.batch.scope`); only where ``supports_batch_scope``."""
        if not self.supports_batch_scope:
            return await super().open_scope(options)
        await self.start()
        runner, warm = await self._take(options)
        shared = SharedSandbox(self, runner, warm, options)
        try:
            await shared.open()
        except BaseException:
            await asyncio.shield(shared.aclose("it could not start"))
            raise
        return shared

    async def release(
        self, runner: Runner, warm: bool, channel: RunnerChannel, stop: bool = True
    ) -> None:
        """A session (or a shared sandbox) is over: stop its runner (or, with ``stop``
        false, let it end by itself once its channel is closed: an idle shared sandbox)
        and give it back. Shielded: a cancelled caller must not leave it unreleased."""

        async def release() -> None:
            if stop:
                await channel.kill()
            await self._give_back(runner, warm, channel)

        await asyncio.shield(release())


def _close_pools(pool: WarmPool, env_pools: EnvironmentPools | None) -> None:
    pool.close()
    if env_pools is not None:
        env_pools.close()


def _runnable(python: str) -> tuple[bool, str]:
    """What every runner engine needs: a POSIX host and an executable interpreter."""
    if os.name != "posix":
        return False, "needs a POSIX system (fork)"
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        return False, f"{python} is not executable"
    return True, ""
