"""What every engine is: a small abstract class, one module per engine."""

from __future__ import annotations

import abc
import sys
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from sandbox_tool.options import ExecutionOptions
from sandbox_tool.result import ExecutionResult

__all__ = ["Engine", "EngineInfo"]


@dataclass(frozen=True)
class EngineInfo:
    """Whether an engine can run on this host, and why (not)."""

    name: str
    available: bool
    security_level: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Engine(abc.ABC):
    """Runs code in some kind of sandbox.

    Subclasses set ``name``, ``security_level`` (5 native process, 7 OS
    isolation, 9 VM or user-space kernel) and ``summary`` (what the engine
    stops and what it does not, shown by ``sandbox-tool engines``), and
    implement :meth:`probe` and :meth:`execute`.
    """

    name: ClassVar[str]
    security_level: ClassVar[int]
    summary: ClassVar[str]

    def __init__(self, interpreter: str | None = None) -> None:
        #: The Python that runs the code (default: the one running this process).
        self.interpreter = interpreter or sys.executable

    @classmethod
    @abc.abstractmethod
    def probe(cls, interpreter: str | None = None) -> EngineInfo:
        """Check, without side effects, whether this engine can run here."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Prepare (warm caches, check the host). Raises ``EngineUnavailable``."""

    @abc.abstractmethod
    async def execute(self, code: str, inputs: Any, options: ExecutionOptions) -> ExecutionResult:
        """Run ``code`` with ``inputs``; return the result or raise a ``SandboxError``."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release what :meth:`start` acquired."""
