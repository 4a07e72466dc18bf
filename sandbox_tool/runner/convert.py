"""Turn the code's result into JSON, as a notebook user would expect to see it.

Duck-typed on the type's module, so numpy and pandas are never imported here.
Nothing here raises: the result is the user's object, and its ``__repr__``,
``__class__``, ``__len__`` or ``__module__`` may do anything; what cannot be
converted comes back as a text that says why.
"""

from __future__ import annotations

import datetime
import decimal
import math
from json import dumps, loads
from typing import Any

MAX_DEPTH = 32
REPR_CHARS = 10_000
# ints past this many bits pay for a trial conversion (Python refuses str() of ints with
# more than sys.get_int_max_str_digits() digits, 4300 by default: about 14,000 bits)
_BIG_INT_BITS = 4000


def _module(cls: type) -> str:
    """``cls.__module__`` if it is a str (a class may set it to anything)."""
    try:
        module = cls.__module__
    except BaseException:  # noqa: BLE001
        return "?"
    # issubclass on its type: isinstance would consult the object's own __class__
    return str(module) if issubclass(type(module), str) else "?"


def _top(obj: Any) -> str:
    return _module(type(obj)).split(".")[0]


def _qualname(obj: Any) -> str:
    cls = type(obj)  # not obj.__class__, which the object may fake or make raise
    module = _module(cls)
    if module in {"builtins", "__main__", "?"}:
        return cls.__qualname__
    top = module.split(".")[0]
    # numpy.float64 rather than numpy.core.multiarray.float64 (pandas likewise)
    if top in {"numpy", "pandas"}:
        return f"{top}.{cls.__name__}"
    return f"{module}.{cls.__qualname__}"


def _why(exc: BaseException) -> str:
    """``Type: message`` of an exception, even one whose ``__str__`` raises."""
    try:
        message = str(exc)
    except BaseException:  # noqa: BLE001
        message = ""
    message = message if issubclass(type(message), str) else ""
    return f"{type(exc).__name__}: {message[:300]}" if message else type(exc).__name__


def safe_repr(obj: Any, limit: int = REPR_CHARS) -> str:
    """``repr`` that never raises and is cut in the middle past ``limit`` characters."""
    try:
        text = repr(obj)
    except BaseException as exc:  # noqa: BLE001 - a hostile __repr__ must not break reporting
        text = f"<{_qualname(obj)} object (repr failed: {_why(exc)})>"
    if type(text) is not str:  # a str subclass may override len() and slicing
        text = str.__str__(text)
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
        value = int(obj)
        if value.bit_length() > _BIG_INT_BITS:
            try:
                repr(value)  # past the interpreter's digit limit, JSON cannot write it
            except ValueError:
                return safe_repr(obj)
        return value
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else None
    if depth > MAX_DEPTH:
        return safe_repr(obj, 200)
    top = _top(obj)
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
    top = _top(obj)
    if top not in {"numpy", "pandas"}:
        return False
    size = getattr(obj, "size", None)
    return isinstance(size, int) and size * 2 > max_bytes


def convert_result(obj: Any, max_bytes: int) -> dict[str, Any]:
    """The ``result`` part of the worker's report; never raises.

    A value that cannot become JSON comes back as its repr (or, if that fails too, a
    text naming the exception that stopped it).
    """
    text = safe_repr(obj)
    try:
        if _too_big(obj, max_bytes):
            value, truncated = None, True
        else:
            value = to_json(obj)
            truncated = len(dumps(value)) > max_bytes
    except BaseException as exc:  # noqa: BLE001 - the object's own methods raised
        name, truncated = _qualname(obj), False
        value = f"<{name} object: not convertible to JSON ({_why(exc)})>"
        if not text.startswith(f"<{name} object (repr failed"):
            value = safe_repr(obj, max(200, min(max_bytes // 2, REPR_CHARS)))
    if truncated:
        value = safe_repr(obj, max(200, min(max_bytes // 2, REPR_CHARS)))
    return {
        "result": value,
        "result_repr": text,
        "result_type": _qualname(obj),
        "result_truncated": truncated,
    }
