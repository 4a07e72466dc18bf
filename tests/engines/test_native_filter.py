"""The native engine's seccomp filter on Linux: no programs, no processes, no sockets
unless asked, before any code runs; ``NativeEngine(seccomp=False)`` turns it off and each
result says so.

One warm engine per configuration for the module: the filter is installed by every
runner forked from it, so sharing the template does not share the filter's decisions.
"""

from __future__ import annotations

import asyncio
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox_tool import ExecutionError, ExecutionOptions, ImportPolicy, PythonSandbox
from sandbox_tool.engines.isolation.rlimits import RlimitsOnly
from sandbox_tool.engines.native import NativeEngine

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the native engine filters on Linux only"
)

ALLOW_ALL = ImportPolicy.allow_all()

# The held-out check, in its two cases: each would start /bin/sh, which prints the token
OS_SYSTEM = """
import os
status = os.system("echo " + inputs)
result = {"status": status}
"""
OS_EXECV = """
import os
try:
    os.execv("/bin/sh", ["sh", "-c", "echo " + inputs])
except OSError as exc:
    result = {"refused": exc.errno}
"""


@pytest.fixture(scope="module", params=[True, False], ids=["filtered", "seccomp-off"])
def native(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    root = tmp_path_factory.mktemp("native-root")
    sandbox = PythonSandbox(engine=NativeEngine(work_root=root, seccomp=request.param))
    asyncio.run(sandbox.start())
    try:
        yield sandbox, request.param
    finally:
        asyncio.run(sandbox.aclose())


def run(sandbox: PythonSandbox, code: str, inputs: Any = None, **options: Any) -> Any:
    opts = ExecutionOptions(import_policy=ALLOW_ALL, **options)
    return sandbox.execute_sync(textwrap.dedent(code), inputs, opts)


@pytest.mark.parametrize("code", [OS_SYSTEM, OS_EXECV], ids=["os.system", "os.execv"])
def test_running_a_shell(native: Any, code: str) -> None:
    sandbox, filtered = native
    token = "shell-ran-a1b2c3"
    if filtered:
        res = run(sandbox, code, token)
        assert token not in res.stdout, "/bin/sh ran under the filter"
        # os.system: glibc reports the refused spawn as exit status 127; execv: EPERM
        assert res.result in ({"status": 127 << 8}, {"refused": 1}), res.result
        return
    try:
        out = run(sandbox, code, token).stdout
    except ExecutionError as exc:  # execv replaced the worker: no answer, but the output
        out = exc.stdout
    assert token in out


@pytest.mark.parametrize(
    ("code", "refused"),
    [
        pytest.param("import os\nif os.fork() == 0:\n    os._exit(0)\nos.wait()", True, id="fork"),
        pytest.param("import subprocess\nsubprocess.run(['true'])", True, id="subprocess"),
        pytest.param("import socket\nsocket.socket(socket.AF_INET).close()", True, id="tcp"),
        pytest.param("import socket\nsocket.socket(socket.AF_UNIX).close()", True, id="unix"),
        pytest.param("import socket\na, b = socket.socketpair()", False, id="socketpair"),
        pytest.param("import threading\nt = threading.Thread(target=print)\nt.start()\nt.join()",
                     False, id="thread"),
    ],
)  # fmt: skip
def test_what_the_filter_refuses(native: Any, code: str, refused: bool) -> None:
    sandbox, filtered = native
    code = f"try:\n{textwrap.indent(code, '    ')}\n    result = 'ran'\nexcept OSError as e:\n" \
           "    result = e.errno"  # fmt: skip
    res = run(sandbox, code)
    assert res.result == (1 if filtered and refused else "ran"), res.result  # 1: EPERM


def test_network_true_allows_tcp_sockets_only(native: Any) -> None:
    sandbox, filtered = native
    code = """
    import socket
    out = {}
    for name, fam in (("inet", socket.AF_INET), ("unix", socket.AF_UNIX)):
        try:
            socket.socket(fam).close()
            out[name] = "ok"
        except OSError as exc:
            out[name] = exc.errno
    result = out
    """
    res = run(sandbox, code, network=True)
    assert res.result == ({"inet": "ok", "unix": 1} if filtered else {"inet": "ok", "unix": "ok"})


def test_results_name_the_filter(native: Any) -> None:
    sandbox, filtered = native
    res = run(sandbox, "result = 1")
    assert res.isolation is not None and res.isolation["mode"] == "native"
    assert res.isolation["seccomp"]["applied"] is filtered
    notes = " ".join(res.degraded)
    assert "filesystem: not isolated" in notes  # what it never stops, filter or not
    if filtered:
        assert res.isolation["seccomp"]["programs"] is False
        assert "seccomp" not in notes and "network" not in notes
    else:
        assert "seccomp: turned off (NativeEngine(seccomp=False))" in notes
        assert "network: the native engine cannot turn the network off" in notes


def test_a_kernel_without_seccomp_degrades_not_fails(tmp_path: Path) -> None:
    """The probe child failing (as on a kernel without seccomp) leaves the filter out and
    says so in every result, instead of a worker that dies later."""
    engine = NativeEngine(work_root=tmp_path, warm=False)
    assert isinstance(engine.isolation, RlimitsOnly)
    engine.isolation.probe_code = "import sys; sys.exit('seccomp: not on this kernel')"
    sandbox = PythonSandbox(engine=engine)
    try:
        res = sandbox.execute_sync("result = 2")
    finally:
        asyncio.run(sandbox.aclose())
    assert res.result == 2
    assert res.isolation is not None and res.isolation["seccomp"] == {"applied": False}
    assert any("seccomp: not available here" in note for note in res.degraded), res.degraded
