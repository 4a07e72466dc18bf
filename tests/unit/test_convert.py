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
