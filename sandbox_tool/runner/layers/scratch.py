"""A size-capped tmpfs for a sandbox's writable dirs, and the copy back to the host.

Stdlib only. Used by :mod:`.namespaces` when a plan has a ``"scratch"`` key:
instead of binding host directories read-write (where code can fill the host's
disk with many files, each under ``RLIMIT_FSIZE``), pid 1 (P) mounts ONE tmpfs
with ``size=`` and ``nr_inodes=`` caps, gives every scratch dir a directory in
it, copies the ``copy_in`` dirs' host content in (the baseline), binds the
``ro_files`` read-only over empty placeholders, and, once every sandbox process
is dead, copies the files created or changed since the baseline back to the
``copy_out`` host dirs, within a byte, file and time budget.

Trust: the tmpfs is written by the sandbox and is hostile (symlinks to host
paths, FIFOs, files swapped for directories, deep trees); the host dirs are
not. Copy-out therefore reads only regular files (``lstat``, then ``open`` with
``O_NOFOLLOW | O_NONBLOCK`` and an ``fstat`` check), never follows a symlink on
either side, and writes on the host only through directory fds opened before
the sandbox's root replaced the host's (``*at`` calls, one path component at a
time, ``O_NOFOLLOW`` everywhere). A file is written under a temporary name
(:data:`PARTIAL_PREFIX`) and renamed into place, which replaces a host file or
symlink of that name instead of writing through it.

The summary, written last into the first ``copy_out`` dir as
:data:`SUMMARY_NAME`::

    {"copied": int, "bytes": int, "skipped": int, "unchanged": int,
     "reason": null | "max_bytes" | "max_files" | "time" | "error: ...",
     "stopped": bool, "elapsed_ms": float}
"""

from __future__ import annotations

import errno
import json
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .copyout import (
    CREATE_FLAGS,
    DIR_FLAGS,
    HOST_DIR_FLAGS,
    MAX_DEPTH,
    PARTIAL_PREFIX,
    READ_FLAGS,
    CopyOut,
    HostDir,
    Stop,
    copy_bytes,
    write_file,
)

__all__ = [
    "COPY_OUT_SECONDS",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_FILES",
    "PARTIAL_PREFIX",
    "SUMMARY_NAME",
    "Scratch",
    "ScratchSpec",
]

SUMMARY_NAME = ".scratch.json"
COPY_OUT_SECONDS = 1.0
"""Copy-out stops after this long (the host waits ~2 s after SIGTERM, then kills)."""
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_FILES = 1000
INODES_PER_MB = 64
MIN_INODES = 4096

Mount = Callable[[str | None, str, str | None, int, str | None], None]
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8


def _real_under(path: str, top: str) -> str | None:
    """``path`` relative to the real directory ``top`` (without resolving its last part)."""
    path = os.path.normpath(path)
    real = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
    rel = os.path.relpath(real, top)
    return None if rel == "." or rel.startswith("..") else rel


