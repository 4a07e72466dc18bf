"""ExecutionOptions and the policies: validation and semantics."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from sandbox_tool import BuiltinsPolicy, ExecutionOptions, ImportPolicy, PythonSandbox, UsageError
from sandbox_tool.engines.fake import FakeEngine
from sandbox_tool.result import ExecutionResult


@pytest.mark.parametrize(
    ("fields", "field_name"),
    [
        pytest.param({"memory_mb": 10}, "memory_mb", id="memory-too-small"),
        pytest.param({"timeout": 0}, "timeout", id="timeout-zero"),
        pytest.param({"cpu_seconds": -1}, "cpu_seconds", id="cpu-negative"),
        pytest.param({"max_output_bytes": 10}, "max_output_bytes", id="output-too-small"),
        pytest.param({"max_processes": 0}, "max_processes", id="no-processes"),
        pytest.param({"env_vars": {"1BAD": "x"}}, "env_vars", id="env-bad-name"),
        pytest.param({"env_vars": {"PATH": "/x"}}, "env_vars", id="env-reserved"),
        pytest.param({"env_vars": {"A": "x\0y"}}, "env_vars", id="env-nul"),
        pytest.param({"env_vars": {"LD_PRELOAD": "/tmp/x.so"}}, "LD_PRELOAD", id="env-loader"),
        pytest.param({"files": {"../x": Path("/etc/hostname")}}, "files", id="file-name-escapes"),
        pytest.param({"files": {"x.csv": Path("/no/such/file")}}, "files", id="file-missing"),
        pytest.param({"unknown": 1}, "unknown", id="unknown-field"),
    ],
)
def test_invalid_options_name_the_field(fields: dict[str, Any], field_name: str) -> None:
    with pytest.raises(ValidationError) as info:
        ExecutionOptions(**fields)
    assert field_name in str(info.value)


def test_defaults_suit_a_data_snippet() -> None:
    opts = ExecutionOptions()
    assert opts.memory_mb >= 512 and opts.timeout >= 10 and not opts.network
    assert not opts.import_policy.allows("subprocess")
    assert "eval" in opts.builtins_policy.deny and opts.builtins_policy.restrict_open


def test_cpu_limit_rounds_up() -> None:
    assert ExecutionOptions(cpu_seconds=1.2).cpu_limit_seconds == 2
    assert ExecutionOptions(cpu_seconds=0.1).cpu_limit_seconds == 1


@pytest.mark.parametrize(
    ("policy", "module", "allowed"),
    [
        (ImportPolicy.default(), "subprocess", False),
        (ImportPolicy.default(), "multiprocessing.pool", False),
        (ImportPolicy.default(), "urllib.request", False),
        (ImportPolicy.default(), "urllib.parse", True),
        (ImportPolicy.default(), "numpy", True),
        (ImportPolicy.data_science_whitelist(), "pandas.io.json", True),
        (ImportPolicy.data_science_whitelist(), "os", False),
        (ImportPolicy.data_science_whitelist(), "os.path", True),
        (ImportPolicy.whitelist({"json"}), "json", True),
        (ImportPolicy.whitelist({"json"}), "csv", False),
        (ImportPolicy.blacklist({"json"}), "json.decoder", False),
        (ImportPolicy.allow_all(), "ctypes", True),
        (ImportPolicy(unlisted="allow", deny={"os"}, allow={"os.path"}), "os.path", True),
        (ImportPolicy(unlisted="allow", deny={"os"}, allow={"os.path"}), "os", False),
        (ImportPolicy(allow={"x"}, deny={"x"}), "x", False),
    ],
)
def test_import_policy_most_specific_rule_wins(
    policy: ImportPolicy, module: str, allowed: bool
) -> None:
    assert policy.allows(module) is allowed


def test_import_policy_edits() -> None:
    policy = ImportPolicy.default().with_allowed(["socket"]).with_denied(["json"])
    assert policy.allows("socket") and not policy.allows("json")
    assert "json" in policy.describe()


@pytest.mark.parametrize("bad", ["numpy", ["not a module!"], [""]])
def test_import_policy_rejects_bad_names(bad: Any) -> None:
    with pytest.raises(ValidationError):
        ImportPolicy(allow=bad)


def test_builtins_policy_validation() -> None:
    with pytest.raises(ValidationError, match="not builtins"):
        BuiltinsPolicy(deny={"no_such_builtin"})
    with pytest.raises(ValidationError, match="ImportPolicy"):
        BuiltinsPolicy(deny={"__import__"})
    assert BuiltinsPolicy.allow_all().deny == frozenset()


def _fake_sandbox() -> PythonSandbox:
    return PythonSandbox(
        engine=FakeEngine(lambda code, inputs, opts: ExecutionResult(result=inputs))
    )


@pytest.mark.parametrize(
    ("code", "inputs", "options", "match"),
    [
        pytest.param(b"x", None, None, "code must be a str", id="bytes-code"),
        pytest.param("x\0", None, None, "NUL", id="nul-in-code"),
        pytest.param("x", {1, 2}, None, "JSON", id="set-inputs"),
        pytest.param("x", float("nan"), None, "JSON", id="nan-inputs"),
        pytest.param("x", None, {"timeout": -1}, "timeout", id="dict-options"),
    ],
)
def test_caller_mistakes_are_usage_errors(code: Any, inputs: Any, options: Any, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        _fake_sandbox().execute_sync(code, inputs, options)


def test_unknown_engine_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown engine 'nope'"):
        PythonSandbox(engine="nope")


def test_options_as_dict_are_validated() -> None:
    engine = FakeEngine(lambda code, inputs, opts: ExecutionResult(result=opts.timeout))
    assert PythonSandbox(engine=engine).execute_sync("x", None, {"timeout": 5}).result == 5.0


@pytest.mark.parametrize(
    ("name", "why"),
    [
        pytest.param("LD_PRELOAD", "dynamic loader", id="ld-preload"),
        pytest.param("LD_LIBRARY_PATH", "dynamic loader", id="ld-library-path"),
        pytest.param("LD_AUDIT", "dynamic loader", id="ld-audit"),
        pytest.param("GLIBC_TUNABLES", "dynamic loader", id="glibc-tunables"),
        pytest.param("PYTHONPATH", "interpreter", id="pythonpath"),
        pytest.param("PYTHONHOME", "interpreter", id="pythonhome"),
        pytest.param("PYTHONSTARTUP", "interpreter", id="pythonstartup"),
        pytest.param("PYTHONINSPECT", "interpreter", id="pythoninspect"),
        pytest.param("PYTHONSAFEPATH", "interpreter", id="pythonsafepath"),
        pytest.param("PYTHONUSERBASE", "interpreter", id="pythonuserbase"),
        pytest.param("PYTHONEXECUTABLE", "interpreter", id="pythonexecutable"),
        pytest.param("PYTHONNOUSERSITE", "interpreter", id="pythonnousersite"),
        pytest.param("PYTHONWARNINGS", "interpreter", id="pythonwarnings"),
        pytest.param("PYTHONBREAKPOINT", "interpreter", id="pythonbreakpoint"),
        pytest.param("HOME", "set by the engine", id="home"),
        pytest.param("TMPDIR", "set by the engine", id="tmpdir"),
        pytest.param("MPLCONFIGDIR", "set by the engine", id="mplconfigdir"),
        pytest.param("MPLBACKEND", "set by the engine", id="mplbackend"),
        pytest.param("OPENBLAS_NUM_THREADS", "set by the engine", id="blas-threads"),
        pytest.param("OMP_NUM_THREADS", "set by the engine", id="omp-threads"),
        pytest.param("XDG_CACHE_HOME", "set by the engine", id="xdg-cache"),
    ],
)
def test_reserved_env_vars_are_refused_naming_variable_and_reason(name: str, why: str) -> None:
    with pytest.raises(ValidationError) as info:
        ExecutionOptions(env_vars={name: "x"})
    assert name in str(info.value) and why in str(info.value)
    with pytest.raises(UsageError, match=name):
        _fake_sandbox().execute_sync("x", None, {"env_vars": {name: "x"}})


@pytest.mark.parametrize("name", ["MY_LD_FLAG", "LANGUAGE_HINT", "API_TOKEN", "TZ"])
def test_ordinary_env_vars_are_accepted(name: str) -> None:
    assert ExecutionOptions(env_vars={name: "x"}).env_vars == {name: "x"}


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(Path("/proc/self/environ"), id="proc-environ"),
        pytest.param(Path("/proc/cmdline"), id="proc-cmdline"),
        pytest.param(Path("/sys/kernel/mm/transparent_hugepage/enabled"), id="sys"),
    ],
)
def test_files_under_kernel_dirs_are_refused_naming_the_remedy(path: Path) -> None:
    if not path.is_file():
        pytest.skip(f"{path} does not exist here")
    with pytest.raises(ValidationError, match="allow_special_files"):
        ExecutionOptions(files={"x.txt": path})
    assert ExecutionOptions(files={"x.txt": path}, allow_special_files=True).files


def test_a_symlink_into_proc_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "innocent.csv"
    link.symlink_to("/proc/self/environ")
    with pytest.raises(ValidationError, match="through symlinks, /proc/"):
        ExecutionOptions(files={"data.csv": link})


def test_special_files_are_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ValidationError, match="not a regular file"):
        ExecutionOptions(files={"data.csv": fifo}, allow_special_files=True)
    with pytest.raises(ValidationError, match="not a regular file"):
        ExecutionOptions(files={"data.csv": Path("/dev/null")}, allow_special_files=True)


def test_regular_files_and_symlinks_to_them_are_accepted(tmp_path: Path) -> None:
    data = tmp_path / "sales.csv"
    data.write_text("a,b\n1,2\n")
    link = tmp_path / "link.csv"
    link.symlink_to(data)
    opts = ExecutionOptions(files={"sales.csv": data, "link.csv": link})
    assert set(opts.files) == {"sales.csv", "link.csv"}
