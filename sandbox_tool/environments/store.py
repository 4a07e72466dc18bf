"""The environments on disk, shared by every process of the user::

    <root>/envs/<key>/            complete environments (a venv and its manifest)
    <root>/sets/<set key>.json    a package set as asked -> the environment built for it
    <root>/used/<key>             touched when an environment is used (for prune)
    <root>/locks/<name>.lock      flock(2) files: a set's build, an environment's users
    <root>/building/<set key>.*   builds in progress (and removals), never used

An environment appears in ``envs/`` only by a rename of a complete build, so a reader
never sees a half-built one; a build holds its set's lock, so two processes asking for
the same set build it once; a process using an environment holds a shared lock on it,
so ``remove`` and ``prune`` leave it alone.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
import shutil
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sandbox_tool.environments.environment import MANIFEST, Environment
from sandbox_tool.errors import UsageError

__all__ = ["PruneReport", "Store"]


@dataclass
class PruneReport:
    """What :meth:`Store.prune` removed (or would remove, on a dry run)."""

    environments: list[str] = field(default_factory=list)
    in_use: list[str] = field(default_factory=list)
    builds: list[str] = field(default_factory=list)
    sets: list[str] = field(default_factory=list)


class Store:
    """One environments root (see the module's docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.envs = self.root / "envs"
        self.sets = self.root / "sets"
        self.used = self.root / "used"
        self.locks = self.root / "locks"
        self.building = self.root / "building"

    def create_dirs(self) -> None:
        for path in (self.envs, self.sets, self.used, self.locks, self.building):
            path.mkdir(parents=True, exist_ok=True)

    # -- locks ------------------------------------------------------------------------

    @contextlib.contextmanager
    def build_lock(self, set_key: str) -> Iterator[None]:
        """Held while a set is built: a second builder of the same set waits here."""
        self.create_dirs()
        fd = os.open(self.locks / f"set-{set_key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def hold(self, key: str) -> int:
        """A shared lock on environment ``key`` (its fd; close it to let go): held by every
        process that runs code in it, so that it is not removed under them."""
        self.create_dirs()
        fd = os.open(self.locks / f"env-{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_SH)
        return fd

    def _try_exclusive(self, name: str) -> int | None:
        fd = os.open(self.locks / name, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    # -- sets and environments ----------------------------------------------------------

    def find_set(self, set_key: str) -> Environment | None:
        """The environment built for a package set, if it is complete."""
        try:
            data = json.loads((self.sets / f"{set_key}.json").read_text(encoding="utf-8"))
            return Environment.load(self.envs / str(data["env"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def record_set(self, set_key: str, requested: list[str], env: Environment) -> None:
        """Remember that ``requested`` gave ``env`` (written whole, by a rename)."""
        self.create_dirs()
        data = {"requested": requested, "env": env.key, "recorded": time.time()}
        tmp = self.sets / f".{set_key}.{secrets.token_hex(4)}"
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(tmp, self.sets / f"{set_key}.json")

    def new_build_dir(self, set_key: str) -> Path:
        """A fresh, not yet existing path in ``building/`` for a set's build."""
        self.create_dirs()
        return self.building / f"{set_key}.{secrets.token_hex(6)}"

    def publish(self, build: Path, env: Environment) -> Environment:
        """Move a complete build into ``envs/`` (atomically); when the same environment
        is already there (another set resolved to it), keep that one."""
        (build / MANIFEST).write_text(json.dumps(env.manifest(), indent=1), encoding="utf-8")
        _readable_by_all(build)
        target = self.envs / env.key
        try:
            os.rename(build, target)
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            shutil.rmtree(build, ignore_errors=True)
        self.touch(env.key)
        return Environment.load(target)

    def touch(self, key: str) -> None:
        with contextlib.suppress(OSError):
            self.used.mkdir(parents=True, exist_ok=True)
            (self.used / key).touch()

    def last_used(self, env: Environment) -> float:
        try:
            return (self.used / env.key).stat().st_mtime
        except OSError:
            return env.created

    def environments(self) -> list[Environment]:
        """Every complete environment, newest first."""
        found = []
        for path in sorted(self.envs.glob("*")) if self.envs.is_dir() else []:
            with contextlib.suppress(ValueError):
                found.append(Environment.load(path))
        return sorted(found, key=lambda e: -e.created)

    def sets_of(self, key: str) -> list[list[str]]:
        """The package sets recorded as giving environment ``key``."""
        out = []
        for path in sorted(self.sets.glob("*.json")) if self.sets.is_dir() else []:
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                data = json.loads(path.read_text(encoding="utf-8"))
                if data["env"] == key:
                    out.append(list(data["requested"]))
        return out

    def find(self, ref: str) -> Environment:
        """The environment whose key starts with ``ref`` (at least 4 characters), or whose
        path is ``ref``; ``UsageError`` naming the choices otherwise."""
        envs = self.environments()
        matches = [
            e for e in envs if str(e.path) == ref or (len(ref) >= 4 and e.key.startswith(ref))
        ]
        if len(matches) == 1:
            return matches[0]
        known = ", ".join(e.key for e in envs) or "none (sandbox-tool env create)"
        what = "matches several environments" if matches else "names no environment"
        raise UsageError(f"{ref!r} {what} in {self.root}; environments: {known}")

    # -- removing -------------------------------------------------------------------------

    def remove(self, env: Environment, *, force: bool = False) -> bool:
        """Remove ``env`` unless a process uses it (then False; ``force`` removes it anyway:
        code running in it may then fail to import). Its sets are forgotten first."""
        fd = self._try_exclusive(f"env-{env.key}.lock")
        if fd is None and not force:
            return False
        try:
            for path in self.sets.glob("*.json"):
                with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                    if json.loads(path.read_text(encoding="utf-8"))["env"] == env.key:
                        path.unlink()
            doomed = self.building / f"removing-{env.key}.{secrets.token_hex(4)}"
            self.create_dirs()
            os.rename(env.path, doomed)  # gone from envs/ at once, then deleted
            shutil.rmtree(doomed, ignore_errors=True)
            with contextlib.suppress(OSError):
                (self.used / env.key).unlink()
        finally:
            if fd is not None:
                os.close(fd)
        return True

    def prune(self, older_than_days: float, *, dry_run: bool = False) -> PruneReport:
        """Remove environments not used for ``older_than_days`` (unless in use), builds
        left by processes that died, and sets whose environment is gone."""
        report = PruneReport()
        cutoff = time.time() - older_than_days * 86400
        for env in self.environments():
            if self.last_used(env) > cutoff:
                continue
            if dry_run or self.remove(env):
                report.environments.append(env.key)
            else:
                report.in_use.append(env.key)
        for path in sorted(self.building.glob("*")) if self.building.is_dir() else []:
            set_key = path.name.split(".")[0]
            fd = None if path.name.startswith("removing-") else self._try_exclusive(
                f"set-{set_key}.lock"
            )  # fmt: skip
            if fd is None and not path.name.startswith("removing-"):
                continue  # its build is running
            try:
                report.builds.append(path.name)
                if not dry_run:
                    shutil.rmtree(path, ignore_errors=True)
            finally:
                if fd is not None:
                    os.close(fd)
        for path in sorted(self.sets.glob("*.json")) if self.sets.is_dir() else []:
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                key = json.loads(path.read_text(encoding="utf-8"))["env"]
                if not (self.envs / str(key) / MANIFEST).is_file():
                    report.sets.append(path.stem)
                    if not dry_run:
                        path.unlink()
        return report


def _readable_by_all(top: Path) -> None:
    """Let every user read (and enter) the environment: a root caller's sandbox runs as an
    unprivileged uid, which must read every module it imports (whatever the umask was)."""
    for dirpath, _, filenames in os.walk(top):
        for path in [dirpath, *(os.path.join(dirpath, name) for name in filenames)]:
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                continue
            want = st.st_mode | stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
            if stat.S_ISDIR(st.st_mode) or st.st_mode & stat.S_IXUSR:
                want |= stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
            want &= ~(stat.S_IWGRP | stat.S_IWOTH)
            if want != st.st_mode:
                os.chmod(path, stat.S_IMODE(want))
