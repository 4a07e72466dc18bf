"""The sandbox's plan: what goes into it, checked and resolved before any namespace exists.

A plan is JSON-able; :func:`default_plan` makes a complete one. Its keys:

- ``uid``, ``gid``: ids inside the sandbox (default 1000);
- ``host_uid``, ``host_gid``: root callers only, the unprivileged host ids
  the sandbox runs as (default :data:`ROOT_MODE_HOST_ID`); the ``rw_binds``
  sources are chowned to them unless ``chown_rw`` is false;
- ``network``: keep the host network (default False: a private network
  namespace with only ``lo`` up);
- ``hostname``;
- ``ro_binds``, ``rw_binds``: paths or ``[source, destination]`` pairs; the
  new root is an empty tmpfs holding only these (read-only, nosuid, nodev;
  read-write ones also noexec); top-level symlinks such as ``/lib`` are
  recreated as symlinks; missing sources are skipped and reported;
- ``devices``: device files bound into a tmpfs ``/dev`` (default null, zero,
  random, urandom);
- ``files``: ``{path: text}`` written read-only into the new root;
- ``cwd``: the directory to start in;
- ``nproc``: a process/thread cap for the sandbox (:func:`.limits.set_process_cap`);
- ``landlock``: ``"auto"`` (derived from the binds), a spec for
  :func:`.landlock.prepare`, or None;
- ``seccomp``: a spec for :func:`.seccomp.apply`, or None;
- ``scratch``: optional; the sandbox's writable dirs in one size-capped
  tmpfs instead of read-write host binds (:mod:`.scratch`)::

      {"size_mb": int,           # the tmpfs's size (nr_inodes: 64 per MiB, >= 4096)
       "nr_inodes": int,         # optional override of that inode cap
       "dirs": [host dir],       # each a tmpfs dir mounted at the same path
       "copy_in": [host dir],    # of dirs: content copied in (regular files,
                                 # dirs; mtimes kept): the baseline
       "ro_files": [host file],  # in a copy_in dir: not copied, bound read-only
                                 # over an empty placeholder (not in size_mb)
       "copy_out": [host dir],   # of dirs: new/changed files copied back at the end
       "copy_out_max_bytes": int, "copy_out_max_files": int,  # 64 MiB, 1000
       "copy_out_seconds": float}                             # 1.0

  Modes and ownership are the host dirs' (root mode: chowned to
  ``host_uid`` unless ``chown_rw`` is false); the host dirs themselves are
  never bound or chowned. A ``rw_binds`` entry whose source is a scratch dir
  (such as ``[tmp, "/tmp"]``) mounts the same tmpfs dir there. When the
  sandbox ends (U exits or is killed, or P gets SIGTERM: it then kills every
  sandbox process with SIGKILL instead of forwarding the signal, so W
  reports U's death by SIGKILL), pid 1 copies new and changed regular files
  back (:meth:`scratch.Scratch.copy_out`) and writes a summary
  (:data:`scratch.SUMMARY_NAME`) into the first ``copy_out`` dir.

"""

from __future__ import annotations

import errno
import os
import sys
from typing import Any

from ..syscalls import SandboxSetupError
from . import scratch

__all__ = ["DEFAULT_DEVICES", "ROOT_MODE_HOST_ID", "SANDBOX_ID", "Plan", "default_plan"]

ROOT_MODE_HOST_ID = 2_000_000_000
"""Host uid/gid a root caller's sandbox runs as: no account, no files, not 0."""

SANDBOX_ID = 1000
DEFAULT_DEVICES = ("/dev/null", "/dev/zero", "/dev/random", "/dev/urandom")
#: The sandbox's own /etc/hosts: loopback names and its host name, nothing of the host.
ETC_HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n127.0.1.1\tsandbox\n"


def _bind_list(entries: Any) -> list[tuple[str, str]]:
    out = []
    for entry in entries or ():
        if isinstance(entry, str):
            out.append((entry, entry))
        else:
            src, dst = entry
            out.append((str(src), str(dst)))
    return out


