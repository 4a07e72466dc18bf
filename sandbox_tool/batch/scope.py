"""The batch isolation scope: items of one batch share a sandbox, each still in a fresh
process with a fresh work dir (opt-in: ``PythonSandbox.map(..., scope="batch")``).

What it does and does not isolate between items is in docs/security.md and docs/batch.md;
a shared sandbox is :class:`~sandbox_tool.engines.runners.shared.SharedSandbox`, the
runner's side :mod:`sandbox_tool.runner.roles.scoped`. :class:`ScopedExecutor` is what
``map`` runs items with under this scope: up to one shared sandbox per item running at
once, reused across items. Items whose options need another sandbox (files, packages,
settings other than the batch's, except those of :data:`PER_ITEM`) run as ordinary
executions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from sandbox_tool.engines.base import Engine
from sandbox_tool.engines.runners.shared import SharedSandbox
from sandbox_tool.errors import UsageError
from sandbox_tool.options import ExecutionOptions
from sandbox_tool.result import ExecutionResult

__all__ = ["PER_ITEM", "SCOPES", "ScopedExecutor", "check_scope", "shares_scope"]

#: The isolation scopes a batch may run under: a sandbox per item (the default), or one
#: per batch slot shared by its items in turn.
SCOPES = ("execution", "batch")


#: What an item may set for itself in a shared sandbox: what the host enforces per cell
#: (wall clock, output, artifacts) and the CPU limit, which each fresh process starts.
PER_ITEM = ("timeout", "cpu_seconds", "max_output_bytes", "max_artifact_bytes")


def check_scope(scope: str, engine: Engine) -> str:
    """``scope`` if it is one of :data:`SCOPES` that ``engine`` offers; else UsageError."""
    if scope not in SCOPES:
        raise UsageError(f"scope must be one of {', '.join(map(repr, SCOPES))}, not {scope!r}")
    if scope == "batch" and not engine.supports_batch_scope:
        raise UsageError(
            f"the {engine.name} engine has no batch scope; run the batch with "
            "scope='execution' (a sandbox per item) or on the process engine"
        )
    return scope


def shares_scope(options: ExecutionOptions, scope_options: ExecutionOptions) -> bool:
    """Whether an item with ``options`` can run in a sandbox opened with
    ``scope_options``: the same settings but for :data:`PER_ITEM`, and no files or
    packages (which the sandbox would have to be built with)."""
    if options.files or options.packages or options.environment is not None:
        return False
    per_item = {name: getattr(scope_options, name) for name in PER_ITEM}
    return options is scope_options or options.model_copy(update=per_item) == scope_options


OpenShared = Callable[[ExecutionOptions], Awaitable[SharedSandbox]]
Execute = Callable[[str, Any, ExecutionOptions], Awaitable[ExecutionResult]]


class ScopedExecutor:
    """Runs a batch's items in shared sandboxes (at most one per item running at once),
    and those that cannot share one with ``fallback`` (an ordinary execution)."""

    def __init__(self, open_shared: OpenShared, options: ExecutionOptions, fallback: Execute):
        self._open_shared = open_shared
        self.options = options
        self._fallback = fallback
        self._idle: list[SharedSandbox] = []
        self._busy: set[SharedSandbox] = set()
        self.opened = 0

    async def execute(self, code: str, inputs: Any, options: ExecutionOptions) -> ExecutionResult:
        if not shares_scope(options, self.options):
            return await self._fallback(code, inputs, options)
        shared = self._idle.pop() if self._idle else None
        if shared is None:
            shared = await self._open_shared(self.options)
            self.opened += 1
        self._busy.add(shared)
        try:
            return await shared.execute(code, inputs, options)
        finally:
            self._busy.discard(shared)
            if not shared.closed:
                self._idle.append(shared)

    async def aclose(self) -> None:
        """Close every shared sandbox (the batch's items have ended or been cancelled)."""
        idle, busy = self._idle, list(self._busy)
        self._idle = []
        self._busy.clear()
        await asyncio.gather(
            *(s.aclose("the batch ended", idle=True) for s in idle),
            *(s.aclose("the batch ended") for s in busy),
        )
