"""Code that forges its own answer: the host survives it, says so, and the next call works.

The audit's attacks on the channel (issue 14, items 5-8): a frame nested too deep to
parse, fields of the wrong type, a result over the result cap, artifact names that
climb out of a directory, the same on a session and through the agent tool. Each must
end as one ``EngineError`` (a dead session, never a desynchronised one), never another
exception, and never a file outside the directory artifacts are written to.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox_tool import (
    EngineError,
    ExecutionOptions,
    ImportPolicy,
    PythonSandbox,
    SandboxError,
    UsageError,
)
from sandbox_tool.engines.gvisor import GvisorEngine
from sandbox_tool.engines.native import NativeEngine
from sandbox_tool.engines.process import ProcessEngine
from sandbox_tool.result import write_artifacts
from sandbox_tool.tool import PythonTool

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the framed channel's forgeries need /proc"
)

_PROCESS = ProcessEngine.probe()
_GVISOR = GvisorEngine.probe()
_OPTS = ExecutionOptions(import_policy=ImportPolicy.allow_all(), timeout=20)

#: Finds the channel (the worker's only unix socket but its stdout and stderr, and their
#: copies: a gVisor runner's streams are sockets too), sends ``body`` as an answer frame
#: and ends the process before the real answer: the host reads the forgery.
_FORGE = (
    "import os, stat\n"
    "streams = {os.fstat(1).st_ino, os.fstat(2).st_ino}\n"
    "def _channel(n):\n"
    "    try:\n"
    "        st = os.fstat(int(n))\n"
    "    except OSError:\n"
    "        return False  # the fd listdir used, closed since\n"
    "    return stat.S_ISSOCK(st.st_mode) and st.st_ino not in streams\n"
    "fd = next(int(n) for n in sorted(os.listdir('/proc/self/fd'), key=int) if _channel(n))\n"
    "os.write(fd, len(body).to_bytes(4, 'big') + body)\n"
    "for raw in globals().get('raws', []):\n"
    "    os.write(fd, len(raw).to_bytes(4, 'big') + raw)\n"
    "os._exit(0)\n"
)


def _forge(body: str) -> str:
    return f"body = {body}\n" + _FORGE


def _answer(**fields: Any) -> str:
    return _forge(f"{json.dumps(json.dumps({'status': 'ok', **fields}))}.encode()")


def _artifact(name: str) -> dict[str, Any]:
    return {"name": name, "kind": "file", "size": 5}  # its content: b"pwned"


FORGERIES = [
    pytest.param(_forge("b'[' * 200_000 + b']' * 200_000"), "nested too deep", id="deep-nesting"),
    pytest.param(_answer(result=1, result_repr=12345), "result_repr", id="repr-not-a-str"),
    pytest.param(_answer(result=1, result_truncated="yes"), "result_truncated", id="flag-type"),
    pytest.param(
        _forge('(\'{"status": "error", "lineno": "x"}\').encode()'), "lineno", id="lineno"
    ),
    pytest.param(
        _forge("('{\"status\": \"ok\", \"result\": [' + '0,' * 3_000_000 + '0]}').encode()"),
        "frame of",
        id="result-over-the-cap",
    ),
    pytest.param(_forge('b\'{"status": "ok", "artifacts": 5}\''), "artifacts", id="artifacts"),
    pytest.param(
        _answer(result=1, artifacts=[{"name": "a", "kind": "file", "size": 1 << 40}]),
        "bytes of artifacts",
        id="artifact-over-the-budget",
    ),
    pytest.param(
        _answer(result=1, artifacts=[{"name": "a", "kind": "file", "size": "9"}]),
        "valid size",
        id="artifact-size-type",
    ),
]

ENGINES = [
    pytest.param(lambda root: NativeEngine(work_root=root), id="native-warm"),
    pytest.param(
        lambda root: ProcessEngine(work_root=root),
        id="process-warm",
        marks=pytest.mark.skipif(not _PROCESS.available, reason=str(_PROCESS.reason)),
    ),
    pytest.param(
        lambda root: ProcessEngine(work_root=root, warm=False),
        id="process-cold",
        marks=pytest.mark.skipif(not _PROCESS.available, reason=str(_PROCESS.reason)),
    ),
    # the suite's one gvisor engine: a gVisor sandbox takes seconds to start
    pytest.param(
        None,
        id="gvisor",
        marks=pytest.mark.skipif(not _GVISOR.available, reason=str(_GVISOR.reason)),
    ),
]


@pytest.fixture(params=ENGINES)
def sandbox(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PythonSandbox]:
    if request.param is None:  # the suite's shared gvisor engine (conftest.py)
        yield request.getfixturevalue("gvisor_sandbox")
        return
    (tmp_path / "work").mkdir()
    box = PythonSandbox(request.param(tmp_path / "work"))
    try:
        yield box
    finally:
        asyncio.run(box.aclose())


def _run(sandbox: PythonSandbox, *codes: str) -> list[Any]:
    async def go() -> list[Any]:
        return [
            await asyncio.gather(sandbox.execute(code, options=_OPTS), return_exceptions=True)
            for code in codes
        ]

    return [outcome[0] for outcome in asyncio.run(go())]


@pytest.mark.parametrize(("code", "detail"), FORGERIES)
def test_a_forged_answer_is_one_engine_error(
    sandbox: PythonSandbox, code: str, detail: str
) -> None:
    forged, after = _run(sandbox, code, "result = 'next'")
    assert isinstance(forged, EngineError), forged
    assert detail in str(forged)
    assert getattr(after, "result", None) == "next"


def test_forged_artifact_names_stay_inside(sandbox: PythonSandbox, tmp_path: Path) -> None:
    names = ["../../../../tmp/x/pwned.txt", "/etc/cron.d/evil", "a/../../b.txt", ".."]
    items = [_artifact(n) for n in names]
    forge = "raws = [b'pwned'] * 4\n" + _answer(result=1, artifacts=items)
    (res,) = _run(sandbox, forge)
    assert not isinstance(res, BaseException), res
    got = [a.name for a in res.artifacts]
    assert got == ["tmp/x/pwned.txt", "etc/cron.d/evil", "a/b.txt", "artifact"]
    out = tmp_path / "out"
    written = write_artifacts(out, res.artifacts)
    assert all(p.resolve().is_relative_to(out.resolve()) for p in written.values())
    assert sorted(p.name for p in (tmp_path / "out").rglob("*") if p.is_file()) == sorted(
        ["pwned.txt", "evil", "b.txt", "artifact"]
    )


def test_a_writer_refuses_a_symlink_out_of_its_directory(tmp_path: Path) -> None:
    from sandbox_tool.result import Artifact

    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "link").symlink_to(elsewhere)
    art = Artifact(name="link/x.txt", mime_type="text/plain", data=b"x")
    with pytest.raises(ValueError, match="outside"):
        write_artifacts(out, [art])
    assert not (elsewhere / "x.txt").exists()


def test_a_forged_answer_ends_the_session_in_step(sandbox: PythonSandbox) -> None:
    async def go() -> list[Any]:
        outcomes: list[Any] = []
        async with sandbox.session(_OPTS) as s:
            for code in ["x = 1", _answer(result=1, result_repr=5), "x"]:
                try:
                    outcomes.append(await s.execute(code))
                except SandboxError as exc:
                    outcomes.append(exc)
        return outcomes

    first, forged, later = asyncio.run(go())
    assert first.result is None
    assert isinstance(forged, EngineError) and "state is lost" in str(forged)
    assert isinstance(later, UsageError) and "has ended" in str(later)


def test_the_tool_turns_a_forged_answer_into_a_message(sandbox: PythonSandbox) -> None:
    tool = PythonTool(sandbox, options=_OPTS)

    async def go() -> list[Any]:
        return [await tool.run(_answer(result_repr=7)), await tool.run("result = 2")]

    forged, after = asyncio.run(go())
    assert not forged.ok and "could not complete" in forged.text
    assert forged.error is not None and forged.error["type"] == "EngineError"
    assert after.ok and after.result is not None and after.result.result == 2


def test_a_forged_report_file_on_the_cold_cli_gives_json(tmp_path: Path) -> None:
    # the worker writes the report file itself, then dies before answering on its channel
    code = (
        "import os, json\n"
        "meta = os.path.dirname(os.environ['MPLCONFIGDIR'])\n"
        "fd = os.open(os.path.join(meta, 'worker.json'), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)\n"
        "os.write(fd, json.dumps({'status': 'ok', 'result': 1, 'result_repr': 5}).encode())\n"
        "os._exit(0)\n"
    )
    script = tmp_path / "forge.py"
    script.write_text(code)
    out = subprocess.run(
        [sys.executable, "-m", "sandbox_tool", "run", str(script), "--json",
         "--engine", "native", "--imports", "allow-all"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    payload = json.loads(out.stdout)
    assert payload["ok"] is False, payload
    assert payload["error"]["type"] == "EngineError"
    assert "result_repr" in payload["error"]["message"]
    assert out.returncode == 2
