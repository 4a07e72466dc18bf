"""Functional correctness, HumanEval style: samples checked against their problem's tests,
with the verdicts of the reference harness (openai/human-eval) and pass@k.

Problems are JSON lines with ``task_id``, ``prompt``, ``test`` and ``entry_point``;
samples are lines with ``task_id`` and ``completion`` (either file may be gzipped). Each
sample's check program is built as the reference builds it::

    prompt + completion + "\\n" + test + "\\n" + f"check({entry_point})"

and runs in its own sandbox through :data:`CHECK_HARNESS`, which reproduces what the
reference's executor does around it: the program runs by ``exec`` in fresh globals,
its output goes nowhere and its stdin cannot be read, the functions the reference
disables are ``None`` while it runs, and any exception (``SystemExit`` included)
gives ``failed: <the exception's str>``. The verdict is ``passed``, ``failed: ...`` or
``timed out``, as the reference writes it:

- the sandbox's wall-clock or CPU limit -> ``timed out`` (the reference: its alarm);
- the code's process ended without an answer (``os._exit``, a crash, a kill) ->
  ``timed out``, as the reference reports a child that died without a result;
- any other failure of the sandbox's -> ``failed: <error class>: <message>``.

Where the two can differ: the reference raises its timeout inside the code, so a
completion that catches it and returns may get ``failed`` there and ``timed out``
here; the reference limits no memory, so a program that needs more than
``ExecutionOptions.memory_mb`` fails here (``MemoryError``) and may pass there.
"""

from __future__ import annotations

import gzip
import io
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox_tool.batch.items import BatchItem, BatchResult
from sandbox_tool.batch.jsonl import BadLine, json_objects
from sandbox_tool.errors import CpuLimitExceeded, ExecutionError, Timeout

__all__ = [
    "CHECK_HARNESS",
    "EVALUATION_PRELOAD",
    "Problem",
    "Sample",
    "check_item",
    "check_program",
    "estimate_pass_at_k",
    "open_text",
    "pass_at_k",
    "read_problems",
    "read_samples",
    "sample_id",
    "verdict",
]

#: What the warm template of an evaluation imports once (``sandbox-tool batch --problems``
#: uses it): what the check harness and HumanEval-style programs import, and nothing of
#: the data-science stack, whose heap would make every fork and exit ten times dearer.
#: Any other module still imports, in the sample's own process.
EVALUATION_PRELOAD = (
    "typing", "math", "random", "copy", "string", "collections", "re", "hashlib",
    "itertools", "functools", "heapq", "bisect", "shutil", "subprocess",
)  # fmt: skip

#: What runs in the sandbox: ``inputs`` is the check program; ``result`` the verdict.
CHECK_HARNESS = '''
import builtins as _builtins, io as _io, sys as _sys

_exec, _setattr, _getattr = exec, setattr, getattr
_MISSING = object()
# the functions the reference harness sets to None before it runs a program: here for
# the same verdicts (a completion calling exit() fails the same way), not for safety
_DISABLED = {
    "builtins": ("exit", "quit", "help"),
    "os": ("kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir",
           "setuid", "fork", "forkpty", "killpg", "rename", "renames", "truncate",
           "replace", "unlink", "fchmod", "fchown", "chmod", "chown", "chroot",
           "lchflags", "lchmod", "lchown", "getcwd", "chdir"),
    "shutil": ("rmtree", "move", "chown"),
    "subprocess": ("Popen",),
}
_HIDDEN = ("ipdb", "joblib", "resource", "psutil", "tkinter")


class _Sink(_io.StringIO):
    """Takes the program's output and keeps none of it; cannot be read."""

    def write(self, text):
        return len(text)

    def read(self, *args, **kwargs):
        raise OSError("not readable")

    readline = readlines = read

    def readable(self):
        return False


def _check(program):
    saved_builtins = dict(vars(_builtins))
    saved_streams = (_sys.stdin, _sys.stdout, _sys.stderr)
    saved_attrs, saved_modules = [], {}
    for name, attrs in _DISABLED.items():
        try:
            module = __import__(name)
        except ImportError:
            continue
        for attr in attrs:
            saved_attrs.append((module, attr, _getattr(module, attr, _MISSING)))
            _setattr(module, attr, None)
    for name in _HIDDEN:
        saved_modules[name] = _sys.modules.get(name, _MISSING)
        _sys.modules[name] = None
    _sys.stdin = _sys.stdout = _sys.stderr = _Sink()
    try:
        # the real builtins, as the reference's exec gives them: a program that changes
        # them (builtins.abs = ...) changes what it runs with
        _exec(program, {"__builtins__": _builtins})
        return "passed"
    except BaseException as exc:
        return f"failed: {exc}"
    finally:
        # put back what the runner needs to answer, whatever the program changed
        _sys.stdin, _sys.stdout, _sys.stderr = saved_streams
        vars(_builtins).clear()
        vars(_builtins).update(saved_builtins)
        for module, attr, value in saved_attrs:
            if value is _MISSING:
                try:
                    delattr(module, attr)
                except AttributeError:
                    pass
            else:
                _setattr(module, attr, value)
        for name, module in saved_modules.items():
            if module is _MISSING:
                _sys.modules.pop(name, None)
            else:
                _sys.modules[name] = module


result = _check(inputs)
'''


