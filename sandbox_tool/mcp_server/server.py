"""The MCP server: one tool, ``run_python``, over a sandbox, on stdio or streamable HTTP.

Built on the SDK's low-level ``Server`` (not ``MCPServer``, which derives a schema from
a function's signature): the tool's definition is the one spec every rendering shares.

>>> settings = ServerSettings(engine="native")                    # doctest: +SKIP
>>> asyncio.run(serve_stdio(settings))                            # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError

from sandbox_tool import __version__
from sandbox_tool.errors import SandboxError
from sandbox_tool.mcp_server.conversations import Conversations
from sandbox_tool.mcp_server.progress import CallReporter
from sandbox_tool.mcp_server.results import call_result, structured, tool_definition
from sandbox_tool.options import ExecutionOptions
from sandbox_tool.sandbox import PythonSandbox
from sandbox_tool.tool import ArgumentsError, PythonTool, ToolOutcome, parse_arguments

__all__ = ["SandboxServer", "ServerSettings", "on_stop_signals", "serve_stdio"]

#: The key of the one client a stdio server has.
STDIO_CLIENT = "stdio"


@dataclass(frozen=True)
class ServerSettings:
    """What ``sandbox-tool mcp`` serves, from its flags and config file."""

    engine: str = "auto"
    """The engine's name, or ``auto`` (the strongest available here)."""
    options: ExecutionOptions = field(default_factory=ExecutionOptions)
    """Limits, policies and input files of every call."""
    stateless: bool = False
    """Every call in a fresh interpreter (otherwise one session per client)."""
    idle_timeout: float = 600.0
    """Seconds without a call after which a client's session ends."""
    max_sessions: int = 8
    """Sessions open at once (each is a sandboxed interpreter)."""
    images: bool = True
    """Send plots to the model as images (False for text-only clients)."""
    warm: bool = True
    """Fork runners from a warm template (a long-lived server gains from it)."""
    heartbeat: float = 5.0
    """Seconds between progress notifications while the code prints nothing."""


class SandboxServer:
    """The sandbox, its tool, its clients' conversations and the MCP server over them.

    ``transport`` says how clients are told apart: ``stdio`` has one; on ``http`` each
    ``Mcp-Session-Id`` is one (a request without one is stateless)."""

    def __init__(self, settings: ServerSettings, *, transport: Literal["stdio", "http"]) -> None:
        self.settings = settings
        self.transport = transport
        self.sandbox = PythonSandbox(settings.engine, warm=settings.warm, options=settings.options)
        tool = PythonTool(self.sandbox, options=settings.options, images=settings.images)
        self.conversations = Conversations(
            self.sandbox, tool, stateless=settings.stateless,
            idle_timeout=settings.idle_timeout, max_sessions=settings.max_sessions,
        )  # fmt: skip
        self._levels: dict[str | None, types.LoggingLevel] = {}
        self._warming: asyncio.Future[Any] | None = None
        self.server: Server[Any] = Server(
            "sandbox-tool",
            version=__version__,
            title="sandbox-tool: run Python in a sandbox",
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
        )
        # logging/setLevel (2025 clients): declares the logging capability, whose
        # messages carry the code's output
        self.server.add_request_handler(
            "logging/setLevel", types.SetLevelRequestParams, self._set_level
        )

    async def start(self) -> None:
        """Read the interpreter's libraries (the tool's description) now, and start the
        engine (its warm pool) in the background: clients connect and list the tool
        without waiting for it, the first call waits if it must."""
        await asyncio.to_thread(lambda: self.conversations.stateless_tool.spec)
        self._warming = asyncio.ensure_future(self.sandbox.start())
        self._warming.add_done_callback(_report_failure)

    async def aclose(self) -> None:
        if self._warming is not None and not self._warming.done():
            self._warming.cancel()
            with contextlib.suppress(BaseException):
                await self._warming
        await self.conversations.aclose()
        await self.sandbox.aclose()

    def client_key(self, ctx: ServerRequestContext[Any, Any]) -> str | None:
        """Which client sent this request (None: one without a session)."""
        if self.transport == "stdio":
            return STDIO_CLIENT
        headers = getattr(ctx.request, "headers", None)
        return None if headers is None else headers.get("mcp-session-id")

    async def _list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        tool = self.conversations.tool_for(self.client_key(ctx))
        return types.ListToolsResult(tools=[tool_definition(tool)])

    async def _set_level(
        self, ctx: ServerRequestContext[Any, Any], params: types.SetLevelRequestParams
    ) -> types.EmptyResult:
        self._levels[self.client_key(ctx)] = params.level
        return types.EmptyResult()

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        key = self.client_key(ctx)
        tool = self.conversations.tool_for(key)
        if params.name != tool.name:
            raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown tool: {params.name}")
        reporter = CallReporter(
            ctx.session, ctx.request_id, min_level=self._levels.get(key, "debug"),
            heartbeat=self.settings.heartbeat,
        )  # fmt: skip
        try:
            code = parse_arguments(params.arguments)
        except ArgumentsError as exc:
            outcome = ToolOutcome(ok=False, text=tool.arguments_message(exc))
        else:
            try:
                async with reporter.running():
                    outcome = await self.conversations.call(key, code, reporter.on_output)
            except SandboxError as exc:  # the engine, not the code: the model should know
                text = (
                    f"The sandbox could not run this call ({type(exc).__name__}: {exc}). "
                    "Tell the user that the run_python tool is not working."
                )
                outcome = ToolOutcome(ok=False, text=text, error=exc.to_dict())
        data = structured(
            outcome, self.sandbox.engine_name, "".join(reporter.stdout), "".join(reporter.stderr)
        )
        return call_result(outcome, images=tool.images, structured_content=data)


def _report_failure(warming: asyncio.Future[Any]) -> None:
    """An engine that cannot start: said on stderr now; each call's message says it too."""
    if not warming.cancelled() and warming.exception() is not None:
        print(f"sandbox-tool mcp: the engine did not start: {warming.exception()}",
              file=sys.stderr, flush=True)  # fmt: skip


@contextlib.contextmanager
def on_stop_signals(stop: Callable[[], object]) -> Iterator[None]:
    """Call ``stop`` on SIGINT or SIGTERM (a client stopping its server sends SIGTERM after
    closing stdin), so that the sandboxes are torn down rather than left running."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread, or no signals here: the caller's handlers stay
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def serve_stdio(settings: ServerSettings) -> None:
    """Serve one client on this process's stdin and stdout until it closes them (or a
    SIGINT or SIGTERM); every sandbox is gone when this returns."""
    app = SandboxServer(settings, transport="stdio")
    main = asyncio.current_task()
    assert main is not None
    stopped = []

    def stop() -> None:
        stopped.append(True)
        main.cancel()

    with on_stop_signals(stop):
        try:
            await app.start()
            async with stdio_server() as (read, write):
                await app.server.run(read, write, app.server.create_initialization_options())
        except asyncio.CancelledError:
            if not stopped:
                raise
        finally:
            await app.aclose()
