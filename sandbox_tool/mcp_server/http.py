"""``sandbox-tool mcp --http HOST:PORT``: the server on streamable HTTP, at ``/mcp``.

Loopback addresses are the default and need no token (the SDK then checks ``Host`` and
``Origin`` against DNS rebinding). Any other address is refused without a bearer token:
with one, every request must carry ``Authorization: Bearer <token>``, checked in
constant time before the MCP layer sees it (401 otherwise). A client that deletes its
session (``DELETE /mcp``) ends its conversation at once; one that just goes away has it
end after the idle timeout, as the SDK's session does.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import socket
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import uvicorn
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox_tool.errors import UsageError
from sandbox_tool.mcp_server.server import SandboxServer, ServerSettings, on_stop_signals

__all__ = ["MIN_TOKEN_CHARS", "check_exposure", "is_loopback", "serve_http"]

#: A shorter bearer token is refused: it could be guessed.
MIN_TOKEN_CHARS = 16
PATH = "/mcp"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only reaches this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve anywhere


def check_exposure(host: str, token: str | None) -> None:
    """Refuse (``UsageError``) to serve a non-loopback address without a good token."""
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise UsageError(
            f"the bearer token has {len(token)} characters; use at least {MIN_TOKEN_CHARS} "
            "random ones (python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    if token is None and not is_loopback(host):
        raise UsageError(
            f"{host} is not a loopback address: anyone who reaches it could run code on this "
            "machine. Give a bearer token (--token-file FILE, or the SANDBOX_TOOL_MCP_TOKEN "
            "environment variable), or serve on 127.0.0.1"
        )


class _Gate:
    """ASGI middleware: the bearer token, and the end of a session its client deleted."""

    def __init__(
        self, app: ASGIApp, token: str | None, on_delete: Callable[[str], Awaitable[None]]
    ) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode() if token else None
        self.on_delete = on_delete

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if self.expected is not None and not hmac.compare_digest(
            headers.get(b"authorization", b""), self.expected
        ):
            refusal = JSONResponse(
                {"error": "a valid bearer token is required (Authorization: Bearer <token>)"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="sandbox-tool"'},
            )
            await refusal(scope, receive, send)
            return
        session = headers.get(b"mcp-session-id")
        if scope["method"] != "DELETE" or session is None:
            await self.app(scope, receive, send)
            return
        status: list[int] = []

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        await self.app(scope, receive, watch)
        if status and 200 <= status[0] < 300:
            await self.on_delete(session.decode("latin-1"))


def _bind(host: str, port: int) -> socket.socket:
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return socket.create_server((host.strip("[]"), port), family=family)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc}") from exc


async def serve_http(
    settings: ServerSettings,
    host: str,
    port: int,
    token: str | None,
    *,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve clients on ``http://HOST:PORT/mcp`` until interrupted. ``announce`` gets the
    URL once the port is bound (default: a line on stderr); port 0 picks a free one."""
    check_exposure(host, token)
    app = SandboxServer(settings, transport="http")
    sock = _bind(host, port)
    try:
        await app.start()
        mcp_app: Any = app.server.streamable_http_app(
            streamable_http_path=PATH,
            host=host,  # on loopback the SDK checks Host and Origin (DNS rebinding)
            session_idle_timeout=settings.idle_timeout,
        )
        gated = _Gate(mcp_app, token, app.conversations.end)
        config = uvicorn.Config(gated, log_level="warning", access_log=False, lifespan="on")
        server = _Server(config)
        bound_host, bound_port = sock.getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        url = f"http://{shown}:{bound_port}{PATH}"
        (announce or _announce)(url)
        with on_stop_signals(lambda: setattr(server, "should_exit", True)):
            await server.serve(sockets=[sock])
    finally:
        sock.close()
        await app.aclose()


class _Server(uvicorn.Server):
    """uvicorn, without its own signal handling: it re-raises a SIGTERM once it has
    stopped, which would end the process before the sandboxes are torn down."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _announce(url: str) -> None:
    print(f"sandbox-tool mcp: serving {url}", file=sys.stderr, flush=True)
