"""Scratch dirs: one size-capped tmpfs inside the sandbox, copied back to the host at the end."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import resource
import select
import signal
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from sandbox_tool.runner.layers import namespaces, scratch
from sandbox_tool.runner.layers.probe import probe

from .helpers import errno_of, sandboxed

PROBE = probe()
pytestmark = pytest.mark.skipif(not PROBE["available"], reason=str(PROBE["reason"]))

KIB, MIB = 1024, 1024 * 1024


def scratch_plan(d: dict[str, str], size_mb: int = 8, **kw: Any) -> dict[str, Any]:
    return namespaces.default_plan(d["work"], d["tmp"], d["meta"], scratch_mb=size_mb, **kw)


def summary(d: dict[str, str]) -> dict[str, Any]:
    with open(os.path.join(d["meta"], scratch.SUMMARY_NAME)) as f:
        result: dict[str, Any] = json.load(f)
    return result


def disk_usage(top: str) -> int:
    total = 0
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


def write(path: str, data: bytes | str, mtime_ns: int | None = None) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def tree(top: str) -> list[str]:
    return sorted(
        os.path.relpath(os.path.join(root, n), top)
        for root, dirs, files in os.walk(top)
        for n in dirs + files
    )


def test_writes_past_size_mb_fail_with_enospc_and_the_host_disk_stays_bounded(
    exec_dirs: dict[str, str],
) -> None:
    d = exec_dirs
    plan = scratch_plan(d, size_mb=4, copy_out_max_bytes=1 * MIB)
    before = disk_usage(os.path.dirname(d["work"]))

    def fill() -> dict[str, Any]:
        resource.setrlimit(resource.RLIMIT_FSIZE, (128 * KIB, 128 * KIB))  # as the worker does
        written, n, chunk = 0, 0, b"x" * (64 * KIB)
        dirs = [d["work"], d["tmp"], "/tmp", d["meta"]]
        try:
            while written < 64 * MIB:
                with open(os.path.join(dirs[n % 4], f"f{n:05}"), "wb") as f:
                    f.write(chunk)
                written, n = written + len(chunk), n + 1
        except OSError as exc:
            return {"errno": exc.errno, "written": written}
        return {"errno": None, "written": written}

    out = sandboxed(plan, fill).unwrap()["out"]
    assert out["errno"] == errno.ENOSPC
    assert 3 * MIB <= out["written"] <= 4 * MIB
    assert disk_usage(os.path.dirname(d["work"])) - before <= 1 * MIB + 256 * KIB
    s = summary(d)
    assert s["reason"] == "max_bytes" and s["bytes"] <= 1 * MIB and s["copied"] == 16
    assert os.listdir(d["tmp"]) == []  # tmp is never copied out

    def many_empty_files() -> dict[str, Any]:
        n = 0
        try:
            while n < 100_000:
                os.close(os.open(f"e{n}", os.O_CREAT | os.O_WRONLY, 0o644))
                n += 1
        except OSError as exc:
            return {"errno": exc.errno, "created": n}
        return {"errno": None, "created": n}

    plan = scratch_plan(d, size_mb=4, copy_out_max_files=50)
    out = sandboxed(plan, many_empty_files).unwrap()["out"]
    assert out["errno"] == errno.ENOSPC and out["created"] < scratch.MIN_INODES
    assert summary(d)["reason"] == "max_files"
    assert len(os.listdir(d["work"])) <= 16 + 50


def test_files_come_back_intact_and_unchanged_baseline_files_are_not_rewritten(
    exec_dirs: dict[str, str],
) -> None:
    d = exec_dirs
    old = 1_600_000_000_123_456_789
    write(d["work"] + "/keep.txt", "keep", old)
    write(d["work"] + "/change.txt", "before", old)
    write(d["work"] + "/sub/nested.bin", b"\0" * 1000, old)
    write(d["meta"] + "/mplconfig/fontlist.json", '{"fonts": []}', old)
    keep_ino = os.stat(d["work"] + "/keep.txt").st_ino
    payload = os.urandom(300 * KIB)

    def body() -> dict[str, Any]:
        seen = {
            name: [read(path).decode(errors="replace")[:20], os.stat(path).st_mtime_ns]
            for name, path in (("keep", d["work"] + "/keep.txt"),
                               ("mpl", d["meta"] + "/mplconfig/fontlist.json"))
        }  # fmt: skip
        owners = {os.stat(p).st_uid for p in (d["work"], d["meta"], d["tmp"], "/tmp")}
        write(d["work"] + "/change.txt", "after")
        write(d["work"] + "/out.bin", payload)
        write(d["work"] + "/deep/a/b/c.txt", "deep")
        write(d["meta"] + "/figures/1.png", b"\x89PNG")
        return {"seen": seen, "owners": sorted(owners), "cwd": os.getcwd()}

    out = sandboxed(scratch_plan(d), body).unwrap()
    inside = out["out"]
    assert inside["seen"] == {"keep": ["keep", old], "mpl": ['{"fonts": []}', old]}
    assert inside["owners"] == [1000] and inside["cwd"] == d["work"]
    assert out["report"]["mounts"]["scratch"]["copy_in"] == {"files": 4, "bytes": 1023}
    assert read(d["work"] + "/change.txt") == b"after"
    assert read(d["work"] + "/out.bin") == payload
    assert read(d["work"] + "/deep/a/b/c.txt") == b"deep"
    assert read(d["meta"] + "/figures/1.png") == b"\x89PNG"
    keep = os.stat(d["work"] + "/keep.txt")
    assert (keep.st_ino, keep.st_mtime_ns) == (keep_ino, old)
    s = summary(d)
    assert (s["copied"], s["bytes"], s["skipped"], s["reason"], s["stopped"]) == (
        4, 300 * KIB + 5 + 4 + 4, 0, None, False,
    )  # fmt: skip
    assert s["unchanged"] == 3
    assert not [n for n in tree(d["work"]) if n.startswith(scratch.PARTIAL_PREFIX)]


def test_symlinks_are_never_followed_on_copy_out(
    exec_dirs: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    d = exec_dirs
    outside = tmp_path_factory.mktemp("host")
    canary = outside / "canary.txt"
    canary.write_text("host secret")
    canary_dir = outside / "dir"
    canary_dir.mkdir()
    canary_stat = canary.stat()
    # host-side symlinks in the work dir (not copied in): copy-out must not write through them
    os.symlink(canary_dir, d["work"] + "/outdir")
    os.symlink(canary, d["work"] + "/hostlink")

    def plant() -> dict[str, Any]:
        work = d["work"]
        os.symlink(str(canary), work + "/link.txt")
        os.symlink(str(canary_dir), work + "/linkdir")
        os.symlink("/proc/1/root", work + "/pid1root")
        os.symlink("/proc/1/fd", work + "/pid1fds")
        os.mkdir(work + "/outdir")  # the host has a symlink of that name
        write(work + "/outdir/evil.txt", "evil")
        write(work + "/hostlink", "regular")  # replaces the host symlink, not its target
        return {"canary": errno_of(canary.read_text), "listing": sorted(os.listdir(work))}

    inside = sandboxed(scratch_plan(d), plant).unwrap()["out"]
    assert inside["canary"] == errno.ENOENT
    assert "outdir" in inside["listing"] and "hostlink" in inside["listing"]
    assert canary.read_text() == "host secret"
    assert canary.stat().st_mtime_ns == canary_stat.st_mtime_ns
    assert os.listdir(canary_dir) == []
    assert sorted(os.listdir(outside)) == ["canary.txt", "dir"]
    work = d["work"]
    for name in ("link.txt", "linkdir", "pid1root", "pid1fds"):
        assert not os.path.lexists(os.path.join(work, name)), name
    assert os.path.islink(work + "/outdir")
    hostlink = os.lstat(work + "/hostlink")
    assert stat.S_ISREG(hostlink.st_mode) and read(work + "/hostlink") == b"regular"
    s = summary(d)
    assert s["copied"] == 1 and s["skipped"] == 5 and s["reason"] is None


def test_fifos_and_files_swapped_for_dirs_do_not_hang_the_copy_out(
    exec_dirs: dict[str, str],
) -> None:
    d = exec_dirs
    write(d["work"] + "/a.csv", "a,b\n1,2\n")
    write(d["work"] + "/b.csv", "b\n")
    write(d["work"] + "/sub/c.csv", "c\n")
    write(d["work"] + "/d2/x.txt", "x\n")

    def swap() -> str:
        work = d["work"]
        for name in ("a.csv", "sub/c.csv"):
            os.unlink(os.path.join(work, name))
            os.mkfifo(os.path.join(work, name))
        os.unlink(work + "/b.csv")
        write(work + "/b.csv/inner.txt", "inner")
        os.unlink(work + "/d2/x.txt")
        os.rmdir(work + "/d2")
        write(work + "/d2", "a file where the host has a directory")
        write(work + "/new.txt", "new")
        import socket

        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(work + "/sock")
        return "swapped"

    started = time.monotonic()
    outcome = sandboxed(scratch_plan(d), swap, timeout=15)
    assert outcome.unwrap()["out"] == "swapped" and outcome.exit_code == 0
    assert time.monotonic() - started < 5
    assert read(d["work"] + "/a.csv") == b"a,b\n1,2\n"  # the baseline stays
    assert read(d["work"] + "/b.csv") == b"b\n"
    assert read(d["work"] + "/new.txt") == b"new"
    assert not os.path.lexists(d["work"] + "/sock")
    assert read(d["work"] + "/d2/x.txt") == b"x\n"
    s = summary(d)
    assert s["copied"] == 1 and s["skipped"] == 5 and s["reason"] is None
    assert s["elapsed_ms"] < 500


def test_ro_files_are_read_only_and_do_not_count_toward_size_mb(
    exec_dirs: dict[str, str],
) -> None:
    d = exec_dirs
    data = os.urandom(6 * MIB)
    big = d["work"] + "/input.bin"
    write(big, data)
    os.chmod(big, 0o444)
    host = os.stat(big)
    digest = hashlib.sha256(data).hexdigest()

    def use() -> dict[str, Any]:
        def append() -> None:
            with open(big, "ab") as f:
                f.write(b"x")

        result = {
            "sha": hashlib.sha256(read(big)).hexdigest(),
            "write": errno_of(append),
            "chmod": errno_of(lambda: os.chmod(big, 0o644)),
            "unlink": errno_of(lambda: os.unlink(big)),
            "rename": errno_of(lambda: os.rename(big, d["work"] + "/moved.bin")),
        }
        write(d["work"] + "/three.bin", b"y" * (3 * MIB))  # fits: input.bin is not in the tmpfs
        result["wrote"] = os.path.getsize(d["work"] + "/three.bin")
        return result

    out = sandboxed(scratch_plan(d, size_mb=4, ro_files=(big,)), use).unwrap()
    inside = out["out"]
    assert inside["sha"] == digest and inside["wrote"] == 3 * MIB
    assert inside["write"] in (errno.EROFS, errno.EACCES)
    assert inside["chmod"] in (errno.EROFS, errno.EPERM)
    assert inside["unlink"] == errno.EBUSY and inside["rename"] == errno.EBUSY
    assert out["report"]["mounts"]["scratch"]["ro_files"] == [big]
    after = os.stat(big)
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (
        host.st_ino, host.st_mtime_ns, host.st_size,
    )  # fmt: skip
    assert summary(d)["copied"] == 1 and read(d["work"] + "/three.bin") == b"y" * (3 * MIB)


@pytest.mark.parametrize(
    ("limits", "reason", "copied"),
    [
        pytest.param({"copy_out_max_files": 3}, "max_files", 3, id="files"),
        pytest.param({"copy_out_max_bytes": 150 * KIB}, "max_bytes", 2, id="bytes"),
    ],
)
def test_copy_out_budget_is_enforced_and_reported(
    exec_dirs: dict[str, str], limits: dict[str, int], reason: str, copied: int
) -> None:
    d = exec_dirs

    def many() -> int:
        for n in range(10):
            write(f"{d['work']}/f{n}.bin", b"z" * (60 * KIB))
        return 10

    sandboxed(scratch_plan(d, **limits), many).unwrap()
    s = summary(d)
    assert (s["reason"], s["copied"], s["skipped"]) == (reason, copied, 1)
    assert len([n for n in os.listdir(d["work"]) if n.endswith(".bin")]) == copied


def _start_sleeper(plan: dict[str, Any], work: str) -> tuple[int, int]:
    """Fork W; inside, ignore SIGTERM, write a file, say ready, sleep. Returns (pid, ready fd)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.close(r)
            namespaces.enter_sandbox(plan)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # stopping needs no cooperation
            write(work + "/before-stop.txt", "saved")
            if os.fork() == 0:  # a grandchild in its own session
                os.setsid()
                time.sleep(30)
                os._exit(0)
            os.write(w, b"ready")
            time.sleep(30)
        finally:
            os._exit(1)
    os.close(w)
    return pid, r