@dataclass(frozen=True)
class Problem:
    """One problem of a HumanEval-format file."""

    task_id: str
    prompt: str
    """The function's signature and docstring; the completion continues it."""
    test: str
    """Defines ``check(candidate)``, which asserts on the candidate's answers."""
    entry_point: str
    """The name of the function ``check`` is given."""


@dataclass(frozen=True)
class Sample:
    """One completion for a problem, numbered among that problem's samples in file
    order (the reference's ``completion_id``)."""

    task_id: str
    completion: str
    completion_id: int
    fields: Mapping[str, Any]
    """The sample's line as read (other keys are kept in the output line)."""


def sample_id(task_id: str, completion_id: int) -> str:
    """A sample's id in a batch: ``HumanEval/0#3``."""
    return f"{task_id}#{completion_id}"


def open_text(path: Path) -> io.TextIOBase:
    """``path`` opened as UTF-8 text, gunzipped when it ends in ``.gz``."""
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")  # the caller closes it


def read_problems(path: Path) -> dict[str, Problem]:
    """Every problem of ``path`` by task id; ``ValueError`` naming the line of a bad one."""
    problems: dict[str, Problem] = {}
    with open_text(path) as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                problem = Problem(
                    str(data["task_id"]), data["prompt"], data["test"], data["entry_point"]
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}, line {number}: not a problem ({exc!r})") from exc
            problems[problem.task_id] = problem
    return problems


def check_program(problem: Problem, completion: str) -> str:
    """The program that checks ``completion``, built as the reference harness builds it."""
    return (
        problem.prompt + completion + "\n" + problem.test + "\n" + f"check({problem.entry_point})"
    )


def check_item(problem: Problem, sample: Sample) -> BatchItem:
    """The batch item that checks ``sample`` (run it with
    ``ExecutionOptions.for_evaluation()``)."""
    return BatchItem(
        id=sample_id(sample.task_id, sample.completion_id),
        code=CHECK_HARNESS,
        inputs=check_program(problem, sample.completion),
    )


def verdict(res: BatchResult) -> str:
    """``passed``, ``failed: ...`` or ``timed out`` for a checked sample's result."""
    if res.result is not None:
        value = res.result.result
        if isinstance(value, str) and (value == "passed" or value.startswith("failed: ")):
            return value
        return f"failed: the check harness answered {value!r}"
    error = res.error
    if isinstance(error, (Timeout, CpuLimitExceeded)) or _died_without_answer(error):
        return "timed out"
    return f"failed: {type(error).__name__}: {error}"


def _died_without_answer(error: object) -> bool:
    """The code's process ended before it answered: killed by a signal, or exited (the
    harness itself catches ``SystemExit``, so that one means ``os._exit`` or a crash)."""
    if not isinstance(error, ExecutionError):
        return False
    return error.exception == "SystemExit" or error.exception.startswith("SIG")


def estimate_pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimator of pass@k for one problem with ``n`` samples of which
    ``c`` passed: ``1 - C(n-c, k) / C(n, k)``, as a product that never overflows."""
    if not 0 <= c <= n or k < 1:
        raise ValueError(f"need 0 <= c <= n and k >= 1, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def pass_at_k(counts: Iterable[tuple[int, int]], ks: Iterable[int]) -> dict[str, float]:
    """Mean pass@k over problems given as ``(samples, passed)`` for each ``k`` that every
    problem has enough samples for (as the reference reports them)."""
    table = list(counts)
    out: dict[str, float] = {}
    for k in ks:
        if table and all(n >= k for n, _ in table):
            out[f"pass@{k}"] = sum(estimate_pass_at_k(n, c, k) for n, c in table) / len(table)
    return out


def read_samples(
    lines: Iterable[str], problems: Mapping[str, Problem], on_bad: BadLine
) -> Iterator[tuple[Problem, Sample]]:
    """The samples of ``lines`` (a JSONL stream) with their problems, lazily; a bad line
    is reported as ``on_bad(line_number, reason)`` and skipped."""
    seen: dict[str, int] = {}
    for number, data in json_objects(lines, on_bad, "a sample"):
        if not isinstance(data.get("completion"), str):
            on_bad(number, "a sample has a 'task_id' and a str 'completion'")
            continue
        task_id = str(data.get("task_id"))
        problem = problems.get(task_id)
        if problem is None:
            on_bad(number, f"task_id {task_id!r} is not in the problems file")
            continue
        completion_id = seen.get(task_id, 0)
        seen[task_id] = completion_id + 1
        yield problem, Sample(task_id, data["completion"], completion_id, data)
