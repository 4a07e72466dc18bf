"""The SDK double cannot drift from the real SDK: every class, method, parameter and enum
value the engine uses has the same name, kind and default in both (the real one read from
the installed SDK: its runtime signatures, and its stub file where a native method
declares only ``**kwargs``)."""

from __future__ import annotations

import ast
import enum
import importlib.util
import inspect
from pathlib import Path
from typing import Any

import pytest

from . import sdk_double

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("microsandbox") is None,
    reason="the microsandbox SDK is not installed (it is in the dev extra)",
)

#: (class, method) pairs the engine calls, in the native module (compared with its stub).
NATIVE = [
    ("Sandbox", "create"),
    ("Sandbox", "get"),
    ("Sandbox", "list_with"),
    ("Sandbox", "remove"),
    ("Sandbox", "exec"),
    ("Sandbox", "exec_stream"),
    ("Sandbox", "kill"),
    ("SandboxHandle", "connect"),
    ("SandboxFsOps", "write"),
    ("ExecHandle", "take_stdin"),
    ("ExecHandle", "recv"),
    ("ExecHandle", "kill"),
    ("ExecHandle", "signal"),
    ("ExecSink", "write"),
    ("Volume", "tmpfs"),
    ("Image", "bind"),
    ("Image", "disk"),
]
#: Pure-Python factories (compared with their runtime signatures).
PYTHON = [("Network", "none"), ("Network", "from_profiles"), ("Stdin", "pipe")]
#: Properties and attributes the engine reads.
ATTRIBUTES = [
    ("SandboxHandle", "status"),
    ("SandboxHandle", "name"),
    ("SandboxPage", "sandboxes"),
    ("SandboxPage", "next_cursor"),
    ("ExecOutput", "exit_code"),
    ("ExecOutput", "stdout_text"),
    ("ExecOutput", "stderr_text"),
    ("Sandbox", "fs"),
]
ENUMS = ["ExecEventType", "SandboxStatus", "PullPolicy", "NetworkProfile"]


def _real() -> Any:
    import microsandbox

    return microsandbox


def _stub_signatures() -> dict[tuple[str, str], list[tuple[str, str, str | None]]]:
    """(class, method) -> [(parameter, kind, default source)] from the SDK's stub file."""
    import microsandbox

    stub = Path(microsandbox.__file__).parent / "_microsandbox.pyi"
    tree = ast.parse(stub.read_text())
    found = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        for item in node.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found[(node.name, item.name)] = _from_ast(item.args)
    return found


def _from_ast(args: ast.arguments) -> list[tuple[str, str, str | None]]:
    params: list[tuple[str, str, str | None]] = []
    positional = args.posonlyargs + args.args
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    for arg, default in zip(positional, defaults, strict=True):
        params.append((arg.arg, "positional", None if default is None else ast.unparse(default)))
    if args.vararg:
        params.append((args.vararg.arg, "*args", None))
    for arg, kw_default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        params.append((arg.arg, "keyword", None if kw_default is None else ast.unparse(kw_default)))
    if args.kwarg:
        params.append((args.kwarg.arg, "**kwargs", None))
    return params


_KINDS = {
    inspect.Parameter.POSITIONAL_ONLY: "positional",
    inspect.Parameter.POSITIONAL_OR_KEYWORD: "positional",
    inspect.Parameter.VAR_POSITIONAL: "*args",
    inspect.Parameter.KEYWORD_ONLY: "keyword",
    inspect.Parameter.VAR_KEYWORD: "**kwargs",
}


def _from_runtime(func: Any) -> list[tuple[str, str, str | None]]:
    params = []
    for param in inspect.signature(func).parameters.values():
        default = None if param.default is inspect.Parameter.empty else repr(param.default)
        params.append((param.name, _KINDS[param.kind], default))
    return params


@pytest.mark.parametrize(("cls", "method"), NATIVE, ids=[f"{c}.{m}" for c, m in NATIVE])
def test_native_methods_match_the_stub(cls: str, method: str) -> None:
    real = _stub_signatures()[(cls, method)]
    double = _from_runtime(getattr(getattr(sdk_double, cls), method))
    assert double == real


@pytest.mark.parametrize(("cls", "method"), NATIVE, ids=[f"{c}.{m}" for c, m in NATIVE])
def test_the_stub_matches_the_native_module(cls: str, method: str) -> None:
    """The stub is the SDK's word for the native module: the parameters the native method
    names itself are the stub's (where it declares only ``**kwargs`` beyond them, the
    stub's are keyword-only)."""
    runtime = _from_runtime(getattr(getattr(_real(), cls), method))
    stub = _stub_signatures()[(cls, method)]
    if runtime[-1][1] == "**kwargs":
        named = [p[0] for p in runtime[:-1]]
        assert named == [p[0] for p in stub if p[1] == "positional"]
        assert all(p[1] == "keyword" for p in stub[len(named) :])
    else:
        assert [p[0] for p in runtime] == [p[0] for p in stub]


@pytest.mark.parametrize(("cls", "method"), PYTHON, ids=[f"{c}.{m}" for c, m in PYTHON])
def test_python_factories_match(cls: str, method: str) -> None:
    real = getattr(getattr(_real(), cls), method)
    double = getattr(getattr(sdk_double, cls), method)
    assert _from_runtime(double) == _from_runtime(real)


@pytest.mark.parametrize(("cls", "name"), ATTRIBUTES, ids=[f"{c}.{n}" for c, n in ATTRIBUTES])
def test_attributes_exist_in_both(cls: str, name: str) -> None:
    assert hasattr(getattr(_real(), cls), name)
    double = getattr(sdk_double, cls)
    assert hasattr(double, name) or name in getattr(double, "__dataclass_fields__", {})


@pytest.mark.parametrize("name", ENUMS)
def test_enum_values_match(name: str) -> None:
    real: type[enum.Enum] = getattr(_real(), name)
    double: type[enum.Enum] = getattr(sdk_double, name)
    assert {m.name: m.value for m in double} == {m.name: m.value for m in real}


def test_error_classes_exist_with_the_same_base() -> None:
    real = _real()
    doubles = [
        c
        for c in vars(sdk_double).values()
        if inspect.isclass(c) and issubclass(c, sdk_double.MicrosandboxError)
    ]
    for cls in doubles:
        counterpart = getattr(real, cls.__name__)
        assert issubclass(counterpart, real.MicrosandboxError)
        assert counterpart.code == cls.code


def test_the_exec_event_has_the_fields_the_relay_reads() -> None:
    stub = (Path(_real().__file__).parent / "_microsandbox.pyi").read_text()
    event = ast.parse(stub).body
    fields = next(
        [
            t.target.id
            for t in c.body
            if isinstance(t, ast.AnnAssign) and isinstance(t.target, ast.Name)
        ]
        for c in event
        if isinstance(c, ast.ClassDef) and c.name == "ExecEvent"
    )
    assert {"event_type", "data", "code"} <= set(fields)
    assert {"event_type", "data", "code"} <= set(sdk_double.ExecEvent.__dataclass_fields__)