@dataclass(frozen=True)
class ScratchSpec:
    """The validated ``"scratch"`` plan key (built in W, before any namespace)."""

    size_mb: int
    nr_inodes: int
    dirs: tuple[str, ...]
    """Real host paths; index ``i`` is the tmpfs directory ``str(i)``."""
    destinations: tuple[str, ...]
    """Where each dir is mounted inside (the path as given, normalised)."""
    copy_in: frozenset[int]
    copy_out: tuple[int, ...]
    ro_files: tuple[tuple[int, str, str], ...]
    """(dir index, path relative to the dir, real host path)."""
    max_bytes: int
    max_files: int
    seconds: float

    @classmethod
    def parse(cls, raw: Any) -> ScratchSpec:
        """Validate the plan's ``"scratch"`` value; ValueError names the problem."""
        if not isinstance(raw, dict):
            raise ValueError("must be a dict")
        size_mb = int(raw.get("size_mb") or 0)
        if size_mb < 1:
            raise ValueError("size_mb must be a positive number of MiB")
        nr_inodes = int(raw.get("nr_inodes") or max(MIN_INODES, size_mb * INODES_PER_MB))
        given = [str(d) for d in raw.get("dirs") or ()]
        dests: list[str] = []
        reals: list[str] = []
        for path in given:
            if not os.path.isabs(path):
                raise ValueError(f"dirs must be absolute: {path}")
            real = os.path.realpath(path)
            if not os.path.isdir(real):
                raise ValueError(f"{path} is not a directory")
            if real in reals:
                continue
            reals.append(real)
            dests.append(os.path.normpath(path))
        for a in reals:
            for b in reals:
                if a != b and (b + "/").startswith(a.rstrip("/") + "/"):
                    raise ValueError(f"dirs must not nest: {b} is inside {a}")

        def indexes(key: str) -> list[int]:
            out = []
            for path in raw.get(key) or ():
                real = os.path.realpath(str(path))
                if real not in reals:
                    raise ValueError(f"{key} entry {path} is not one of dirs")
                if reals.index(real) not in out:
                    out.append(reals.index(real))
            return out

        copy_in = indexes("copy_in")
        copy_out = indexes("copy_out")
        ro: list[tuple[int, str, str]] = []
        for path in raw.get("ro_files") or ():
            path = str(path)
            if not os.path.isabs(path):
                raise ValueError(f"ro_files must be absolute: {path}")
            found = [(i, rel) for i in copy_in if (rel := _real_under(path, reals[i]))]
            if not found:
                raise ValueError(f"ro_file {path} is not inside a copy_in dir")
            i, rel = found[0]
            ro.append((i, rel, os.path.realpath(path)))
        return cls(
            size_mb=size_mb,
            nr_inodes=nr_inodes,
            dirs=tuple(reals),
            destinations=tuple(dests),
            copy_in=frozenset(copy_in),
            copy_out=tuple(copy_out),
            ro_files=tuple(ro),
            max_bytes=int(raw.get("copy_out_max_bytes", DEFAULT_MAX_BYTES)),
            max_files=int(raw.get("copy_out_max_files", DEFAULT_MAX_FILES)),
            seconds=float(raw.get("copy_out_seconds", COPY_OUT_SECONDS)),
        )

    def index(self, real: str) -> int | None:
        return self.dirs.index(real) if real in self.dirs else None

    def ro_rel(self, i: int) -> frozenset[str]:
        return frozenset(rel for j, rel, _ in self.ro_files if j == i)


