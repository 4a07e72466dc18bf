"""The warm pool's template for the gVisor engine, and the host's handle on a runner in it.

:class:`BoxTemplate` is what :class:`~sandbox_tool.engines.runners.pool.WarmPool` forks
runners from: a gVisor sandbox (:class:`~.box.Box`) without network, started once, and,
the first time an execution asks for ``network=True``, a second one with the host's
network. A runner lives inside; the host holds the four channels it connected and a
:class:`BoxedTree`, which kills, signals and measures it through its sandbox's template.
"""

from __future__ import annotations

import secrets
import select
import signal
import threading
import time
from pathlib import Path
from typing import Any

from sandbox_tool.engines.runners.pipes import RunnerPipes
from sandbox_tool.engines.runners.proctree import ProcessTree
from sandbox_tool.engines.runners.treewatch import TreeUsage
from sandbox_tool.engines.runsc.box import Box, BoxSpec
from sandbox_tool.errors import EngineError
from sandbox_tool.runner.protocol import RunnerSetup

__all__ = ["BoxTemplate", "BoxedTree"]

_CHANNELS_SECONDS = 30.0
#: The peer closed the socket (POLLRDHUP: even with its last bytes still unread).
_CLOSED = select.POLLHUP | select.POLLERR | getattr(select, "POLLRDHUP", 0x2000)


class BoxedTree:
    """A runner inside a gVisor sandbox: ``rid`` names it to the sandbox's template;
    ``control`` is the host's end of its control channel, which ends when it is over.

    Its memory is what its cgroup counts beyond what it counted when the runner was
    ready: gVisor counts each process's resident pages in full (no proportional share),
    so the keeper, supervisor and worker forked from the template already count the
    template's preloaded heap three times before any code runs."""

    def __init__(self, box: Box, rid: str, control: int) -> None:
        self.box, self.rid, self.control = box, rid, control
        self.base_memory = 0

    def _signal(self, sig: int) -> None:
        self.box.post({"op": "kill", "rid": self.rid, "signal": int(sig)})

    def kill(self, wait: float = 0.0) -> None:
        # the runner's pid 1 dies: with it, every process of the runner's namespace
        self._signal(signal.SIGKILL)
        if wait > 0:
            self._ended(wait)

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def end(self) -> None:
        self._signal(signal.SIGKILL)

    def alive(self) -> bool:
        # an idle runner says nothing on its control channel until its supervisor ends
        return self.box.alive() and not self._events(0.0)

    def _ended(self, timeout: float) -> bool:
        """Whether the runner's keeper closed its control channel within ``timeout``
        (after the copy-out), without reading what the channel holds."""
        deadline = time.monotonic() + timeout
        while True:
            if self._events(max(0.0, deadline - time.monotonic())) & _CLOSED:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)  # the report is in, the keeper still copies files out

    def _events(self, timeout: float) -> int:
        poller = select.poll()
        try:
            poller.register(self.control, select.POLLIN | _CLOSED)
            return sum(mask for _, mask in poller.poll(timeout * 1000))
        except (OSError, ValueError):
            return _CLOSED

    def usage(self) -> TreeUsage:
        try:
            answer = self.box.request({"op": "usage", "rid": self.rid})
        except EngineError:
            return TreeUsage(0.0, 0)
        memory = max(0, int(answer.get("memory_bytes") or 0) - self.base_memory)
        return TreeUsage(float(answer.get("cpu_seconds") or 0.0), memory)


class BoxTemplate:
    """The gVisor sandboxes runners are forked from (one per network setting, started on
    first need; the one without network at :meth:`start`)."""

    def __init__(self, spec: BoxSpec, home: Path) -> None:
        self.spec = spec
        self.home = home
        self.boxes: dict[bool, Box] = {}
        self._lock = threading.Lock()
        self._starts = 0
        self.info: dict[str, Any] = {}

    def _box(self, network: bool) -> Box:
        with self._lock:
            box = self.boxes.get(network)
            if box is not None and box.alive():
                return box
            if box is not None:
                box.stop()
                box.remove()
            self._starts += 1
            home = self.home / f"box{self._starts}-{'net' if network else 'nonet'}"
            box = Box(self.spec, home, network=network)
            try:
                box.start()
            except BaseException:
                box.remove()
                raise
            self.boxes[network] = box
            return box

    def start(self) -> None:
        box = self._box(False)
        self.info = {**box.info, "runsc": self.spec.runsc.describe()}

    def alive(self) -> bool:
        box = self.boxes.get(False)
        return box is not None and box.alive()

    @property
    def pid(self) -> int | None:
        box = self.boxes.get(False)
        return box.pid if box is not None and box.alive() else None

    def spawn(self, setup: RunnerSetup) -> tuple[int, RunnerPipes, ProcessTree | None]:
        build = setup.get("isolation")
        network = bool(build is not None and build.get("network"))
        box = self._box(network)
        rid = secrets.token_hex(16)
        expected = box.expect(rid)
        try:
            answer = box.request({"op": "fork", "rid": rid, "setup": setup})
            if "pid" not in answer:
                raise EngineError(
                    f"gVisor could not start a runner: {answer.get('error', answer)}",
                    engine="gvisor",
                )
            if not expected.complete.wait(_CHANNELS_SECONDS) or len(expected.fds) != 4:
                raise EngineError("a gVisor runner did not connect its channels", engine="gvisor")
        except BaseException:
            box.forget(rid)
            expected.close()
            box.post({"op": "kill", "rid": rid, "signal": int(signal.SIGKILL)})
            raise
        box.forget(rid)
        fds = expected.fds
        pipes = RunnerPipes(
            request_r=-1, request_w=fds["channel"], stdout_r=fds["stdout"], stdout_w=-1,
            stderr_r=fds["stderr"], stderr_w=-1, control_r=fds["control"], control_w=-1,
        )  # fmt: skip
        tree = BoxedTree(box, rid, fds["control"])
        tree.base_memory = tree.usage().memory_bytes
        return int(answer["pid"]), pipes, tree

    def stop(self) -> str:
        with self._lock:
            boxes, self.boxes = list(self.boxes.values()), {}
        tails = []
        for box in boxes:
            tails.append(box.stop())
            box.remove()
        return "\n".join(t for t in tails if t)

    def close(self) -> None:
        self.stop()

    def fds(self) -> set[int]:
        return set().union(*(box.fds() for box in list(self.boxes.values())))

    def resident_pids(self) -> set[int]:
        return set().union(*(box.resident_pids() for box in list(self.boxes.values())))
