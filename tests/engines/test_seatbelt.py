"""The macOS Seatbelt profile, checked as generated (no macOS host runs these tests)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from sandbox_tool import ExecutionOptions
from sandbox_tool.engines import process
from sandbox_tool.engines.isolation import seatbelt
from sandbox_tool.engines.isolation.seatbelt import SYSTEM_READ_ONLY, sbpl_string, seatbelt_profile
from sandbox_tool.engines.native import NativeEngine
from sandbox_tool.engines.runners.workspace import Workspace


def _forms(profile: str) -> list[str]:
    """Top-level s-expressions, checking that parentheses and strings are balanced."""
    forms, depth, start, in_string, escaped = [], 0, 0, False, False
    for i, ch in enumerate(profile):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "(":
            if depth == 0:
                start = i
            depth += 1
        elif ch == ")":
            depth -= 1
            assert depth >= 0, "unbalanced parenthesis"
            if depth == 0:
                forms.append(profile[start : i + 1])
    assert depth == 0 and not in_string
    return forms


def _profile(**kwargs: object) -> str:
    args: dict[str, object] = {
        "read_only": ["/opt/py"], "read_write": ["/work/w", "/work/t"],
        "executables": ["/opt/py/bin/python3"],
    }  # fmt: skip
    args.update(kwargs)
    return seatbelt_profile(**args)  # type: ignore[arg-type]


def test_denies_by_default_then_allows_exactly_the_given_trees() -> None:
    forms = _forms(_profile())
    assert forms[:2] == ["(version 1)", "(deny default)"]
    [rw] = [f for f in forms if "file-write*" in f]
    assert re.findall(r'\(subpath "([^"]*)"\)', rw) == sorted(
        [os.path.realpath("/work/t"), os.path.realpath("/work/w")]
    )
    [ro] = [f for f in forms if f.startswith("(allow file-read* (subpath")]
    for path in (*SYSTEM_READ_ONLY, "/opt/py"):
        assert sbpl_string(os.path.realpath(path)) in ro
    assert not any("(allow default)" in f or f == "(allow file-write*)" for f in forms)


def test_only_the_interpreter_may_be_executed() -> None:
    [exe] = [f for f in _forms(_profile()) if "process-exec" in f]
    assert exe == f"(allow process-exec (literal {sbpl_string('/opt/py/bin/python3')}))"


@pytest.mark.parametrize("network", [False, True])
def test_network_follows_the_option(network: bool) -> None:
    forms = _forms(_profile(network=network))
    assert ("(deny network*)" in forms) is not network
    assert ("(allow network-outbound)" in forms) is network


def test_signals_stay_inside_the_sandbox() -> None:
    assert "(allow signal (target same-sandbox))" in _forms(_profile())


@pytest.mark.parametrize(
    ("raw", "literal"),
    [('a"b', '"a\\"b"'), ("a\\b", '"a\\\\b"'), ("é ü", '"é ü"')],
)
def test_strings_are_escaped(raw: str, literal: str) -> None:
    assert sbpl_string(raw) == literal
    _forms(_profile(read_write=[f"/w/{raw}"]))


@pytest.mark.parametrize("bad", ["a\nb", "a\0b"])
def test_unrepresentable_paths_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not representable"):
        sbpl_string(bad)


def test_process_engine_uses_the_profile_on_macos(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # the macOS branch, exercised on this host with the platform switched
    monkeypatch.setattr(process.sys, "platform", "darwin")
    monkeypatch.setattr(
        seatbelt.Seatbelt, "_interpreter_prefixes", lambda self, python: ["/opt/py"]
    )
    engine = process.ProcessEngine(work_root=tmp_path)
    ws = Workspace.create(tmp_path, {}, None)
    try:
        options = ExecutionOptions()
        argv = engine._runner_argv(ws, options)
        assert argv[:2] == [seatbelt.SANDBOX_EXEC, "-p"]
        assert sbpl_string(os.path.realpath(ws.work)) in argv[2]
        assert argv[3:] == NativeEngine(engine.interpreter)._runner_argv(ws, options)
        assert engine._setup(ws, engine.isolation.pool_key(options))["isolation"] is None
        assert not engine.warm  # a profile names its dirs: no template to fork from
        assert any("untested on real macOS" in n for n in engine.degraded(options))
    finally:
        ws.cleanup()