class Scratch:
    """P's side: set up the tmpfs (before pivot_root), copy out (after the sandbox)."""

    def __init__(self, spec: ScratchSpec, owner: tuple[int, int] | None) -> None:
        self.spec = spec
        self.owner = owner  # root mode: (host_uid, host_gid) for what is copied in
        self.staging = ""
        self.root_fd = -1
        self.host_fds: dict[int, int] = {}  # copy_out index -> O_PATH fd of the host dir
        self.baseline: dict[int, dict[str, tuple[int, int]]] = {}

    # ------------------------------------------------------------------ set-up (P)

    def source(self, real: str) -> str:
        """Where the tmpfs directory of the scratch dir ``real`` is, before the last pivot."""
        i = self.spec.index(real)
        assert i is not None
        return f"{self.staging}/{i}"

    def setup(self, oldroot: str, staging: str, mount: Mount) -> dict[str, Any]:
        """Mount the tmpfs at ``staging``, fill it; host paths are reached under ``oldroot``."""
        spec = self.spec
        os.mkdir(staging, 0o755)
        mount("tmpfs", staging, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              f"mode=0755,size={spec.size_mb}m,nr_inodes={spec.nr_inodes}")  # fmt: skip
        self.staging = staging
        self.root_fd = os.open(staging, DIR_FLAGS)
        files = size = 0
        for i, real in enumerate(spec.dirs):
            host = oldroot + real
            st = os.stat(host, follow_symlinks=False)
            os.mkdir(str(i), 0o700, dir_fd=self.root_fd)
            top = os.open(str(i), DIR_FLAGS, dir_fd=self.root_fd)
            try:
                if i in spec.copy_in:
                    src = os.open(host, DIR_FLAGS)
                    try:
                        base: dict[str, tuple[int, int]] = {}
                        self._copy_in(src, top, "", 0, base, spec.ro_rel(i))
                    except OSError as exc:
                        hint = " (size_mb too small)" if exc.errno == errno.ENOSPC else ""
                        raise OSError(
                            exc.errno, f"scratch: copying {real} in: {exc.strerror}{hint}"
                        ) from exc
                    finally:
                        os.close(src)
                    files += len(base)
                    size += sum(s for s, _ in base.values())
                    if i in spec.copy_out:
                        self.baseline[i] = base
                self._finish(top, st)
            finally:
                os.close(top)
            if i in spec.copy_out:  # reachable after pivot_root only through this fd
                self.host_fds[i] = os.open(host, HOST_DIR_FLAGS)
        return {
            "size_mb": spec.size_mb,
            "nr_inodes": spec.nr_inodes,
            "dirs": list(spec.destinations),
            "copy_in": {"files": files, "bytes": size},
            "ro_files": [spec.destinations[i] + "/" + rel for i, rel, _ in spec.ro_files],
            "copy_out": [spec.destinations[i] for i in spec.copy_out],
        }

    def _finish(self, fd: int, st: os.stat_result) -> None:
        if self.owner is not None:
            os.chown(fd, *self.owner)
        os.chmod(fd, stat.S_IMODE(st.st_mode) & 0o1777)
        os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))

    def _copy_in(
        self,
        src: int,
        dst: int,
        rel: str,
        depth: int,
        base: dict[str, tuple[int, int]],
        skip: frozenset[str],
    ) -> None:
        for name in sorted(os.listdir(src)):
            st = os.stat(name, dir_fd=src, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode) and depth < MAX_DEPTH:
                os.mkdir(name, 0o700, dir_fd=dst)
                sub_src = os.open(name, DIR_FLAGS, dir_fd=src)
                try:
                    sub_dst = os.open(name, DIR_FLAGS, dir_fd=dst)
                    try:
                        self._copy_in(sub_src, sub_dst, f"{rel}{name}/", depth + 1, base, skip)
                        self._finish(sub_dst, st)
                    finally:
                        os.close(sub_dst)
                finally:
                    os.close(sub_src)
            elif stat.S_ISREG(st.st_mode) and rel + name not in skip:
                fd_in = os.open(name, READ_FLAGS, dir_fd=src)
                try:
                    fst = os.fstat(fd_in)
                    if not stat.S_ISREG(fst.st_mode):
                        continue
                    fd_out = os.open(name, CREATE_FLAGS, 0o600, dir_fd=dst)
                    try:
                        copy_bytes(fd_in, fd_out, fst.st_size, None)
                        self._finish(fd_out, fst)
                        out = os.fstat(fd_out)
                        base[rel + name] = (out.st_size, out.st_mtime_ns)
                    finally:
                        os.close(fd_out)
                finally:
                    os.close(fd_in)

    def close(self) -> None:
        """U: drop the fds P keeps (host dirs, the tmpfs root) before any user code."""
        for fd in [self.root_fd, *self.host_fds.values()]:
            if fd >= 0:
                os.close(fd)
        self.root_fd = -1
        self.host_fds = {}

    # -------------------------------------------------------------- copy-out (P)

    def copy_out(self, stopped: bool) -> dict[str, Any]:
        """Copy new and changed files back, write the summary; never raises."""
        started = time.monotonic()
        run = CopyOut(self.spec.max_files, self.spec.max_bytes, started + self.spec.seconds)
        try:
            for i in self.spec.copy_out:
                src = os.open(str(i), DIR_FLAGS, dir_fd=self.root_fd)
                try:
                    run.tree(src, HostDir(run, self.host_fds[i]), "", 0,
                             self.baseline.get(i, {}), self.spec.ro_rel(i))  # fmt: skip
                finally:
                    os.close(src)
        except Stop:
            pass
        except Exception as exc:  # noqa: BLE001 - reported in the summary
            run.reason = f"error: {type(exc).__name__}: {exc}"
        finally:
            run.close()
        summary: dict[str, Any] = {
            "copied": run.copied,
            "bytes": run.bytes,
            "skipped": run.skipped,
            "unchanged": run.unchanged,
            "reason": run.reason,
            "stopped": stopped,
            "elapsed_ms": round((time.monotonic() - started) * 1000, 3),
        }
        if self.spec.copy_out:
            data = json.dumps(summary).encode() + b"\n"
            try:
                write_file(self.host_fds[self.spec.copy_out[0]], SUMMARY_NAME, data, 0o644)
            except OSError:
                pass
        return summary