def default_plan(
    work: str,
    tmp: str,
    meta: str,
    *,
    network: bool = False,
    extra_ro: tuple[str, ...] = (),
    nproc: int | None = None,
    scratch_mb: int | None = None,
    ro_files: tuple[str, ...] = (),
    copy_out_max_bytes: int = scratch.DEFAULT_MAX_BYTES,
    copy_out_max_files: int = scratch.DEFAULT_MAX_FILES,
) -> dict[str, Any]:
    """A plan that runs this interpreter (and its venv) on the execution's dirs.

    Read-only: the interpreter prefixes (so the venv's site-packages), the
    runner package (not the project around it), ``extra_ro``, ``/usr`` and the
    top-level links into it, and the ``/etc`` files the dynamic linker and
    Python read. Read-write, at the same
    paths: ``work``, ``tmp`` (also at ``/tmp``) and ``meta``. Landlock and
    seccomp are derived from the mounts (``"auto"``).

    With ``scratch_mb``, the three read-write dirs are not host binds but
    directories of one tmpfs of that size (the plan's ``"scratch"`` key, see
    :func:`enter_sandbox`): ``work`` and ``meta`` are copied in (``ro_files``,
    files in them, are bound read-only instead), and new or changed files in
    ``meta`` then ``work`` are copied back when the sandbox ends, within
    ``copy_out_max_bytes`` and ``copy_out_max_files``; the summary lands in
    ``meta`` (:data:`scratch.SUMMARY_NAME`). ``tmp`` is not copied either way.
    """
    runner_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    # Not every sys.path entry: an editable install or a test runner puts the
    # project itself there. Other import roots go in ``extra_ro``.
    ro: list[str] = sorted(p for p in prefixes if os.path.isdir(p))
    ro.append(runner_dir)
    ro += [p for p in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64") if os.path.lexists(p)]
    etc = ["ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "nsswitch.conf"]
    # Debian's packaged stack reads these: libblas.so.3 and liblapack.so.3 (numpy) are
    # links through /etc/alternatives, matplotlib's rc file is /etc/matplotlibrc
    etc += ["alternatives", "matplotlibrc"]
    etc += ["mime.types"]
    if network:
        etc += ["resolv.conf", "ssl", "gai.conf", "services", "protocols"]
    ro += [f"/etc/{name}" for name in etc if os.path.lexists(f"/etc/{name}")]
    ro += [p for p in extra_ro if p not in ro]
    rw: list[Any] = [work, meta, tmp] if scratch_mb is None else []
    if tmp != "/tmp":
        rw.append([tmp, "/tmp"])  # with scratch: the same tmpfs dir as ``tmp``
    plan: dict[str, Any] = {
        "uid": SANDBOX_ID,
        "gid": SANDBOX_ID,
        "hostname": "sandbox",
        "network": network,
        "ro_binds": ro,
        "rw_binds": rw,
        "devices": list(DEFAULT_DEVICES),
        "files": {
            "/etc/passwd": f"sandbox:x:{SANDBOX_ID}:{SANDBOX_ID}::{work}:/usr/sbin/nologin\n",
            "/etc/group": f"sandbox:x:{SANDBOX_ID}:\n",
            "/etc/hostname": "sandbox\n",
            "/etc/hosts": ETC_HOSTS,
        },
        "cwd": work,
        "nproc": nproc,
        "landlock": "auto",
        "seccomp": {"network": network, "unix_sockets": True},
    }
    if scratch_mb is not None:
        plan["scratch"] = {
            "size_mb": scratch_mb,
            "dirs": [work, meta, tmp],
            "copy_in": [work, meta],
            "ro_files": list(ro_files),
            "copy_out": [meta, work],  # meta first: the worker's report and figures
            "copy_out_max_bytes": copy_out_max_bytes,
            "copy_out_max_files": copy_out_max_files,
        }
    return plan


class Plan:
    """A validated plan with host-side paths resolved (done in W, before any unshare)."""

    def __init__(self, plan: dict[str, Any]) -> None:
        self.raw = plan
        self.uid = int(plan.get("uid", SANDBOX_ID))
        self.gid = int(plan.get("gid", SANDBOX_ID))
        self.root_mode = os.geteuid() == 0
        self.host_uid = (
            int(plan.get("host_uid") or ROOT_MODE_HOST_ID) if self.root_mode else os.geteuid()
        )
        self.host_gid = (
            int(plan.get("host_gid") or self.host_uid) if self.root_mode else os.getegid()
        )
        if self.root_mode and (self.host_uid == 0 or self.host_gid == 0):
            raise SandboxSetupError(errno.EINVAL, "host_uid/host_gid must not be 0")
        self.network = bool(plan.get("network", False))
        self.hostname = str(plan.get("hostname", "sandbox"))
        self.cwd = str(plan.get("cwd", "/"))
        self.nproc = plan.get("nproc")
        self.files: dict[str, str] = dict(plan.get("files", {}))
        self.skipped: list[str] = []
        self.scratch: scratch.ScratchSpec | None = None
        if plan.get("scratch") is not None:
            try:
                self.scratch = scratch.ScratchSpec.parse(plan["scratch"])
            except (ValueError, TypeError) as exc:
                raise SandboxSetupError(errno.EINVAL, f"scratch: {exc}") from exc
        # (source as seen from the old root, destination, kind): symlinks are
        # recreated, everything else bound; sources are resolved now because
        # absolute links would point into the staging root later. Kind
        # "scratch": a scratch dir's tmpfs directory (``source`` is the host dir).
        self.mounts: list[tuple[str, str, str]] = []
        if self.scratch is not None:
            pairs = zip(self.scratch.dirs, self.scratch.destinations, strict=True)
            self.mounts += [(real, dst, "scratch") for real, dst in pairs]
        for kind, key in (("ro", "ro_binds"), ("rw", "rw_binds"), ("dev", "devices")):
            items = _bind_list(plan.get(key))
            if kind == "dev":
                items = [(p, p) for p in plan.get("devices", DEFAULT_DEVICES)]
            for src, dst in items:
                if not os.path.isabs(dst) or not os.path.isabs(src):
                    raise SandboxSetupError(errno.EINVAL, f"bind paths must be absolute: {src}")
                if not os.path.lexists(src):
                    self.skipped.append(src)
                    continue
                if kind == "ro" and os.path.islink(src) and src == dst and src.count("/") == 1:
                    self.mounts.append((os.readlink(src), dst, "link"))
                    continue
                real, dst = os.path.realpath(src), os.path.normpath(dst)
                how = self._scratch_kind(real) if kind == "rw" and self.scratch else kind
                if (real, dst, how) not in self.mounts:
                    self.mounts.append((real, dst, how))
        if self.scratch is not None:  # over every mount of their dir, after it (deeper)
            for i, rel, real in self.scratch.ro_files:
                if not os.path.exists(real):
                    self.skipped.append(real)
                    continue
                for src, dst, kind in list(self.mounts):
                    if kind == "scratch" and src == self.scratch.dirs[i]:
                        self.mounts.append((real, os.path.join(dst, rel), "ro"))
        self.mounts.sort(key=lambda m: m[1].count("/"))  # parents before children
        self.chown_rw = bool(plan.get("chown_rw", True))

    def _scratch_kind(self, real: str) -> str:
        """A rw bind of a scratch dir is served from its tmpfs dir; one inside it is refused."""
        assert self.scratch is not None
        for top in self.scratch.dirs:
            if real == top:
                return "scratch"
            if real.startswith(top.rstrip("/") + "/"):
                raise SandboxSetupError(
                    errno.EINVAL, f"rw bind {real} is inside the scratch dir {top}"
                )
        return "rw"

    def landlock_spec(self) -> dict[str, Any] | None:
        spec = self.raw.get("landlock", "auto")
        if spec is None or spec is False:
            return None
        if spec != "auto":
            return dict(spec)
        by_kind: dict[str, list[str]] = {"ro": ["/proc"], "rw": [], "dev": []}
        for _, dst, kind in self.mounts:
            if kind in by_kind or kind == "scratch":
                by_kind["rw" if kind == "scratch" else kind].append(dst)
        by_kind["ro"] += [p for p in self.files if p not in by_kind["ro"]]
        return {
            "read_only": by_kind["ro"],
            "read_write": by_kind["rw"],
            "devices": by_kind["dev"],
            "restrict_tcp": not self.network,
        }
