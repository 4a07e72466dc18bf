"""Run code in forked children: every layer is applied there, never to pytest itself."""

from __future__ import annotations

import json
import os
import select
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

IS_ROOT = os.geteuid() == 0


@dataclass
class Outcome:
    """What a forked child returned (or raised), and how it exited."""

    value: Any
    error: str | None
    errno: int | None
    status: int

    @property
    def exit_code(self) -> int | None:
        return os.WEXITSTATUS(self.status) if os.WIFEXITED(self.status) else None

    @property
    def signal(self) -> int | None:
        return os.WTERMSIG(self.status) if os.WIFSIGNALED(self.status) else None

    def unwrap(self) -> Any:
        assert self.error is None, f"child failed: {self.error}"
        return self.value


def in_child(fn: Callable[..., Any], *args: Any, timeout: float = 30.0) -> Outcome:
    """Run ``fn(*args)`` in a forked child; return its JSON-able result or error.

    The result is written by whichever process ``fn`` returns in (inside
    :func:`enter_sandbox`, the sandboxed grandchild); the status is the
    direct child's.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 0
        try:
            os.close(r)
            try:
                result: dict[str, Any] = {"value": fn(*args)}
            except BaseException as exc:  # noqa: BLE001 - sent to the parent
                result = {
                    "error": f"{type(exc).__name__}: {exc}",
                    "errno": getattr(exc, "errno", None),
                }
            data = json.dumps(result, default=repr).encode()
            while data:
                data = data[os.write(w, data) :]
        except BaseException:  # noqa: BLE001
            code = 70
        finally:
            os._exit(code)
    os.close(w)
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            os.kill(pid, signal.SIGKILL)
            break
        ready, _, _ = select.select([r], [], [], left)
        if ready:
            chunk = os.read(r, 1 << 16)
            if not chunk:
                break
            data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    result = json.loads(data) if data else {"error": "no result (child died or timed out)"}
    return Outcome(result.get("value"), result.get("error"), result.get("errno"), status)


def sandboxed(plan: dict[str, Any], body: Callable[[], Any], timeout: float = 30) -> Outcome:
    """Enter a sandbox in a forked child and run ``body`` inside it."""
    from sandbox_tool.runner.layers import namespaces

    def run() -> dict[str, Any]:
        report = namespaces.enter_sandbox(plan)
        return {"report": report, "out": body()}

    return in_child(run, timeout=timeout)


def errno_of(call: Callable[[], Any]) -> int:
    """0 if ``call()`` succeeds, else the errno of the OSError it raised."""
    try:
        call()
    except OSError as exc:
        return exc.errno or -1
    return 0
