"""The sandbox's private root: a read-only tmpfs holding only the plan's paths.

Pid 1 builds it (:func:`build_root`) in a new mount namespace: it stages the new root on
a tmpfs over ``/tmp``, binds the plan's read-only and read-write paths and devices into
it, writes its files, mounts ``/proc``, and pivots into it, so that nothing else of the
host's file system stays reachable.
"""

from __future__ import annotations

import os
from typing import Any

from ..syscalls import check, mount, syscall, umount, unshare
from . import scratch
from .plan import Plan
from .seccomp import native_arch
from .timing import timed

__all__ = ["build_root", "chown_tree", "remount"]

CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = 32, 1024, 2048, 4096, 16384
MS_PRIVATE, MS_RELATIME = 1 << 18, 1 << 21
_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}


def pivot_root(new: str, old: str) -> None:
    nr = _PIVOT_ROOT[native_arch()]
    check(syscall(nr, os.fsencode(new), os.fsencode(old)), f"pivot_root({new!r})")


def build_root(p: Plan, timings: dict[str, float]) -> tuple[dict[str, Any], scratch.Scratch | None]:
    """P: a private mount namespace whose root is a tmpfs holding only the plan's paths.

    Also returns the scratch dirs' state (with fds on the tmpfs and the host
    copy_out dirs, opened before the host's root is gone), if the plan has them.
    """
    unshare(CLONE_NEWNS, "CLONE_NEWNS")
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    # Stage on a tmpfs over /tmp: after the first pivot_root the old root stays
    # reachable at /oldroot, so sources anywhere (even under /tmp) can be bound.
    mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=65536")
    os.mkdir("/tmp/oldroot")
    os.mkdir("/tmp/newroot")
    pivot_root("/tmp", "/tmp/oldroot")
    os.chdir("/")
    mount("tmpfs", "/newroot", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
    for path, text in p.files.items():  # before the binds: never written through one
        target = "/newroot" + path
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        with open(target, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(target, 0o644)
    os.makedirs("/newroot/dev", mode=0o755, exist_ok=True)
    mount("tmpfs", "/newroot/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k")
    scratch_dirs = scratch_report = None
    if p.scratch is not None:
        with timed(timings, "scratch"):
            owner = (p.host_uid, p.host_gid) if p.root_mode and p.chown_rw else None
            scratch_dirs = scratch.Scratch(p.scratch, owner)
            scratch_report = scratch_dirs.setup("/oldroot", "/scratch", mount)
    done: dict[str, list[str]] = {"ro": [], "rw": [], "dev": [], "link": [], "scratch": []}
    for src, dst, kind in p.mounts:
        target = "/newroot" + dst
        if kind == "link":
            os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
            if not os.path.lexists(target):
                os.symlink(src, target)
            done[kind].append(dst)
            continue
        if kind == "scratch":
            assert scratch_dirs is not None
            source = scratch_dirs.source(src)
        else:
            source = "/oldroot" + src
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        if os.path.isdir(source):
            os.makedirs(target, mode=0o755, exist_ok=True)
        elif not os.path.exists(target):
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT, 0o644))
        mount(source, target, None, MS_BIND)
        extra = {
            "ro": MS_RDONLY | MS_NODEV,
            "rw": MS_NODEV | MS_NOEXEC,
            "scratch": MS_NODEV | MS_NOEXEC,
            "dev": MS_NOEXEC,
        }[kind]
        remount(target, MS_NOSUID | extra)
        done[kind].append(dst)
    for name, link in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                       ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):  # fmt: skip
        os.symlink(link, f"/newroot/dev/{name}")
    remount("/newroot/dev", MS_NOSUID | MS_NOEXEC | MS_RDONLY)
    os.makedirs("/newroot/proc", mode=0o555, exist_ok=True)
    mount("proc", "/newroot/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    remount("/newroot", MS_NOSUID | MS_NODEV | MS_RDONLY)
    umount("/oldroot")
    os.chdir("/newroot")
    pivot_root(".", ".")  # the old (staging) root now sits on top of the new one
    umount(".")
    os.chdir("/")
    report = {
        "root": "tmpfs (read-only)",
        "ro": done["ro"],
        "rw": done["rw"],
        "devices": done["dev"],
        "symlinks": done["link"],
        "files": sorted(p.files),
        "proc": True,
        "skipped": p.skipped,
    }
    if scratch_report is not None:
        report["scratch"] = {**scratch_report, "mounted_at": done["scratch"]}
    return report, scratch_dirs


def remount(target: str, flags: int) -> None:
    """Remount a bind with ``flags`` added, keeping the flags the source has.

    Inside a user namespace the kernel refuses to clear flags locked by the
    source mount (nosuid, nodev, noexec, ro, atime), so carry them over.
    """
    st = os.statvfs(target).f_flag
    for st_flag, ms_flag in (
        (os.ST_RDONLY, MS_RDONLY), (os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV),
        (os.ST_NOEXEC, MS_NOEXEC), (os.ST_NOATIME, MS_NOATIME),
        (os.ST_NODIRATIME, MS_NODIRATIME), (os.ST_RELATIME, MS_RELATIME),
    ):  # fmt: skip
        if st & st_flag:
            flags |= ms_flag
    mount(None, target, None, MS_REMOUNT | MS_BIND | flags)


def chown_tree(top: str, uid: int, gid: int) -> None:
    os.lchown(top, uid, gid)
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, gid)
