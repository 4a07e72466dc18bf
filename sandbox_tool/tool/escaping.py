r"""Code that is not what the model meant to send: escaped twice, a whole tool call, or
code with the end of its JSON left on.

A model writing the ``code`` argument's JSON sometimes escapes the code once more
than JSON needs: the code then arrives holding the two characters ``\n`` where line
breaks belong and ``\"`` where quotes belong, which Python reads as a backslash
outside a string. Or it sends a tool call, written as JSON, as the code itself, or
ends the code with what closes the JSON (``"}``). All three are syntax errors whose
message alone does not say what happened; the code as it was meant, when it is
valid Python, is the clearest hint a small model can get.

>>> meant_code('import math\\nresult = math.sqrt(4)')
('escaped twice', 'import math\nresult = math.sqrt(4)')
>>> meant_code('{\\"name\\": \\"run_python\\", \\"arguments\\": {\\"code\\": \\"x = 1\\"}}')
('tool call', 'x = 1')
>>> meant_code("x = max(1, 2)}")
('json tail', 'x = max(1, 2)')
>>> meant_code('print("a\\nb"') is None
True
"""

from __future__ import annotations

import json
import re
import warnings
from typing import Any, Literal

__all__ = ["meant_code", "meant_code_lines", "misencoded_hint"]

Mistake = Literal["escaped twice", "tool call", "json tail"]

_ESCAPE = re.compile(r"\\([nrt\"'\\])")
_DECODED = {"n": "\n", "r": "", "t": "\t", '"': '"', "'": "'", "\\": "\\"}
#: what a JSON wrapper leaves behind the code (``"}``, ``}, {" }``): its punctuation only
_TAIL = frozenset(" \t\r\n\"'{}[],:\\")
_MAX_TAIL, _MAX_CUTS = 200, 8
#: the start of a tool call written as JSON, escaped or not
_CALL_START = re.compile(r'\A\s*\{\s*\\*"(?:name|arguments|code)\\*"\s*:')
_ARGUMENTS_KEY = re.compile(r'\\*"arguments\\*"\s*:')
#: a one-line string literal, to look for ``\n`` outside of them
_STRING = re.compile(r"'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\"")
#: larger code is not examined (it may be compiled up to 2 + 2 * _MAX_CUTS times)
_MAX_SOURCE = 64 * 1024

_MAX_LINES = 12
_MAX_LINE_CHARS = 160


def _compiles(code: str) -> bool:
    if not code.strip():
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid escapes warn (an error under -W error)
        try:
            compile(code, "<code>", "exec", dont_inherit=True)
        except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
            return False
    return True


def _valid(candidate: str) -> str | None:
    """``candidate``, or it without a stray JSON tail, whichever is valid Python."""
    return candidate if _compiles(candidate) else _without_json_tail(candidate)


def _without_json_tail(code: str) -> str | None:
    """``code`` cut before the JSON punctuation it ends with, at the first closing brace
    or quote where what is left is valid Python (a few cuts tried, the leftmost first)."""
    start = len(code)
    while start > 0 and code[start - 1] in _TAIL and len(code) - start < _MAX_TAIL:
        start -= 1
    cuts = [i for i in range(start, len(code)) if code[i] in "}\"'"][:_MAX_CUTS]
    for cut in cuts:
        kept = code[:cut].rstrip()
        if _compiles(kept):
            return kept
    return None


def _unescaped(source: str) -> str:
    return _ESCAPE.sub(lambda m: _DECODED[m.group(1)], source)


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _call_code(source: str) -> str | None:
    """The ``code`` argument of a tool call written as JSON (escaped once or twice)."""
    for text in (source, _unescaped(source)):
        call = _json(text.strip())
        if not isinstance(call, dict):
            continue
        arguments = call.get("arguments", call)
        if isinstance(arguments, str):  # arguments as a JSON string, as the APIs send them
            arguments = _json(arguments)
        code = arguments.get("code") if isinstance(arguments, dict) else None
        if isinstance(code, str):
            return code
    return None


def meant_code(
    source: str | None, message: str = "", line: str | None = None
) -> tuple[Mistake, str | None] | None:
    """What went wrong with ``source``, which failed to compile with ``message`` (at
    ``line``, when known), and the code as meant when that is valid Python (else
    ``None`` in its place); ``None`` when it is neither mistake, or nothing shows that
    it is (code that compiles raised its SyntaxError at run time: none of these)."""
    if not source or len(source) > _MAX_SOURCE or _compiles(source):
        return None
    if _CALL_START.match(source):
        code = _call_code(source)
        if code is not None:
            return "tool call", _valid(code) or _meant_if_escaped(code)
        if _ARGUMENTS_KEY.search(source):  # a call cut short, or not quite JSON
            return "tool call", None
    trimmed = _without_json_tail(source)
    if trimmed is not None:
        return "json tail", trimmed
    meant = _meant_if_escaped(source)
    if meant is not None:
        return "escaped twice", meant
    if "after line continuation character" in message and _escape_outside_strings(
        line if line is not None else source
    ):
        return "escaped twice", None  # a backslash-n outside any string: nothing else
    return None


def _escape_outside_strings(text: str) -> bool:
    return "\\n" in _STRING.sub("", text)


def _meant_if_escaped(source: str) -> str | None:
    if "\\n" not in source and '\\"' not in source:
        return None
    candidate = _unescaped(source)
    return _valid(candidate) if candidate != source else None


def _clipped(meant: str) -> bool:
    rows = meant.strip("\n").splitlines()
    return len(rows) > _MAX_LINES or any(len(row) > _MAX_LINE_CHARS for row in rows)


def misencoded_hint(mistake: Mistake, meant: str | None) -> str:
    """The hint for :func:`meant_code`'s answer (its code block comes separately, from
    :func:`meant_code_lines`)."""
    if mistake == "tool call":
        head = (
            "the code is a whole tool call written as JSON: the `code` argument must hold "
            "only the Python source"
        )
    elif mistake == "json tail":
        head = "the code ends with characters left over from the tool call's JSON (a \" or })"
    else:
        head = (
            "the code arrived escaped twice: it holds the two characters \\n where a line "
            'break belongs (and \\" where a quote belongs); escape it once, as JSON '
            "needs, so that it arrives with real line breaks"
        )
    if meant is None:
        return head
    if _clipped(meant):
        return f"{head}. Sent correctly, it is valid Python that begins as below (indented here)"
    return (
        f"{head}. Sent correctly, it is the valid Python below (indented here by 4 spaces: "
        "send it without them)"
    )


def meant_code_lines(meant: str) -> list[str]:
    """``meant`` as an indented block, clipped to a few lines."""
    rows = meant.strip("\n").splitlines()
    shown = [
        "    " + (row if len(row) <= _MAX_LINE_CHARS else row[: _MAX_LINE_CHARS - 3] + "...")
        for row in rows[:_MAX_LINES]
    ]
    if len(rows) > _MAX_LINES:
        shown.append(f"    [... {len(rows) - _MAX_LINES} more lines]")
    return shown
