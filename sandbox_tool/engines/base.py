"""What every engine is: a small abstract class, one module per engine.

Callers (:class:`~sandbox_tool.sandbox.PythonSandbox`, the tool layer, the CLI) use
only what :class:`Engine` declares: :meth:`~Engine.probe`, :meth:`~Engine.create`,
:meth:`~Engine.start`, :meth:`~Engine.execute`, :meth:`~Engine.open_session` (an
engine without sessions says so with :class:`~sandbox_tool.errors.SessionsNotSupported`
and ``supports_sessions = False``), :meth:`~Engine.degraded` and :meth:`~Engine.aclose`.
Executions and sessions' cells stream their output to an ``on_output`` callback while
the code runs (:mod:`sandbox_tool.streaming`).
"""

from __future__ import annotations

import abc
import sys
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from sandbox_tool.errors import SessionsNotSupported, UsageError
from sandbox_tool.options import ExecutionOptions
from sandbox_tool.result import ExecutionResult
from sandbox_tool.streaming import OnOutput

if TYPE_CHECKING:
    from typing_extensions import Self

    from sandbox_tool.engines.runners.shared import SharedSandbox
    from sandbox_tool.environments.environment import Environment

__all__ = ["Engine", "EngineInfo", "EngineSession"]


class EngineSession(Protocol):
    """What an engine's session offers (:class:`sandbox_tool.session.Session` is the
    runner engines' one)."""

    #: Variables, imports and DataFrames last across its cells.
    keeps_state: bool

    @property
    def closed(self) -> bool:
        """Whether it has ended (closed, idle too long, or a cell hit a limit)."""
        ...

    @property
    def ended_because(self) -> str | None:
        """Why it ended (None while it is open)."""
        ...

    async def execute(
        self,
        code: str,
        inputs: Any = None,
        options: ExecutionOptions | dict[str, Any] | None = None,
        *,
        on_output: OnOutput | None = None,
    ) -> ExecutionResult:
        """Run one cell; raise a ``SandboxError`` as a single execution would; deliver its
        output to ``on_output`` while it runs (:mod:`sandbox_tool.streaming`)."""
        ...

    async def aclose(self) -> None:
        """End the session; its interpreter and files are gone afterwards."""
        ...


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
    implement :meth:`probe` and :meth:`execute`; engines with sessions set
    ``supports_sessions`` and implement :meth:`open_session`.
    """

    name: ClassVar[str]
    security_level: ClassVar[int]
    summary: ClassVar[str]
    #: Whether :meth:`open_session` works on this engine.
    supports_sessions: ClassVar[bool] = False
    #: Whether :meth:`open_scope` works: a batch's items may share one sandbox, each in a
    #: fresh process (``PythonSandbox.map(..., scope="batch")``; docs/batch.md).
    supports_batch_scope: ClassVar[bool] = False
    #: Whether it runs code in a built environment (``ExecutionOptions.environment``, a
    #: venv on this host); ``PythonSandbox`` refuses ``packages`` on an engine without.
    supports_environments: ClassVar[bool] = False

    def __init__(self, interpreter: str | None = None) -> None:
        #: The Python that runs the code (default: the one running this process).
        self.interpreter = interpreter or sys.executable

    @classmethod
    def create(cls, interpreter: str | None = None, *, warm: bool = True) -> Self:
        """The engine with its defaults, as :class:`~sandbox_tool.PythonSandbox` builds it
        by name; ``warm`` is ignored by engines without a warm path."""
        return cls(interpreter)

    @classmethod
    @abc.abstractmethod
    def probe(cls, interpreter: str | None = None) -> EngineInfo:
        """Check, without side effects, whether this engine can run here."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Prepare (warm caches, check the host). Raises ``EngineUnavailable``."""

    async def prepare_environment(self, env: Environment) -> None:  # noqa: B027 - optional
        """Get ready to run code in ``env`` (an engine with warm pools starts its pool
        now); nothing by default. Called only where :attr:`supports_environments`."""

    @abc.abstractmethod
    async def execute(
        self,
        code: str,
        inputs: Any,
        options: ExecutionOptions,
        *,
        on_output: OnOutput | None = None,
    ) -> ExecutionResult:
        """Run ``code`` with ``inputs``; return the result or raise a ``SandboxError``.

        Every engine streams: what the code prints reaches ``on_output`` while it runs,
        as :mod:`sandbox_tool.streaming` promises (:func:`~sandbox_tool.streaming.relay`
        turns it into a tap to feed the bytes to as they are read)."""

    async def open_session(self, options: ExecutionOptions, idle_timeout: float) -> EngineSession:
        """A started session (one interpreter whose state lasts across cells).

        Raises :class:`~sandbox_tool.errors.SessionsNotSupported` on an engine without
        sessions (``supports_sessions`` is False)."""
        raise SessionsNotSupported(
            f"the {self.name} engine has no sessions; run each cell as a single execution "
            "or choose an engine with sessions (native, process)"
        )

    async def open_scope(self, options: ExecutionOptions) -> SharedSandbox:
        """A started sandbox shared by a batch's items, one at a time, each in a fresh
        process (:mod:`sandbox_tool.batch.scope`). Raises ``UsageError`` on an engine
        without (``supports_batch_scope`` is False)."""
        raise UsageError(
            f"the {self.name} engine has no batch scope; run the batch with "
            "scope='execution' (a sandbox per item) or on the process engine"
        )

    def degraded(self, options: ExecutionOptions) -> list[str]:
        """What of ``options`` this engine cannot apply here, with the reason."""
        return []

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release what :meth:`start` acquired."""
