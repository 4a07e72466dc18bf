"""The runner's value conversion, run on the host against real numpy and pandas."""

from __future__ import annotations

import datetime
import decimal
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sandbox_tool.runner.convert import convert_result, safe_repr, to_json


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(np.float32(1.5), 1.5, id="np-float32"),
        pytest.param(np.array([[1, 2], [3, 4]]), [[1, 2], [3, 4]], id="np-2d"),
        pytest.param(np.array([1.0, np.nan]), [1.0, None], id="np-nan"),
        pytest.param(pd.Series([1, 2], index=["a", "b"]), {"a": 1, "b": 2}, id="series"),
        pytest.param(
            pd.Series([1, 2], index=["a", "a"]),
            {"index": ["a", "a"], "data": [1, 2]},
            id="series-duplicate-index",
        ),
        pytest.param(pd.Index([3, 4]), [3, 4], id="index"),
        pytest.param(decimal.Decimal("1.25"), 1.25, id="decimal"),
        pytest.param(datetime.timedelta(minutes=1), 60.0, id="timedelta"),
        pytest.param(float("inf"), None, id="infinity"),
        pytest.param(complex(1, 2), "(1+2j)", id="complex-repr"),
    ],
)
def test_to_json(value: Any, expected: Any) -> None:
    out = to_json(value)
    assert out == expected
    json.dumps(out, allow_nan=False)


def test_dataframe_with_dates_and_nan() -> None:
    df = pd.DataFrame({"d": pd.to_datetime(["2024-01-01"]), "x": [np.nan]})
    out = to_json(df)
    assert out["columns"] == ["d", "x"]
    assert out["data"][0][0].startswith("2024-01-01") and out["data"][0][1] is None


def test_deep_nesting_is_cut() -> None:
    value: Any = []
    for _ in range(100):
        value = [value]
    json.dumps(to_json(value))


def test_safe_repr_cuts_the_middle() -> None:
    text = safe_repr("a" * 1000 + "b" * 1000, limit=100)
    assert text.startswith("'aaa") and text.endswith("bbb'") and "characters cut" in text


def test_convert_result_flags_truncation() -> None:
    out = convert_result(list(range(10_000)), max_bytes=1000)
    assert out["result_truncated"] and isinstance(out["result"], str)
    assert out["result_type"] == "list"


# -- hostile and awkward results (issue 14, item 9): converting never raises -------------


class _ModuleNotStr:
    pass


_ModuleNotStr.__module__ = 5  # type: ignore[assignment]


class _ClassRaises:
    @property  # type: ignore[misc]
    def __class__(self) -> type:  # the hostile part
        raise RuntimeError("no class for you")


class _ReprRaises:
    def __repr__(self) -> str:
        raise ValueError("no repr")


class _ReprNotStr:
    def __repr__(self) -> Any:
        return 12345


class _LyingLen(list):  # type: ignore[type-arg]
    def __len__(self) -> int:
        raise RuntimeError("len lies")


class _ItemsRaise(dict):  # type: ignore[type-arg]
    def items(self) -> Any:
        raise RuntimeError("items broken")


class _GetattrRaises:
    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"no {name}")


def _nested(depth: int) -> list[Any]:
    top: list[Any] = []
    inner = top
    for _ in range(depth):
        inner.append([])
        inner = inner[0]
    return top


@pytest.mark.parametrize(
    ("value", "says"),
    [
        pytest.param(10**5000, "integer string conversion", id="int-too-large-for-str"),
        pytest.param([10**5000], "integer string conversion", id="big-int-inside-a-list"),
        pytest.param({"k": 10**5000}, "integer string conversion", id="big-int-in-a-dict"),
        pytest.param(_ModuleNotStr(), "_ModuleNotStr", id="module-not-a-str"),
        pytest.param(_ClassRaises(), "_ClassRaises", id="class-property-raises"),
        pytest.param(_ReprRaises(), "no repr", id="repr-raises"),
        pytest.param(_ReprNotStr(), "TypeError", id="repr-returns-an-int"),
        pytest.param(_LyingLen([1, 2]), "_LyingLen", id="len-raises"),
        pytest.param(_ItemsRaise(a=1), "{'a': 1}", id="dict-items-raise-gives-the-repr"),
        pytest.param(_GetattrRaises(), "_GetattrRaises", id="getattr-raises"),
        pytest.param(_nested(100_000), "[[[", id="nested-100000-deep"),
    ],
)
def test_hostile_results_convert_without_raising(value: Any, says: str) -> None:
    out = convert_result(value, max_bytes=1 << 20)
    json.dumps(out, allow_nan=False)  # the report must be writable as JSON
    assert set(out) == {"result", "result_repr", "result_type", "result_truncated"}
    assert isinstance(out["result_repr"], str) and isinstance(out["result_type"], str)
    assert says in json.dumps(out)


def test_big_int_says_how_to_get_it() -> None:
    out = convert_result(10**5000, max_bytes=1 << 20)
    assert "sys.set_int_max_str_digits" in out["result_repr"]
    assert out["result_type"] == "int"


def test_big_int_under_a_raised_digit_limit_converts() -> None:
    import sys

    old = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(10_000)
    try:
        out = convert_result(10**5000, max_bytes=1 << 20)
    finally:
        sys.set_int_max_str_digits(old)
    assert out["result"] == 10**5000 and not out["result_truncated"]
