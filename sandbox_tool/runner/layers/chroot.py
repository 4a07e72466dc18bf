"""A runner's own root inside a gVisor sandbox, built from the process engine's plan.

runsc 2022 (Debian's ``0.0~20221219``) has no ``pivot_root``, cannot remount a bind
read-only, and leaks the mounts made after ``unshare(CLONE_NEWNS)`` into the namespace
it came from (where they stay, broken, once it is gone). So a runner's root is built in
the sandbox's one mount namespace, under a directory only the sandbox's root can reach
(``/.sbx/<runner>``, a tmpfs of the sandbox's own), and entered with ``chroot``:

- ``root``: a small tmpfs (``mode=0555``, the sandbox's root's: the worker, a uid of its
  own without capabilities, cannot write there) holding the plan's ``/etc`` files
  (read-only), mount points, and binds of the plan's paths: the read-only ones (the
  interpreter, the runner, ``/usr``, which the sandbox mounted read-only from the
  host), the device files, and the execution's dirs;
- ``scratch``: the execution's work, meta and temp dirs are directories of ONE tmpfs of
  ``max_disk_mb`` (:mod:`.scratch`): work and meta are copied in, exposed files are bound
  read-only over placeholders, and new or changed files are copied back to the host
  dirs once the runner's processes are dead.

``/proc`` is mounted by the runner's pid 1, so that it shows the runner's own pid
namespace, and read-only: no ``/proc/sys`` setting of the whole sandbox can change.
:func:`teardown` unmounts everything under the runner's directory, deepest first,
whatever state a killed runner left it in.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

from ..syscalls import libc, mount
from . import scratch
from .plan import Plan

__all__ = ["build", "mount_proc", "teardown"]

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND = 1, 2, 4, 8, 4096
#: The dirs made on the way to a bind (``/root`` on the way to the interpreter's prefix):
#: passed through, never listed (the process engine's landlock rules have the same effect).
_PASSAGE = 0o111


def build(
    plan: dict[str, Any], top: str, owner: tuple[int, int] | None = None
) -> tuple[str, scratch.Scratch | None, dict[str, Any]]:
    """Build the root of ``plan`` under ``top`` (created here), its scratch dirs owned by
    ``owner`` (uid, gid); return the root's path, its scratch dirs (for the copy-out), and
    a report of what was mounted."""
    p = Plan(plan)
    os.mkdir(top, 0o700)
    root = os.path.join(top, "root")
    os.mkdir(root, 0o555)
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0555,size=1m")
    dirs = None
    report: dict[str, Any] = {"ro": [], "rw": [], "dev": [], "link": [], "scratch": []}
    if p.scratch is not None:
        dirs = scratch.Scratch(p.scratch, owner)
        report["disk"] = dirs.setup("", os.path.join(top, "scratch"), _mount_without_inodes)
    for path, text in p.files.items():
        target = root + path
        _passage(os.path.dirname(target))
        with open(target, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(target, 0o444)
    for src, dst, kind in p.mounts:
        target = root + dst
        _passage(os.path.dirname(target))
        if kind == "link":
            if not os.path.lexists(target):
                os.symlink(src, target)
            report[kind].append(dst)
            continue
        source = dirs.source(src) if kind == "scratch" and dirs is not None else src
        if os.path.isdir(source):
            os.makedirs(target, mode=0o555, exist_ok=True)
        elif not os.path.exists(target):
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT, 0o444))
        # read-only sources stay read-only: the sandbox mounted them so from the host
        mount(source, target, None, MS_BIND)
        report[kind].append(dst)
    for name, link in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                       ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):  # fmt: skip
        if os.path.isdir(root + "/dev") and not os.path.lexists(f"{root}/dev/{name}"):
            os.symlink(link, f"{root}/dev/{name}")
    os.makedirs(root + "/proc", mode=0o555, exist_ok=True)
    return root, dirs, report


def _passage(path: str) -> None:
    """Make ``path`` and its missing parents, each traversable only (os.makedirs gives
    intermediate directories the default mode)."""
    if os.path.isdir(path):
        return
    _passage(os.path.dirname(path))
    os.mkdir(path, _PASSAGE)
    os.chmod(path, _PASSAGE)  # whatever the umask


def _mount_without_inodes(
    src: str | None, dst: str, fstype: str | None, flags: int, data: str | None = None
) -> None:
    """runsc 2022's tmpfs refuses ``nr_inodes`` (EINVAL): its size alone bounds it."""
    options = [o for o in (data or "").split(",") if o and not o.startswith("nr_inodes=")]
    mount(src, dst, fstype, flags, ",".join(options) or None)


def mount_proc(root: str) -> None:
    """In the runner's pid 1: its own ``/proc``, read-only."""
    mount("proc", root + "/proc", "proc", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)


def teardown(top: str) -> list[str]:
    """Unmount everything under ``top``, deepest first, and remove it; what could not be
    undone (a mount still busy), for the log."""
    prefix = top.rstrip("/") + "/"
    with open("/proc/self/mounts", encoding="utf-8", errors="replace") as f:
        points = [line.split()[1] for line in f if len(line.split()) > 1]
    points = [p.replace("\\040", " ") for p in points if p.startswith(prefix)]
    left = []
    for point in sorted(set(points), key=lambda p: -p.count("/")):
        if libc().umount2(os.fsencode(point), 0) != 0:
            left.append(f"{point}: {os.strerror(ctypes.get_errno())}")
    if not left:
        _remove_tree(top)
    return left


def _remove_tree(top: str) -> None:
    """Remove what is left of ``top`` (mount points and placeholders, all unmounted)."""
    for dirpath, dirnames, filenames in os.walk(top, topdown=False):
        for name in filenames:
            try:
                os.unlink(os.path.join(dirpath, name))
            except OSError:
                pass
        for name in dirnames:
            path = os.path.join(dirpath, name)
            try:
                if os.path.islink(path):
                    os.unlink(path)
                else:
                    os.rmdir(path)
            except OSError:
                pass
    try:
        os.rmdir(top)
    except OSError:
        pass
