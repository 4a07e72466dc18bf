"""The OCI bundle of one gVisor sandbox: an empty read-only root and the binds it needs.

The sandbox sees none of the host's files but these, each at the same path as on the
host: read-only, ``/usr`` (and the merged-usr links ``/bin``, ``/lib``...), the
interpreter's prefixes, the runner package, the font cache and a few ``/etc`` files;
read-write, the directory the execution workspaces live in; and the directory of the
host's unix socket. ``/.sbx`` is a tmpfs of the sandbox's own, where its template builds
each runner's root and cgroups (reachable by the sandbox's root only).

The first process is the template (:mod:`sandbox_tool.runner.roles.boxed`), as the
sandbox's uid 0 with the capabilities it needs to build runners (inside gVisor's kernel
only: the host grants none of them); every runner's worker drops all of them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["CAPABILITIES", "ETC_FILES", "write_bundle"]

#: What the template needs inside the sandbox: mounts, chroot, namespaces, cgroup files,
#: the runners' files given to their uids,
#: dropping capabilities in the workers (CAP_SETPCAP). gVisor's kernel enforces them.
CAPABILITIES = (
    "CAP_SYS_ADMIN", "CAP_SYS_CHROOT", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER", "CAP_SETPCAP", "CAP_SETUID", "CAP_SETGID", "CAP_KILL",
)  # fmt: skip
#: The ``/etc`` files Python and the dynamic loader read (the runners' own ``passwd``,
#: ``group`` and ``hosts`` are written into each runner's root).
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "nsswitch.conf",
             "mime.types")  # fmt: skip
NETWORK_ETC_FILES = ("resolv.conf", "ssl", "gai.conf", "services", "protocols")
MERGED_USR = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
RUNNERS_DIR = "/.sbx"


def _bind(path: str, read_only: bool) -> dict[str, Any]:
    return {"destination": path, "type": "bind", "source": path,
            "options": ["rbind", "ro" if read_only else "rw", "nosuid", "nodev"]}  # fmt: skip


def _mount_point(rootfs: Path, path: str) -> None:
    target = rootfs / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if os.path.isdir(path):
        target.mkdir(exist_ok=True)
    elif not target.exists():
        target.touch()


def write_bundle(
    bundle: Path,
    *,
    args: list[str],
    env: dict[str, str],
    read_only: Iterable[str],
    read_write: Iterable[str],
    network: bool,
) -> Path:
    """Write ``bundle/config.json`` and ``bundle/rootfs``; returns the bundle."""
    rootfs = bundle / "rootfs"
    rootfs.mkdir(parents=True)
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["mode=0755"]},
        {"destination": RUNNERS_DIR, "type": "tmpfs", "source": "tmpfs",
         "options": ["mode=0700", "nosuid", "nodev"]},
    ]  # fmt: skip
    for path in ("/proc", "/dev", RUNNERS_DIR):
        (rootfs / path.lstrip("/")).mkdir()
    etc = [*ETC_FILES, *(NETWORK_ETC_FILES if network else ())]
    ro = ["/usr", *read_only, *(f"/etc/{name}" for name in etc)]
    binds: dict[str, bool] = {}
    for path in MERGED_USR:
        if os.path.islink(path):
            (rootfs / path.lstrip("/")).symlink_to(os.readlink(path))
        elif os.path.isdir(path):
            ro.append(path)
    for path in ro:
        if os.path.lexists(path):
            binds.setdefault(os.path.realpath(path), True)
    for path in read_write:
        binds[os.path.realpath(path)] = False
    for path in sorted(binds, key=lambda p: p.count("/")):  # parents before children
        _mount_point(rootfs, path)
        mounts.append(_bind(path, binds[path]))
    namespaces = ["pid", "ipc", "uts", "mount"] + ([] if network else ["network"])
    config = {
        "ociVersion": "1.0.0",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": [f"{k}={v}" for k, v in env.items()],
            "cwd": "/",
            "capabilities": {
                kind: list(CAPABILITIES)
                for kind in ("bounding", "effective", "inheritable", "permitted")
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 65536, "soft": 65536}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "sandbox",
        "mounts": mounts,
        "linux": {"namespaces": [{"type": kind} for kind in namespaces]},
    }
    (bundle / "config.json").write_text(json.dumps(config, indent=1))
    return bundle
