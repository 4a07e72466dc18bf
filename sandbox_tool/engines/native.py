"""The native engine: the runner in a plain subprocess with OS resource limits.

Security level 5. **Not a security boundary.** The code runs as the caller's
user, sees the caller's whole filesystem with the caller's permissions, and
can use the network; the import and builtins policies only steer well-meaning
code and give good error messages.

What it does stop or contain:

- runaway resources: ``RLIMIT_AS`` (memory), ``RLIMIT_CPU``, ``RLIMIT_FSIZE``,
  ``RLIMIT_NOFILE``, no core dumps, and ``RLIMIT_NPROC`` where the OS honours
  it (not for root; for other users it counts every process of the user);
- time: a wall-clock timeout kills the whole process tree, setsid'd
  descendants included (the runner's supervisor is the child subreaper);
- leftovers: every process the code started is killed when it ends, and its
  working directory is removed;
- the host's environment: the code gets only ``env_vars`` and what Python
  needs, never the caller's variables (API keys stay out).

By default the runners are forked from a warm template that has the data
science stack imported (:mod:`sandbox_tool.engines.pool`); ``warm=False``
starts a fresh interpreter per execution.

What it does not stop: reading or writing any file the caller can, network
access, signalling the caller's other processes, ptrace, anything a Python
guard cannot see (``ctypes``, subclass walks). Use the ``process`` engine
(namespaces, landlock, seccomp) or a VM engine for untrusted code.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import weakref
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox_tool.engines import channel, fontcache
from sandbox_tool.engines.base import Engine, EngineInfo
from sandbox_tool.engines.gate import Gate
from sandbox_tool.engines.launch import Framed, RunnerPipes, RunnerRun, drive, run_runner
from sandbox_tool.engines.outcome import Outcome, build_outcome
from sandbox_tool.engines.pool import TEMPLATE_BOOTSTRAP, Runner, WarmPool
from sandbox_tool.engines.proctree import kill_tree
from sandbox_tool.engines.workspace import Workspace, remove_stale
from sandbox_tool.errors import EngineUnavailable
from sandbox_tool.options import ExecutionOptions
from sandbox_tool.result import ExecutionResult
from sandbox_tool.runner import protocol

if TYPE_CHECKING:
    from sandbox_tool.session import Session

__all__ = ["NativeEngine", "sandbox_env"]

RUNNER_PARENT = str(Path(__file__).resolve().parent.parent)
"""The directory holding the ``runner`` package, put on the runner's sys.path."""

# Host variables that are hardware knobs, not secrets: old OpenBLAS builds
# crash or compute wrong results on some CPUs without them.
_PASSTHROUGH = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
#: What a warm template imports once for all its runners.
DEFAULT_PRELOAD = ("numpy", "pandas", "matplotlib", "matplotlib.pyplot")


