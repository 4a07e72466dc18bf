"""Texts for the model, built from a real result or error: what happened, where,
and what to try next. Long output is cut in the middle with a visible marker.

>>> from sandbox_tool import ExecutionOptions, ExecutionResult
>>> ctx = MessageContext(ExecutionOptions(), InterpreterInfo("3.11.7"))
>>> print(format_result(ExecutionResult(result=42, result_repr="42", result_type="int"), ctx))
The code ran successfully.
Result (int):
42
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sandbox_tool.errors import (
    BuiltinNotAllowed,
    CpuLimitExceeded,
    EngineError,
    ExecutionError,
    ExecutionFailed,
    ImportNotAllowed,
    MemoryLimitExceeded,
    OutputLimitExceeded,
    Timeout,
)
from sandbox_tool.options import ExecutionOptions
from sandbox_tool.result import Artifact, ExecutionResult
from sandbox_tool.tool.description import describe_libraries
from sandbox_tool.tool.escaping import meant_code, meant_code_lines, misencoded_hint
from sandbox_tool.tool.interpreter import InterpreterInfo
from sandbox_tool.tool.remedies import (
    builtin_alternative,
    csv_columns,
    exception_hint,
    module_alternative,
)

#: Image types that chat models accept as image input.
VIEWABLE_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})

__all__ = [
    "VIEWABLE_IMAGE_TYPES",
    "MessageContext",
    "clip_middle",
    "format_engine_error",
    "format_error",
    "format_result",
    "plots_caption",
]

#: Libraries named where a message suggests some (the description names more).
SHORT_LIST = 12


@dataclass(frozen=True)
class MessageContext:
    """What the messages may refer to: the configuration the code ran under."""

    options: ExecutionOptions
    info: InterpreterInfo
    keeps_state: bool = False
    max_output_chars: int = 4000
    """stdout, stderr and tracebacks longer than this are cut in the middle."""
    max_result_chars: int = 3000
    """The result's text (a DataFrame's table) longer than this is cut in the middle."""
    images: bool = True
    """Whether plots are shown to the model as images (False for text-only models)."""

    @property
    def files(self) -> list[str]:
        return sorted(self.options.files)

    def table_columns(self) -> dict[str, list[str]]:
        """The header row of each CSV/TSV input file, by the name the code sees."""
        found = {name: csv_columns(self.options.files[name]) for name in self.files}
        return {name: columns for name, columns in found.items() if columns}


def plots_caption(tool_name: str, names_per_call: list[list[str]]) -> str:
    """The text before the plots of one turn's calls, sent after its tool results.

    >>> plots_caption("run_python", [["figure-1.png"]])
    'The plots from the run_python call: figure-1.png.'
    >>> print(plots_caption("run_python", [["a.png"], ["b.png", "c"]]))
    The plots from 2 run_python calls, in call order: a.png (call 1), b.png (call 2), c (call 2).
    """
    calls = [names for names in names_per_call if names]
    if len(calls) == 1:
        return f"The plots from the {tool_name} call: {', '.join(calls[0])}."
    listed = ", ".join(f"{name} (call {i})" for i, names in enumerate(calls, 1) for name in names)
    return f"The plots from {len(calls)} {tool_name} calls, in call order: {listed}."


def clip_middle(text: str, limit: int) -> str:
    """``text`` with its middle replaced by a marker when longer than ``limit`` characters.

    >>> clip_middle("a" * 10 + "b" * 10, 10)
    'aaaaa\\n[... 10 characters cut ...]\\nbbbbb'
    """
    if len(text) <= limit:
        return text
    head = limit // 2
    tail = limit - head
    return f"{text[:head]}\n[... {len(text) - limit} characters cut ...]\n{text[-tail:]}"


def _size(n: int) -> str:
    return f"{n} bytes" if n < 1024 else f"{n / 1024:.0f} KB"


def _attachments(artifacts: list[Artifact], truncated: bool, ctx: MessageContext) -> list[str]:
    if not artifacts and not truncated:
        return []
    lines = ["Attachments:"]
    for art in artifacts:
        what = "a plot" if art.kind == "figure" else "a file it wrote"
        if art.mime_type in VIEWABLE_IMAGE_TYPES:
            what += ", shown to you as an image" if ctx.images else " (not shown to you)"
        lines.append(f"- {art.name} ({art.mime_type}, {_size(art.size)}): {what}")
    if truncated:
        lines.append("- more files were left out: they exceeded the size limit")
    return lines


def _output(label: str, text: str, ctx: MessageContext) -> list[str]:
    text = text.rstrip("\n")
    return [f"{label}:", clip_middle(text, ctx.max_output_chars)] if text else []


def _prior_output(stdout: str, stderr: str, ctx: MessageContext, when: str) -> list[str]:
    lines = _output(f"Output printed before {when}", stdout, ctx)
    return lines + _output(f"stderr before {when}", stderr, ctx)


def format_result(result: ExecutionResult, ctx: MessageContext) -> str:
    """The message for a completed execution: stdout, the result value, attachments."""
    lines = ["The code ran successfully."]
    lines += _output("Printed output", result.stdout, ctx)
    lines += _output("stderr", result.stderr, ctx)
    if result.result_type not in (None, "NoneType"):
        text = result.result_repr if result.result_repr is not None else repr(result.result)
        note = ", shortened: too large to return whole" if result.result_truncated else ""
        lines += [f"Result ({result.result_type}{note}):", _compact(text, ctx.max_result_chars)]
    lines += _attachments(result.artifacts, result.artifacts_truncated, ctx)
    if len(lines) == 1:
        lines.append(
            "It printed nothing and returned no value: print() what you want to see, or "
            "end the code with an expression."
        )
    return "\n".join(lines)


def _compact(table: str, limit: int, max_lines: int = 24) -> str:
    """Keep the first and last rows of a long table (pandas already elides the middle)."""
    rows = table.splitlines()
    if len(rows) > max_lines:
        keep = max_lines // 2
        cut = len(rows) - 2 * keep
        rows = [*rows[:keep], f"[... {cut} lines cut ...]", *rows[-keep:]]
    return clip_middle("\n".join(rows), limit)


_CARET = re.compile(r"^\s*[\^~]+[\s\^~]*$")


def _failing_line(error: ExecutionError, source: str | None) -> str | None:
    """The user's failing line: from the error, or else from the code that ran."""
    if error.line:
        return error.line
    if source is not None and error.lineno is not None:
        lines = source.splitlines()  # some errors come without their line: take it from the code
        return lines[error.lineno - 1] if 0 < error.lineno <= len(lines) else None
    return None


