"""The contract every engine must pass: subclass :class:`EngineContract` once per engine.

Each test runs real code on the real engine. After every test the
``no_leftovers`` fixture checks that the engine left no process, file
descriptor or working directory behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import textwrap
import uuid
from pathlib import Path
from typing import Any, ClassVar

import psutil
import pytest

from sandbox_tool import (
    BuiltinNotAllowed,
    BuiltinsPolicy,
    CpuLimitExceeded,
    Engine,
    ExecutionError,
    ExecutionOptions,
    ExecutionResult,
    ImportNotAllowed,
    ImportPolicy,
    MemoryLimitExceeded,
    Output,
    OutputLimitExceeded,
    PythonSandbox,
    SandboxError,
    Timeout,
    UsageError,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def open_fds() -> set[str]:
    """The fds open in this process now (for leak checks)."""
    if not os.path.isdir("/proc/self/fd"):
        return set()
    listed = os.listdir("/proc/self/fd")  # includes the fd that listing used, closed since
    return {fd for fd in listed if _open(int(fd))}


def _open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _fd_target(fd: str) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "?"


def _pids_in(text: str) -> list[int]:
    return [int(line.split("=")[1]) for line in text.splitlines() if line.startswith("pid=")]


MARK = "SANDBOX_TOOL_TEST_MARK"


def _marked() -> dict[str, str]:
    """An environment variable that identifies this test's processes on the host, whatever
    pid namespace they live in."""
    return {MARK: uuid.uuid4().hex}


def _survivors(env: dict[str, str]) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and proc.environ().get(MARK) == env[MARK]:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _dead(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def _processes() -> set[tuple[int, float]]:
    """This test process's living descendants, as (pid, start time)."""
    found = set()
    for proc in psutil.Process().children(recursive=True):
        try:
            if not _dead(proc.pid):
                found.add((proc.pid, proc.create_time()))
        except psutil.NoSuchProcess:
            continue
    return found


def _assert_clean(
    work_root: Path, fds_before: set[str], procs_before: set[tuple[int, float]], pool: Any = None
) -> None:
    """Nothing the test started is left behind but what a warm ``pool`` keeps for the
    next execution: its template, its waiting runners (with the sandboxes below them),
    their dirs and fds. Processes that were there before the test are not its own."""
    template = pool.template_pid() if pool is not None else None
    runners = pool.resident_pids() - {template} if pool is not None else set()
    dirs = pool.resident_dirs() if pool is not None else set()
    fds = pool.resident_fds() if pool is not None else set()
    left = [p for p in work_root.iterdir() if p not in dirs]
    assert left == [], f"the engine left working directories behind: {left}"
    living = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if _dead(proc.pid) or proc.pid == template or proc.pid in runners:
                continue
            if (proc.pid, proc.create_time()) in procs_before:
                continue
            if runners & {a.pid for a in proc.parents()}:
                continue  # inside a waiting runner
            living.append(proc)
        except psutil.NoSuchProcess:
            continue
    assert living == [], f"processes left behind: {living}"
    allowed = fds_before | {str(n) for n in range(3)} | {str(fd) for fd in fds}
    leaked = {fd: _fd_target(fd) for fd in open_fds() - allowed}
    assert leaked == {}, f"file descriptors leaked: {leaked}"


#: print, flush, sleep, print: the sleep is what an engine that streams shows (the first
#: line comes while the code sleeps) and one that delivers at the end hides.
STREAMED = """
import sys, time
print('first', flush=True)
time.sleep(1.0)
print('second')
print('to stderr', file=sys.stderr)
print('no newline', end='')
"""


def assert_streamed(events: list[tuple[float, Output]], stdout: str, stderr: str) -> None:
    """The first line came well before the rest, and the events add up to the output."""
    arrived = {e.text: at for at, e in events}
    assert arrived["second\n"] - arrived["first\n"] >= 0.5, (
        f"the output came at the end, not while the code ran: {events}"
    )
    assert "".join(e.text for _, e in events if e.stream == "stdout") == stdout
    assert "".join(e.text for _, e in events if e.stream == "stderr") == stderr


def recorder() -> tuple[list[tuple[float, Output]], Any]:
    """A list, and an async callback that appends (arrival time, event) to it."""
    events: list[tuple[float, Output]] = []

    async def record(event: Output) -> None:
        events.append((asyncio.get_running_loop().time(), event))

    return events, record


