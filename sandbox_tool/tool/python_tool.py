"""``PythonTool``: runs the model's code and turns every outcome into a message for it.

Framework-neutral; the LangChain and OpenAI renderings wrap it.

>>> from sandbox_tool import PythonSandbox
>>> tool = PythonTool(PythonSandbox("native"))              # doctest: +SKIP
>>> outcome = tool.run_sync("import math\\nmath.pi")           # doctest: +SKIP
>>> print(outcome.text)                                      # doctest: +SKIP
The code ran successfully.
Result (float):
3.141592653589793
"""

from __future__ import annotations

import base64
import contextlib
import functools
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from sandbox_tool.errors import EngineError, ExecutionFailed, UsageError
from sandbox_tool.options import ExecutionOptions
from sandbox_tool.result import Artifact, ExecutionResult
from sandbox_tool.sandbox import run_sync
from sandbox_tool.streaming import OnOutput
from sandbox_tool.tool.description import describe_tool
from sandbox_tool.tool.installs import PackageInstaller
from sandbox_tool.tool.interpreter import InterpreterInfo, inspect_interpreter
from sandbox_tool.tool.loop_thread import LoopThread, OnLoop
from sandbox_tool.tool.messages import (
    VIEWABLE_IMAGE_TYPES,
    MessageContext,
    format_engine_error,
    format_error,
    format_result,
)
from sandbox_tool.tool.spec import ArgumentsError, ToolSpec, parse_arguments

__all__ = ["CodeRunner", "PythonTool", "ToolOutcome"]


@runtime_checkable
class CodeRunner(Protocol):
    """What the tool runs code on: a :class:`~sandbox_tool.PythonSandbox`, or (once
    sessions exist) a session that keeps state between executions."""

    default_options: ExecutionOptions

    async def execute(
        self,
        code: str,
        inputs: Any = None,
        options: ExecutionOptions | dict[str, Any] | None = None,
        *,
        on_output: OnOutput | None = None,
    ) -> ExecutionResult: ...


class ToolOutcome(BaseModel):
    """One call of the tool: the text for the model plus the structured outcome."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    """Whether the code ran to completion."""
    text: str
    """The message for the model."""
    result: ExecutionResult | None = None
    """The execution's result, when it completed."""
    error: dict[str, Any] | None = None
    """The error (``SandboxError.to_dict()``), when it failed."""
    artifacts: list[Artifact] = Field(default_factory=list)
    """Plots and files produced (also those made before a failure)."""
    duration_ms: float = 0.0
    """Wall-clock time of the call in the tool: the execution (process start included)
    and writing the message."""

    @property
    def images(self) -> list[Artifact]:
        """The artifacts a model can be shown as images."""
        return [a for a in self.artifacts if a.mime_type in VIEWABLE_IMAGE_TYPES]

    def image_data_urls(self) -> list[str]:
        """``data:`` URLs of :attr:`images`, as chat APIs take them."""
        return [
            f"data:{a.mime_type};base64,{base64.b64encode(a.data).decode('ascii')}"
            for a in self.images
        ]


def _interpreter_of(runner: CodeRunner) -> str:
    engine = getattr(runner, "engine", None)
    return str(getattr(engine, "interpreter", None) or sys.executable)