def _caret_block(error: ExecutionError, source: str | None) -> list[str]:
    """The user's failing line, with the caret line from the traceback when it has one."""
    line = _failing_line(error, source)
    if error.lineno is None or not line:
        return []
    code = line.strip()
    tb = error.traceback.splitlines()
    for i in range(len(tb) - 2, -1, -1):
        if tb[i].strip() == code and _CARET.match(tb[i + 1]):
            indent = len(tb[i]) - len(tb[i].lstrip())
            return [f"At line {error.lineno}:", "    " + code, "    " + tb[i + 1][indent:]]
    caret = ["    " + "^" * len(code)] if len(code) <= 60 else []  # a long caret says nothing
    return [f"At line {error.lineno}:", "    " + code, *caret]


_SYNTAX_ERRORS = frozenset({"SyntaxError", "IndentationError", "TabError"})
#: Errors whose hint may name the input files' columns.
_COLUMN_ERRORS = frozenset({"KeyError", "AttributeError"})


def _importable(ctx: MessageContext) -> list[str]:
    """Top-level modules the code may import: installed libraries and the standard
    library, as the import policy allows."""
    policy = ctx.options.import_policy
    names = set(ctx.info.libraries) | ctx.info.stdlib
    return sorted(n for n in names if not n.startswith("_") and policy.allows(n))


