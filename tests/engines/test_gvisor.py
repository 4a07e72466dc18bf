"""The gvisor engine beyond the contract: what runners of one gVisor sandbox share and do
not share, the network sandbox, the cold mode, and how a failed start is reported.

One engine (one gVisor sandbox) serves the module, as it serves an application: the
leak tests run executions one after another on it, which is the point.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox_tool import (
    ENGINES,
    BuiltinsPolicy,
    EngineUnavailable,
    ExecutionOptions,
    ImportPolicy,
    PythonSandbox,
    create_default_sandbox,
)
from sandbox_tool.engines.base import EngineInfo
from sandbox_tool.engines.gvisor import GvisorEngine
from sandbox_tool.engines.runsc.bundle import write_bundle

_INFO = GvisorEngine.probe()
needs_runsc = pytest.mark.skipif(
    not _INFO.available, reason=f"gvisor engine unavailable here: {_INFO.reason}"
)
FREE = {"import_policy": ImportPolicy.allow_all(), "builtins_policy": BuiltinsPolicy.allow_all()}


@pytest.fixture(scope="module")
def gvisor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PythonSandbox]:
    if not _INFO.available:
        pytest.skip(f"gvisor engine unavailable here: {_INFO.reason}")
    root = tmp_path_factory.mktemp("gvisor-root")
    sandbox = PythonSandbox(engine=GvisorEngine(work_root=root))
    asyncio.run(sandbox.start())
    try:
        yield sandbox
    finally:
        asyncio.run(sandbox.aclose())
    assert list(root.iterdir()) == [], "the engine left a workspace behind"


def run(sandbox: PythonSandbox, code: str, inputs: Any = None, **options: Any) -> Any:
    opts = ExecutionOptions(**{**FREE, **options})
    return sandbox.execute_sync(textwrap.dedent(code), inputs, opts).result


# -- nothing of one execution reaches the next ------------------------------------------

PLANT = """
import json, os, subprocess, sys, time
open("planted.txt", "w").write("x")
open("/tmp/planted.txt", "w").write("x")
os.environ["PLANTED"] = "yes"
json.PLANTED = "yes"
sys.modules["numpy"].PLANTED = "yes"
if os.fork() == 0:          # a daemon that would outlive the execution
    os.setsid()
    if os.fork() == 0:
        time.sleep(60)
    os._exit(0)
result = {"pid": os.getpid(), "uid": os.getuid(), "cwd": os.getcwd()}
"""
LOOK = """
import json, os, sys
import numpy
result = {
    "work": sorted(os.listdir(".")),
    "tmp": sorted(os.listdir("/tmp")),
    "env": "PLANTED" in os.environ,
    "json": hasattr(json, "PLANTED"),
    "numpy": hasattr(numpy, "PLANTED"),
    "procs": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
    "cwd": os.getcwd(),
}
"""


@needs_runsc
def test_nothing_of_an_execution_reaches_the_next(gvisor: PythonSandbox) -> None:
    first = run(gvisor, PLANT, import_policy=ImportPolicy.allow_all())
    after = run(gvisor, LOOK)
    # /tmp holds no file of the first; only mount points of its own dirs (their host paths,
    # when the work root is under /tmp, as pytest's is)
    assert after["work"] == [] and "planted.txt" not in after["tmp"], after
    assert not (after["env"] or after["json"] or after["numpy"]), after
    assert after["cwd"] != first["cwd"], "a new work dir for each execution"
    # its own pid namespace: its supervisor (pid 1) and the worker, no daemon of the first
    assert len(after["procs"]) == 2, after["procs"]


@needs_runsc
def test_concurrent_runners_cannot_see_each_other(gvisor: PythonSandbox) -> None:
    """Two sessions at once: neither sees the other's files, processes or uid's tasks."""

    async def go() -> Any:
        async with (
            gvisor.session(ExecutionOptions(**FREE)) as one,
            gvisor.session(ExecutionOptions(**FREE)) as two,
        ):
            mine = await one.execute(
                "import os\nopen('secret.txt', 'w').write('s1')\n"
                "result = [os.getcwd(), os.getuid()]"
            )
            cwd, uid = mine.result
            seen = await two.execute(
                textwrap.dedent(
                    """
                    import os
                    out = {"uid": os.getuid(), "exists": os.path.exists(inputs)}
                    out["procs"] = len([p for p in os.listdir("/proc") if p.isdigit()])
                    try:
                        os.listdir(os.path.dirname(os.path.dirname(inputs)))
                        out["parent"] = "listed"
                    except OSError as exc:
                        out["parent"] = exc.strerror
                    result = out
                    """
                ),
                inputs=cwd,
            )
            return uid, seen.result

    uid, seen = asyncio.run(go())
    assert seen["exists"] is False, "a runner sees another runner's work dir"
    assert seen["uid"] != uid, "two live runners share a uid"
    assert seen["procs"] == 2, seen


@needs_runsc
def test_what_runners_of_one_sandbox_share(gvisor: PythonSandbox) -> None:
    """Shared, as docs/security.md says: gVisor's kernel (its version, its uptime); the
    host's is out of sight (gVisor answers with its own)."""
    code = "import os\nresult = [open('/proc/version').read(), os.uname()[2]]"
    first, second = run(gvisor, code), run(gvisor, code)
    assert first == second, "runners of one sandbox share its kernel"
    assert first[0] != Path("/proc/version").read_text()
    assert first[1] != os.uname().release, "the kernel is gVisor's, not the host's"


