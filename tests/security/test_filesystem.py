"""Escapes through the file system: reading and writing host files outside the work dir."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .harness import FS_DENIED, FS_WRITE_DENIED, Side, assert_refused

READ_FILE = """
import os
path = inputs["path"]
if inputs.get("via_symlink"):
    stage("symlink")
    os.symlink(path, "link-to-target")
    path = "link-to-target"
stage("open")
with open(path, "rb") as f:
    stage("read")
    data = f.read()
if inputs.get("echo"):
    print(data.decode(errors="replace"))    # what an exfiltrating snippet would do
import hashlib
return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
"""


@dataclass(frozen=True)
class ReadCase:
    target: str  # key of the canary fixture, or an absolute path
    secret: str | None  # key of the canary fixture whose text must not leak
    prefix: str = ""  # "proc-root": through /proc/<test pid>/root
    via_symlink: bool = False
    echo: bool = True
    root_only: bool = False


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(ReadCase("path", "content"), id="canary-outside-work-dir"),
        pytest.param(ReadCase("ssh_key", "ssh_content"), id="home-ssh-private-key"),
        pytest.param(
            ReadCase("path", "content", via_symlink=True), id="canary-via-symlink-in-work-dir"
        ),
        pytest.param(
            ReadCase("path", "content", prefix="proc-root"), id="canary-via-proc-pid-root"
        ),
        # echo=False: the host's shadow file must not end up in the test log
        pytest.param(ReadCase("/etc/shadow", None, echo=False, root_only=True), id="etc-shadow"),
    ],
)
def test_read_host_file(side: Side, canary: dict[str, str], case: ReadCase) -> None:
    path = case.target if case.target.startswith("/") else canary[case.target]
    if case.prefix == "proc-root":
        # the test process's view of the host's root: a classic way around a chroot
        path = f"/proc/{os.getpid()}/root{path}"
    if side.is_baseline and case.root_only and os.geteuid() != 0:
        pytest.skip(
            f"/etc/shadow is readable by root only; as uid {os.geteuid()} the unsandboxed "
            "baseline cannot read it either, so it cannot show the attack"
        )
    inputs = {"path": path, "via_symlink": case.via_symlink, "echo": case.echo}
    outcome = side.attack(READ_FILE, inputs)
    secret = canary[case.secret] if case.secret else None
    if side.is_baseline:
        assert outcome.value["sha256"] == _sha256(path), "the baseline read something else"
        if secret:
            assert secret in outcome.stdout
        return
    assert_refused(outcome.report, FS_DENIED, stages={"open"})
    if secret:
        outcome.assert_no_leak(secret)


LIST_DIR = """
import os
stage("listdir")
return sorted(os.listdir(inputs["dir"]))
"""


def test_list_host_directory(side: Side, canary: dict[str, str]) -> None:
    outcome = side.attack(LIST_DIR, {"dir": canary["dir"]})
    if side.is_baseline:
        assert outcome.value == ["secret.txt"]
        return
    assert_refused(outcome.report, FS_DENIED)
    outcome.assert_no_leak("secret.txt")


WRITE_FILE = """
import os
path = inputs["path"]
if inputs.get("via_symlink"):
    stage("symlink")
    os.symlink(path, "link-to-target")
    path = "link-to-target"
stage("open")
with open(path, "a") as f:
    stage("write")
    f.write(inputs["token"])
return path
"""


@pytest.mark.parametrize(
    ("where", "via_symlink"),
    [
        pytest.param("outside", False, id="world-writable-dir-outside-work-dir"),
        pytest.param("outside", True, id="via-symlink-in-work-dir"),
        pytest.param("proc-root", False, id="via-proc-pid-root"),
        pytest.param("home", False, id="home-bashrc"),
    ],
)
def test_write_host_file(
    side: Side,
    outside_dir: Path,
    canary: dict[str, str],
    where: str,
    via_symlink: bool,
) -> None:
    home = where == "home"
    target = Path(canary["home"]) / ".bashrc" if home else outside_dir / "planted.txt"
    path = f"/proc/{os.getpid()}/root{target}" if where == "proc-root" else str(target)
    planted = f"echo pwned-{os.urandom(4).hex()}\n"
    outcome = side.attack(WRITE_FILE, {"path": path, "via_symlink": via_symlink, "token": planted})
    if side.is_baseline:
        outcome.value  # noqa: B018 - fails the test if the write was refused
        assert target.read_text() == planted
        return
    assert_refused(outcome.report, FS_WRITE_DENIED, stages={"open"})
    assert not target.exists(), f"the sandbox wrote {target} on the host"


# -- filling the disk -------------------------------------------------------------------

FILL = """
import os, tempfile
where = inputs["where"]
base = "." if where == "work" else tempfile.gettempdir()
chunk = b"x" * (1024 * 1024)
written = 0
files = 0
try:
    while written < inputs["target_mb"]:
        stage("open")
        with open(os.path.join(base, f"fill-{files}.bin"), "wb", buffering=0) as f:
            files += 1
            for _ in range(inputs["file_mb"]):
                if written >= inputs["target_mb"]:
                    break
                stage("write")
                f.write(chunk)
                written += 1
except OSError as exc:
    return {"written_mb": written, "files": files, "error": refusal(exc)}
return {"written_mb": written, "files": files, "error": None}
"""

#: per-file and total caps in the sandbox run, and how much the attack tries to write
MAX_FILE_MB = 16
MAX_DISK_MB = 16
TARGET_MB = 64


@pytest.mark.parametrize(
    ("where", "file_mb", "baseline_overrides"),
    [
        # the native engine applies RLIMIT_FSIZE too: the baseline lifts it to show the
        # attack itself works
        pytest.param("work", TARGET_MB, {"max_file_mb": 1024}, id="one-file-in-work-dir"),
        pytest.param("tmp", TARGET_MB, {"max_file_mb": 1024}, id="one-file-in-temp-dir"),
        # files each under max_file_mb: RLIMIT_FSIZE alone does not bound the total, so the
        # baseline shows it with the very same options
        pytest.param("work", 8, None, id="many-files-in-work-dir"),
        pytest.param("tmp", 8, None, id="many-files-in-temp-dir"),
    ],
)
def test_fill_the_disk(
    side: Side, where: str, file_mb: int, baseline_overrides: dict[str, Any] | None
) -> None:
    outcome = side.attack(
        FILL,
        {"where": where, "target_mb": TARGET_MB, "file_mb": file_mb},
        max_file_mb=MAX_FILE_MB,
        max_disk_mb=MAX_DISK_MB,
        baseline_overrides=baseline_overrides,
    )
    report = outcome.value
    if side.is_baseline:
        assert report == {"written_mb": TARGET_MB, "files": report["files"], "error": None}
        return
    # at most max_file_mb per file and max_disk_mb in all (the process engine keeps the
    # writable dirs in a tmpfs of that size, off the host's disk)
    assert report["error"] is not None, f"the sandbox let {TARGET_MB} MiB through: {report}"
    assert report["written_mb"] <= MAX_FILE_MB, report
    # EFBIG: RLIMIT_FSIZE; ENOSPC/EDQUOT: a size-capped file system or quota
    assert_refused(report["error"], {"EFBIG", "ENOSPC", "EDQUOT"}, stages={"write"})