def test_sigterm_stops_the_sandbox_and_still_copies_out(exec_dirs: dict[str, str]) -> None:
    d = exec_dirs
    pid, r = _start_sleeper(scratch_plan(d), d["work"])
    try:
        assert select.select([r], [], [], 10)[0] and os.read(r, 5) == b"ready"
        started = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
        elapsed = time.monotonic() - started
    finally:
        os.close(r)
    assert elapsed < 1.0
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert read(d["work"] + "/before-stop.txt") == b"saved"
    s = summary(d)
    assert s["stopped"] is True and s["copied"] == 1 and s["reason"] is None


def test_copy_out_stops_when_its_time_is_up(exec_dirs: dict[str, str]) -> None:
    d = exec_dirs
    plan = scratch_plan(d, size_mb=64)
    plan["scratch"]["copy_out_seconds"] = 0.0

    def body() -> None:
        write(d["work"] + "/big.bin", b"b" * (16 * MIB))

    sandboxed(plan, body).unwrap()
    s = summary(d)
    assert s["reason"] == "time" and s["copied"] == 0
    assert os.listdir(d["work"]) == []


def _burn_cpu() -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (1, 2))
    while True:
        pass


@pytest.mark.parametrize(
    ("end", "sig"),
    [
        pytest.param(lambda: os.kill(os.getpid(), signal.SIGKILL), signal.SIGKILL, id="sigkill"),
        pytest.param(_burn_cpu, signal.SIGXCPU, id="rlimit-cpu"),
        pytest.param(lambda: os._exit(3), None, id="exit"),
    ],
)
def test_every_normal_end_copies_out(exec_dirs: dict[str, str], end: Any, sig: int | None) -> None:
    d = exec_dirs

    def body() -> None:
        write(d["work"] + "/result.txt", "done")
        end()

    outcome = sandboxed(scratch_plan(d), body)
    assert outcome.signal == sig and (sig is not None or outcome.exit_code == 3)
    assert read(d["work"] + "/result.txt") == b"done"
    assert summary(d)["stopped"] is False