@needs_runsc
def test_the_runner_is_confined_inside_gvisor(gvisor: PythonSandbox) -> None:
    code = """
    import os
    out = {"root": sorted(os.listdir("/")), "uid": os.getuid()}
    for path in ("/etc/probe", "/usr/probe", "/probe"):
        try:
            open(path, "w")
            out[path] = "written"
        except OSError as exc:
            out[path] = exc.strerror
    try:
        os.setuid(0)
        out["setuid"] = "root"
    except OSError as exc:
        out["setuid"] = exc.strerror
    result = out
    """
    out = run(gvisor, code)
    assert out["uid"] != 0 and out["setuid"] == "Operation not permitted"
    assert "proc" in out["root"] and ".sbx" not in out["root"], out["root"]
    for path in ("/etc/probe", "/usr/probe", "/probe"):
        assert out[path] in ("Permission denied", "Read-only file system"), out


# -- the network sandbox ------------------------------------------------------------------


@needs_runsc
def test_network_only_when_asked(gvisor: PythonSandbox) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    got: list[bytes] = []

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            got.append(conn.recv(64))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    code = """
    import socket
    try:
        with socket.create_connection(("127.0.0.1", inputs), timeout=5) as s:
            s.sendall(b"from-gvisor")
        result = "sent"
    except OSError as exc:
        result = exc.strerror
    """
    port = server.getsockname()[1]
    try:
        assert run(gvisor, code, port) == "Operation not permitted"  # the filter, first
        assert run(gvisor, code, port, network=True) == "sent"
        thread.join(5)
    finally:
        server.close()
    assert got == [b"from-gvisor"]


# -- the cold mode, and failures -----------------------------------------------------------


@needs_runsc
def test_cold_mode_keeps_the_sandbox_but_preloads_nothing(tmp_path: Path) -> None:
    sandbox = PythonSandbox(engine=GvisorEngine(work_root=tmp_path, warm=False))
    try:
        res = sandbox.execute_sync("import sys\nresult = 'numpy' in sys.modules")
        pool = sandbox.engine.pool  # type: ignore[attr-defined]
        assert res.result is False and pool.size == 0
        assert res.isolation is not None and res.isolation["kernel"] == "gvisor"
    finally:
        asyncio.run(sandbox.aclose())


def _fake_runsc(tmp_path: Path, run_says: str) -> str:
    script = tmp_path / "runsc"
    script.write_text(
        "#!/bin/sh\n"
        'case "$*" in *--version*) echo "runsc version 0.0~fake"; exit 0;; esac\n'
        f'echo "{run_says}" >&2\nexit 1\n'
    )
    script.chmod(0o755)
    return str(script)


@pytest.mark.skipif(os.name != "posix", reason="a shell script stands in for runsc")
def test_a_failed_start_reports_runscs_own_words(tmp_path: Path) -> None:
    runsc = _fake_runsc(tmp_path, "creating container: cannot create sandbox: boom")
    engine = GvisorEngine(runsc=runsc, work_root=tmp_path)
    sandbox = PythonSandbox(engine=engine)
    with pytest.raises(EngineUnavailable, match="cannot create sandbox: boom"):
        sandbox.execute_sync("result = 1")
    asyncio.run(sandbox.aclose())
    home = engine.isolation.home  # type: ignore[attr-defined]
    assert home is not None and not home.exists(), "a failed start left its directory"


@pytest.mark.parametrize(
    ("runsc", "platform", "reason"),
    [
        pytest.param("/nonexistent/runsc", "ptrace", "apt-get install runsc", id="missing"),
        pytest.param(None, "systrap", "unknown gVisor platform", id="unknown-platform"),
    ],
)
def test_probe_names_the_remedy(runsc: str | None, platform: str, reason: str) -> None:
    if runsc is None and not _INFO.available:
        pytest.skip(f"needs runsc to reach the platform check: {_INFO.reason}")
    info = GvisorEngine(runsc=runsc, platform=platform).isolation.probe("python3")
    assert info[0] is False and reason in info[1]


def test_the_bundle_binds_only_what_it_names(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    write_bundle(tmp_path / "b", args=["python"], env={"A": "1"}, read_only=["/usr/lib"],
                 read_write=[str(work)], network=False)  # fmt: skip
    config = json.loads((tmp_path / "b" / "config.json").read_text())
    assert config["root"] == {"path": "rootfs", "readonly": True}
    binds = {m["destination"]: m["options"] for m in config["mounts"] if m["type"] == "bind"}
    assert "rw" in binds[str(work)] and "ro" in binds["/usr"]
    assert all("ro" in opts for dest, opts in binds.items() if dest != str(work))
    assert "/home" not in binds and "/root" not in binds and "/tmp" not in binds
    assert {"type": "network"} in config["linux"]["namespaces"]
    assert config["process"]["env"] == ["A=1"] and config["process"]["user"]["uid"] == 0


def test_the_default_sandbox_passes_over_an_engine_that_cannot_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """runsc installed where its sandbox cannot run: the next engine is chosen, and why
    gvisor was not is recorded."""
    runsc = _fake_runsc(tmp_path, "cannot create sandbox: no ptrace here")

    class BrokenGvisor(GvisorEngine):
        @classmethod
        def probe(cls, interpreter: str | None = None) -> EngineInfo:
            return EngineInfo(cls.name, True, cls.security_level, "runsc found")

        @classmethod
        def create(cls, interpreter: str | None = None, *, warm: bool = True) -> GvisorEngine:
            return cls(interpreter, runsc=runsc, warm=warm)

    monkeypatch.setitem(ENGINES, "gvisor", BrokenGvisor)
    sandbox = asyncio.run(create_default_sandbox(warm=False))
    try:
        assert sandbox.engine_name != "gvisor"
        assert sandbox.execute_sync("result = 3").result == 3
    finally:
        asyncio.run(sandbox.aclose())
    [gvisor] = [i for i in sandbox.passed_over if i.name == "gvisor"]
    assert not gvisor.available and "no ptrace here" in gvisor.reason
