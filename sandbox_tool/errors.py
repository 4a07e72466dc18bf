"""Errors raised by sandbox_tool.

Every failure of an execution is a :class:`SandboxError`. The tree::

    SandboxError
    ├── ExecutionFailed            the code ran but did not complete normally
    │   ├── ExecutionError         the code raised (or had a syntax error)
    │   ├── ImportNotAllowed       the import policy refused a module (.module)
    │   ├── BuiltinNotAllowed      the builtins policy refused a builtin (.name)
    │   ├── Timeout                wall-clock limit (ExecutionOptions.timeout)
    │   ├── CpuLimitExceeded       CPU-time limit (ExecutionOptions.cpu_seconds)
    │   ├── MemoryLimitExceeded    memory limit (ExecutionOptions.memory_mb)
    │   └── OutputLimitExceeded    stdout+stderr limit (ExecutionOptions.max_output_bytes)
    ├── PackageError               a package asked for could not be provided (.package)
    │   ├── PackageNotAllowed      the install policy refuses it
    │   ├── PackageNotFound        neither the index nor the local wheels have it
    │   └── PackageInstallFailed   it was found but could not be installed (no wheel...)
    ├── EngineUnavailable          the engine cannot run on this host
    ├── EngineError                the engine itself failed (a bug or a broken host)
    └── UsageError                 the caller's own mistake (bad code type, bad file path...)
        └── SessionsNotSupported   sessions asked of an engine that has none

Every error carries what the code produced before it failed: ``stdout``,
``stderr`` and ``artifacts``; one raised for an execution also says which engine ran it
and under which layers (``engine``, ``isolation``, ``degraded``, as a result does).
Errors serialise with :meth:`SandboxError.to_dict` and come back with
:func:`error_from_dict`, so they can cross process and network boundaries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from sandbox_tool.result import Artifact

__all__ = [
    "BuiltinNotAllowed",
    "CpuLimitExceeded",
    "EngineError",
    "EngineUnavailable",
    "ExecutionError",
    "ExecutionFailed",
    "ImportNotAllowed",
    "MemoryLimitExceeded",
    "OutputLimitExceeded",
    "PackageError",
    "PackageInstallFailed",
    "PackageNotAllowed",
    "PackageNotFound",
    "SandboxError",
    "SessionsNotSupported",
    "Timeout",
    "UsageError",
    "error_from_dict",
]


class SandboxError(Exception):
    """Base class of every error sandbox_tool raises."""

    #: Extra attributes (besides message and output) that serialise with the error.
    _fields: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        message: str,
        *,
        stdout: str = "",
        stderr: str = "",
        artifacts: list[Artifact] | None = None,
        engine: str | None = None,
        duration_ms: float | None = None,
        peak_memory_mb: float | None = None,
        isolation: dict[str, Any] | None = None,
        degraded: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.stdout = stdout
        self.stderr = stderr
        self.artifacts: list[Artifact] = list(artifacts or [])
        self.engine = engine
        self.duration_ms = duration_ms
        self.peak_memory_mb = peak_memory_mb
        #: The layers the code ran under, as the sandbox reported them (None: unknown, or
        #: the error came before any code ran).
        self.isolation = isolation
        #: What of the options the engine could not apply (as ``ExecutionResult.degraded``).
        self.degraded: list[str] = list(degraded or [])

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form of this error (without output; see ``ExecutionResult``)."""
        data: dict[str, Any] = {"type": type(self).__name__, "message": self.message}
        for field in self._fields:
            data[field] = getattr(self, field)
        return data


class ExecutionFailed(SandboxError):
    """The code ran in the sandbox but did not complete normally."""