def test_host_dir_fds_do_not_reach_the_sandbox(exec_dirs: dict[str, str]) -> None:
    d = exec_dirs
    host = {(os.stat(d[n]).st_dev, os.stat(d[n]).st_ino) for n in ("work", "meta", "tmp")}

    def fds() -> list[list[int]]:
        out = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                st = os.fstat(int(fd))
            except OSError:
                continue
            out.append([st.st_dev, st.st_ino])
        return out

    inside = sandboxed(scratch_plan(d), fds).unwrap()["out"]
    assert inside and not [fd for fd in inside if tuple(fd) in host]


def test_tmp_is_shared_with_slash_tmp_and_not_copied_out(exec_dirs: dict[str, str]) -> None:
    d = exec_dirs
    write(d["tmp"] + "/host-only.txt", "not copied in")

    def body() -> dict[str, Any]:
        write("/tmp/via-slash-tmp.txt", "x")
        return {
            "tmp": sorted(os.listdir(d["tmp"])),
            "same": os.path.samefile("/tmp", d["tmp"]),
            "exec": errno_of(lambda: os.execv(d["tmp"] + "/via-slash-tmp.txt", ["x"])),
        }

    out = sandboxed(scratch_plan(d), body).unwrap()["out"]
    assert "via-slash-tmp.txt" in out["tmp"] and "host-only.txt" not in out["tmp"]
    assert out["same"] and out["exec"] in (errno.EACCES, errno.EPERM)
    assert os.listdir(d["tmp"]) == ["host-only.txt"]


