"""The per-execution directory tree on the host, and the artifacts it yields.

::

    <root>/work    the code's working directory (and HOME); exposed files go here
    <root>/tmp     TMPDIR and XDG cache/config dirs
    <root>/meta    the runner's private files: worker report, figures, MPLCONFIGDIR

Everything is removed by :meth:`Workspace.cleanup`. The root's name holds the host
process's pid and its pid namespace (``sandbox-tool-<namespace>.<pid>-...``), so that
the workspaces of a host that died without cleaning up (killed, or crashed) are found
and removed by the next engine that starts in the same pid namespace
(:func:`remove_stale`); those of hosts in other namespaces (containers sharing the temp
dir) are never judged.
"""

from __future__ import annotations

import functools
import json
import mimetypes
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from sandbox_tool.engines.runners import fontcache
from sandbox_tool.result import Artifact
from sandbox_tool.runner.files import read_regular
from sandbox_tool.runner.protocol import (
    FIGURES_DIR,
    MAX_ARTIFACT_FILES,
    MPLCONFIG_DIR,
    WORKER_REPORT,
)

__all__ = ["Workspace", "mime_type", "private_dir", "remove_stale", "unique_name"]

# written by the process engine's sandbox when it copies files out of its tmpfs
_PARTIAL = ".scratch-partial-"
_SCRATCH_SUMMARY = ".scratch.json"
_PREFIX = "sandbox-tool-"
_EXTRA_TYPES = {
    ".csv": "text/csv",
    ".md": "text/markdown",
    ".parquet": "application/vnd.apache.parquet",
}


def unique_name(name: str, taken: set[str]) -> str:
    """``name``, or ``2_name``, ``3_name``... if it is taken (a figure and a file of the
    same name); the chosen name is added to ``taken``."""
    unique, n = name, 1
    while unique in taken:
        n += 1
        unique = f"{n}_{name}"
    taken.add(unique)
    return unique


def mime_type(name: str) -> str:
    """The MIME type of an artifact's file name."""
    ext = os.path.splitext(name)[1].lower()
    return _EXTRA_TYPES.get(ext) or mimetypes.guess_type(name)[0] or "application/octet-stream"


@dataclass
class Workspace:
    root: Path
    exposed: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def meta(self) -> Path:
        return self.root / "meta"

    @classmethod
    def create(
        cls, parent: Path | None, files: dict[str, Path], font_cache: Path | None
    ) -> Workspace:
        root = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{_owner_tag()}-", dir=parent))
        ws = cls(root)
        try:
            for sub in (ws.work, ws.tmp, ws.meta, ws.meta / FIGURES_DIR):
                sub.mkdir(mode=0o700)
            fontcache.seed(font_cache, ws.meta / MPLCONFIG_DIR)
            for name, src in files.items():
                dest = ws.work / name
                shutil.copyfile(src, dest)
                dest.chmod(0o444)
                st = dest.stat()
                ws.exposed[name] = (st.st_size, st.st_mtime_ns)
        except BaseException:
            ws.cleanup()
            raise
        return ws

    def read_worker_report(self, limit: int) -> bytes | None:
        return read_regular(str(self.meta / WORKER_REPORT), limit)

    def copy_out_cut_short(self) -> bool:
        """Whether the sandbox's copy-out from its tmpfs left files behind (a budget was
        reached); False where there was no copy-out."""
        data = read_regular(str(self.meta / _SCRATCH_SUMMARY), 1 << 16)
        if data is None:
            return False
        try:
            summary = json.loads(data)
        except ValueError:
            return True
        return bool(summary.get("reason"))

    def collect_artifacts(self, max_bytes: int) -> tuple[list[Artifact], bool]:
        """Captured figures, then files the code created or changed in its work dir.

        Symlinks and special files are skipped (they could point at host files).
        Returns the artifacts and whether some were left out.
        """
        candidates: list[tuple[str, str, str]] = []  # (name, path, kind)
        figures = self.meta / FIGURES_DIR
        if figures.is_dir():
            nums = sorted(figures.iterdir(), key=lambda p: (len(p.name), p.name))
            candidates += [(p.name, str(p), "figure") for p in nums]
        for dirpath, dirnames, filenames in os.walk(self.work, followlinks=False):
            dirnames.sort()
            for fname in sorted(filenames):
                if fname.startswith(_PARTIAL):
                    continue  # a copy-out cut short by a kill
                path = os.path.join(dirpath, fname)
                rel = os.path.relpath(path, self.work)
                if rel in self.exposed:
                    try:
                        st = os.lstat(path)
                    except OSError:
                        continue
                    if (st.st_size, st.st_mtime_ns) == self.exposed[rel]:
                        continue
                candidates.append((rel, path, "file"))

        artifacts: list[Artifact] = []
        truncated = False
        budget = max_bytes
        names: set[str] = set()
        for name, path, kind in candidates:
            if len(artifacts) >= MAX_ARTIFACT_FILES:
                truncated = True
                break
            data = read_regular(path, budget)
            if data is None:
                truncated = truncated or (os.path.isfile(path) and not os.path.islink(path))
                continue
            budget -= len(data)
            name = unique_name(name, names)
            artifacts.append(Artifact(name=name, mime_type=mime_type(name), data=data, kind=kind))
        return artifacts, truncated

    def cleanup(self) -> None:
        """Remove the tree, even where the code took away its own write permission."""
        try:
            os.chmod(self.root, 0o700)
        except OSError:
            return
        for dirpath, dirnames, _ in os.walk(self.root):
            for name in dirnames:
                try:
                    os.chmod(os.path.join(dirpath, name), 0o700, follow_symlinks=False)
                except OSError:
                    pass
        shutil.rmtree(self.root, ignore_errors=True)


def remove_stale(parent: Path | None) -> int:
    """Remove the workspaces in ``parent`` (default: the temp dir) left by host processes
    of this pid namespace that are gone; return how many. Only directories this user
    owns are touched, never through a symlink; a pid that is running again keeps its
    workspaces."""
    top = Path(parent) if parent is not None else Path(tempfile.gettempdir())
    try:
        names = os.listdir(top)
    except OSError:
        return 0
    removed = 0
    namespace = str(_pid_namespace())
    for name in names:
        owner = name[len(_PREFIX) :].split("-", 1)[0]
        ns, _, pid = owner.partition(".")
        if not name.startswith(_PREFIX) or ns != namespace or not pid.isdigit():
            continue
        if _alive(int(pid)):
            continue
        path = top / name
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            continue
        Workspace(path).cleanup()
        removed += not os.path.lexists(path)
    return removed


def private_dir(parent: Path | None, label: str) -> Path:
    """A new 0700 directory named like the workspaces (so that :func:`remove_stale` removes
    it once this process is gone), with ``label`` in its name."""
    return Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{_owner_tag()}-{label}-", dir=parent))


def _owner_tag() -> str:
    """``<pid namespace>.<pid>`` of this process (the namespace is 0 where unknown)."""
    return f"{_pid_namespace()}.{os.getpid()}"


@functools.cache
def _pid_namespace() -> int:
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process
    return True
