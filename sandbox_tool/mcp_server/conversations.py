"""One conversation per MCP client: a sandbox session whose state lasts across its calls.

A client is known by a key: ``"stdio"`` on stdio (one client per server process), its
``Mcp-Session-Id`` on streamable HTTP. A call without a key (a 2026-07-28 HTTP client:
that revision has no sessions) or with ``stateless`` runs in a fresh interpreter, and
the description it lists says so.

A conversation ends when its client goes away (the server stops, or an HTTP client
deletes its session), after ``idle_timeout`` seconds without a call, or when a call hits
a limit; the client's next call then runs in a fresh session, and its message starts
with a note saying the earlier state is gone and why. At most ``max_sessions`` are open
at once: the one unused the longest makes room for a new one.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from dataclasses import dataclass, field
from typing import cast

from sandbox_tool.engines.base import EngineSession
from sandbox_tool.errors import SessionsNotSupported, UsageError
from sandbox_tool.sandbox import PythonSandbox
from sandbox_tool.streaming import OnOutput
from sandbox_tool.tool import CodeRunner, PythonTool, ToolOutcome

__all__ = ["Conversations"]

#: How many ended conversations are remembered, to tell their clients why state is gone.
_REMEMBERED = 256


@dataclass
class _Conversation:
    session: EngineSession
    tool: PythonTool
    busy: int = 0
    used: float = field(default_factory=time.monotonic)


class Conversations:
    """The clients' conversations over one sandbox.

    ``tool`` is the stateless tool (each call a fresh interpreter); :meth:`tool_for`
    gives the tool whose description a client should read."""

    def __init__(
        self,
        sandbox: PythonSandbox,
        tool: PythonTool,
        *,
        stateless: bool,
        idle_timeout: float,
        max_sessions: int,
    ) -> None:
        self.sandbox = sandbox
        self.stateless_tool = tool
        self.stateless = stateless or not sandbox.engine.supports_sessions
        self.idle_timeout = idle_timeout
        self.max_sessions = max_sessions
        #: The description of a tool whose calls share one interpreter.
        self.stateful_tool = PythonTool(
            sandbox, options=tool.options, name=tool.name, info=tool.info, keeps_state=True,
            max_output_chars=tool.max_output_chars, images=tool.images,
        )  # fmt: skip
        self._open: dict[str, _Conversation] = {}
        self._ended: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._lock = asyncio.Lock()

    def tool_for(self, key: str | None) -> PythonTool:
        """The tool a client with this key talks to (its description says whether state
        lasts across calls)."""
        return self.stateless_tool if key is None or self.stateless else self.stateful_tool

    async def call(self, key: str | None, code: str, on_output: OnOutput) -> ToolOutcome:
        """Run ``code`` in the client's conversation (a fresh interpreter without one)."""
        if key is None or self.stateless:
            return await self.stateless_tool.run(code, on_output=on_output)
        conversation, note = await self._conversation(key)
        if conversation is None:
            outcome = await self.stateless_tool.run(code, on_output=on_output)
        else:
            try:
                outcome = await self._run(conversation, code, on_output)
            except UsageError:
                if not conversation.session.closed:
                    raise
                # it ended while this call waited for the one before (cancelled, or past
                # a limit) and the code did not run: run it in a fresh session
                conversation, note = await self._conversation(key)
                if conversation is None:
                    outcome = await self.stateless_tool.run(code, on_output=on_output)
                else:
                    outcome = await self._run(conversation, code, on_output)
        if note:
            outcome = outcome.model_copy(update={"text": f"{note}\n\n{outcome.text}"})
        return outcome

    async def _run(
        self, conversation: _Conversation, code: str, on_output: OnOutput
    ) -> ToolOutcome:
        conversation.busy += 1
        try:
            return await conversation.tool.run(code, on_output=on_output)
        finally:
            conversation.busy -= 1
            conversation.used = time.monotonic()

    async def _conversation(self, key: str) -> tuple[_Conversation | None, str]:
        """The client's open conversation (opened now if needed), and a note for the model
        when its earlier state is gone."""
        async with self._lock:
            for other in [k for k, c in self._open.items() if c.session.closed]:
                self._forget(other, self._open.pop(other).session.ended_because)
            found = self._open.get(key)
            if found is not None:
                return found, ""
            why = self._ended.pop(key, None)
            note = (
                f"Note: the state of the earlier calls is gone ({why}); this call ran in a "
                "fresh interpreter, so import and load again what the code needs."
                if why
                else ""
            )
            if len(self._open) >= self.max_sessions and not await self._make_room():
                return None, (
                    f"Note: this call ran in a fresh interpreter and nothing it defines will "
                    f"last: the server already keeps {self.max_sessions} conversations busy."
                )
            try:
                session = await self.sandbox.open_session(
                    self.stateless_tool.options, idle_timeout=self.idle_timeout
                )
            except SessionsNotSupported:
                self.stateless = True
                return None, note
            # the options are given: the tool needs no ``default_options`` of the session
            tool = PythonTool(
                cast(CodeRunner, session), options=self.stateful_tool.options,
                name=self.stateful_tool.name,
                info=self.stateful_tool.info, keeps_state=True,
                max_output_chars=self.stateful_tool.max_output_chars,
                images=self.stateful_tool.images,
            )  # fmt: skip
            self._open[key] = found = _Conversation(session, tool)
            return found, note

    async def _make_room(self) -> bool:
        """Close the conversation unused the longest that is not running a call."""
        idle = [(c.used, k) for k, c in self._open.items() if c.busy == 0]
        if not idle:
            return False
        _, key = min(idle)
        await self._close(key, "the server ended it to make room for another client's conversation")
        return True

    def _forget(self, key: str, why: str | None) -> None:
        self._ended[key] = why or "it ended"
        while len(self._ended) > _REMEMBERED:
            self._ended.popitem(last=False)

    async def _close(self, key: str, why: str) -> None:
        conversation = self._open.pop(key, None)
        if conversation is not None:
            self._forget(key, why)
            await conversation.session.aclose()

    async def end(self, key: str) -> None:
        """The client went away: its conversation ends now."""
        conversation = self._open.pop(key, None)
        if conversation is not None:
            await conversation.session.aclose()

    async def aclose(self) -> None:
        """End every conversation (the server is stopping)."""
        open_, self._open = self._open, {}
        for conversation in open_.values():
            with contextlib.suppress(Exception):
                await conversation.session.aclose()
