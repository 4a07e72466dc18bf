"""Turn what the host saw of an execution into a result or a typed error: the one place
where a runner's answer is parsed.

Trust: the supervisor's report (exit status, signal, CPU time, peak memory) is written
outside the code's reach and is trusted; the worker's answer (the code's result, its
artifacts) is written where the code runs and is only trusted to describe the code
itself. So every field of an answer is type-checked here and a malformed one is an
:class:`~sandbox_tool.errors.EngineError`, never another exception; artifact names are
made plain relative names that cannot leave a directory they are written to.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from typing import Any

from sandbox_tool.budgets import Budgets
from sandbox_tool.engines.runners.driver import Exchange, parse_report
from sandbox_tool.engines.runners.frames import ChannelError
from sandbox_tool.engines.runners.workspace import Workspace, mime_type, unique_name
from sandbox_tool.errors import (
    BuiltinNotAllowed,
    CpuLimitExceeded,
    EngineError,
    ExecutionError,
    ImportNotAllowed,
    MemoryLimitExceeded,
    OutputLimitExceeded,
    SandboxError,
    Timeout,
)
from sandbox_tool.options import ExecutionOptions
from sandbox_tool.result import Artifact, ExecutionResult, safe_artifact_name
from sandbox_tool.runner import protocol

__all__ = [
    "TRUNCATION_MARKER",
    "AnswerContext",
    "artifacts_from_answer",
    "code_error",
    "read_fallback",
    "to_result",
]

TRUNCATION_MARKER = "\n[... output truncated: the limit is {limit} bytes ...]\n"
LOST = " The session has ended and its state is lost: open a new session."
# What allocators print when they give up under RLIMIT_AS
_MEMORY_SIGNS = ("MemoryError", "bad_alloc", "Cannot allocate memory", "out of memory")


@dataclass
class AnswerContext:
    """What the host knows of an execution besides what the runner said."""

    engine: str
    options: ExecutionOptions
    degraded: list[str] = field(default_factory=list)
    require_isolation: bool = False
    """The engine promised isolation layers: a run that did not report them is an error."""
    isolation: dict[str, Any] | None = None
    """The layers reported before any user code ran (a session's, or this run's ready
    frame's); a cold run without an answer takes them from the supervisor's report."""
    in_session: bool = False
    """A session's cell: "the cell" in messages, and limits end the session."""


@dataclass
class Fallback:
    """What a run that did not answer on its channel left: its report file and the
    files it wrote, collected once the runner has ended."""

    report: dict[str, Any] | None
    artifacts: list[Artifact]
    artifacts_truncated: bool


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def to_result(
    ex: Exchange,
    ctx: AnswerContext,
    supervisor: dict[str, Any] | None,
    fallback: Fallback | None = None,
) -> ExecutionResult:
    """The result of a completed execution, or raise the matching ``SandboxError``.

    ``supervisor`` is its report, when the runner ended without answering."""
    opts, what = ctx.options, "cell" if ctx.in_session else "code"
    lost = LOST if ctx.in_session else ""
    control = supervisor or {}
    answer = ex.answer
    usage = answer.get("usage") if answer is not None else control
    peak = usage.get("maxrss_kb") if isinstance(usage, dict) else None
    common: dict[str, Any] = {
        "stdout": _decode(ex.stdout),
        "stderr": _decode(ex.stderr),
        "artifacts": [],
        "engine": ctx.engine,
        "duration_ms": ex.duration_ms,
        "peak_memory_mb": round(peak / 1024, 1) if isinstance(peak, (int, float)) else None,
        "isolation": ctx.isolation,
        "degraded": ctx.degraded,
    }
    if ex.output_exceeded:
        marker = TRUNCATION_MARKER.format(limit=opts.max_output_bytes)
        common["stdout" if len(ex.stdout) >= len(ex.stderr) else "stderr"] += marker
        raise OutputLimitExceeded(
            f"the {what} printed more than {opts.max_output_bytes} bytes and was stopped; "
            "print less (a summary, df.head()) or raise ExecutionOptions.max_output_bytes" + lost,
            limit=opts.max_output_bytes,
            **common,
        )
    if ex.overrun is not None and ex.overrun.kind == "cpu":
        raise CpuLimitExceeded(
            f"the sandbox's processes used {ex.overrun.total:.1f} s of CPU time in total, "
            f"more than the {what}'s {opts.cpu_limit_seconds} s, and were killed (the "
            "budget is for all the processes the code runs together); make it cheaper, "
            "use fewer processes, or raise ExecutionOptions.cpu_seconds" + lost,
            limit=opts.cpu_seconds,
            **common,
        )
    if ex.overrun is not None:
        raise MemoryLimitExceeded(
            f"the sandbox's processes held {ex.overrun.total / 2**20:.0f} MB in total, more "
            f"than {opts.memory_mb} MB, and were killed (the limit is for all the processes "
            "the code runs together); use less memory or fewer processes, or raise "
            "ExecutionOptions.memory_mb" + lost,
            limit=opts.memory_mb,
            **common,
        )
    if ex.timed_out:
        raise Timeout(
            f"the {what} ran longer than {opts.timeout:g} s and was killed; make it faster "
            "or raise ExecutionOptions.timeout" + lost,
            limit=opts.timeout,
            **common,
        )
    if ex.protocol_error is not None:
        raise EngineError(
            f"the sandbox's channel broke its protocol, so no result is trusted: "
            f"{ex.protocol_error}; do not write to the runner's file descriptors" + lost,
            **common,
        )
    if answer is None and supervisor is None:
        raise EngineError(
            "the runner ended without reporting; "
            "this is a sandbox_tool or host problem, not the code's: "
            + (common["stderr"].strip()[-500:] or "no stderr"),
            **common,
        )
    isolation = ctx.isolation if answer is not None else control.get("isolation")
    isolation = isolation or ctx.isolation
    common["isolation"] = isolation if isinstance(isolation, dict) else None
    report = answer if answer is not None else (fallback.report if fallback else None)
    if ctx.require_isolation and not isolation:
        detail = (report or {}).get("message") or control.get("message")
        raise EngineError(
            "the sandbox did not report its isolation layers; no result is trusted: "
            + str(detail or common["stderr"].strip()[-500:] or "no detail"),
            **common,
        )
    sig = control.get("signal")
    cpu = control.get("cpu_seconds")
    cpu_used = float(cpu) if isinstance(cpu, (int, float)) else 0.0
    if sig == signal.SIGXCPU or (
        sig == signal.SIGKILL and cpu_used >= opts.cpu_limit_seconds - 0.05
    ):
        raise CpuLimitExceeded(
            f"the {what} used more than {opts.cpu_limit_seconds} s of CPU time and was "
            "killed; make it cheaper or raise ExecutionOptions.cpu_seconds" + lost,
            limit=opts.cpu_seconds,
            **common,
        )
    if report is None:
        raise _without_report(control, opts, common, lost)
    try:
        if answer is not None:
            common["artifacts"] = artifacts_from_answer(
                answer, ex.artifact_data, opts.max_artifact_bytes
            )
            truncated = answer.get("artifacts_truncated") is True
        else:
            assert fallback is not None
            common["artifacts"], truncated = fallback.artifacts, fallback.artifacts_truncated
        return _from_report(report, ctx, common, truncated)
    except ChannelError as exc:
        raise EngineError(
            f"the sandbox's answer broke its protocol, so no result is trusted: {exc}; do "
            "not write to the runner's file descriptors or its report" + lost,
            **common,
        ) from None


def _field(report: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    """``report[name]`` if it is absent, None or of ``kind``; else a protocol error."""
    value = report.get(name)
    wrong_bool = isinstance(value, bool) and kind is int
    if value is not None and (not isinstance(value, kind) or wrong_bool):
        raise ChannelError(f"the answer's {name!r} is a {type(value).__name__}")
    return value


def _from_report(
    report: dict[str, Any],
    ctx: AnswerContext,
    common: dict[str, Any],
    artifacts_truncated: bool,
) -> ExecutionResult:
    status = report.get("status")
    if status == "ok":
        return ExecutionResult(
            result=report.get("result"),
            result_repr=_field(report, "result_repr", str),
            result_type=_field(report, "result_type", str),
            result_truncated=_field(report, "result_truncated", bool) is True,
            artifacts_truncated=artifacts_truncated,
            **common,
        )
    if status == "error":
        error = code_error(report, ctx.options, common)
        if ctx.in_session and isinstance(error, MemoryLimitExceeded):
            error.message += LOST
        raise error
    message = _field(report, "message", str) or "unknown error"
    raise EngineError(f"the runner failed: {message}", **common)


def _memory_error(opts: ExecutionOptions, common: dict[str, Any], how: str) -> SandboxError:
    return MemoryLimitExceeded(
        f"the code needed more than the {opts.memory_mb} MB memory limit ({how}); work in "
        "chunks, use smaller dtypes or a sample, or raise ExecutionOptions.memory_mb",
        limit=opts.memory_mb,
        **common,
    )


def code_error(
    report: dict[str, Any], opts: ExecutionOptions, common: dict[str, Any]
) -> SandboxError:
    """The error a worker's error report describes (its fields type-checked)."""
    kind = _field(report, "kind", str)
    message = _field(report, "message", str) or ""
    lineno = _field(report, "lineno", int)
    if kind == protocol.KIND_MEMORY:
        exception = _field(report, "exception", str)
        return _memory_error(opts, common, f"{exception} at line {lineno}")
    if kind == protocol.KIND_IMPORT:
        module = _field(report, "module", str) or ""
        return ImportNotAllowed(
            f"import of '{module}' is not allowed by the import policy",
            module=module,
            lineno=lineno,
            **common,
        )
    if kind == protocol.KIND_BUILTIN:
        name = _field(report, "name", str) or ""
        return BuiltinNotAllowed(message, name=name, lineno=lineno, **common)
    exception = _field(report, "exception", str) or "Exception"
    return ExecutionError(
        f"{exception}: {message}" if message else exception,
        exception=exception,
        traceback=_field(report, "traceback", str) or "",
        lineno=lineno,
        line=_field(report, "line", str),
        **common,
    )


def _without_report(
    control: dict[str, Any], opts: ExecutionOptions, common: dict[str, Any], lost: str
) -> SandboxError:
    """The worker died before answering: say how."""
    stderr = common["stderr"]
    if control.get("message"):  # the runner failed before any code ran
        return EngineError(f"the runner failed: {control['message']}", **common)
    sig, code = control.get("signal"), control.get("exit_code")
    if isinstance(sig, int):
        name = _signal_name(sig)
        if sig in (signal.SIGABRT, signal.SIGKILL, signal.SIGSEGV) and any(
            s in stderr for s in _MEMORY_SIGNS
        ):
            error = _memory_error(opts, common, f"killed by {name}")
        else:
            error = ExecutionError(
                f"the code's process was killed by {name} before it finished",
                exception=name,
                **common,
            )
    elif code == 0:
        # os._exit(0): the code ended the process on purpose; nothing to return
        error = ExecutionError(
            "the code ended the interpreter with os._exit(0) before its result could be "
            "collected; do not call os._exit",
            exception="SystemExit",
            **common,
        )
    elif any(s in stderr for s in _MEMORY_SIGNS):
        error = _memory_error(opts, common, f"the process exited with status {code}")
    else:
        error = ExecutionError(
            f"the code's process exited with status {code} before it finished (os._exit "
            "or a crash)",
            exception="SystemExit",
            **common,
        )
    error.message += lost
    return error


def artifacts_from_answer(
    answer: dict[str, Any], contents: list[bytes], max_bytes: int
) -> list[Artifact]:
    """The artifacts of an answer frame (figures, then files) with their ``contents``
    (the raw frames that followed it), with safe, unique names; more than the runner ever
    sends (files, or bytes beyond ``max_bytes``) is a protocol error (:class:`ChannelError`)."""
    items = answer.get("artifacts") or []
    if not isinstance(items, list) or len(items) > protocol.MAX_ARTIFACT_FILES:
        raise ChannelError(f"the sandbox sent more than {protocol.MAX_ARTIFACT_FILES} artifacts")
    if len(contents) != len(items):
        raise ChannelError(f"the sandbox sent {len(contents)} contents for {len(items)} artifacts")
    if sum(len(data) for data in contents) > max_bytes:
        raise ChannelError(f"the sandbox sent more than {max_bytes} bytes of artifacts")
    artifacts: list[Artifact] = []
    names: set[str] = set()
    for item, data in zip(items, contents, strict=True):
        try:
            name, kind = str(item["name"]), str(item["kind"])
        except (KeyError, TypeError) as exc:
            raise ChannelError(f"the sandbox sent a malformed artifact: {exc!r}") from None
        unique = unique_name(safe_artifact_name(name), names)  # at most 100: a short walk
        kind = kind if kind in ("figure", "file") else "file"
        artifacts.append(Artifact(name=unique, kind=kind, data=data, mime_type=mime_type(unique)))
    return artifacts


def read_fallback(ws: Workspace, options: ExecutionOptions) -> Fallback:
    """What a runner that did not answer left: its report file and its files (copied out
    of its sandbox), read once it has ended. Blocking."""
    report = parse_report(ws.read_worker_report(Budgets.of(options).report_file_bytes))
    artifacts, truncated = ws.collect_artifacts(options.max_artifact_bytes)
    return Fallback(report, artifacts, truncated or ws.copy_out_cut_short())
