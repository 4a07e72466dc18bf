"""The error tree: every error serialises and comes back as the same type."""

from __future__ import annotations

import pytest

import sandbox_tool
from sandbox_tool import errors
from sandbox_tool.errors import SandboxError, error_from_dict

CASES = [
    errors.ExecutionError(
        "ValueError: x",
        exception="ValueError",
        traceback="tb",
        lineno=3,
        line="raise ValueError('x')",
    ),
    errors.ImportNotAllowed("no", module="socket", lineno=1),
    errors.BuiltinNotAllowed("no", name="eval", lineno=2),
    errors.Timeout("slow", limit=1.5),
    errors.CpuLimitExceeded("cpu", limit=2),
    errors.MemoryLimitExceeded("mem", limit=256, peak_memory_mb=250.0),
    errors.OutputLimitExceeded("out", limit=1024),
    errors.PackageNotAllowed("not on the list", package="evil"),
    errors.PackageNotFound("no such package", package="nope"),
    errors.PackageInstallFailed("no wheel", package="oldthing"),
    errors.EngineUnavailable("no kvm", engine="microsandbox"),
    errors.EngineError("broken"),
    errors.UsageError("bad"),
    errors.SessionsNotSupported("no sessions"),
]


@pytest.mark.parametrize("error", CASES, ids=lambda e: type(e).__name__)
def test_round_trip(error: SandboxError) -> None:
    back = error_from_dict(error.to_dict(), stdout="o", stderr="e")
    assert type(back) is type(error)
    assert back.to_dict() == error.to_dict()
    assert (back.stdout, back.stderr) == ("o", "e")


def test_every_public_error_is_mapped() -> None:
    public = {
        cls
        for name in errors.__all__
        if isinstance(cls := getattr(errors, name), type) and issubclass(cls, SandboxError)
    }
    abstract = {SandboxError, errors.ExecutionFailed, errors.PackageError}
    assert public - abstract == {type(e) for e in CASES}


def test_unknown_type_becomes_engine_error() -> None:
    assert type(error_from_dict({"type": "Nope", "message": "m"})) is errors.EngineError


def test_usage_error_is_a_value_error() -> None:
    assert issubclass(errors.UsageError, ValueError)


def test_exports() -> None:
    for name in sandbox_tool.__all__:
        assert hasattr(sandbox_tool, name), name
    for name in errors.__all__:
        if name != "error_from_dict":
            assert name in sandbox_tool.__all__
