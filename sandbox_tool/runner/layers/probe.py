"""The layer probe: does every layer of a sandbox apply on this host?

Engines run it in a fresh interpreter before they promise isolation
(``python -c ... runner.layers.probe``), so that a missing layer is reported up front,
never discovered by the code.
"""

from __future__ import annotations

import json
import os
import platform
import select
import signal
import time
from typing import Any

from ..framing import write_all
from ..syscalls import describe, kill_quietly
from .namespaces import enter_sandbox

__all__ = ["probe"]


def probe(plan: dict[str, Any] | None = None, timeout: float = 10.0) -> dict[str, Any]:
    """Enter a sandbox in a throw-away child and report whether every layer applies.

    Returns ``{"available": bool, "reason": str, "report": dict | None}``; the
    reason names the failing layer, or the layers and the landlock ABI.
    """
    if plan is None:
        plan = {
            "ro_binds": [p for p in ("/usr", "/lib", "/lib64", "/bin") if os.path.lexists(p)],
            "rw_binds": [],
            "files": {},
            "cwd": "/",
            "landlock": {"read_only": ["/usr"]},
            "seccomp": {},
        }
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            report = enter_sandbox(plan)
            write_all(w, json.dumps({"report": report}).encode())
        except BaseException as exc:  # noqa: BLE001 - reported to the caller
            try:
                write_all(w, json.dumps({"error": describe(exc)}).encode())
            finally:
                os._exit(1)
        os._exit(0)
    os.close(w)
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        rest = deadline - time.monotonic()
        if rest <= 0:
            kill_quietly(pid, signal.SIGKILL)
            break
        ready, _, _ = select.select([r], [], [], rest)
        if not ready:
            continue
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    result = json.loads(data or b'{"error": "timed out or died without a report"}')
    if "error" in result:
        return {"available": False, "reason": result["error"], "report": None}
    report = result["report"]
    ll = report.get("landlock") or {}
    reason = (
        f"namespaces ({', '.join(k for k, v in report['namespaces'].items() if v)}), "
        f"private root, landlock ABI {ll.get('abi', '?')}, seccomp, {report['mode']} mode"
    )
    return {"available": True, "reason": reason, "report": report, "arch": platform.machine()}
