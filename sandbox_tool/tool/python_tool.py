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
from collections.abc import AsyncIterator
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from sandbox_tool.errors import EngineError, ExecutionFailed, UsageError
from sandbox_tool.options import ExecutionOptions
from sandbox_tool.result import Artifact, ExecutionResult
from sandbox_tool.sandbox import run_sync
from sandbox_tool.streaming import OnOutput
from sandbox_tool.tool.description import describe_tool
from sandbox_tool.tool.interpreter import InterpreterInfo, inspect_interpreter
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
        return ToolSpec(name=self.name, description=description)

    @property
    def _context(self) -> MessageContext:
        return MessageContext(
            self.options,
            self.info,
            self.keeps_state,
            max_output_chars=self.max_output_chars,
            images=self.images,
        )

    async def run(self, code: str, *, on_output: OnOutput | None = None) -> ToolOutcome:
        """Run ``code``; every failure of the code becomes an outcome with ``ok=False``.
        ``on_output`` gets what the code prints while it runs (:mod:`sandbox_tool.streaming`)."""
        # a runner written before streaming (without ``on_output``) still works without it
        streaming: dict[str, Any] = {} if on_output is None else {"on_output": on_output}
        try:
            result = await self.runner.execute(code, options=self.options, **streaming)
        except ExecutionFailed as exc:
            return ToolOutcome(
                ok=False,
                text=format_error(exc, self._context, code),
                error=exc.to_dict(),
                artifacts=exc.artifacts,
            )
        except EngineError as exc:
            # a broken or forged answer, a runner that died: the model can still go on
            return ToolOutcome(
                ok=False,
                text=format_engine_error(exc, self._context),
                error=exc.to_dict(),
                artifacts=exc.artifacts,
            )
        return ToolOutcome(
            ok=True,
            text=format_result(result, self._context),
            result=result,
            artifacts=result.artifacts,
        )

    def run_sync(self, code: str) -> ToolOutcome:
        """:meth:`run` for synchronous code."""
        return run_sync(self.run(code))

    async def run_arguments(
        self, arguments: str | dict[str, Any] | None, *, on_output: OnOutput | None = None
    ) -> ToolOutcome:
        """Run a model's raw tool-call arguments; unusable ones get a message, not an error."""
        try:
            code = parse_arguments(arguments)
        except ArgumentsError as exc:
            return ToolOutcome(ok=False, text=self.arguments_message(exc))
        return await self.run(code, on_output=on_output)

    def arguments_message(self, problem: Exception) -> str:
        """The message for a call whose arguments could not be used."""
        return (
            f"The call could not run: {problem}. Call {self.name} with "
            '{"code": "<your Python source>"}.'
        )

    @contextlib.asynccontextmanager
    async def conversation(self) -> AsyncIterator[PythonTool]:
        """A tool for one conversation, keeping state between its calls.

        Where the runner can open a session (``PythonSandbox.open_session(options)``
        giving a :class:`CodeRunner` with ``keeps_state = True`` and ``aclose()``), the
        calls share one interpreter; elsewhere every call is a single execution and
        the description says so.
        """
        opener = getattr(self.runner, "open_session", None)
        session = None
        if opener is not None:
            try:
                session = await opener(self.options)
            except UsageError:
                session = None  # this engine has no sessions (a cold or fake engine)
        if session is None:
            yield self
            return
        try:
            yield PythonTool(
                session,
                options=self.options,
                name=self.name,
                info=self._info,
                keeps_state=True,
                max_output_chars=self.max_output_chars,
                images=self.images,
            )
        finally:
            await session.aclose()
