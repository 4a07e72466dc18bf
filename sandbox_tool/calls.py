"""The checks every call that runs code makes before anything starts: the code, the
inputs and the options. ``PythonSandbox.execute`` and ``Session.execute`` share them.

The code is a str without NUL bytes and at most ``ExecutionOptions.max_code_bytes``
in UTF-8; the inputs are JSON, nested at most :data:`MAX_INPUT_DEPTH` deep, and at
most ``ExecutionOptions.max_input_bytes`` as JSON text. A call that fails raises
:class:`~sandbox_tool.errors.UsageError` naming the option (or the limit) and what to
do instead.

>>> check_call("result = sum(inputs)", [1, 2, 3], None, ExecutionOptions()).timeout
30.0
"""

from __future__ import annotations

import json
from typing import Any

from sandbox_tool.errors import UsageError
from sandbox_tool.options import ExecutionOptions, coerce_options

__all__ = ["MAX_INPUT_DEPTH", "check_call"]

#: Deepest nesting of lists and dicts accepted in ``inputs``. Real data (records,
#: tables, GeoJSON) stays under 20; the runner's JSON parser recurses once per level.
MAX_INPUT_DEPTH = 100


def check_call(
    code: Any,
    inputs: Any,
    options: ExecutionOptions | dict[str, Any] | None,
    defaults: ExecutionOptions,
) -> ExecutionOptions:
    """The options to run ``code`` with; raises :class:`UsageError` naming what is wrong."""
    if not isinstance(code, str):
        raise UsageError(f"code must be a str, not {type(code).__name__}")
    if "\0" in code:
        raise UsageError("code contains a NUL byte")
    opts = coerce_options(options, defaults)
    # len() in characters is a lower bound of the UTF-8 size: only long code is encoded
    if len(code) * 4 > opts.max_code_bytes:
        size = len(code.encode("utf-8", "surrogatepass"))
        if size > opts.max_code_bytes:
            raise UsageError(
                f"the code is {size:,} bytes, more than ExecutionOptions.max_code_bytes "
                f"({opts.max_code_bytes:,}); send shorter code (data belongs in inputs "
                "or ExecutionOptions.files) or raise ExecutionOptions.max_code_bytes"
            )
    _check_shape(inputs, opts.max_input_bytes)
    try:
        text = json.dumps(inputs, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise UsageError(f"inputs must be JSON-serialisable: {exc}") from exc
    if len(text) > opts.max_input_bytes:  # escapes make it larger than the estimate
        _too_large(opts.max_input_bytes)
    return opts


def _check_shape(inputs: Any, max_bytes: int) -> None:
    """Depth and a lower bound of the JSON size, without recursion and without building
    the text: a 300 MB value is refused before it is copied."""
    size = 0
    stack: list[tuple[Any, int]] = [(inputs, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (list, tuple, dict)):
            if depth >= MAX_INPUT_DEPTH:
                raise UsageError(
                    f"inputs are nested more than {MAX_INPUT_DEPTH} levels deep (or refer "
                    "to themselves); flatten them, or pass the data as a file "
                    "(ExecutionOptions.files)"
                )
            size += 2 + max(len(value) - 1, 0)  # brackets and commas
            items = value.items() if isinstance(value, dict) else ((None, v) for v in value)
            for key, item in items:
                if key is not None:
                    size += len(key) + 3 if isinstance(key, str) else 4
                stack.append((item, depth + 1))
        elif isinstance(value, str):
            size += len(value) + 2
        else:
            size += 1  # a number, true, false or null takes at least one character
        if size > max_bytes:
            _too_large(max_bytes)


def _too_large(max_bytes: int) -> None:
    raise UsageError(
        f"inputs are more than ExecutionOptions.max_input_bytes ({max_bytes:,} bytes of "
        "JSON); pass large data as a file (ExecutionOptions.files) or raise "
        "ExecutionOptions.max_input_bytes"
    )