def _user_frames(traceback: str) -> int:
    return sum(1 for line in traceback.splitlines() if line.lstrip().startswith('File "'))


def _execution_error(error: ExecutionError, ctx: MessageContext, source: str | None) -> list[str]:
    headline = error.message
    if error.exception in _SYNTAX_ERRORS:  # the line is shown below, not as "(<code>, line 2)"
        headline = re.sub(r" \(<[^>]*>, line \d+\)$", "", headline)
    lines = [headline]
    lines += _caret_block(error, source)
    if _user_frames(error.traceback) > 1:
        frames = error.traceback.rstrip("\n").splitlines()
        if frames and frames[0].startswith("Traceback"):
            frames = frames[1:]
        if frames and not frames[-1].startswith(" "):
            frames = frames[:-1]  # the exception line, already the headline
        tb = clip_middle("\n".join(frames), ctx.max_output_chars)
        lines += ["Traceback (your code's frames only, most recent call last):", tb]
    misencoded = (
        meant_code(source, error.message, _failing_line(error, source))
        if error.exception in _SYNTAX_ERRORS
        else None
    )
    if misencoded is not None:  # escaped twice, a tool call, a JSON tail: the code as meant
        mistake, meant = misencoded
        lines.append(f"Hint: {misencoded_hint(mistake, meant)}{':' if meant else '.'}")
        lines += meant_code_lines(meant) if meant else []
    elif hint := _hint(error, ctx, source):
        lines.append(f"Hint: {hint}.")
    lines += _prior_output(error.stdout, error.stderr, ctx, "the error")
    return lines


def _hint(error: ExecutionError, ctx: MessageContext, source: str | None) -> str | None:
    if error.exception == "ModuleNotFoundError":
        missing = re.search(r"No module named '([\w.]+)'", error.message)
        alternative = module_alternative(missing.group(1), ctx.files) if missing else None
        hint = (alternative + "; " if alternative else "") + "installed: "
        return hint + describe_libraries(ctx.info, ctx.options.import_policy, limit=SHORT_LIST)
    return exception_hint(
        error.exception,
        error.message,
        files=ctx.files,
        keeps_state=ctx.keeps_state,
        columns=ctx.table_columns() if error.exception in _COLUMN_ERRORS else None,
        line=_failing_line(error, source),
        source=source,
        modules=_importable(ctx) if error.exception == "NameError" else (),
    )


def _allowed_modules(ctx: MessageContext) -> str:
    policy = ctx.options.import_policy
    if policy.unlisted == "allow":
        libs = describe_libraries(ctx.info, policy, limit=SHORT_LIST)
        return f"Installed libraries you can import: {libs}; and the standard library."
    libs = describe_libraries(ctx.info, policy)
    stdlib = sorted(n for n in policy.allow if n.split(".")[0] in ctx.info.stdlib)
    return f"Modules you can import: {libs}; from the standard library: {', '.join(stdlib)}."


def _import_refused(error: ImportNotAllowed, ctx: MessageContext) -> list[str]:
    where = f" (line {error.lineno})" if error.lineno else ""
    lines = [f"ImportNotAllowed: module {error.module!r} is not available here{where}."]
    alternative = module_alternative(error.module, ctx.files)
    if alternative:
        lines.append(f"Instead: {alternative}.")
    lines.append(_allowed_modules(ctx))
    return lines + _prior_output(error.stdout, error.stderr, ctx, "the error")


def _builtin_refused(error: BuiltinNotAllowed, ctx: MessageContext) -> list[str]:
    where = f" (line {error.lineno})" if error.lineno else ""
    if error.name == "open":
        lines = [f"BuiltinNotAllowed: open() was refused that path{where}."]
    else:
        lines = [f"BuiltinNotAllowed: {error.name}() is not allowed here{where}."]
    lines.append(f"Instead: {builtin_alternative(error.name, ctx.files)}.")
    return lines + _prior_output(error.stdout, error.stderr, ctx, "the error")


