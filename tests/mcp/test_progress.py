"""What a call tells its client while it runs (on a recording stand-in for the SDK's
per-request session; the real one is exercised end to end in test_stdio and test_http),
and how its result is rendered."""

from __future__ import annotations

import asyncio
from typing import Any

from sandbox_tool import Artifact, Output
from sandbox_tool.mcp_server.progress import CallReporter
from sandbox_tool.mcp_server.results import call_result, structured
from sandbox_tool.tool import ToolOutcome


class Recorder:
    """The two ServerSession methods a reporter uses."""

    def __init__(self) -> None:
        self.logs: list[tuple[str, Any, str | None, Any]] = []
        self.progress: list[tuple[float, str | None]] = []

    async def send_log_message(
        self, level: str, data: Any, logger: str | None = None, related_request_id: Any = None
    ) -> None:
        self.logs.append((level, data, logger, related_request_id))

    async def report_progress(
        self, progress: float, total: float | None = None, message: str | None = None
    ) -> None:
        self.progress.append((progress, message))


def report(*events: Output, pause: float = 0.0, **options: Any) -> Recorder:
    session = Recorder()

    async def go() -> None:
        reporter = CallReporter(session, "req-7", **options)  # type: ignore[arg-type]
        async with reporter.running():
            for event in events:
                await reporter.on_output(event)
            await asyncio.sleep(pause)

    asyncio.run(go())
    return session


def test_each_piece_of_output_is_a_log_message_and_a_progress_step() -> None:
    session = report(Output("stdout", "one\ntwo\n"), Output("stderr", "oops\n"))
    assert session.logs == [
        ("info", "one\ntwo\n", "stdout", "req-7"),
        ("info", "oops\n", "stderr", "req-7"),
    ]
    values = [value for value, _ in session.progress]
    assert [message for _, message in session.progress] == ["two", "oops"]
    assert values == sorted(values) and len(set(values)) == len(values), "progress must grow"


def test_a_client_that_asked_for_warnings_only_gets_no_output_logs() -> None:
    session = report(Output("stdout", "quiet\n"), min_level="warning")
    assert session.logs == [] and session.progress[0][1] == "quiet"


def test_a_silent_call_still_shows_it_is_running() -> None:
    session = report(pause=0.5, heartbeat=0.1)
    assert session.progress and all(
        m and m.startswith("still running") for _, m in session.progress
    )


def test_a_text_only_client_gets_no_image_blocks_but_the_same_structured_result() -> None:
    figure = Artifact(name="figure-1.png", mime_type="image/png", data=b"png", kind="figure")
    outcome = ToolOutcome(ok=False, text="The code failed.", artifacts=[figure],
                          error={"type": "ExecutionError", "message": "boom"})  # fmt: skip
    data = structured(outcome, "native", "printed\n", "")
    with_images = call_result(outcome, images=True, structured_content=data)
    text_only = call_result(outcome, images=False, structured_content=data)
    assert [b.type for b in with_images.content] == ["text", "image"]
    assert [b.type for b in text_only.content] == ["text"] and text_only.is_error
    assert data["stdout"] == "printed\n" and data["artifacts"] == [
        {"name": "figure-1.png", "mime_type": "image/png", "size": 3}
    ]
