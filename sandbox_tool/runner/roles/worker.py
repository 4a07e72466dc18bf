"""The runner's worker: applies limits and policies, runs the code, reports.

It runs in a child of the supervisor and always ends with ``os._exit``: the
user's ``atexit`` handlers and finalisers do not get to run after the report.
"""

from __future__ import annotations

import ast
import builtins
import json
import linecache
import os
import sys
import traceback
import types
from typing import Any, NoReturn, cast

from .. import guards, mplbackend
from ..convert import convert_result
from ..framing import write_all
from ..layers.limits import apply_limits
from ..protocol import (
    FIGURES_DIR,
    KIND_BUILTIN,
    KIND_EXCEPTION,
    KIND_EXIT,
    KIND_IMPORT,
    KIND_MEMORY,
    KIND_SYNTAX,
    USER_FILENAME,
    WORKER_REPORT,
    ErrorReport,
    IsolationSummary,
    OkReport,
    Paths,
    RunnerErrorFrame,
    RunnerRequest,
    RunnerSetup,
    WorkerReport,
)
from ..syscalls import PR_SET_DUMPABLE, try_prctl

_MPL_BACKEND = "module://runner.mplbackend"

# Bound now: the user's code may replace module attributes (json.dumps = None)
# before the report is written.
_dumps = json.dumps
_os_open, _os_close, _os_replace, _os_getpid, _os_ftruncate = (
    os.open,
    os.close,
    os.replace,
    os.getpid,
    os.ftruncate,
)
_exit = os._exit
_join = os.path.join


class _Paths:
    def __init__(self, paths: Paths) -> None:
        self.work = paths["work"]
        self.tmp = paths["tmp"]
        self.meta = paths["meta"]