_SLOW_ADVICE = (
    "What to try: work on a sample first (df.head(1000), df.sample(n=1000)), replace Python "
    "loops with vectorised pandas or numpy operations, and make sure every loop ends."
)


def _too_slow(error: Timeout | CpuLimitExceeded, ctx: MessageContext) -> list[str]:
    if isinstance(error, Timeout):
        what = f"Timeout: the code ran longer than the {error.limit:g} s time limit"
    else:
        what = f"CpuLimitExceeded: the code used more than {error.limit:g} s of CPU time"
    lines = [f"{what} and was stopped."]
    lines += _prior_output(error.stdout, error.stderr, ctx, "it was stopped")
    return [*lines, _SLOW_ADVICE]


def _too_big(error: MemoryLimitExceeded, ctx: MessageContext) -> list[str]:
    peak = f" (peak seen: {error.peak_memory_mb:.0f} MB)" if error.peak_memory_mb else ""
    lines = [
        f"MemoryLimitExceeded: the code needed more than the {error.limit:g} MB memory "
        f"limit{peak} and was stopped."
    ]
    lines += _prior_output(error.stdout, error.stderr, ctx, "it was stopped")
    lines.append(
        "What to try: process the data in chunks (pd.read_csv(..., chunksize=...)), load only "
        "the columns you need (usecols=...), use smaller dtypes (float32, category), or work "
        "on a sample."
    )
    return lines


def _too_loud(error: OutputLimitExceeded, ctx: MessageContext) -> list[str]:
    lines = [
        f"OutputLimitExceeded: the code printed more than {_size(int(error.limit))}, the "
        "limit, and was stopped."
    ]
    lines += _prior_output(error.stdout, error.stderr, ctx, "it was stopped")
    lines.append(
        "What to try: print a summary (df.head(), df.describe(), len(...)) rather than "
        "everything, and avoid printing inside long loops."
    )
    return lines


def format_engine_error(error: EngineError, ctx: MessageContext) -> str:
    """The message for a run whose answer the sandbox could not trust or deliver (an
    ``EngineError``): the code's result is lost, the tool still works."""
    lines = [
        "The sandbox could not complete this run, so its result is lost.",
        f"Why: {clip_middle(error.message, 600)}",
    ]
    lines += _prior_output(error.stdout, error.stderr, ctx, "it failed")
    lines.append(
        "What to try: run the code again as it is; do not write to the sandbox's own file "
        "descriptors or files. If it fails the same way, tell the user that the tool is "
        "not working."
    )
    return "\n".join(lines)


def format_error(error: ExecutionFailed, ctx: MessageContext, code: str | None = None) -> str:
    """The message for an execution that failed because of the code (``code``: the
    source that ran, to quote a failing line the error did not carry)."""
    lines: list[str]
    if isinstance(error, ExecutionError):
        lines = _execution_error(error, ctx, code)
    elif isinstance(error, ImportNotAllowed):
        lines = _import_refused(error, ctx)
    elif isinstance(error, BuiltinNotAllowed):
        lines = _builtin_refused(error, ctx)
    elif isinstance(error, (Timeout, CpuLimitExceeded)):
        lines = _too_slow(error, ctx)
    elif isinstance(error, MemoryLimitExceeded):
        lines = _too_big(error, ctx)
    elif isinstance(error, OutputLimitExceeded):
        lines = _too_loud(error, ctx)
    else:
        lines = [f"{type(error).__name__}: {error.message}"]
        lines += _prior_output(error.stdout, error.stderr, ctx, "the error")
    lines += _attachments(error.artifacts, False, ctx)
    lines.append("Fix the code and run the complete corrected code again.")
    return "\n".join(["The code failed.", *lines])
