"""``compare`` on two results directories, and the report files of an agent run."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from evals.agent_suite import summarize_tasks
from evals.cli import main
from evals.compare import compare
from evals.report import new_results, write_results
from evals.snippet_suite import SnippetResult, summarize_snippets


def _snippet(id: str, correct: bool, missing: list[str]) -> dict[str, Any]:
    return SnippetResult(
        id=id,
        category="bugs",
        expected="ExecutionError:KeyError",
        actual="ExecutionError:KeyError" if correct else "ok",
        outcome_correct=correct,
        facts_total=2,
        facts_missing=missing,
        seconds=0.1,
        message="...",
    ).model_dump()


def _task(id: str, status: str, outcomes: list[str], category: str = "joins") -> dict[str, Any]:
    calls = [{"outcome": o, "limit": o == "Timeout", "ms": 10.0} for o in outcomes]
    first_error = next((i for i, o in enumerate(outcomes) if o != "ok"), None)
    recovered = None if first_error is None else "ok" in outcomes[first_error:]
    detail = "" if status == "passed" else "expected 'West' in the answer"
    return {
        "id": id, "category": category, "api": "chat", "status": status, "detail": detail,
        "answer": "West", "turns": len(outcomes) + 1, "calls": calls, "recovered": recovered,
        "seconds": 1.0,
    }  # fmt: skip


def _results(snippets: list[dict[str, Any]], tasks: list[dict[str, Any]]) -> dict[str, Any]:
    record = new_results("process")
    parsed = [SnippetResult.model_validate(s) for s in snippets]
    record["snippets"] = {
        "engine": "process",
        "summary": summarize_snippets(parsed),
        "results": snippets,
    }
    record["agent"] = {
        "mode": "replay",
        "model": "qwen2.5-coder-0.5b-instruct",
        "recorded": "2026-12-02",
        "engine": "process",
        "settings": {},
        "summary": summarize_tasks(tasks),
        "tasks": tasks,
    }
    return record


@pytest.fixture
def before() -> dict[str, Any]:
    return _results(
        [_snippet("keyerror", True, []), _snippet("nameerror", True, ["Did you mean"])],
        [
            _task("join-a", "passed", ["ExecutionError:KeyError", "ok"]),
            _task("join-b", "failed", ["ok"]),
            _task("trap-c", "passed", ["Timeout", "ok"], category="traps"),
        ],
    )


def test_compare_lists_what_started_and_stopped_passing(before: dict[str, Any]) -> None:
    after = _results(
        [_snippet("keyerror", False, ["At line 3"]), _snippet("nameerror", True, [])],
        [
            _task("join-a", "failed", ["ExecutionError:KeyError", "ExecutionError:KeyError"]),
            _task("join-b", "passed", ["ok"]),
            _task("trap-c", "stale", [], category="traps"),
        ],
    )
    lines = compare(before, after)
    text = "\n".join(lines)
    assert "REGRESSED bugs/keyerror: expected ExecutionError:KeyError, got ok" in text
    assert "bugs/keyerror: message lost facts ['At line 3']" in text
    assert "bugs/nameerror: message gained facts ['Did you mean']" in text
    assert "stopped passing join-a: now failed" in text
    assert "started passing join-b (was failed)" in text
    assert "stopped passing trap-c: now stale" in text
    assert "overall passed: 2 -> 1 (-1)" in text
    assert "joins recovery_rate: 1 -> 0 (-1)" in text


def test_compare_of_equal_runs_says_no_change(before: dict[str, Any]) -> None:
    lines = compare(before, copy.deepcopy(before))
    assert lines[1:] == ["Snippets: no change.", "Agent tasks: no change."]


def test_compare_command_reads_two_directories(
    before: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    after = copy.deepcopy(before)
    after["agent"]["tasks"][1]["status"] = "passed"
    after["agent"]["summary"] = summarize_tasks(after["agent"]["tasks"])
    write_results(tmp_path / "old", before)
    write_results(tmp_path / "new", after)
    assert main(["compare", str(tmp_path / "old"), str(tmp_path / "new")]) == 0
    assert "started passing join-b" in capsys.readouterr().out
    assert main(["compare", str(tmp_path / "old"), str(tmp_path / "missing")]) == 2


def test_report_files_of_a_run(before: dict[str, Any], tmp_path: Path) -> None:
    write_results(tmp_path, before)
    report = (tmp_path / "report.md").read_text()
    assert "model `qwen2.5-coder-0.5b-instruct`, traffic recorded 2026-12-02" in report
    assert "| join-a | chat | passed | 3 | 2 | ExecutionError:KeyError ok |" in report
    assert "Tool errors by class: ExecutionError:KeyError 1, Timeout 1" in report
    overall = json.loads((tmp_path / "results.json").read_text())["agent"]["summary"]["overall"]
    assert overall["passed"] == 2 and overall["success_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert overall["recovery_rate"] == 1.0 and overall["limit_hits"] == 1
    assert (tmp_path / "chart.png").read_bytes().startswith(b"\x89PNG")


def test_a_run_of_one_suite_keeps_the_other_suites_results(
    before: dict[str, Any], tmp_path: Path
) -> None:
    write_results(tmp_path, before)
    only_snippets = copy.deepcopy(before)
    only_snippets["agent"] = None
    write_results(tmp_path, only_snippets)
    kept = json.loads((tmp_path / "results.json").read_text())
    assert kept["agent"]["tasks"][0]["id"] == "join-a"