def test_scratch_setup_errors_name_the_problem(exec_dirs: dict[str, str]) -> None:
    d = exec_dirs
    write(d["work"] + "/big.bin", b"b" * (2 * MIB))
    too_small = sandboxed(scratch_plan(d, size_mb=1), lambda: 0)
    assert too_small.error and "size_mb too small" in too_small.error
    bad = scratch_plan(d)
    bad["scratch"]["copy_out"] = ["/usr"]
    outcome = sandboxed(bad, lambda: 0)
    assert outcome.error and "scratch: copy_out entry /usr is not one of dirs" in outcome.error
    outside = sandboxed(scratch_plan(d, ro_files=("/etc/hostname",)), lambda: 0)
    assert outside.error and "not inside a copy_in dir" in outside.error


def test_without_scratch_the_dirs_are_host_binds(exec_dirs: dict[str, str]) -> None:
    d = exec_dirs
    plan = namespaces.default_plan(d["work"], d["tmp"], d["meta"])
    assert "scratch" not in plan

    def body() -> None:
        write(d["work"] + "/direct.txt", "direct")  # straight to the host dir

    out = sandboxed(plan, body).unwrap()
    assert "scratch" not in out["report"]["mounts"]
    assert read(d["work"] + "/direct.txt") == b"direct"
    assert not os.path.exists(os.path.join(d["meta"], scratch.SUMMARY_NAME))


def test_data_stack_with_scratch_dirs(exec_dirs: dict[str, str]) -> None:
    d = exec_dirs
    Path(d["meta"], "mpl").mkdir()
    plan = scratch_plan(d, size_mb=64, nproc=16)

    def body() -> float:
        os.environ["MPLCONFIGDIR"] = os.path.join(d["meta"], "mpl")
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        plt.plot([1, 2, 3], [3, 1, 2])
        plt.savefig(os.path.join(d["work"], "plot.png"))
        return 1.0

    assert sandboxed(plan, body, timeout=60).unwrap()["out"] == 1.0
    assert read(d["work"] + "/plot.png")[:8] == b"\x89PNG\r\n\x1a\n"
