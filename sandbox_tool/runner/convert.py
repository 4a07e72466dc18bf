"""Turn the code's result into JSON, as a notebook user would expect to see it.

Duck-typed on the type's module, so numpy and pandas are never imported here.
"""

from __future__ import annotations

import datetime
import decimal
import math
from json import dumps, loads
from typing import Any

MAX_DEPTH = 32
REPR_CHARS = 10_000


def _qualname(obj: Any) -> str:
    cls = type(obj)
    module = cls.__module__
    if module in {"builtins", "__main__"}:
        return cls.__qualname__
    top = module.split(".")[0]
    # numpy.float64 rather than numpy.core.multiarray.float64 (pandas likewise)
    if top in {"numpy", "pandas"}:
        return f"{top}.{cls.__name__}"
    return f"{module}.{cls.__qualname__}"


def safe_repr(obj: Any, limit: int = REPR_CHARS) -> str:
    """``repr`` that never raises and is cut in the middle past ``limit`` characters."""
    try:
        text = repr(obj)
    except BaseException as exc:  # noqa: BLE001 - a hostile __repr__ must not break reporting
        text = f"<{_qualname(obj)} object (repr failed: {type(exc).__name__})>"
    if len(text) > limit:
        half = limit // 2
        text = f"{text[:half]}\n[... {len(text) - limit} characters cut ...]\n{text[-half:]}"
    return text


def _pandas(obj: Any, name: str) -> Any:
    if name == "DataFrame":
        split = loads(obj.to_json(orient="split", date_format="iso", default_handler=str))
        return {"columns": split["columns"], "index": split["index"], "data": split["data"]}
    if name == "Series":
        if obj.index.is_unique:
            return loads(obj.to_json(orient="index", date_format="iso", default_handler=str))
        split = loads(obj.to_json(orient="split", date_format="iso", default_handler=str))
        return {"index": split["index"], "data": split["data"]}
    if name in {"Timestamp", "Timedelta", "Period"}:
        return obj.isoformat()
    if hasattr(obj, "tolist"):  # Index, Categorical, ExtensionArray
        return to_json(obj.tolist())
    raise TypeError(name)


def to_json(obj: Any, depth: int = 0) -> Any:
    """A JSON-ready value for ``obj``; falls back to its repr."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else None
    if depth > MAX_DEPTH:
        return safe_repr(obj, 200)
    top = type(obj).__module__.split(".")[0]
    try:
        if top == "numpy" and hasattr(obj, "tolist"):
            return to_json(obj.tolist(), depth + 1)
        if top == "pandas":
            return _pandas(obj, type(obj).__name__)
    except Exception:  # noqa: BLE001 - fall back to repr
        return safe_repr(obj)
    if isinstance(obj, dict):
        return {
            (k if isinstance(k, str) else str(to_json(k, depth + 1))): to_json(v, depth + 1)
            for k, v in obj.items()
        }
    if isinstance(obj, (list, tuple)):
        return [to_json(v, depth + 1) for v in obj]
    if isinstance(obj, (set, frozenset)):
        items = [to_json(v, depth + 1) for v in obj]
        try:
            return sorted(items)
        except TypeError:
            return items
    if isinstance(obj, (datetime.date, datetime.time)):
        return obj.isoformat()
    if isinstance(obj, datetime.timedelta):
        return obj.total_seconds()
    if isinstance(obj, decimal.Decimal):
        return to_json(float(obj))
    return safe_repr(obj)


def _too_big(obj: Any, max_bytes: int) -> bool:
    """Refuse to convert arrays and frames that would obviously exceed the limit."""
    size = getattr(obj, "size", None)
    top = type(obj).__module__.split(".")[0]
    return top in {"numpy", "pandas"} and isinstance(size, int) and size * 2 > max_bytes


def convert_result(obj: Any, max_bytes: int) -> dict[str, Any]:
    """The ``result`` part of the worker's report."""
    text = safe_repr(obj)
    if _too_big(obj, max_bytes):
        value, truncated = None, True
    else:
        value = to_json(obj)
        truncated = len(dumps(value)) > max_bytes
    if truncated:
        value = safe_repr(obj, max(200, min(max_bytes // 2, REPR_CHARS)))
    return {
        "result": value,
        "result_repr": text,
        "result_type": _qualname(obj),
        "result_truncated": truncated,
    }
