"""What a worker without a sandbox of its own applies to itself before it waits for code.

The process engine's worker is confined by the sandbox it is born in
(:mod:`.namespaces`). Two runners have no such sandbox and confine their worker
themselves, from the setup's ``confine`` key (:class:`..protocol.Confinement`):

- the native engine on Linux: a seccomp filter only (no programs, no new processes, no
  sockets but ``socketpair``; TCP/UDP with ``network``);
- a runner inside gVisor (:mod:`..roles.boxed`): the root its template prepared for it
  (a ``chroot``; runsc 2022 has no ``pivot_root`` and leaks mounts made in a new mount
  namespace), its own uid without capabilities, ``umask`` 0 (its files are its own:
  the host dirs it writes belong to the sandbox's root), and the same filter.

:func:`apply` runs in the worker, single-threaded, before any user code; it raises if a
layer cannot be applied (a runner never runs code with less than its setup asked for).
"""

from __future__ import annotations

import os
import resource
import time
from typing import Any

from ..protocol import Confinement, IsolationSummary
from ..syscalls import SandboxSetupError
from . import seccomp
from .privileges import become, drop_bounding, set_no_new_privs

__all__ = ["apply"]


def apply(spec: Confinement) -> IsolationSummary:
    """Apply ``spec`` to this process; the layers it now runs under."""
    started = time.perf_counter()
    root = spec.get("chroot")
    if root:
        os.chroot(root)
        os.chdir("/")
    uid = spec.get("uid")
    if uid is not None:
        drop_bounding()  # needs CAP_SETPCAP: before the uid change takes it away
        os.setgroups([])
        become(int(uid), int(uid))
    if spec.get("nproc"):
        nproc = int(spec["nproc"] or 0)
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    if spec.get("umask") is not None:
        os.umask(int(spec["umask"] or 0))
    sc_report: dict[str, Any] = {"applied": False}
    sc_spec = spec.get("seccomp")
    if sc_spec is not None:
        set_no_new_privs()
        try:
            full = seccomp.apply(dict(sc_spec))
        except OSError as exc:
            raise SandboxSetupError(exc.errno, f"seccomp: {exc}") from exc
        sc_report = {
            key: full.get(key)
            for key in ("applied", "arch", "socket_families", "programs", "processes")
        }
    return {
        "mode": str(spec.get("mode") or "confined"),
        "namespaces": spec.get("namespaces"),
        "uid": os.getuid(),
        "host_uid": None,
        "private_root": bool(root or spec.get("private_root")),
        "capabilities_dropped": uid is not None,
        "no_new_privs": sc_spec is not None,
        "process_cap": spec.get("process_cap"),
        "landlock": {"applied": False},
        "seccomp": sc_report,
        "disk_mb": None,
        "setup_ms": round((time.perf_counter() - started) * 1000, 3),
    }
