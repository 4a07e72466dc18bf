"""Turn what the host saw of a runner process into a result or a typed error.

The supervisor's report (exit status, signal, CPU time, peak memory) is
trusted; the worker's report (what the code produced) is only trusted to
describe the code's own result: code that forges it lies about itself. A warm
runner answers before its supervisor reports: its layers are those it reported
before any user code ran, and its peak memory is the worker's own measurement.
"""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass
from typing import Any

from sandbox_tool.engines.launch import TRUNCATION_MARKER, RunnerRun
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
from sandbox_tool.result import Artifact, ExecutionResult
from sandbox_tool.runner import protocol

__all__ = ["Outcome", "RunnerRun", "build_outcome", "code_error"]

# What allocators print when they give up under RLIMIT_AS
_MEMORY_SIGNS = ("MemoryError", "bad_alloc", "Cannot allocate memory", "out of memory")


@dataclass
class Outcome:
    run: RunnerRun
    worker_report: bytes | dict[str, Any] | None
    """A cold run's report file, or a warm run's answer frame."""
    artifacts: list[Artifact]
    artifacts_truncated: bool
    engine: str
    options: ExecutionOptions
    degraded: list[str]
    require_isolation: bool = False
    """The engine promised isolation layers: a run that did not report them is an error."""


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _parse_worker(data: bytes | dict[str, Any] | None) -> dict[str, Any] | None:
    if data is None or isinstance(data, dict):
        return data
    try:
        report = json.loads(data)
    except ValueError:
        return None
    return report if isinstance(report, dict) else None


def build_outcome(o: Outcome) -> ExecutionResult:
    """The result of a completed execution, or raise the matching ``SandboxError``."""
    run, opts = o.run, o.options
    stdout, stderr = _decode(run.stdout), _decode(run.stderr)
    control = run.control or {}
    # a warm run answered before its supervisor reported: its layers are those it reported
    # before any user code ran, its usage the worker's own
    answered = run.answer is not None
    isolation = run.isolation if answered else control.get("isolation")
    usage = (run.answer or {}).get("usage") if answered else control
    peak = usage.get("maxrss_kb") if isinstance(usage, dict) else None
    peak_mb = round(peak / 1024, 1) if isinstance(peak, (int, float)) else None
    common: dict[str, Any] = {
        "stdout": stdout,
        "stderr": stderr,
        "artifacts": o.artifacts,
        "engine": o.engine,
        "duration_ms": run.duration_ms,
        "peak_memory_mb": peak_mb,
    }

    if run.output_exceeded:
        marker = TRUNCATION_MARKER.format(limit=opts.max_output_bytes)
        common["stdout" if len(run.stdout) >= len(run.stderr) else "stderr"] += marker
        raise OutputLimitExceeded(
            f"the code printed more than {opts.max_output_bytes} bytes and was stopped; print "
            "less (a summary, df.head()) or raise ExecutionOptions.max_output_bytes",
            limit=opts.max_output_bytes,
            **common,
        )
    if run.timed_out:
        raise Timeout(
            f"the code ran longer than {opts.timeout:g} s and was killed; make it faster or "
            "raise ExecutionOptions.timeout",
            limit=opts.timeout,
            **common,
        )
    if run.protocol_error is not None:
        raise EngineError(
            f"the sandbox's channel broke its protocol, so no result is trusted: "
            f"{run.protocol_error}; do not write to the runner's file descriptors",
            **common,
        )
    if run.control is None and not answered:
        raise EngineError(
            "the runner ended without reporting; "
            "this is a sandbox_tool or host problem, not the code's: "
            + (stderr.strip()[-500:] or "no stderr"),
            **common,
        )

    if o.require_isolation and not isolation:
        detail = (_parse_worker(o.worker_report) or {}).get("message") or control.get("message")
        raise EngineError(
            "the sandbox did not report its isolation layers; no result is trusted: "
            + str(detail or stderr.strip()[-500:] or "no detail"),
            **common,
        )
    sig = control.get("signal")
    cpu_used = float(control.get("cpu_seconds") or 0.0)
    if sig == signal.SIGXCPU or (
        sig == signal.SIGKILL and cpu_used >= opts.cpu_limit_seconds - 0.05
    ):
        raise CpuLimitExceeded(
            f"the code used more than {opts.cpu_limit_seconds} s of CPU time and was killed; "
            "make it cheaper or raise ExecutionOptions.cpu_seconds",
            limit=opts.cpu_seconds,
            **common,
        )

    report = _parse_worker(o.worker_report)
    if report is None:
        _raise_without_report(control, stderr, opts, common)
    assert report is not None
    status = report.get("status")
    if status == "ok":
        return ExecutionResult(
            result=report.get("result"),
            result_repr=report.get("result_repr"),
            result_type=report.get("result_type"),
            result_truncated=bool(report.get("result_truncated")),
            artifacts_truncated=o.artifacts_truncated,
            degraded=o.degraded,
            isolation=isolation,
            **common,
        )
    if status == "error":
        raise code_error(report, opts, common)
    raise EngineError(f"the runner failed: {report.get('message', 'unknown error')}", **common)


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
    kind = report.get("kind")
    message = str(report.get("message", ""))
    lineno = report.get("lineno")
    if kind == protocol.KIND_MEMORY:
        return _memory_error(opts, common, f"{report.get('exception')} at line {lineno}")
    if kind == protocol.KIND_IMPORT:
        module = str(report.get("module", ""))
        return ImportNotAllowed(
            f"import of '{module}' is not allowed by the import policy",
            module=module,
            lineno=lineno,
            **common,
        )
    if kind == protocol.KIND_BUILTIN:
        return BuiltinNotAllowed(message, name=str(report.get("name", "")), lineno=lineno, **common)
    exception = str(report.get("exception", "Exception"))
    return ExecutionError(
        f"{exception}: {message}" if message else exception,
        exception=exception,
        traceback=str(report.get("traceback", "")),
        lineno=lineno if isinstance(lineno, int) else None,
        line=report.get("line"),
        **common,
    )


def _raise_without_report(
    control: dict[str, Any], stderr: str, opts: ExecutionOptions, common: dict[str, Any]
) -> None:
    """The worker died before writing its report: say how."""
    if control.get("message"):  # the runner failed before any code ran
        raise EngineError(f"the runner failed: {control['message']}", **common)
    sig, code = control.get("signal"), control.get("exit_code")
    if sig is not None:
        name = _signal_name(int(sig))
        if sig in (signal.SIGABRT, signal.SIGKILL, signal.SIGSEGV) and any(
            s in stderr for s in _MEMORY_SIGNS
        ):
            raise _memory_error(opts, common, f"killed by {name}")
        raise ExecutionError(
            f"the code's process was killed by {name} before it finished",
            exception=name,
            **common,
        )
    if code == 0:
        # os._exit(0): the code ended the process on purpose; nothing to return
        raise ExecutionError(
            "the code ended the interpreter with os._exit(0) before its result could be "
            "collected; do not call os._exit",
            exception="SystemExit",
            **common,
        )
    if any(s in stderr for s in _MEMORY_SIGNS):
        raise _memory_error(opts, common, f"the process exited with status {code}")
    raise ExecutionError(
        f"the code's process exited with status {code} before it finished (os._exit or a crash)",
        exception="SystemExit",
        **common,
    )
