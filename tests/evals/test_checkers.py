"""Each checker kind, passing and failing, and their combination."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from evals.checkers import Checker, Evidence, answers, check_all, numbers_in
from sandbox_tool import Artifact

CHECKER: TypeAdapter[Any] = TypeAdapter(Checker)
PNG = Artifact(name="figure-1.png", mime_type="image/png", data=b"\x89PNG", kind="figure")
CSV = Artifact(name="summary.csv", mime_type="text/csv", data=b"region,revenue\nWest,1\n")


def judge(spec: dict[str, Any], answer: str | None, artifacts: list[Artifact] = []) -> list[str]:  # noqa: B006
    return check_all([CHECKER.validate_python(spec)], Evidence(answer=answer, artifacts=artifacts))


@pytest.mark.parametrize(
    ("spec", "answer", "artifacts", "passes"),
    [
        pytest.param(
            {"kind": "number", "value": 9.33, "tolerance": 0.01},
            "It is 9.334.",
            [],
            True,
            id="number-within",
        ),
        pytest.param(
            {"kind": "number", "value": 9.33, "tolerance": 0.01},
            "It is 9.5.",
            [],
            False,
            id="number-outside",
        ),
        pytest.param(
            {"kind": "number", "value": 19176.15, "tolerance": 1},
            "West: 19,176.2",
            [],
            True,
            id="number-thousands",
        ),
        pytest.param(
            {"kind": "number", "value": 5}, "five products", [], False, id="number-absent"
        ),
        pytest.param(
            {"kind": "text", "value": "West"},
            "the west region",
            [],
            True,
            id="text-case-insensitive",
        ),
        pytest.param({"kind": "text", "value": "West"}, "North", [], False, id="text-missing"),
        pytest.param(
            {"kind": "texts", "values": ["North", "West"]},
            "North and West",
            [],
            True,
            id="texts-all",
        ),
        pytest.param(
            {"kind": "texts", "values": ["North", "West"]},
            "North only",
            [],
            False,
            id="texts-all-missing-one",
        ),
        pytest.param(
            {"kind": "texts", "values": ["none", "no such"], "match": "any"},
            "There is no such n.",
            [],
            True,
            id="texts-any",
        ),
        pytest.param(
            {"kind": "texts", "values": ["none", "no such"], "match": "any"},
            "n = 42",
            [],
            False,
            id="texts-any-none",
        ),
        pytest.param({"kind": "plot"}, "done", [PNG], True, id="plot-made"),
        pytest.param({"kind": "plot"}, "done", [CSV], False, id="plot-missing"),
        pytest.param({"kind": "plot", "min": 2}, "done", [PNG], False, id="plot-too-few"),
        pytest.param(
            {"kind": "file", "name": "summary.csv", "columns": ["region", "revenue"]},
            "",
            [CSV],
            True,
            id="file-columns",
        ),
        pytest.param(
            {"kind": "file", "name": "summary.csv", "columns": ["region", "total"]},
            "",
            [CSV],
            False,
            id="file-lacks-column",
        ),
        pytest.param({"kind": "file", "name": "other.csv"}, "", [CSV], False, id="file-missing"),
    ],
)
def test_checker(
    spec: dict[str, Any], answer: str, artifacts: list[Artifact], passes: bool
) -> None:
    failures = judge(spec, answer, artifacts)
    assert (failures == []) is passes, failures


def test_a_combination_passes_only_when_every_checker_does() -> None:
    checks = [
        CHECKER.validate_python({"kind": "plot"}),
        CHECKER.validate_python({"kind": "text", "value": "West"}),
    ]
    assert check_all(checks, Evidence(answer="West", artifacts=[PNG])) == []
    failures = check_all(checks, Evidence(answer="West", artifacts=[]))
    assert len(failures) == 1 and "plot" in failures[0]


def test_no_answer_fails_an_answer_checker_with_the_reason() -> None:
    assert judge({"kind": "text", "value": "West"}, None) == ["no answer within the turn limit"]


def test_keys_resolve_to_the_generated_answers() -> None:
    spec = {"kind": "number", "key": "sales_rows", "tolerance": 0}
    assert judge(spec, f"{answers()['sales_rows']} rows") == []
    with pytest.raises(KeyError, match="python -m evals data"):
        judge({"kind": "number", "key": "no_such_key"}, "1")


def test_a_checker_needs_exactly_one_of_value_and_key() -> None:
    with pytest.raises(ValidationError, match="either value or key"):
        CHECKER.validate_python({"kind": "text"})
    with pytest.raises(ValidationError, match="either value or key"):
        CHECKER.validate_python({"kind": "text", "value": "a", "key": "b"})


def test_numbers_in_reads_signs_decimals_and_separators() -> None:
    assert numbers_in("-3.5, 1,200 and .5") == [-3.5, 1200.0, 0.5]