class EngineContract:
    """Behaviour every engine promises. Subclasses implement :meth:`make_engine`."""

    #: whether the engine can cap processes for the user running the tests
    enforces_process_limit: ClassVar[bool] = True
    #: whether the code can fork at all (the policy is allow-all in those tests)
    can_fork: ClassVar[bool] = True
    #: whether the engine keeps a warm pool (one sandbox is then shared by the class)
    warm: ClassVar[bool] = False

    def make_engine(self, work_root: Path) -> Engine:
        raise NotImplementedError

    # -- fixtures and helpers ---------------------------------------------------

    @pytest.fixture(scope="class")
    @classmethod
    def shared_sandbox(cls, tmp_path_factory: pytest.TempPathFactory) -> Any:
        """One sandbox for the whole class when the engine keeps a warm pool (starting a
        template per test would dominate the suite); checked empty at the end."""
        if not cls.warm:
            yield None
            return
        work_root = tmp_path_factory.mktemp("engine-root")
        fds_before, procs_before = open_fds(), _processes()
        sandbox = PythonSandbox(engine=cls().make_engine(work_root))
        asyncio.run(sandbox.start())
        yield sandbox
        asyncio.run(sandbox.aclose())
        _assert_clean(work_root, fds_before, procs_before)

    @pytest.fixture(autouse=True)
    def no_leftovers(self, tmp_path: Path, shared_sandbox: PythonSandbox | None) -> Any:
        """After every test: no process, file descriptor or directory left behind, but
        for what a warm pool keeps for the next execution."""
        if shared_sandbox is not None:
            self.sandbox = shared_sandbox
            work_root = shared_sandbox.engine.work_root  # type: ignore[attr-defined]
        else:
            work_root = tmp_path / "engine-root"
            work_root.mkdir()
        fds_before, procs_before = open_fds(), _processes()
        if shared_sandbox is None:
            self.sandbox = PythonSandbox(engine=self.make_engine(work_root))
        yield
        pool = getattr(self.sandbox.engine, "pool", None)
        if shared_sandbox is None:
            asyncio.run(self.sandbox.aclose())
        elif pool is not None:
            pool.wait_idle()
        _assert_clean(
            work_root, fds_before, procs_before, pool if shared_sandbox is not None else None
        )

    def run(self, code: str, inputs: Any = None, **options: Any) -> ExecutionResult:
        return self.sandbox.execute_sync(textwrap.dedent(code), inputs, ExecutionOptions(**options))

    def fail(self, error: type[SandboxError], code: str, inputs: Any = None, **options: Any) -> Any:
        with pytest.raises(error) as info:
            self.run(code, inputs, **options)
        return info.value

    # -- result capture and conversion ------------------------------------------

    @pytest.mark.parametrize(
        ("code", "expected"),
        [
            pytest.param("result = 6 * 7", 42, id="result-variable"),
            pytest.param("x = 2\nx + 1", 3, id="last-expression"),
            pytest.param("result = 'r'\n'last'", "r", id="result-beats-last-expression"),
            pytest.param("x = 1", None, id="no-result"),
            pytest.param("", None, id="empty-code"),
            pytest.param("print('hi')", None, id="print-returns-none"),
            pytest.param(
                "result = {'a': [1, 2.5, None, True]}",
                {"a": [1, 2.5, None, True]},
                id="json-structures",
            ),
            pytest.param("result = (1, {2})", [1, [2]], id="tuple-and-set"),
            pytest.param("result = {1: 'one'}", {"1": "one"}, id="non-string-keys"),
            pytest.param("result = float('nan')", None, id="nan-is-null"),
            pytest.param(
                "import datetime\nresult = datetime.date(2024, 5, 1)",
                "2024-05-01",
                id="date-isoformat",
            ),
            pytest.param(
                "class A:\n    def __repr__(self): return 'A!'\nA()", "A!", id="object-repr"
            ),
            pytest.param(
                "class A:\n    def __repr__(self): raise ValueError\nresult = A()",
                "<A object (repr failed: ValueError)>",
                id="hostile-repr",
            ),
            pytest.param("result = inputs", None, id="inputs-default-none"),
            pytest.param("result = 'héllo ✓'", "héllo ✓", id="unicode"),
        ],
    )
    def test_result_capture(self, code: str, expected: Any) -> None:
        assert self.run(code).result == expected

    def test_numpy_values_are_converted(self) -> None:
        res = self.run(
            """
            import numpy as np
            result = {"mean": np.mean([1, 2, 3, 4, 5]), "arr": np.arange(3),
                      "m": np.eye(2), "i": np.int64(7), "b": np.bool_(True)}
            """
        )
        assert res.result == {
            "mean": 3.0,
            "arr": [0, 1, 2],
            "m": [[1.0, 0.0], [0.0, 1.0]],
            "i": 7,
            "b": True,
        }

    def test_numpy_scalar_as_last_expression(self) -> None:
        res = self.run("import numpy as np\nnp.mean([1, 2, 3, 4, 5])")
        assert res.result == 3.0
        assert res.result_type == "numpy.float64"

    def test_pandas_values_are_converted(self) -> None:
        res = self.run(
            """
            import pandas as pd
            df = pd.DataFrame({"region": ["n", "s", "n"], "sales": [1.0, 2.0, None]})
            result = {"df": df, "by": df.groupby("region")["sales"].sum(),
                      "ts": pd.Timestamp("2024-01-02")}
            """
        )
        assert res.result["df"] == {
            "columns": ["region", "sales"],
            "index": [0, 1, 2],
            "data": [["n", 1.0], ["s", 2.0], ["n", None]],
        }
        assert res.result["by"] == {"n": 1.0, "s": 2.0}
        assert res.result["ts"].startswith("2024-01-02")

    def test_dataframe_repr_is_a_table(self) -> None:
        res = self.run("import pandas as pd\npd.DataFrame({'a': [1, 2]})")
        assert res.result_type == "pandas.DataFrame"
        assert res.result_repr is not None and "a" in res.result_repr.splitlines()[0]

    def test_huge_result_is_truncated_and_flagged(self) -> None:
        res = self.run("result = 'x' * 50_000", max_output_bytes=4096)
        assert res.result_truncated
        assert isinstance(res.result, str) and len(res.result) < 50_000
        assert "characters cut" in res.result

    def test_huge_array_is_not_converted(self) -> None:
        res = self.run("import numpy as np\nresult = np.zeros(2_000_000)", max_output_bytes=4096)
        assert res.result_truncated and isinstance(res.result, str)

    # -- output and inputs ------------------------------------------------------

    def test_stdout_and_stderr(self) -> None:
        res = self.run("import sys\nprint('out')\nprint('err', file=sys.stderr)")
        assert res.stdout == "out\n"
        assert res.stderr == "err\n"

    def test_binary_output_is_decoded_with_replacement(self) -> None:
        res = self.run("import sys\nsys.stdout.buffer.write(b'ok \\xff\\xfe end\\n')")
        assert res.stdout.startswith("ok ") and res.stdout.endswith(" end\n")
        assert "\ufffd" in res.stdout

    def test_inputs_reach_the_code(self) -> None:
        data = {"xs": [1, 2, 3], "name": "n", "nested": {"ok": True}}
        res = self.run("result = [sum(inputs['xs']), inputs['name'], inputs['nested']]", data)
        assert res.result == [6, "n", {"ok": True}]

    def test_result_metadata(self) -> None:
        res = self.run("result = 1")
        assert res.engine == self.sandbox.engine_name
        assert res.duration_ms > 0
        assert res.peak_memory_mb is None or res.peak_memory_mb > 1
        json.loads(res.model_dump_json())

    # -- errors carry what came before ------------------------------------------

    def test_exception_with_partial_output(self) -> None:
        err = self.fail(
            ExecutionError,
            """
            print("before")
            x = 1
            y = x / 0
            """,
        )
        assert err.exception == "ZeroDivisionError"
        assert err.stdout == "before\n"
        assert err.lineno == 4
        assert err.line == "y = x / 0"
        assert "division by zero" in err.message

    def test_traceback_is_trimmed_to_user_code(self) -> None:
        err = self.fail(
            ExecutionError,
            """
            import numpy as np
            def reshape(a):
                return a.reshape(3)
            reshape(np.arange(2))
            """,
        )
        assert err.exception == "ValueError"
        assert err.traceback.count('File "<code>"') == 2
        assert "numpy" not in err.traceback.split("\n")[-2]
        assert "runner" not in err.traceback and "site-packages" not in err.traceback
        assert err.lineno == 4

    def test_carets_point_at_the_error(self) -> None:
        # no newline at the end: the last line must still get its carets right
        err = self.fail(ExecutionError, "d = {}\nd['zz']")
        assert err.traceback.splitlines()[-3:-1] == ["    d['zz']", "    ~^^^^^^"]

    def test_compiler_error_has_its_line(self) -> None:
        err = self.fail(ExecutionError, "x = 1\nreturn x")
        assert (err.exception, err.lineno, err.line) == ("SyntaxError", 2, "return x")

    def test_syntax_error(self) -> None:
        err = self.fail(ExecutionError, "x = 1\ndef f(:\n    pass")
        assert err.exception == "SyntaxError"
        assert err.lineno == 2
        assert err.line == "def f(:"
        assert "^" in err.traceback

    @pytest.mark.parametrize(
        ("code", "exception"),
        [
            pytest.param("raise KeyboardInterrupt", "KeyboardInterrupt", id="keyboard-interrupt"),
            pytest.param(
                "class Boom(BaseException): pass\nraise Boom('x')",
                "Boom",
                id="base-exception-subclass",
            ),
            pytest.param("import sys\nsys.exit(3)", "SystemExit", id="sys-exit-nonzero"),
            pytest.param("import os\nos._exit(4)", "SystemExit", id="os-exit"),
            pytest.param("import os\nos._exit(0)", "SystemExit", id="os-exit-zero"),
        ],
    )
    def test_abrupt_endings_are_reported(self, code: str, exception: str) -> None:
        err = self.fail(ExecutionError, code, import_policy=ImportPolicy.allow_all())
        assert err.exception == exception

    def test_sys_exit_zero_is_success(self) -> None:
        assert self.run("result = 5\nimport sys\nsys.exit(0)").result == 5

    def test_killed_by_signal(self) -> None:
        err = self.fail(
            ExecutionError,
            "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)",
            import_policy=ImportPolicy.allow_all(),
        )
        assert err.exception == "SIGSEGV"

    # -- the runner survives hostile code ----------------------------------------

    @pytest.mark.parametrize(
        "code",
        [
            pytest.param("import os\nos.close(1)\nos.close(2)\nresult = 7", id="closed-stdio"),
            pytest.param("import os\nos.closerange(0, 1024)\nresult = 7", id="closed-all-fds"),
            pytest.param(
                "import os\nfd = os.open(os.devnull, os.O_WRONLY)\nos.dup2(fd, 1)\n"
                "print('lost')\nresult = 7",
                id="redirected-stdout",
            ),
            pytest.param(
                "import sys, io\nsys.stdout = io.StringIO()\nsys.stderr = None\n"
                "print('x')\nresult = 7",
                id="replaced-sys-stdout",
            ),
            pytest.param(
                "import builtins\nfor n in ['len', 'repr', 'isinstance', 'open', 'str']:"
                "\n    delattr(builtins, n)\nresult = 7",
                id="deleted-builtins",
            ),
            pytest.param("import json\njson.dumps = None\nresult = 7", id="broken-json"),
            pytest.param("import sys\nsys.modules.clear()\nresult = 7", id="cleared-sys-modules"),
        ],
    )
    def test_hostile_code_cannot_break_reporting(self, code: str) -> None:
        res = self.run(code, import_policy=ImportPolicy.allow_all())
        assert res.result == 7

    def test_fork_in_user_code_reports_once(self) -> None:
        if not self.can_fork:
            pytest.skip("this engine does not let the code fork")
        res = self.run(
            """
            import os, time
            pid = os.fork()
            if pid == 0:
                result = "child"
            else:
                os.waitpid(pid, 0)
                result = "parent"
            """,
            import_policy=ImportPolicy.allow_all(),
        )
        assert res.result == "parent"

    # -- import policy -------------------------------------------------------------

    @pytest.mark.parametrize(
        ("code", "module"),
        [
            pytest.param("import subprocess", "subprocess", id="statement"),
            pytest.param(
                "import os\nfrom multiprocessing import pool", "multiprocessing", id="from-import"
            ),
            pytest.param("from urllib import request", "urllib.request", id="denied-submodule"),
            pytest.param("__import__('socket')", "socket", id="dunder-import"),
            pytest.param(
                "import importlib\nimportlib.import_module('ctypes')", "ctypes", id="importlib"
            ),
            pytest.param("def f():\n    import ctypes\nf()", "ctypes", id="inside-a-function"),
        ],
    )
    def test_default_policy_blocks_user_imports(self, code: str, module: str) -> None:
        err = self.fail(ImportNotAllowed, code)
        assert err.module == module
        assert module in err.message

    def test_libraries_import_what_they_need(self) -> None:
        # asyncio and pandas import socket, subprocess, select... internally
        res = self.run("import asyncio, pandas, urllib.parse\nresult = 'ok'")
        assert res.result == "ok"

    def test_refused_import_is_an_import_error_for_the_code(self) -> None:
        res = self.run("try:\n    import socket\nexcept ImportError:\n    result = 'fallback'")
        assert res.result == "fallback"

    def test_data_science_whitelist(self) -> None:
        policy = ImportPolicy.data_science_whitelist()
        res = self.run(
            "import json, math, pandas, numpy\nfrom os import path\nimport os.path\nresult = 1",
            import_policy=policy,
        )
        assert res.result == 1
        err = self.fail(ImportNotAllowed, "import os", import_policy=policy)
        assert err.module == "os"

    def test_custom_lists(self) -> None:
        err = self.fail(
            ImportNotAllowed, "import json", import_policy=ImportPolicy.blacklist({"json"})
        )
        assert err.module == "json"
        res = self.run("import subprocess\nresult = 1", import_policy=ImportPolicy.allow_all())
        assert res.result == 1
        err = self.fail(
            ImportNotAllowed, "import csv", import_policy=ImportPolicy.whitelist({"json"})
        )
        assert err.module == "csv"

    # -- builtins policy -----------------------------------------------------------

    @pytest.mark.parametrize("name", ["eval", "exec", "compile", "input", "breakpoint"])
    def test_denied_builtins(self, name: str) -> None:
        err = self.fail(BuiltinNotAllowed, f"{name}('1')")
        assert err.name == name

    def test_open_is_limited_to_the_work_dir(self) -> None:
        err = self.fail(BuiltinNotAllowed, "open('/etc/hostname').read()")
        assert err.name == "open"
        res = self.run(
            """
            import os, tempfile
            with open("notes.txt", "w") as f:
                f.write("kept")
            with open(os.path.join(tempfile.gettempdir(), "t"), "w") as f:
                f.write("tmp")
            result = open("notes.txt").read()
            """
        )
        assert res.result == "kept"

    def test_libraries_keep_their_builtins(self) -> None:
        res = self.run(
            """
            import collections, dataclasses
            P = collections.namedtuple("P", "x y")
            @dataclasses.dataclass
            class D:
                a: int
            import pandas as pd
            df = pd.DataFrame({"a": [1, 2], "b": [3, 4]})
            result = [P(1, 2).x, D(3).a, int(df.eval("a + b").sum())]
            """
        )
        assert res.result == [1, 3, 10]

    def test_builtins_policy_can_be_relaxed(self) -> None:
        res = self.run("result = eval('1 + 1')", builtins_policy=BuiltinsPolicy.allow_all())
        assert res.result == 2

    # -- artifacts -------------------------------------------------------------------

    def test_figures_and_files_come_back(self) -> None:
        res = self.run(
            """
            import matplotlib.pyplot as plt
            import pandas as pd
            plt.plot([1, 2, 3])
            plt.show()
            plt.close("all")            # shown figures are already captured
            fig, ax = plt.subplots()
            ax.bar(["a", "b"], [1, 2])
            fig.savefig("bars.png")     # saved by the code: comes back once, as the file
            plt.figure()
            plt.plot([3, 2, 1])         # left open: captured at the end
            pd.DataFrame({"a": [1]}).to_csv("out.csv", index=False)
            import os
            os.makedirs("sub", exist_ok=True)
            open("sub/notes.txt", "w").write("n")
            """
        )
        names = [a.name for a in res.artifacts]
        assert names == ["figure-1.png", "figure-2.png", "bars.png", "out.csv", "sub/notes.txt"]
        by_name = {a.name: a for a in res.artifacts}
        for name in ("figure-1.png", "figure-2.png", "bars.png"):
            assert by_name[name].data.startswith(PNG_MAGIC)
            assert by_name[name].mime_type == "image/png"
        assert by_name["figure-1.png"].kind == "figure"
        assert by_name["bars.png"].kind == "file"
        assert by_name["out.csv"].mime_type == "text/csv"
        assert by_name["out.csv"].data == b"a\n1\n"

    def test_artifacts_survive_an_error(self) -> None:
        err = self.fail(
            ExecutionError, "open('partial.txt', 'w').write('p')\nraise ValueError('x')"
        )
        assert [a.name for a in err.artifacts] == ["partial.txt"]

    def test_symlinks_out_of_the_work_dir_are_not_returned(self) -> None:
        res = self.run(
            "import os\nos.symlink('/etc/passwd', 'pw')\nresult = 1",
            import_policy=ImportPolicy.allow_all(),
        )
        assert [a.name for a in res.artifacts] == []

    def test_artifact_budget_is_flagged(self) -> None:
        res = self.run(
            "for i in range(3):\n    open(f'f{i}.bin', 'wb').write(b'x' * 4000)",
            max_artifact_bytes=9000,
        )
        assert len(res.artifacts) == 2
        assert res.artifacts_truncated

    def test_exposed_files_are_readable_and_the_host_copy_is_safe(self, tmp_path: Path) -> None:
        host_file = tmp_path / "sales-2024.csv"
        host_file.write_text("region,amount\nn,1\ns,2\n")
        res = self.run(
            """
            import pandas as pd
            df = pd.read_csv("sales.csv")
            total = int(df["amount"].sum())
            try:
                open("sales.csv", "w").write("clobbered")
            except OSError:
                pass
            result = total
            """,
            files={"sales.csv": host_file},
        )
        assert res.result == 3
        assert host_file.read_text() == "region,amount\nn,1\ns,2\n"

    # -- environment -----------------------------------------------------------------

    def test_host_environment_is_not_visible(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("SANDBOX_TOOL_TEST_SECRET", "s3cret")
        res = self.run("import os\nresult = dict(os.environ)", env_vars={"GIVEN": "yes"})
        assert "SANDBOX_TOOL_TEST_SECRET" not in res.result
        assert "s3cret" not in json.dumps(res.result)
        assert res.result["GIVEN"] == "yes"

    # -- limits ----------------------------------------------------------------------

    def test_timeout_keeps_partial_output(self) -> None:
        # printed without flush=True: must not be lost in a buffer when the tree is killed
        err = self.fail(Timeout, "import time\nprint('started')\ntime.sleep(60)", timeout=1)
        assert err.stdout == "started\n"
        assert err.limit == 1
        assert "ExecutionOptions.timeout" in err.message

    def test_timeout_kills_grandchildren_and_setsid_children(self) -> None:
        if not self.can_fork:
            pytest.skip("this engine does not let the code fork")
        err = self.fail(
            Timeout,
            """
            import os, time
            for detach in (False, True):
                if os.fork() == 0:
                    if detach:
                        os.setsid()
                        if os.fork() > 0:
                            os._exit(0)         # the classic double fork
                    print(f"pid={os.getpid()}", flush=True)
                    time.sleep(120)
                    os._exit(0)
            time.sleep(120)
            """,
            timeout=1.5,
            import_policy=ImportPolicy.allow_all(),
            env_vars=(env := _marked()),
        )
        assert len(_pids_in(err.stdout)) == 2, "the descendants did not start"
        assert _survivors(env) == [], "a descendant survived the timeout"

    def test_daemonised_children_do_not_outlive_the_run(self) -> None:
        if not self.can_fork:
            pytest.skip("this engine does not let the code fork")
        res = self.run(
            """
            import os, time
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    print(f"pid={os.getpid()}", flush=True)
                    time.sleep(120)
                os._exit(0)
            time.sleep(0.3)
            result = "done"
            """,
            import_policy=ImportPolicy.allow_all(),
            env_vars=(env := _marked()),
        )
        assert res.result == "done"
        assert len(_pids_in(res.stdout)) == 1, "the daemon did not start"
        assert _survivors(env) == [], "the daemon outlived the run"

    def test_signals_ignored_do_not_stop_the_timeout(self) -> None:
        self.fail(
            Timeout,
            """
            import signal, time
            for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(s, signal.SIG_IGN)
            time.sleep(60)
            """,
            timeout=1,
            import_policy=ImportPolicy.allow_all(),
        )

    def test_cpu_limit(self) -> None:
        err = self.fail(CpuLimitExceeded, "while True:\n    pass", cpu_seconds=1, timeout=20)
        assert err.limit == 1
        assert "ExecutionOptions.cpu_seconds" in err.message

    @pytest.mark.parametrize(
        "code",
        [
            pytest.param("x = bytearray(2 * 1024**3)", id="plain"),
            pytest.param("import numpy as np\nx = np.ones(10**9)", id="numpy"),
            pytest.param(
                "chunks = []\nwhile True:\n    chunks.append(bytearray(10 * 1024**2))", id="gradual"
            ),
        ],
    )
    def test_memory_limit(self, code: str) -> None:
        err = self.fail(MemoryLimitExceeded, "print('before', flush=True)\n" + code, memory_mb=512)
        assert err.limit == 512
        assert err.stdout == "before\n"
        assert "ExecutionOptions.memory_mb" in err.message

    def test_next_execution_works_after_a_limit(self) -> None:
        self.fail(MemoryLimitExceeded, "x = bytearray(2 * 1024**3)", memory_mb=256)
        assert self.run("result = 'still fine'").result == "still fine"

    def test_output_flood_is_stopped(self) -> None:
        err = self.fail(
            OutputLimitExceeded, "while True:\n    print('flood' * 100)", max_output_bytes=10_000
        )
        assert err.limit == 10_000
        assert err.stdout.startswith("flood")
        assert "output truncated" in err.stdout
        assert len(err.stdout) < 10_000 + 200

    def test_process_limit(self) -> None:
        if not self.enforces_process_limit:
            pytest.skip("this engine cannot cap processes for the user running the tests")
        err = self.fail(
            ExecutionError,
            """
            import os, time
            kids = []
            for _ in range(200):
                pid = os.fork()
                if pid == 0:
                    time.sleep(30)
                    os._exit(0)
                kids.append(pid)
            """,
            max_processes=8,
            import_policy=ImportPolicy.allow_all(),
        )
        assert err.exception in {"BlockingIOError", "OSError", "PermissionError"}

    # -- concurrency and cancellation --------------------------------------------------

    def test_cancelling_kills_the_execution(self) -> None:
        async def cancel_midway() -> None:
            task = asyncio.ensure_future(
                self.sandbox.execute("import time\nprint('pid=0', flush=True)\ntime.sleep(60)")
            )
            await asyncio.sleep(1.0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(cancel_midway())  # no_leftovers checks that nothing survived
        assert self.run("result = 'next'").result == "next"

    # -- streaming --------------------------------------------------------------------

    def test_output_arrives_while_the_code_runs(self) -> None:
        events, record = recorder()
        res = asyncio.run(self.sandbox.execute(STREAMED, on_output=record))
        assert res.stdout == "first\nsecond\nno newline" and res.stderr == "to stderr\n"
        assert_streamed(events, res.stdout, res.stderr)

    def test_streamed_output_stops_at_the_output_limit(self) -> None:
        events: list[Output] = []
        with pytest.raises(OutputLimitExceeded) as info:
            asyncio.run(self.sandbox.execute(
                "while True:\n    print('flood' * 100)",
                options=ExecutionOptions(max_output_bytes=10_000), on_output=events.append,
            ))  # fmt: skip
        streamed = "".join(e.text for e in events)
        assert 0 < len(streamed.encode()) <= 10_000
        # the error's output is the same text, then the truncation marker
        assert info.value.stdout.startswith(streamed) and "truncated" in info.value.stdout

    def test_several_executions_at_once(self) -> None:
        async def many() -> list[ExecutionResult]:
            return await asyncio.gather(
                *(self.sandbox.execute(f"result = inputs * {i}", 3) for i in range(4))
            )

        results = asyncio.run(many())
        assert [r.result for r in results] == [0, 3, 6, 9]


class SessionContract:
    """Sessions: on a runner forked from the warm pool, or started cold for the session."""

    sandbox: PythonSandbox

    def cells(self, *codes: str, **session_options: Any) -> list[Any]:
        """Run ``codes`` as cells of one session; each outcome is a result or an error."""

        async def go() -> list[Any]:
            out: list[Any] = []
            async with self.sandbox.session(ExecutionOptions(**session_options)) as s:
                for code in codes:
                    try:
                        out.append(await s.execute(textwrap.dedent(code)))
                    except SandboxError as exc:
                        out.append(exc)
            return out

        return asyncio.run(go())

    def test_state_persists_across_cells(self) -> None:
        first, second, third = self.cells(
            "import pandas as pd\ndf = pd.DataFrame({'a': [1, 2, 3]})\ncount = 1",
            "count += 1\ndf['a'].sum()",
            "result = [count, len(df)]",
        )
        assert first.result is None
        assert second.result == 6
        assert third.result == [2, 3]

    def test_a_cell_returns_only_its_own_result(self) -> None:
        results = self.cells("result = 5", "x = 1", "x + 1")
        assert [r.result for r in results] == [5, None, 2]

    def test_an_exception_keeps_the_session(self) -> None:
        _ok, failed, after = self.cells("x = 41", "print('partial')\n1 / 0", "x + 1")
        assert isinstance(failed, ExecutionError) and failed.exception == "ZeroDivisionError"
        assert failed.stdout == "partial\n"
        assert after.result == 42

    def test_each_cell_has_its_own_output_and_artifacts(self) -> None:
        plot, note, quiet = self.cells(
            "import matplotlib.pyplot as plt\nprint('one')\nplt.plot([1, 2])",
            "print('two')\nopen('note.txt', 'w').write('n')",
            "pass",
        )
        assert plot.stdout == "one\n" and [a.name for a in plot.artifacts] == ["figure-1.png"]
        assert plot.artifacts[0].data.startswith(PNG_MAGIC)
        assert note.stdout == "two\n" and [a.name for a in note.artifacts] == ["note.txt"]
        assert quiet.stdout == "" and quiet.artifacts == []

    @pytest.mark.parametrize(
        ("code", "options", "error"),
        [
            pytest.param("import time\ntime.sleep(30)", {"timeout": 1}, Timeout, id="timeout"),
            pytest.param(
                "while True:\n    pass",
                {"cpu_seconds": 1, "timeout": 20},
                CpuLimitExceeded,
                id="cpu",
            ),
            pytest.param(
                "while True:\n    print('x' * 100)",
                {"max_output_bytes": 10_000},
                OutputLimitExceeded,
                id="output",
            ),
            pytest.param(
                "x = bytearray(2 * 1024**3)", {"memory_mb": 512}, MemoryLimitExceeded, id="memory"
            ),
        ],
    )
    def test_a_limit_ends_the_session(
        self, code: str, options: dict[str, Any], error: type[SandboxError]
    ) -> None:
        before, hit, after = self.cells("x = 1", code, "x", **options)
        assert before.result is None
        assert isinstance(hit, error), hit
        assert "state is lost" in hit.message
        assert isinstance(after, UsageError) and "ended" in after.message

    def test_a_cell_streams_its_output(self) -> None:
        events, record = recorder()

        async def go() -> ExecutionResult:
            async with self.sandbox.session() as s:
                await s.execute("x = 41")
                return await s.execute(STREAMED + "\nresult = x + 1", on_output=record)

        res = asyncio.run(go())
        assert res.result == 42
        assert_streamed(events, res.stdout, res.stderr)

    def test_sessions_are_isolated_from_each_other(self) -> None:
        async def go() -> Any:
            async with self.sandbox.session() as one, self.sandbox.session() as two:
                await one.execute("secret = 's1'\nopen('mine.txt', 'w').write('s1')")
                return await two.execute(
                    "import os\nresult = ['secret' in globals(), os.path.exists('mine.txt')]"
                )

        assert asyncio.run(go()).result == [False, False]

    def test_an_idle_session_expires(self) -> None:
        async def go() -> Any:
            async with self.sandbox.session(idle_timeout=0.5) as s:
                await s.execute("x = 1")
                await asyncio.sleep(1.5)
                with pytest.raises(UsageError, match="idle"):
                    await s.execute("x")

        asyncio.run(go())
