"""The `sandbox-tool` command: its JSON contract and exit statuses.

``test_success`` runs on the engine ``--engine auto`` picks (gvisor where runsc runs: a
single run then pays its sandbox's start, seconds); the cases about the command itself
run on the fastest sandboxing engine here (``FAST``), which they do not depend on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sandbox_tool import probe_all

KEYS = {
    "ok",
    "engine",
    "result",
    "stdout",
    "stderr",
    "error",
    "artifacts",
    "duration_ms",
    "peak_memory_mb",
    "isolation",
    "degraded",
}


#: The engine the command's own cases run on: the process engine where it runs.
FAST = "process" if any(i.name == "process" and i.available for i in probe_all()) else "native"


def cli(*args: str, stdin: str = "", cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    if args[:1] == ("run",) and not any(a.startswith("--engine") for a in args):
        args = (*args, "--engine", FAST)
    return subprocess.run(
        [sys.executable, "-m", "sandbox_tool", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def run_json(code: str, *args: str) -> tuple[int, dict[str, Any]]:
    proc = cli("run", "-", "--json", *args, stdin=code)
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout + proc.stderr
    payload = json.loads(lines[0])
    assert set(payload) == KEYS
    return proc.returncode, payload


def test_success() -> None:
    status, out = run_json(
        "print('hi')\nresult = sum(inputs)", "--inputs", "[1, 2, 3]", "--engine", "auto"
    )
    assert status == 0
    assert out["ok"] is True and out["error"] is None
    assert out["result"] == 6 and out["stdout"] == "hi\n"
    auto = next(i.name for i in probe_all() if i.available)
    assert out["engine"] == auto and out["duration_ms"] > 0
    # which layers ran it, and what its engine could not apply
    assert out["isolation"]["mode"] and isinstance(out["degraded"], list)


@pytest.mark.parametrize(
    ("code", "args", "error_type", "extra"),
    [
        pytest.param("import socket", [], "ImportNotAllowed", {"module": "socket"}, id="import"),
        pytest.param(
            "import json",
            ["--deny-import", "json"],
            "ImportNotAllowed",
            {"module": "json"},
            id="deny-import",
        ),
        pytest.param(
            "import os",
            ["--imports", "data-science"],
            "ImportNotAllowed",
            {"module": "os"},
            id="data-science",
        ),
        pytest.param("1/0", [], "ExecutionError", {"exception": "ZeroDivisionError"}, id="raise"),
        pytest.param(
            "import time\ntime.sleep(30)", ["--timeout", "1"], "Timeout", {}, id="timeout"
        ),
        pytest.param("while True: pass", ["--cpu-seconds", "1"], "CpuLimitExceeded", {}, id="cpu"),
        pytest.param(
            "x = bytearray(2 * 1024**3)",
            ["--memory-mb", "256"],
            "MemoryLimitExceeded",
            {},
            id="memory",
        ),
    ],
)
def test_failures_exit_1(
    code: str, args: list[str], error_type: str, extra: dict[str, Any]
) -> None:
    status, out = run_json(code, *args)
    assert status == 1
    assert out["ok"] is False
    assert out["error"]["type"] == error_type
    assert out["error"]["message"]
    for key, value in extra.items():
        assert out["error"][key] == value
    if error_type == "ExecutionError":
        assert 'File "<code>", line 1' in out["error"]["traceback"]
    # a failed execution names its engine and layers as a success does
    assert out["engine"] and out["isolation"]["mode"], out


def test_allow_import() -> None:
    status, out = run_json("import socket\nresult = 'ok'", "--allow-import", "socket")
    assert (status, out["result"]) == (0, "ok")


def test_env_is_passed_and_host_env_is_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOST_SECRET", "s3cret")
    _status, out = run_json(
        "import os\nresult = [os.environ.get('A'), os.environ.get('HOST_SECRET')]", "--env", "A=1"
    )
    assert out["result"] == ["1", None]


def test_file_and_out(tmp_path: Path) -> None:
    data = tmp_path / "sales.csv"
    data.write_text("a\n1\n2\n")
    out_dir = tmp_path / "out"
    code = (
        "import pandas as pd, matplotlib.pyplot as plt\n"
        "df = pd.read_csv('sales.csv')\nplt.plot(df['a'])\nresult = int(df['a'].sum())"
    )
    status, out = run_json(code, "--file", str(data), "--out", str(out_dir))
    assert status == 0 and out["result"] == 3
    [art] = out["artifacts"]
    assert art["name"] == "figure-1.png" and art["mime_type"] == "image/png"
    assert Path(art["path"]).read_bytes()[:4] == b"\x89PNG"
    assert Path(art["path"]).stat().st_size == art["size"]


def test_code_from_a_file(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text("result = 40 + 2\n")
    proc = cli("run", str(script), "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["result"] == 42


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--memory-mb", "1"], id="invalid-limit"),
        pytest.param(["--engine", "nope"], id="unknown-engine"),
        pytest.param(["--inputs", "{not json"], id="bad-inputs"),
        pytest.param(["--env", "NOEQUALS"], id="bad-env"),
        pytest.param(["--file", "/no/such/file.csv"], id="missing-file"),
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    proc = cli("run", "-", "--json", *args, stdin="result = 1")
    assert proc.returncode == 2
    payload = json.loads(proc.stdout)
    assert payload["ok"] is False and payload["error"]["type"] == "UsageError"


def test_bad_arguments_exit_2() -> None:
    proc = cli("run", "--no-such-flag")
    assert proc.returncode == 2 and "usage:" in proc.stderr


def test_human_output() -> None:
    proc = cli("run", "-", stdin="print('hello')\nresult = [1, 2]")
    assert proc.returncode == 0
    assert "hello" in proc.stdout and "result: [1, 2]" in proc.stdout


def test_human_output_is_printed_as_it_comes() -> None:
    code = "import time\nprint('first', flush=True)\ntime.sleep(1.0)\nprint('second')"
    with subprocess.Popen(
        [sys.executable, "-m", "sandbox_tool", "run", "-", "--engine", "native"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    ) as proc:  # fmt: skip
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(code)
        proc.stdin.close()
        arrived = {}
        for line in proc.stdout:
            arrived[line.strip()] = time.monotonic()
    assert proc.returncode == 0
    # the first line came while the code slept, not with the rest at the end
    assert arrived["second"] - arrived["first"] >= 0.5, arrived
    assert list(arrived) == ["first", "second"]


def test_engines_json() -> None:
    proc = cli("engines", "--json")
    assert proc.returncode == 0
    engines = json.loads(proc.stdout)
    assert {"name", "available", "security_level", "reason"} <= set(engines[0])
    native = next(e for e in engines if e["name"] == "native")
    assert native["available"] is True and native["security_level"] == 5
    levels = [e["security_level"] for e in engines]
    assert levels == sorted(levels, reverse=True)


def test_engine_choice() -> None:
    status, out = run_json("result = 1", "--engine", "native")
    assert (status, out["engine"]) == (0, "native")


def test_engines_human() -> None:
    proc = cli("engines")
    assert proc.returncode == 0 and "native" in proc.stdout and "level 5" in proc.stdout


def test_console_script_installed() -> None:
    script = Path(sys.executable).parent / "sandbox-tool"
    if not script.exists():
        pytest.skip(f"{script} not installed (package not installed in this environment)")
    proc = subprocess.run(
        [str(script), "engines", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ},
        timeout=60,
    )
    assert proc.returncode == 0 and json.loads(proc.stdout)
