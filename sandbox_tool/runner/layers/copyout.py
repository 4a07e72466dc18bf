"""Copying a scratch dir's new and changed files back to the host (pid 1, at the end).

Part of :mod:`.scratch` (whose docstring says what is trusted and why): the walk of the
hostile tmpfs, the host dirs created one component at a time, and the byte copies
scratch's copy-in uses too.
"""

from __future__ import annotations

import errno
import os
import stat
import time

from ..framing import write_all

PARTIAL_PREFIX = ".scratch-partial-"
"""Name prefix of a file being copied out; left behind only if P is killed mid-copy."""
MAX_DEPTH = 64
"""Deeper directories are neither copied in nor out (bounds fds and recursion)."""

_CHUNK = 1 << 22
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
HOST_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def copy_bytes(src: int, dst: int, size: int, deadline: float | None) -> int:
    """Copy at most ``size`` bytes; OSError(ETIME) past ``deadline``."""
    done = 0
    while done < size:
        if deadline is not None and time.monotonic() > deadline:
            raise OSError(errno.ETIME, "copy-out time is up")
        want = min(_CHUNK, size - done)
        try:
            n = os.sendfile(dst, src, None, want)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOSYS):
                raise
            data = os.read(src, want)
            n = len(data)
            write_all(dst, data)
        if n == 0:
            break
        done += n
    return done


class Stop(Exception):
    """The copy-out budget or time is used up (the reason is already set)."""


def write_file(dir_fd: int, name: str, data: bytes, mode: int) -> None:
    tmp, fd = _create_partial(dir_fd)
    try:
        try:
            write_all(fd, data)
            os.chmod(fd, mode)
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError:
        _unlink_quietly(tmp, dir_fd)
        raise


def _create_partial(dir_fd: int) -> tuple[str, int]:
    for n in range(100):
        name = f"{PARTIAL_PREFIX}{os.getpid()}-{n}"
        try:
            return name, os.open(name, CREATE_FLAGS, 0o600, dir_fd=dir_fd)
        except FileExistsError:
            continue
    raise OSError(errno.EEXIST, "no free temporary name")


def _unlink_quietly(name: str, dir_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass


class HostDir:
    """A host directory, created (mkdirat, then O_PATH|O_NOFOLLOW) only when a file needs it."""

    def __init__(
        self, run: CopyOut, fd: int | None, parent: HostDir | None = None, name: str = ""
    ) -> None:
        self.run, self._fd, self.parent, self.name = run, fd, parent, name

    def child(self, name: str) -> HostDir:
        return HostDir(self.run, None, self, name)

    def fd(self) -> int:
        if self._fd is None:
            assert self.parent is not None
            parent = self.parent.fd()
            try:
                os.stat(self.name, dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                self.run.charge_entry()
                os.mkdir(self.name, 0o755, dir_fd=parent)
            self._fd = os.open(self.name, HOST_DIR_FLAGS, dir_fd=parent)  # not via a symlink
            self.run.fds.append(self._fd)
        return self._fd


class CopyOut:
    """One copy-out: what it copied and skipped, within its file, byte and time budget."""

    def __init__(self, max_files: int, max_bytes: int, deadline: float) -> None:
        self.max_files, self.max_bytes, self.deadline = max_files, max_bytes, deadline
        self.copied = self.bytes = self.skipped = self.unchanged = self.entries = 0
        self.reason: str | None = None
        self.fds: list[int] = []

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []

    def stop(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason

    def charge_entry(self) -> None:
        """Count one host entry (file or directory) about to be created."""
        if self.entries >= self.max_files:
            self.skipped += 1
            self.stop("max_files")
            raise Stop
        self.entries += 1

    def tree(
        self,
        src: int,
        host: HostDir,
        rel: str,
        depth: int,
        base: dict[str, tuple[int, int]],
        skip: frozenset[str],
    ) -> None:
        for name in sorted(os.listdir(src)):
            if time.monotonic() > self.deadline:
                self.stop("time")
                raise Stop
            try:
                st = os.stat(name, dir_fd=src, follow_symlinks=False)
            except OSError:
                self.skipped += 1
                continue
            path = rel + name
            if stat.S_ISDIR(st.st_mode):
                if depth >= MAX_DEPTH:
                    self.skipped += 1
                    continue
                try:
                    sub = os.open(name, DIR_FLAGS, dir_fd=src)
                except OSError:
                    self.skipped += 1
                    continue
                try:
                    self.tree(sub, host.child(name), path + "/", depth + 1, base, skip)
                finally:
                    os.close(sub)
            elif not stat.S_ISREG(st.st_mode):
                self.skipped += 1  # symlinks, FIFOs, sockets: never followed or opened
            elif path in skip or base.get(path) == (st.st_size, st.st_mtime_ns):
                self.unchanged += 1
            else:
                self.file(src, name, host)

    def file(self, src: int, name: str, host: HostDir) -> None:
        try:
            fd_in = os.open(name, READ_FLAGS, dir_fd=src)
        except OSError:
            self.skipped += 1
            return
        try:
            st = os.fstat(fd_in)
            if not stat.S_ISREG(st.st_mode):
                self.skipped += 1
                return
            if self.bytes + st.st_size > self.max_bytes:
                self.skipped += 1
                self.stop("max_bytes")
                raise Stop
            try:
                dir_fd = host.fd()
            except OSError:
                self.skipped += 1
                return
            self.charge_entry()
            tmp, fd_out = _create_partial(dir_fd)
            try:
                try:
                    n = copy_bytes(fd_in, fd_out, st.st_size, self.deadline)
                    os.chmod(fd_out, (stat.S_IMODE(st.st_mode) & 0o755) | 0o600)
                    os.utime(fd_out, ns=(st.st_atime_ns, st.st_mtime_ns))
                finally:
                    os.close(fd_out)
                os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except OSError as exc:
                _unlink_quietly(tmp, dir_fd)
                self.entries -= 1
                self.skipped += 1
                if exc.errno == errno.ETIME:
                    self.stop("time")
                    raise Stop from exc
                return
            self.copied += 1
            self.bytes += n
        finally:
            os.close(fd_in)