def _isolate_descriptors() -> None:
    """Give the code an empty stdin and its own process group."""
    try_prctl(PR_SET_DUMPABLE, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.setpgid(0, 0)


def reseed() -> None:
    """Fresh random state: a worker forked from a template inherits the template's
    (FIELD_NOTES 14), and every worker would draw the same "random" numbers."""
    import random

    random.seed()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()


def write_report(meta: str, report: WorkerReport | RunnerErrorFrame) -> None:
    data = _dumps(report).encode()
    path = _join(meta, WORKER_REPORT)
    tmp = path + ".tmp"
    # a one-shot whose code broke its channel: the host reads this file once it has ended
    fd = _os_open(tmp, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        write_all(fd, data)
        _os_ftruncate(fd, len(data))
    finally:
        _os_close(fd)
    _os_replace(tmp, path)


def _user_frames(tb: types.TracebackType | None) -> list[traceback.FrameSummary]:
    return [f for f in traceback.extract_tb(tb) if f.filename == USER_FILENAME]


#: The longest source line an error report quotes.
_LINE_CHARS = 1000


def _clip(text: str, limit: int) -> str:
    """``text`` cut in the middle to about ``limit`` characters, with a visible marker."""
    if len(text) <= limit:
        return text
    half = max(limit // 2, 1)
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters cut ...]\n{text[-half:]}"


def _error_report(exc: BaseException, max_bytes: int = 1 << 20) -> ErrorReport:
    """Describe an exception from the user's code, traceback trimmed to its frames; the
    message and the traceback are each cut to an eighth of ``max_bytes`` characters (so
    that, JSON-escaped, the report stays within what the host accepts)."""
    frames = _user_frames(exc.__traceback__)
    if isinstance(exc, SyntaxError) and not exc.text and exc.lineno:
        # raised by the compiler on the parsed tree, which has no source text
        exc.text = linecache.getline(USER_FILENAME, exc.lineno) or None
    only = "".join(traceback.format_exception_only(type(exc), exc)).rstrip("\n")
    lines = []
    if frames:
        lines.append("Traceback (most recent call last):")
        lines.extend(s.rstrip("\n") for s in traceback.format_list(frames))
    lines.append(only)
    lineno: int | None = frames[-1].lineno if frames else None
    line: str | None = frames[-1].line if frames else None
    kind = KIND_EXCEPTION
    extra: dict[str, Any] = {}
    if isinstance(exc, SyntaxError) and not frames:
        kind = KIND_SYNTAX
        lineno, line = exc.lineno, (exc.text or "").rstrip("\n") or None
        extra["offset"] = exc.offset
    elif isinstance(exc, guards.ImportNotAllowedError):
        kind, extra["module"] = KIND_IMPORT, exc.module
    elif isinstance(exc, guards.BuiltinNotAllowedError):
        kind, extra["name"] = KIND_BUILTIN, exc.builtin
    elif isinstance(exc, MemoryError):
        kind = KIND_MEMORY
    elif isinstance(exc, SystemExit):
        kind = KIND_EXIT
    try:
        message = str(exc)
    except BaseException:  # noqa: BLE001 - a hostile __str__
        message = "<message unavailable>"
    limit = max(max_bytes // 8, 1000)
    report: ErrorReport = {
        "status": "error",
        "kind": kind,
        "exception": type(exc).__name__,
        "message": _clip(message, limit),
        "traceback": _clip("\n".join(lines), limit),
        "lineno": lineno,
        "line": _clip(line.strip(), _LINE_CHARS) if line else None,
    }
    return cast(ErrorReport, {**report, **extra})


def _split_last_expression(tree: ast.Module) -> tuple[types.CodeType, types.CodeType | None]:
    """Compile the code; the last statement separately when it is an expression."""
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body[-1].value)
        tree.body.pop()
    body = compile(tree, USER_FILENAME, "exec", dont_inherit=True)
    return body, compile(last, USER_FILENAME, "eval", dont_inherit=True) if last else None


def _flush_all() -> None:
    for stream in {
        id(s): s for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
    }.values():
        try:
            if stream is not None:
                stream.flush()
        except BaseException:  # noqa: BLE001 - replaced or closed streams
            pass


def _capture_figures() -> str | None:
    if "matplotlib.pyplot" not in sys.modules:
        return None
    try:
        mplbackend.capture_open_figures()
    except BaseException as exc:  # noqa: BLE001 - report, do not lose the result
        return f"could not capture figures: {type(exc).__name__}: {exc}"
    return None


def fail(request: RunnerSetup, message: str) -> NoReturn:
    """Report that the runner could not run the code, and exit."""
    failed: RunnerErrorFrame = {"status": "runner_error", "message": message}
    try:
        write_report(request["paths"]["meta"], failed)
    finally:
        _flush_all()
        _exit(71)


def prepare(setup: RunnerSetup) -> IsolationSummary | None:
    """What can be done before the request arrives (a pre-forked worker does it while it
    waits, so that a request pays only for its code). Returns the layers of the setup's
    ``confine`` (None without one)."""
    paths = _Paths(setup["paths"])
    confined = None
    if setup.get("confine"):
        from ..layers import confine

        confined = confine.apply(setup["confine"] or {})
    _isolate_descriptors()
    reseed()
    os.chdir(paths.work)
    # line-buffered, so output printed before a kill (timeout, CPU limit) is not lost
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(line_buffering=True)
    mplbackend.configure(os.path.join(paths.meta, FIGURES_DIR))
    guards.resolve_roots([paths.work, paths.tmp])
    if setup.get("env") is not None:
        _set_environment(setup["env"])  # the usual one: a request with it changes nothing
    return confined


#: What :func:`rehearse` runs: a value of each JSON type, then a NameError.
REHEARSALS = (
    "x = [1, 2.5, 'a', {'b': None, 'c': True}]\nresult = {'k': x, 'n': len(x)}",
    "undefined_name",
)


def rehearse() -> list[str]:
    """Run the worker's own path for a cell (parse, compile, run, convert the value,
    report an error) on :data:`REHEARSALS`, in a module thrown away; their statuses.

    A runner is a fork of its template, so the first write to each page of the heap
    they share (a reference count, an allocator's pool) copies that page: a page fault
    of a few microseconds, a few hundred of them per execution. A runner that rehearses
    while it waits for its request takes those faults there, off the execution's path
    (docs/performance.md). Nothing of it stays: no output, no ``__main__``, no source
    line cached; builtins are restored by :func:`run_code` as after any cell."""
    statuses: list[str] = []
    for code in REHEARSALS:
        statuses.append(run_code(types.ModuleType("__rehearsal__"), code, 1 << 16)["status"])
    linecache.cache.pop(USER_FILENAME, None)
    return statuses


def _set_environment(env: dict[str, str]) -> None:
    """Make ``os.environ`` exactly ``env`` (a runner forked from a template starts with
    the template's), touching only what differs."""
    for key in [k for k in os.environ if k not in env]:
        del os.environ[key]
    for key, value in env.items():
        if os.environ.get(key) != value:
            os.environ[key] = value
    os.environ["MPLBACKEND"] = _MPL_BACKEND


def start_namespace(request: RunnerRequest) -> types.ModuleType:
    """Apply the request's environment, limits and policies; the user's ``__main__``."""
    return new_main(apply_request(request), request.get("inputs"))


def apply_request(request: RunnerRequest) -> dict[str, Any]:
    """Apply the request's environment, limits and import policy to this process; the
    builtins the code gets (its builtins policy). A batch scope's parent applies them
    once, and every item's process inherits them (:mod:`.scoped`)."""
    paths = _Paths(request["paths"])
    env = request.get("env")
    if env is not None:
        _set_environment(env)
    else:
        os.environ["MPLBACKEND"] = _MPL_BACKEND
    apply_limits(request.get("limits", {}))
    rules = request["import_policy"]
    guards.install_import_guard(
        guards.ImportRules(rules["unlisted"], rules["allow"], rules["deny"])
    )
    bpol = request["builtins_policy"]
    user_builtins = guards.user_builtins(
        bpol["deny"], bpol["restrict_open"], [paths.work, paths.tmp]
    )
    return user_builtins


def new_main(user_builtins: dict[str, Any], inputs: Any) -> types.ModuleType:
    """A fresh ``__main__`` for the code, with its builtins and ``inputs``."""
    main = types.ModuleType("__main__")
    main.__dict__.update({"__builtins__": user_builtins, "inputs": inputs})
    sys.modules["__main__"] = main
    sys.argv = [""]
    return main


def _assigns_result(tree: ast.Module) -> bool:
    return any(
        isinstance(node, ast.Name) and node.id == "result" and isinstance(node.ctx, ast.Store)
        for stmt in tree.body
        for node in ast.walk(stmt)
    )


def run_code(
    main: types.ModuleType, code: str, max_bytes: int, *, cell: bool = False
) -> WorkerReport:
    """Run ``code`` in ``main``; the report of what it gave. In a session ``cell``, the
    value is the cell's own ``result`` (if it sets one) or its last expression."""
    # every line ends in a newline, as linecache's own entries do: traceback's
    # caret arithmetic relies on it
    lines = [line if line.endswith("\n") else line + "\n" for line in code.splitlines(True)]
    linecache.cache[USER_FILENAME] = (len(code), None, lines, USER_FILENAME)
    # a reserve released on MemoryError so the report can still be made
    reserve: bytearray | None = bytearray(512 * 1024)
    me = _os_getpid()
    real_builtins = dict(builtins.__dict__)
    value: Any = None
    own_result = True
    try:
        tree = ast.parse(code, USER_FILENAME, "exec")
        own_result = not cell or _assigns_result(tree)
        body, last = _split_last_expression(tree)
        exec(body, main.__dict__)
        value = eval(last, main.__dict__) if last is not None else None
        status: BaseException | None = None
    except SystemExit as exc:
        status = None if exc.code in (None, 0) else exc
    except BaseException as exc:  # noqa: BLE001 - everything the code raises is reported
        status = exc
    if _os_getpid() != me:
        _exit(0)  # a child the code forked that fell through: only the worker reports
    builtins.__dict__.clear()
    builtins.__dict__.update(real_builtins)
    reserve = None
    report: WorkerReport
    if status is None:
        if own_result and "result" in main.__dict__:
            value = main.__dict__["result"]
        try:
            report = cast(OkReport, {"status": "ok", **convert_result(value, max_bytes)})
        except BaseException as exc:  # noqa: BLE001 - convert_result should never raise
            error = _error_report(exc, max_bytes)
            error["message"] = f"the result could not be converted: {error['message']}"
            report = error
    else:
        report = _error_report(status, max_bytes)
    # its traceback holds this frame, which holds it: a cycle that would keep the cell's
    # objects (and a rehearsal's) alive until a garbage collection during the next cell
    status = None
    del reserve
    figure_error = _capture_figures()
    if figure_error:
        report["figure_error"] = figure_error
    _flush_all()
    return report
