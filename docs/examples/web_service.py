"""An ASGI app whose lifespan owns one warm sandbox (no web framework needed; any ASGI
server runs it: ``uvicorn docs.examples.web_service:app``).

POST /run with a JSON body ``{"code": "...", "timeout": 5}`` answers the tool's outcome as
JSON. At most ``MAX_RUNNING`` executions run at once and ``MAX_WAITING`` wait; past that
the app answers 503 with Retry-After at once (backpressure) instead of queueing without
bound. On shutdown it stops taking requests, lets the running ones finish, then closes
the sandbox.
"""

import asyncio
import json
from typing import Any

from sandbox_tool import ExecutionOptions, PythonSandbox, UsageError
from sandbox_tool.tool import PythonTool

MAX_RUNNING = 4
MAX_WAITING = 16


class SandboxService:
    def __init__(self) -> None:
        self.sandbox: PythonSandbox | None = None
        self.slots = asyncio.Semaphore(MAX_RUNNING)
        self.admitted = 0  # running + waiting
        self.closing = False

    async def start(self) -> None:
        self.sandbox = PythonSandbox(options=ExecutionOptions(timeout=10, memory_mb=1024))
        await self.sandbox.execute("1")  # warm the pool before the first request

    async def stop(self) -> None:
        self.closing = True
        while self.admitted:  # graceful: the admitted requests finish first
            await asyncio.sleep(0.05)
        if self.sandbox is not None:
            await self.sandbox.aclose()

    async def run(self, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.closing or self.admitted >= MAX_RUNNING + MAX_WAITING:
            return 503, {"error": "busy, retry later"}
        assert self.sandbox is not None
        try:  # per-request options, within what the service allows
            options = self.sandbox.default_options.model_copy(
                update={"timeout": min(float(request.get("timeout", 10)), 10)}
            )
        except (TypeError, ValueError) as exc:
            return 400, {"error": str(exc)}
        self.admitted += 1
        try:
            async with self.slots:
                outcome = await PythonTool(self.sandbox, options=options).run(request["code"])
        except UsageError as exc:
            return 400, {"error": str(exc)}
        finally:
            self.admitted -= 1
        body = {"ok": outcome.ok, "text": outcome.text, "error": outcome.error}
        body["result"] = outcome.result.result if outcome.result else None
        return 200, body


service = SandboxService()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                await service.start()
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                await service.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http" or scope["path"] != "/run" or scope["method"] != "POST":
        return await _reply(send, 404, {"error": "POST /run"})
    body = b""
    while True:
        event = await receive()
        body += event.get("body", b"")
        if not event.get("more_body"):
            break
    try:
        request = json.loads(body)
        if not isinstance(request.get("code"), str):
            raise ValueError("a JSON object with a 'code' string is required")
    except (ValueError, AttributeError) as exc:
        return await _reply(send, 400, {"error": str(exc)})
    status, answer = await service.run(request)
    await _reply(send, status, answer)


async def _reply(send: Any, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json")]
    if status == 503:
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