def base_env() -> dict[str, str]:
    """What every runner's environment holds: nothing from the host but ``_PASSTHROUGH``."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        # one thread per BLAS: predictable memory, and no spinning when threads
        # are refused (FIELD_NOTES 1-2); a template must stay single-threaded
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "NUMEXPR_NUM_THREADS": "1",
    }
    env.update({k: os.environ[k] for k in _PASSTHROUGH if k in os.environ})
    return env


def sandbox_env(ws: Workspace, options: ExecutionOptions) -> dict[str, str]:
    """The whole environment of the code."""
    env = base_env()
    env.update(
        {
            "HOME": str(ws.work),
            "TMPDIR": str(ws.tmp),
            "XDG_CACHE_HOME": str(ws.tmp / ".cache"),
            "XDG_CONFIG_HOME": str(ws.tmp / ".config"),
            "MPLCONFIGDIR": str(ws.meta / protocol.MPLCONFIG_DIR),
        }
    )
    env.update(options.env_vars)
    return env


class NativeEngine(Engine):
    """The runner in a subprocess with rlimits: fast, portable, **not a security boundary**.

    >>> engine = NativeEngine()                      # the current interpreter
    >>> engine = NativeEngine(interpreter="/usr/bin/python3", work_root=Path("/tmp"))
    """

    name = "native"
    security_level = 5
    summary = (
        "subprocess with rlimits (memory, CPU, file size, open files, processes where the OS "
        "honours them), a clean environment, a wall-clock kill of the whole process tree and "
        "a fresh work dir; NOT a security boundary: the code can read and write the caller's "
        "files, use the network and signal the caller's processes"
    )

    #: Seconds the runner gets to stop cleanly on a timeout before everything is killed.
    stop_grace: float = 0.0

    def __init__(
        self,
        interpreter: str | None = None,
        *,
        work_root: Path | None = None,
        warm: bool = True,
        preload: Sequence[str] = DEFAULT_PRELOAD,
        pool_size: int = 2,
        max_concurrent: int | None = None,
        max_queued: int = 64,
    ) -> None:
        super().__init__(interpreter)
        #: At most this many executions at once (default: twice the CPUs); up to
        #: ``max_queued`` more wait; beyond, ``EngineError``: backpressure, not forking.
        self.gate = Gate(max_concurrent or 2 * (os.cpu_count() or 1), max_queued)
        self.work_root = work_root
        #: Fork runners from a template that has the stack imported (Linux), or start
        #: every runner cold.
        self.warm = warm and sys.platform.startswith("linux")
        self.preload = list(preload)
        self.pool_size = pool_size
        self._font_cache: Path | None = None
        self._pool: WarmPool | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._started = False
        self._start_lock = threading.Lock()

    @classmethod
    def probe(cls, interpreter: str | None = None) -> EngineInfo:
        python = interpreter or sys.executable
        if os.name != "posix":
            return EngineInfo(cls.name, False, cls.security_level, "needs a POSIX system (fork)")
        if not (os.path.isfile(python) and os.access(python, os.X_OK)):
            return EngineInfo(cls.name, False, cls.security_level, f"{python} is not executable")
        limits = "rlimits" if sys.platform.startswith(("linux", "darwin")) else "no rlimits"
        return EngineInfo(
            cls.name,
            True,
            cls.security_level,
            f"subprocess of {python} with {limits}; not a security boundary",
        )

    async def start(self) -> None:
        if self._started:
            return
        # what every subprocess engine needs; subclasses check their own layers first
        info = NativeEngine.probe(self.interpreter)
        if not info.available:
            raise EngineUnavailable(f"{self.name} engine: {info.reason}", engine=self.name)
        await asyncio.to_thread(self._start_blocking)

    def _start_blocking(self) -> None:
        with self._start_lock:
            if self._started:
                return
            self._font_cache = fontcache.warm(self.interpreter)
            remove_stale(self.work_root)  # left by a host that died without cleaning up
            if self.warm:
                pool = WarmPool(
                    self.template_argv(),
                    env=self.template_env(),
                    preload=self.preload,
                    make_workspace=lambda: Workspace.create(self.work_root, {}, None),
                    make_setup=self.runner_setup,
                    default_key=self.pool_key(ExecutionOptions()),
                    size=self.pool_size,
                )
                pool.start()
                self._pool = pool
                # an engine dropped without aclose() still stops its template
                self._finalizer = weakref.finalize(self, pool.close)
            self._started = True

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        self._started = False
        if pool is not None:
            if self._finalizer is not None:
                self._finalizer.detach()
            await asyncio.to_thread(pool.close)

    def degraded(self, options: ExecutionOptions) -> list[str]:
        """Limits this engine cannot apply here, with the reason."""
        notes = []
        if not options.network:
            notes.append("network: the native engine cannot turn the network off")
        notes.append("max_disk_mb: the native engine writes to the host disk without a cap")
        if sys.platform.startswith("linux") and os.geteuid() == 0:
            notes.append("max_processes: RLIMIT_NPROC does not apply to root")
        elif not sys.platform.startswith("linux"):
            notes.append("max_processes: RLIMIT_NPROC is not set outside Linux")
        if sys.platform == "darwin":
            notes.append("memory_mb: macOS does not enforce RLIMIT_AS")
        elif not sys.platform.startswith("linux"):
            notes.append(f"limits: rlimits are untested on {sys.platform}")
        return notes

    # -- what a runner is given ---------------------------------------------------------

    def runner_argv(self, ws: Workspace, options: ExecutionOptions) -> list[str]:
        """The command that starts a cold runner (the control fd number is appended)."""
        return [self.interpreter, "-I", "-B", "-c", protocol.BOOTSTRAP, RUNNER_PARENT]

    def template_argv(self) -> list[str]:
        """The command that starts the warm template (the socket fd number is appended)."""
        return [self.interpreter, "-I", "-B", "-c", TEMPLATE_BOOTSTRAP, RUNNER_PARENT]

    def template_env(self) -> dict[str, str]:
        env = base_env()
        env["HOME"] = "/"
        env["MPLBACKEND"] = "module://runner.mplbackend"
        if self._font_cache is not None:
            env["MPLCONFIGDIR"] = str(self._font_cache)
        return env

    def pool_key(self, options: ExecutionOptions) -> Hashable:
        """The settings a runner's sandbox is built with (runners are reused per key)."""
        return None

    def runner_setup(self, ws: Workspace, key: Hashable) -> dict[str, Any]:
        """How to build a runner's sandbox for ``ws``: known before the code is (with the
        usual environment, which a pre-forked worker applies while it waits)."""
        return {
            "paths": {"work": str(ws.work), "tmp": str(ws.tmp), "meta": str(ws.meta)},
            "env": sandbox_env(ws, ExecutionOptions()),
        }

    def execution_request(
        self, code: str, inputs: Any, options: ExecutionOptions, ws: Workspace
    ) -> dict[str, Any]:
        """What the runner needs to run the code (see ``runner.protocol``)."""
        return {
            "code": code,
            "inputs": inputs,
            "env": sandbox_env(ws, options),
            "max_result_bytes": options.max_output_bytes,
            "limits": {
                "memory_bytes": options.memory_mb * 1024 * 1024,
                "cpu_seconds": options.cpu_limit_seconds,
                "file_bytes": options.max_file_mb * 1024 * 1024,
                "open_files": 1024,
                "processes": options.max_processes,
            },
            "import_policy": {
                "unlisted": options.import_policy.unlisted,
                "allow": sorted(options.import_policy.allow),
                "deny": sorted(options.import_policy.deny),
            },
            "builtins_policy": {
                "deny": sorted(options.builtins_policy.deny),
                "restrict_open": options.builtins_policy.restrict_open,
            },
        }

    # -- running ------------------------------------------------------------------------

    async def execute(self, code: str, inputs: Any, options: ExecutionOptions) -> ExecutionResult:
        await self.start()
        async with self.gate:
            return await self._execute(code, inputs, options)

    async def _execute(self, code: str, inputs: Any, options: ExecutionOptions) -> ExecutionResult:
        if self._pool is not None:
            return await self._execute_warm(code, inputs, options, self._pool)
        ws = await asyncio.to_thread(
            Workspace.create, self.work_root, options.files, self._font_cache
        )
        try:
            request = {
                **self.runner_setup(ws, self.pool_key(options)),
                **self.execution_request(code, inputs, options, ws),
            }
            run = await run_runner(
                self.runner_argv(ws, options), request, env=request["env"], cwd=str(ws.work),
                timeout=options.timeout, max_output_bytes=options.max_output_bytes,
                stop_grace=self.stop_grace,
            )  # fmt: skip
            return self._outcome(run, ws, options)
        finally:
            await asyncio.to_thread(ws.cleanup)

    async def _execute_warm(
        self, code: str, inputs: Any, options: ExecutionOptions, pool: WarmPool
    ) -> ExecutionResult:
        runner = None if options.files else pool.take_ready(self.pool_key(options))
        if runner is None:
            runner = await self._take(pool, options)
        loop = asyncio.get_running_loop()
        driven = False
        try:
            request = {**self.execution_request(code, inputs, options, runner.ws), "one_shot": True}
            marker = channel.new_marker()
            cell = {"code": request.pop("code"), "marker": marker.decode(),
                    "max_artifact_bytes": options.max_artifact_bytes}  # fmt: skip
            framed = Framed(
                channel.encode_frame(request) + channel.encode_frame(cell),
                marker,
                channel.frame_limit(options),
            )
            driven = True  # drive() owns the runner's pipes from here
            run = await drive(
                runner.pid, runner.pipes, None, timeout=options.timeout,
                max_output_bytes=options.max_output_bytes, stop_grace=self.stop_grace,
                framed=framed,
            )  # fmt: skip
            return self._outcome(run, runner.ws, options)
        finally:
            if not driven:
                runner.pipes.close_driven_ends()
                kill_tree(runner.pid)
            # torn down, and its workspace removed, in the background, once the caller has
            # its answer (waking the pool's threads now would delay it)
            loop.call_soon(pool.release, runner)

    async def _take(self, pool: WarmPool, options: ExecutionOptions) -> Runner:
        """A runner for ``options``, forked now if none is waiting (in a thread)."""
        ws = None
        if options.files:
            # exposed files must be in place before the sandbox is built: fork a runner
            ws = await asyncio.to_thread(Workspace.create, self.work_root, options.files, None)
        taking = asyncio.get_running_loop().run_in_executor(
            None, pool.take, self.pool_key(options), ws
        )
        try:
            return await asyncio.shield(taking)
        except asyncio.CancelledError:
            taking.add_done_callback(_discard_when_taken)
            raise
        except BaseException:
            if ws is not None:
                await asyncio.to_thread(ws.cleanup)
            raise

    async def open_session(self, options: ExecutionOptions, idle_timeout: float) -> Session:
        """A session: one sandboxed interpreter for many cells (see :mod:`sandbox_tool.session`)."""
        from sandbox_tool.session import Session

        await self.start()
        pool = self._pool
        if pool is None:
            runner = await asyncio.to_thread(self._start_session_runner, options)
        else:
            ws = None
            if options.files:
                ws = await asyncio.to_thread(Workspace.create, self.work_root, options.files, None)
            runner = await asyncio.to_thread(pool.take, self.pool_key(options), ws)
        session = Session(self, runner, options, idle_timeout)
        try:
            await session._open()
        except BaseException:
            await asyncio.shield(session.aclose())
            raise
        return session

    def _start_session_runner(self, options: ExecutionOptions) -> Runner:
        """Without a warm pool: a fresh interpreter whose worker serves a session's frames
        (blocking: call it in a thread)."""
        ws = Workspace.create(self.work_root, options.files, self._font_cache)
        pipes = RunnerPipes.create()
        try:
            setup = self.runner_setup(ws, self.pool_key(options))
            process = subprocess.Popen(
                [*self.runner_argv(ws, options), str(pipes.control_w), "framed"],
                stdin=pipes.request_r, stdout=pipes.stdout_w, stderr=pipes.stderr_w,
                pass_fds=(pipes.control_w,), start_new_session=True,
                env=sandbox_env(ws, options), cwd=str(ws.work),
            )  # fmt: skip
        except BaseException:
            pipes.close_all()
            ws.cleanup()
            raise
        pipes.close_runner_ends()
        runner = Runner(process.pid, pipes, ws, None, process)
        try:
            # the runner's setup comes first on its channel, then the session's frames
            data = channel.encode_frame(setup)
            while data:
                data = data[os.write(pipes.request_w, data) :]
        except BaseException:
            runner.discard()
            raise
        return runner

    def requires_isolation_report(self) -> bool:
        """Whether a result must name the isolation layers it ran under (else no result
        is trusted): engines above this one promise layers."""
        return self.security_level > NativeEngine.security_level

    def _outcome(self, run: RunnerRun, ws: Workspace, options: ExecutionOptions) -> ExecutionResult:
        report: bytes | dict[str, Any] | None
        if run.answer is not None:  # a warm runner answered on its channel
            report = run.answer
            try:
                artifacts = channel.artifacts_from_report(report, options.max_artifact_bytes)
            except channel.ChannelError as exc:
                run.protocol_error, artifacts = str(exc), []
            truncated = bool(report.get("artifacts_truncated"))
        else:  # its report file and the files it left (copied out of its sandbox)
            report = ws.read_worker_report(4 * options.max_output_bytes + (1 << 20))
            artifacts, truncated = ws.collect_artifacts(options.max_artifact_bytes)
            truncated = truncated or ws.copy_out_cut_short()
        return build_outcome(
            Outcome(
                run, report, artifacts, truncated, self.name, options, self.degraded(options),
                require_isolation=self.requires_isolation_report(),
            )
        )  # fmt: skip

    @property
    def pool(self) -> WarmPool | None:
        """The warm pool, once started (None on the cold path)."""
        return self._pool


def _discard_when_taken(future: asyncio.Future[Runner]) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result().discard()
