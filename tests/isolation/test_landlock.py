"""Landlock on this kernel: each right is shown reachable without the ruleset, denied with it."""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox_tool.runner.layers import landlock

from .helpers import errno_of, in_child

SUPPORT = landlock.supported()
pytestmark = pytest.mark.skipif(not SUPPORT["available"], reason=str(SUPPORT["reason"]))
ABI = int(SUPPORT["abi"])

# what Python itself needs to keep running (lazy imports, the runner package)
INTERPRETER = sorted(
    {sys.prefix, sys.base_prefix, os.path.dirname(os.path.dirname(landlock.__file__))}
)


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "allowed").mkdir()
    (tmp_path / "allowed" / "inside.txt").write_text("inside")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "canary.txt").write_text("canary")
    return {"allowed": tmp_path / "allowed", "outside": tmp_path / "outside"}


def _spec(tree: dict[str, Path], **extra: Any) -> dict[str, Any]:
    return {
        "read_only": [*INTERPRETER, "/usr", "/lib", "/lib64"],
        "read_write": [str(tree["allowed"])],
        "devices": ["/dev/null"],
        **extra,
    }


def test_abi_is_detected() -> None:
    assert landlock.abi_version() == ABI >= 1
    assert "landlock ABI" in str(SUPPORT["reason"])


def test_file_access_outside_the_rules_is_denied(tree: dict[str, Path]) -> None:
    canary = tree["outside"] / "canary.txt"
    inside = tree["allowed"] / "inside.txt"

    def attempts() -> dict[str, int]:
        return {
            "read_canary": errno_of(canary.read_text),
            "write_outside": errno_of(lambda: (tree["outside"] / "new").write_text("x")),
            "list_outside": errno_of(lambda: os.listdir(tree["outside"])),
            "read_inside": errno_of(inside.read_text),
            "write_inside": errno_of(lambda: (tree["allowed"] / "new").write_text("x")),
            "rename_inside": errno_of(
                lambda: os.rename(tree["allowed"] / "new", tree["allowed"] / "new2")
            ),
            "dev_null": errno_of(lambda: open(os.devnull, "w").close()),
        }

    def sandboxed() -> dict[str, Any]:
        report = landlock.apply(_spec(tree))
        return {"errors": attempts(), "report": report}

    assert set(in_child(attempts).unwrap().values()) == {0}  # all work without landlock
    out = in_child(sandboxed).unwrap()
    assert out["errors"] == {
        "read_canary": errno.EACCES,
        "write_outside": errno.EACCES,
        "list_outside": errno.EACCES,
        "read_inside": 0,
        "write_inside": 0,
        "rename_inside": 0,
        "dev_null": 0,
    }
    assert out["report"]["abi"] == ABI
    assert out["report"]["missing_paths"] == []


def test_executing_programs_is_denied(tree: dict[str, Path]) -> None:
    def run_true() -> int:
        pid = os.fork()
        if pid == 0:  # pragma: no cover
            try:
                os.execv("/bin/true", ["true"])
            except OSError as exc:
                os._exit(100 + (exc.errno or 0))
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])

    assert in_child(run_true).unwrap() == 0
    assert in_child(lambda: (landlock.apply(_spec(tree)), run_true())[1]).unwrap() == (
        100 + errno.EACCES
    )


@pytest.fixture
def tcp_listener() -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


@pytest.mark.skipif(ABI < 4, reason="TCP rights need landlock ABI 4")
def test_tcp_connect_and_bind_are_denied(tree: dict[str, Path], tcp_listener: int) -> None:
    def attempts() -> dict[str, int]:
        def connect() -> None:
            with socket.create_connection(("127.0.0.1", tcp_listener), timeout=2):
                pass

        def bind() -> None:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))

        return {"connect": errno_of(connect), "bind": errno_of(bind)}

    assert in_child(attempts).unwrap() == {"connect": 0, "bind": 0}
    denied = in_child(lambda: (landlock.apply(_spec(tree)), attempts())[1]).unwrap()
    assert denied == {"connect": errno.EACCES, "bind": errno.EACCES}
    allowed = in_child(
        lambda: (landlock.apply(_spec(tree, connect_tcp_ports=[tcp_listener])), attempts())[1]
    ).unwrap()
    assert allowed == {"connect": 0, "bind": errno.EACCES}


@pytest.mark.skipif(ABI < 6, reason="scopes need landlock ABI 6")
def test_signals_and_abstract_sockets_are_scoped(tree: dict[str, Path]) -> None:
    name = f"\0sandbox-tool-test-{uuid.uuid4().hex}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(name)
    server.listen(8)
    host_pid = os.getpid()  # a process outside the child's landlock domain

    def attempts() -> dict[str, int]:
        def connect() -> None:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(name)

        return {"signal": errno_of(lambda: os.kill(host_pid, 0)), "abstract": errno_of(connect)}

    try:
        assert in_child(attempts).unwrap() == {"signal": 0, "abstract": 0}
        scoped = in_child(lambda: (landlock.apply(_spec(tree)), attempts())[1]).unwrap()
        assert scoped == {"signal": errno.EPERM, "abstract": errno.EPERM}
    finally:
        server.close()


@pytest.mark.parametrize("max_abi", [1, 3, 4, 5, 6, ABI], ids=lambda v: f"abi{v}")
def test_only_rights_the_abi_knows_are_requested(tree: dict[str, Path], max_abi: int) -> None:
    report = in_child(lambda: landlock.apply(_spec(tree, max_abi=max_abi))).unwrap()
    abi = min(max_abi, ABI)
    assert report["abi"] == abi
    assert ("refer" in report["handled_fs"]) == (abi >= 2)
    assert ("truncate" in report["handled_fs"]) == (abi >= 3)
    assert ("ioctl_dev" in report["handled_fs"]) == (abi >= 5)
    assert report["handled_net"] == (["bind_tcp", "connect_tcp"] if abi >= 4 else [])
    assert report["scoped"] == (["abstract_unix_socket", "signal"] if abi >= 6 else [])
    assert ("scope_signal" in report["unsupported_by_abi"]) == (abi < 6)
    assert "execute" not in {r for rule in report["rules"] for r in rule["access"]}


def test_missing_paths_are_reported_or_refused(tree: dict[str, Path]) -> None:
    spec = _spec(tree)
    spec["read_only"] = [*spec["read_only"], "/no/such/dir"]
    assert in_child(lambda: landlock.apply(spec)).unwrap()["missing_paths"] == ["/no/such/dir"]
    strict = in_child(lambda: landlock.apply({**spec, "strict": True}))
    assert strict.error is not None and "/no/such/dir" in strict.error


def test_unavailable_landlock_names_the_cause(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoLandlock:
        def __init__(self, err: int) -> None:
            self.err = err

        def syscall(self, *args: Any) -> int:
            ctypes.set_errno(self.err)
            return -1

    for err, words in ((errno.ENOSYS, "built without landlock"), (errno.EOPNOTSUPP, "lsm=")):
        monkeypatch.setattr(landlock, "_libc", lambda err=err: NoLandlock(err))
        with pytest.raises(landlock.LandlockUnavailable, match=words):
            landlock.abi_version()
        assert landlock.supported()["available"] is False
