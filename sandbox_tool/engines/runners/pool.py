"""The warm pool: one template process per engine, and runners forked from it ahead of time.

The template (:mod:`sandbox_tool.runner.roles.template`) imports the data-science
stack once. Each runner forked from it is a full runner (supervisor, worker,
and for the process engine a fresh sandbox with its own namespaces, landlock
ruleset, seccomp filter and rlimits): a warm runner is never weaker than a
cold one. A few runners for the engine's default settings are forked ahead of
time and wait, already sandboxed, for their request; each runs exactly one
execution (or one session) and is replaced in the background.

A runner answers on its channel before it has ended (see
:func:`sandbox_tool.engines.launch.drive`): a released runner is left to end by
itself, which its supervisor reports by closing the control pipe, and only then
is its workspace removed. One that takes longer than a second is killed.

Loop-agnostic: the pool's state is guarded by a thread lock, so executions may
come from any event loop (``execute_sync`` runs a fresh loop per call).
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from sandbox_tool.engines.runners.proctree import HostTree
from sandbox_tool.engines.runners.runner import Runner
from sandbox_tool.engines.runners.template import TEMPLATE_BOOTSTRAP, Template, TemplateLike
from sandbox_tool.engines.runners.workspace import Workspace
from sandbox_tool.errors import EngineError
from sandbox_tool.runner.protocol import RunnerSetup

__all__ = ["TEMPLATE_BOOTSTRAP", "Runner", "WarmPool"]

_END_SECONDS = 1.0
"""How long a released runner gets to end by itself before it is killed (it takes a few
milliseconds; code that forged an early answer gets no more than this)."""


class WarmPool:
    """A template process and ``size`` runners forked ahead of time for ``default_key``.

    ``make_setup(ws, key)`` gives the runner's setup for a workspace and a settings key;
    ``make_workspace()`` a fresh workspace. ``env`` is the template's environment;
    ``template`` replaces the usual one (a strategy's own, such as gVisor's).
    """

    def __init__(
        self,
        argv: list[str],
        *,
        env: dict[str, str],
        preload: list[str],
        make_workspace: Callable[[], Workspace],
        make_setup: Callable[[Workspace, Any], RunnerSetup],
        default_key: Any,
        size: int = 2,
        template: TemplateLike | None = None,
    ) -> None:
        self.argv = argv
        self.env = env
        self.preload = preload
        self.make_workspace = make_workspace
        self.make_setup = make_setup
        self.default_key = default_key
        self.size = size
        self._lock = threading.RLock()
        self._ready: deque[Runner] = deque()
        # released runners still ending, with the time they get to end by themselves
        self._spent: list[tuple[Runner, float]] = []
        self._cleaning = 0
        self._template: TemplateLike = template or Template(argv, env, preload)
        self._had_template = False
        self._closed = False
        self._refill_wanted = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        self._refiller: threading.Thread | None = None
        self._ender: threading.Thread | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._wake_lock = threading.Lock()
        # released runners, queued without the lock (release() runs on the event loop)
        self._released: deque[Runner] = deque()
        self.restarts = 0

    def _ensure_template(self) -> None:
        if self._closed:
            raise EngineError("the warm pool is closed")
        if not self._template.alive():
            if self._had_template:
                self.restarts += 1
                self._drop_ready()  # runners of a dead template are dead too
                self._template.stop()
            self._template.start()
            self._had_template = True

    # -- runners -------------------------------------------------------------------

    def _fork(self, key: Any, ws: Workspace | None = None) -> Runner:
        """Fork a runner now (the caller holds the lock)."""
        self._ensure_template()
        ws = ws or self.make_workspace()
        try:
            pid, pipes, tree = self._template.spawn(self.make_setup(ws, key))
        except BaseException:
            ws.cleanup()
            raise
        return Runner(pid, pipes, ws, key, tree=tree or HostTree(pid))

    def take_ready(self, key: Any) -> Runner | None:
        """A runner forked ahead of time for ``key``, if one is waiting and the pool is not
        busy forking; never blocks (for the event loop's thread), else None."""
        if key != self.default_key or not self._lock.acquire(blocking=False):
            return None
        try:
            return self._pop_ready()
        finally:
            self._lock.release()

    def take(self, key: Any, ws: Workspace | None = None) -> Runner:
        """A runner for ``key``: one forked ahead of time when there is one (and no
        workspace was imposed), else one forked now. Blocking: call it in a thread."""
        with self._lock:
            runner = self._pop_ready() if ws is None and key == self.default_key else None
            return runner or self._fork(key, ws)

    def _pop_ready(self) -> Runner | None:
        """The first waiting runner still alive (the caller holds the lock); dead ones go
        to the background, to be killed and removed."""
        while self._ready:
            runner = self._ready.popleft()
            if self._template.alive() and runner.tree.alive():
                return runner
            runner.pipes.close_driven_ends()
            self._spent.append((runner, 0.0))
            self._wake()
        return None

    def release(self, runner: Runner) -> None:
        """An execution is over: let the runner end, then remove its workspace, and fork
        its replacement, all in the background, so that at low load none of it competes
        with the execution. Never blocks while the pool is open (the event loop calls it)."""
        self._released.append(runner)
        if self._closed:  # close() may have drained the queue already: finish it here
            threading.Thread(target=self._finish_released, daemon=True).start()
        else:
            self._wake()

    def _wake(self) -> None:
        """Wake the thread that waits for released runners to end."""
        with self._wake_lock:
            if self._wake_w >= 0:
                with contextlib.suppress(OSError):
                    os.write(self._wake_w, b"x")

    def _close_wake(self) -> None:
        with self._wake_lock:
            for fd in (self._wake_r, self._wake_w):
                if fd >= 0:
                    os.close(fd)
            self._wake_r = self._wake_w = -1

    def _finish_released(self) -> None:
        """After close(): kill and finish what was released since."""
        while True:
            try:
                runner = self._released.popleft()
            except IndexError:
                return
            runner.tree.kill(wait=1.0)
            runner.finish(killed=True)

    def _refill_loop(self) -> None:
        while True:
            with self._lock:
                while not self._closed and len(self._ready) >= self.size:
                    self._idle.notify_all()
                    self._refill_wanted.wait()
                if self._closed:
                    return
                try:
                    self._ready.append(self._fork(self.default_key))
                except Exception:  # noqa: BLE001 - retried on the next request
                    self._refill_wanted.wait()
                self._idle.notify_all()

    def _admit_released(self) -> None:
        """Move released runners to the ones being waited for, and ask for replacements
        (under the lock, so that a runner is always in one of the lists wait_idle sees)."""
        with self._lock:
            if self._closed or not self._released:
                return  # close() finishes what is left
            deadline = time.monotonic() + _END_SECONDS
            while self._released:
                self._spent.append((self._released.popleft(), deadline))
            self._refill_wanted.notify()

    def _end_loop(self) -> None:
        """Wait for released runners to end (their control pipe closes), then finish them;
        kill those that take longer than ``_END_SECONDS``."""
        try:
            while True:
                self._admit_released()
                with self._lock:
                    if self._closed:
                        return
                    spent = list(self._spent)
                poller = select.poll()  # any fd number, unlike select()
                poller.register(self._wake_r, select.POLLIN)
                for runner, _ in spent:
                    poller.register(runner.pipes.control_r, select.POLLIN)
                first = min((deadline for _, deadline in spent), default=None)
                wait = None if first is None else max(0.0, first - time.monotonic()) * 1000
                events = dict(poller.poll(wait))
                if self._wake_r in events:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
                now = time.monotonic()
                for runner, deadline in spent:
                    try:
                        ended = runner.pipes.control_r in events and _drained(runner)
                    except OSError:  # its control pipe is broken: kill it and be done
                        ended, deadline = False, now
                    if ended or deadline <= now:
                        self._finish_spent(runner, late=not ended)
        finally:
            if self._closed:
                self._close_wake()

    def _finish_spent(self, runner: Runner, late: bool) -> None:
        with self._lock:
            if not any(r is runner for r, _ in self._spent):
                return  # close() has it
            self._spent = [(r, d) for r, d in self._spent if r is not runner]
            self._cleaning += 1
        try:
            if late:
                runner.tree.kill(wait=1.0)
            runner.finish(killed=late)
        except Exception:  # noqa: BLE001 - this thread must outlive one runner's failure
            pass
        finally:
            with self._lock:
                self._cleaning -= 1
                self._idle.notify_all()

    def start(self) -> None:
        """Start the template and the background refill (blocking: call it in a thread)."""
        with self._lock:
            self._ensure_template()
            if self._ender is None:
                self._ender = threading.Thread(
                    target=self._end_loop, name="sandbox-tool-end", daemon=True
                )
                self._ender.start()
            if self._refiller is None and self.size > 0:
                self._refiller = threading.Thread(
                    target=self._refill_loop, name="sandbox-tool-refill", daemon=True
                )
                self._refiller.start()
                self._refill_wanted.notify()

    def _drop_ready(self) -> None:
        while self._ready:
            self._ready.popleft().discard()

    def close(self) -> None:
        """Stop the template and every waiting runner; nothing is left behind."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._drop_ready()
            self._template.close()
            self._refill_wanted.notify_all()
            self._idle.notify_all()
        self._wake()
        if self._refiller is not None:
            self._refiller.join(timeout=5)
        if self._ender is not None:
            # no timeout: only once it is gone may this thread touch the runners it
            # waits for (its work per runner is bounded: a kill and a workspace removal)
            self._ender.join()
        self._close_wake()
        with self._lock:
            spent, self._spent = self._spent, []
        for runner, _ in spent:
            runner.tree.kill(wait=1.0)
            runner.finish(killed=True)
        self._finish_released()

    @property
    def info(self) -> dict[str, Any]:
        """What the template said when it was ready."""
        return self._template.info

    def ready_count(self) -> int:
        with self._lock:
            return len(self._ready)

    def template_pid(self) -> int | None:
        return self._template.pid

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until no runner is being forked and the waiting ones are sandboxed (for
        leak checks, which must not mistake a runner being born for a leftover)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._refiller is not None and (
                len(self._ready) < self.size or self._spent or self._released or self._cleaning
            ):
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    break
                self._idle.wait(left)

    def resident_pids(self) -> set[int]:
        """The template and the waiting runners' supervisors: what the pool keeps between
        executions (with the sandboxes below those supervisors). Any other child of the
        template is a leftover."""
        with self._lock:
            # a runner inside a sandbox (gVisor) has no host pid: its template's are listed
            ready = {r.pid for r in self._ready if isinstance(r.tree, HostTree)}
            return ready | self._template.resident_pids()

    def resident_dirs(self) -> set[Any]:
        with self._lock:
            return {r.ws.root for r in self._ready}

    def resident_fds(self) -> set[int]:
        with self._lock:
            fds = self._template.fds()
            for r in self._ready:
                fds |= {r.pipes.request_w, r.pipes.stdout_r, r.pipes.stderr_r, r.pipes.control_r}
            fds |= {fd for fd in (self._wake_r, self._wake_w) if fd >= 0}
            return fds


def _drained(runner: Runner) -> bool:
    """Read what the control pipe holds; True at its end (the supervisor has exited)."""
    fd = runner.pipes.control_r
    os.set_blocking(fd, False)
    try:
        while os.read(fd, 65536):
            pass
    except BlockingIOError:
        return False
    except OSError:
        return True
    return True