class ExecutionError(ExecutionFailed):
    """The code raised an exception (a ``SyntaxError`` included).

    ``exception`` is the exception's type name, ``traceback`` is trimmed to the
    frames of the user's own code, ``lineno`` is the user's line where it
    happened (``None`` when it happened outside the user's code) and ``line``
    the text of that line.
    """

    _fields: ClassVar[tuple[str, ...]] = ("exception", "traceback", "lineno", "line")

    def __init__(
        self,
        message: str,
        *,
        exception: str = "Exception",
        traceback: str = "",
        lineno: int | None = None,
        line: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.exception = exception
        self.traceback = traceback
        self.lineno = lineno
        self.line = line


class ImportNotAllowed(ExecutionFailed):
    """The import policy refused a module the code imported."""

    _fields: ClassVar[tuple[str, ...]] = ("module", "lineno")

    def __init__(self, message: str, *, module: str, lineno: int | None = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.module = module
        self.lineno = lineno


class BuiltinNotAllowed(ExecutionFailed):
    """The builtins policy refused a builtin the code called (``eval``, ``open`` elsewhere...)."""

    _fields: ClassVar[tuple[str, ...]] = ("name", "lineno")

    def __init__(self, message: str, *, name: str, lineno: int | None = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.name = name
        self.lineno = lineno


class _LimitExceeded(ExecutionFailed):
    _fields: ClassVar[tuple[str, ...]] = ("limit",)

    def __init__(self, message: str, *, limit: float, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.limit = limit


class Timeout(_LimitExceeded):
    """The code ran longer than ``ExecutionOptions.timeout`` seconds (wall clock); it was killed."""


class CpuLimitExceeded(_LimitExceeded):
    """The code used more than ``ExecutionOptions.cpu_seconds`` of CPU time; it was killed."""


class MemoryLimitExceeded(_LimitExceeded):
    """The code needed more than ``ExecutionOptions.memory_mb`` megabytes."""

    _fields: ClassVar[tuple[str, ...]] = ("limit", "peak_memory_mb")


class OutputLimitExceeded(_LimitExceeded):
    """stdout and stderr passed ``ExecutionOptions.max_output_bytes``; the code was stopped.

    ``stdout`` and ``stderr`` hold the output up to the limit, ending in a
    visible ``[... output truncated ...]`` marker.
    """


class PackageError(SandboxError):
    """A package asked for (``ExecutionOptions.packages``, the install tool, ``sandbox-tool
    env``) could not be provided; ``package`` names it and the message says what to do
    instead. Raised before any code runs; installing never happens inside a sandbox."""

    _fields: ClassVar[tuple[str, ...]] = ("package",)

    def __init__(self, message: str, *, package: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.package = package


class PackageNotAllowed(PackageError):
    """The install policy does not allow the package (not on its allow-list, or denied)."""


class PackageNotFound(PackageError):
    """Neither the package index nor the local wheel directory (nor, offline, uv's cache)
    has the package, or no version of it matches what was asked."""


class PackageInstallFailed(PackageError):
    """The package was found but could not be installed here (no wheel for this platform
    and source builds are off, a failed build, a conflict between the packages asked)."""


class EngineUnavailable(SandboxError):
    """The engine cannot run on this host; the message says what is missing and what to do."""

    _fields: ClassVar[tuple[str, ...]] = ("engine",)


class EngineError(SandboxError):
    """The engine failed in a way that is not the code's fault (a bug or a broken host)."""


class UsageError(SandboxError, ValueError):
    """The caller's own mistake: invalid options, an unknown engine, a missing file..."""


class SessionsNotSupported(UsageError):
    """The engine has no sessions (``Engine.supports_sessions`` is False)."""


_BY_NAME: dict[str, type[SandboxError]] = {
    cls.__name__: cls
    for cls in (
        ExecutionError,
        ImportNotAllowed,
        BuiltinNotAllowed,
        Timeout,
        CpuLimitExceeded,
        MemoryLimitExceeded,
        OutputLimitExceeded,
        PackageNotAllowed,
        PackageNotFound,
        PackageInstallFailed,
        EngineUnavailable,
        EngineError,
        UsageError,
        SessionsNotSupported,
    )
}


def error_from_dict(data: dict[str, Any], **output: Any) -> SandboxError:
    """Rebuild an error serialised by :meth:`SandboxError.to_dict`.

    ``output`` may give ``stdout``, ``stderr``, ``artifacts``, ``engine``... as
    for the constructor. An unknown ``type`` gives an :class:`EngineError`.
    """
    cls = _BY_NAME.get(str(data.get("type")), EngineError)
    fields = {f: data[f] for f in cls._fields if f in data}
    return cls(str(data.get("message", "")), **{**output, **fields})
