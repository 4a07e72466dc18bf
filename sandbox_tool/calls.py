"""The checks every call that runs code makes before anything starts: the code, the
inputs and the options. ``PythonSandbox.execute`` and ``Session.execute`` share them."""

from __future__ import annotations

import json
from typing import Any

from sandbox_tool.errors import UsageError
from sandbox_tool.options import ExecutionOptions, coerce_options

__all__ = ["check_call"]


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
    try:
        json.dumps(inputs, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"inputs must be JSON-serialisable: {exc}") from exc
    return coerce_options(options, defaults)
