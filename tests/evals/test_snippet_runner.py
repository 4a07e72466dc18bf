"""The snippet runner on the real engine: its classification, and a wrong expectation
reported as a regression (exit 1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.cli import main
from evals.snippet_suite import load_snippets, run_snippets_sync, summarize_snippets

CASES = """\
category: probe
options: {timeout: 8, cpu_seconds: 1}
snippets:
  - id: ok
    code: "result = 6 * 7"
    expect: ok
    facts: ["42"]
  - id: keyerror
    code: |
      d = {}
      d["price"]
    expect: ExecutionError:KeyError
    facts: ["At line 2", "'price'", "no such fact in the message"]
  - id: denied
    code: "import requests"
    expect: ImportNotAllowed:requests
  - id: eval
    code: "eval('1')"
    expect: BuiltinNotAllowed:eval
  - id: spin
    code: |
      while True:
          pass
    expect: CpuLimitExceeded
"""


def _write(tmp_path: Path, text: str) -> Path:
    directory = tmp_path / "snippets"
    directory.mkdir()
    (directory / "probe.yaml").write_text(text)
    return directory


def test_runner_classifies_outcomes_and_counts_facts(tmp_path: Path) -> None:
    files = load_snippets(_write(tmp_path, CASES))
    _, results = run_snippets_sync(files)
    actual = {r.id: r.actual for r in results}
    assert actual == {
        "ok": "ok",
        "keyerror": "ExecutionError:KeyError",
        "denied": "ImportNotAllowed:requests",
        "eval": "BuiltinNotAllowed:eval",
        "spin": "CpuLimitExceeded",
    }
    assert all(r.outcome_correct for r in results)
    keyerror = next(r for r in results if r.id == "keyerror")
    assert keyerror.facts_missing == ["no such fact in the message"]
    summary = summarize_snippets(results)
    assert summary["regressions"] == []
    assert summary["overall"]["outcome_accuracy"] == 1.0
    assert summary["overall"]["fact_accuracy"] == pytest.approx(3 / 4)


def test_a_wrong_outcome_class_is_a_regression_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = CASES.replace("expect: ImportNotAllowed:requests", "expect: ok")
    out = tmp_path / "out"
    directory = str(_write(tmp_path, wrong))
    code = main(["snippets", "--dir", directory, "--only", "probe/[do]*", "--out", str(out)])
    assert code == 1
    assert "probe/denied: expected ok, got ImportNotAllowed:requests" in capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    assert results["snippets"]["summary"]["regressions"] == ["probe/denied"]
    assert (out / "report.md").read_text().count("probe/denied") >= 1
    assert (out / "chart.png").read_bytes().startswith(b"\x89PNG")


def test_missing_facts_alone_do_not_fail_the_run(tmp_path: Path) -> None:
    only_ok = CASES.split("  - id: keyerror")[0] + '    absent: ["42"]\n'
    out = tmp_path / "out"
    assert main(["snippets", "--dir", str(_write(tmp_path, only_ok)), "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["snippets"]["results"][0]["facts_missing"] == ["not:42"]


def test_the_committed_suite_is_large_and_ids_are_unique() -> None:
    files = load_snippets()
    assert sum(len(f.snippets) for f in files) >= 80
    assert len({f.category for f in files}) == len(files)


def test_an_engine_expecting_another_outcome_is_held_to_the_absent_facts_only() -> None:
    from evals.snippet_suite import SnippetFile, judge

    file = SnippetFile.model_validate(
        {
            "category": "host",
            "snippets": [
                {
                    "id": "environ",
                    "code": "open('/proc/1/environ').read()",
                    "expect": "ExecutionError",
                    "facts": ["The code failed."],
                    "absent": ["SECRET"],
                    "engines": {"gvisor": "ok"},
                }
            ],
        }
    )
    snippet = file.snippets[0]
    on_gvisor = judge(file, snippet, "gvisor", "ok", "The code ran successfully. SECRET", 0.1)
    assert on_gvisor.outcome_correct and on_gvisor.facts_missing == ["not:SECRET"]
    assert on_gvisor.facts_total == 1
    elsewhere = judge(file, snippet, "process", "ExecutionError", "Something else", 0.1)
    assert elsewhere.facts_missing == ["The code failed."] and elsewhere.facts_total == 2