class PythonTool:
    """The ``run_python`` tool over a sandbox (or any :class:`CodeRunner`).

    ``options`` default to the sandbox's own; ``info`` (the interpreter's version and
    libraries) is detected from the sandbox's interpreter when not given.
    Failures of the code become messages for the model, and so does an ``EngineError``
    (an answer the sandbox could not trust or deliver: the next call works);
    :class:`~sandbox_tool.errors.EngineUnavailable` and ``UsageError`` are raised, since
    only the developer can fix them.

    The description names the libraries the code can import, with their versions: with
    an allow-list policy (``ImportPolicy.whitelist({...})``,
    ``ImportPolicy.data_science_whitelist()``) exactly the installed ones it allows;
    with a deny-list policy (the default) the installed ones among
    :data:`~sandbox_tool.tool.description.WORK_LIBRARIES`, since the rest of the
    environment is the host's own tooling. To choose what the model is told, choose
    the policy: an allow-list names what you list.

    ``installs=True`` adds the ``install_packages`` tool (:attr:`specs`, :meth:`call`):
    the model may ask for the packages the sandbox's install policy allows
    (:mod:`sandbox_tool.tool.installs`).
    """

    def __init__(
        self,
        runner: CodeRunner,
        *,
        options: ExecutionOptions | None = None,
        name: str = "run_python",
        info: InterpreterInfo | None = None,
        keeps_state: bool | None = None,
        max_output_chars: int = 4000,
        images: bool = True,
        installs: bool = False,
    ) -> None:
        self.runner = runner
        self.options = options or runner.default_options
        self.name = name
        self._info = info
        self.keeps_state = (
            bool(getattr(runner, "keeps_state", False)) if keeps_state is None else keeps_state
        )
        self.max_output_chars = max_output_chars
        #: Show plots to the model as images (the adapters attach them); False for
        #: text-only models, whose messages then say the plots are not shown.
        self.images = images
        #: The ``install_packages`` tool, when ``installs`` is on.
        self.installer: PackageInstaller | None = None
        if installs:
            manager = getattr(runner, "environments", None)
            if manager is None:
                raise UsageError("installs=True needs a PythonSandbox (it builds environments)")
            self.installer = PackageInstaller(self, manager)

    @property
    def info(self) -> InterpreterInfo:
        """The sandbox interpreter's version and libraries (detected once, cached)."""
        if self._info is None:
            self._info = inspect_interpreter(_interpreter_of(self.runner))
        return self._info

    @functools.cached_property
    def spec(self) -> ToolSpec:
        """Name, description (from the real configuration) and argument schema."""
        description = describe_tool(self.options, self.info, keeps_state=self.keeps_state)
        if self.installer is not None:
            description += "\n" + self.installer.hint()
        return ToolSpec(name=self.name, description=description)

    @property
    def specs(self) -> list[ToolSpec]:
        """Every tool this one offers the model: ``run_python``, and ``install_packages``
        when installs are on."""
        return [self.spec] + ([self.installer.spec] if self.installer is not None else [])

    async def call(
        self, name: str, arguments: str | dict[str, Any] | None, *, images: bool | None = None
    ) -> ToolOutcome:
        """Answer a call of one of :attr:`specs` by name (an unknown name gets a message)."""
        if name == self.name:
            return await self.run_arguments(arguments, images=images)
        if self.installer is not None and name == self.installer.name:
            done = await self.installer.run_arguments(arguments)
            return ToolOutcome(ok=done.ok, text=done.text, error=done.error)
        names = " and ".join(spec.name for spec in self.specs)
        return ToolOutcome(
            ok=False, text=f"There is no tool named {name!r}; the tools are {names}."
        )

    def _context(self, images: bool | None = None) -> MessageContext:
        return MessageContext(
            self.options,
            self.info,
            self.keeps_state,
            max_output_chars=self.max_output_chars,
            images=self.images if images is None else images,
        )

    async def run(
        self, code: str, *, images: bool | None = None, on_output: OnOutput | None = None
    ) -> ToolOutcome:
        """Run ``code``; every failure of the code becomes an outcome with ``ok=False``.

        ``images``: whether the model will be shown this call's plots, which its text
        says (default: :attr:`images`); a rendering that cannot attach them passes False.
        ``on_output`` gets what the code prints while it runs (:mod:`sandbox_tool.streaming`).
        """
        started = time.perf_counter()
        outcome = await self._run(code, self._context(images), on_output)
        duration_ms = (time.perf_counter() - started) * 1000
        return outcome.model_copy(update={"duration_ms": duration_ms})

    async def _run(
        self, code: str, context: MessageContext, on_output: OnOutput | None
    ) -> ToolOutcome:
        # a runner written before streaming (without ``on_output``) still works without it
        streaming: dict[str, Any] = {} if on_output is None else {"on_output": on_output}
        try:
            result = await self.runner.execute(code, options=self.options, **streaming)
        except ExecutionFailed as exc:
            hint = self.installer.missing_hint(exc) if self.installer is not None else None
            return ToolOutcome(
                ok=False,
                text=format_error(exc, context, code) + (f"\n{hint}" if hint else ""),
                error=exc.to_dict(),
                artifacts=exc.artifacts,
            )
        except EngineError as exc:
            # a broken or forged answer, a runner that died: the model can still go on
            return ToolOutcome(
                ok=False,
                text=format_engine_error(exc, context),
                error=exc.to_dict(),
                artifacts=exc.artifacts,
            )
        return ToolOutcome(
            ok=True,
            text=format_result(result, context),
            result=result,
            artifacts=result.artifacts,
        )

    def run_sync(self, code: str) -> ToolOutcome:
        """:meth:`run` for synchronous code."""
        return run_sync(self.run(code))

    async def run_arguments(
        self,
        arguments: str | dict[str, Any] | None,
        *,
        images: bool | None = None,
        on_output: OnOutput | None = None,
    ) -> ToolOutcome:
        """Run a model's raw tool-call arguments; unusable ones get a message, not an error."""
        try:
            code = parse_arguments(arguments)
        except ArgumentsError as exc:
            return ToolOutcome(ok=False, text=self.arguments_message(exc))
        return await self.run(code, images=images, on_output=on_output)

    def arguments_message(self, problem: Exception) -> str:
        """The message for a call whose arguments could not be used."""
        return (
            f"The call could not run: {problem}. Call {self.name} with "
            '{"code": "<your Python source>"}.'
        )

    async def aclose(self) -> None:
        """Close the runner (a sandbox's warm pool, a session); the tool is unusable after."""
        closer = getattr(self.runner, "aclose", None)
        if closer is not None:
            await closer()

    def close(self) -> None:
        """:meth:`aclose` for synchronous code."""
        run_sync(self.aclose())

    def _with_runner(self, runner: CodeRunner, reopen: Any = None) -> PythonTool:
        """The tool of one conversation on ``runner`` (a session); ``reopen(options)``
        opens a new session when an install changes the environment."""
        inner = PythonTool(
            runner,
            options=self.options,
            name=self.name,
            info=self._info,
            keeps_state=True,
            max_output_chars=self.max_output_chars,
            images=self.images,
        )
        if self.installer is not None:
            inner.installer = self.installer.bind(inner, reopen=reopen)
        return inner

    async def _open_session(self) -> Any:
        """A session on the runner, or ``None`` where it has none."""
        opener = getattr(self.runner, "open_session", None)
        if opener is None:
            return None
        try:
            return await opener(self.options)
        except UsageError:
            return None  # this engine has no sessions (a cold or fake engine)

    @contextlib.asynccontextmanager
    async def conversation(self) -> AsyncIterator[PythonTool]:
        """A tool for one conversation, keeping state between its calls.

        Where the runner can open a session (``PythonSandbox.open_session(options)``
        giving a :class:`CodeRunner` with ``keeps_state = True`` and ``aclose()``), the
        calls share one interpreter; elsewhere every call is a single execution and
        the description says so.
        """
        session = await self._open_session()
        if session is None:
            yield self
            return
        inner = None
        try:
            inner = self._with_runner(session, getattr(self.runner, "open_session", None))
            yield inner
        finally:
            # an install may have replaced the session with one in its environment
            current = inner.runner if inner is not None else session
            await getattr(current, "aclose", session.aclose)()

    @contextlib.contextmanager
    def conversation_sync(self) -> Iterator[PythonTool]:
        """:meth:`conversation` for synchronous code: the session lives on a loop of its
        own thread, so the tool it yields works from ``run_sync`` and from async code."""
        thread = LoopThread()
        try:
            session = thread.run(self._open_session())
            if session is None:
                yield self
                return
            opener = getattr(self.runner, "open_session", None)

            async def reopen(options: ExecutionOptions) -> OnLoop:
                assert opener is not None  # a session was opened with it
                return OnLoop(await thread.forward(opener(options)), thread)

            inner = self._with_runner(OnLoop(session, thread), reopen)
            try:
                yield inner
            finally:
                # an install may have replaced the session with one in its environment
                current = inner.runner
                thread.run((current.runner if isinstance(current, OnLoop) else session).aclose())
        finally:
            thread.close()
