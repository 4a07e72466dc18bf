"""The warm pools of an engine's other environments: one :class:`WarmPool` (a template
running that environment's interpreter, and runners forked from it) per environment,
started on first use and closed once idle, so that the second execution in an
environment is as fast as one in the engine's own interpreter.

A pool is never closed while one of its runners is out (an execution or a session: a
runner dies with its template); among idle pools, the least recently used goes first
when more than ``max_pools`` are open, and any pool idle for ``idle_seconds`` is closed
by a background thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sandbox_tool.engines.runners.pool import WarmPool
from sandbox_tool.environments.environment import Environment
from sandbox_tool.errors import EngineError

__all__ = ["EnvironmentPools"]


@dataclass
class _Entry:
    env: Environment
    pool: WarmPool | None = None
    users: int = 0
    last_used: float = field(default_factory=time.monotonic)
    starting: threading.Lock = field(default_factory=threading.Lock)


class EnvironmentPools:
    """``make_pool(env)`` gives a pool (not started) for an environment."""

    def __init__(
        self,
        make_pool: Callable[[Environment], WarmPool],
        *,
        idle_seconds: float = 300.0,
        max_pools: int = 4,
    ) -> None:
        self.make_pool = make_pool
        self.idle_seconds = idle_seconds
        self.max_pools = max_pools
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._closed = False
        self._evictor: threading.Thread | None = None

    def acquire_started(self, env: Environment) -> WarmPool | None:
        """The environment's pool if it is running (counted as in use), else None; never
        blocks (for the event loop's thread)."""
        with self._lock:
            entry = self._entries.get(env.key)
            if self._closed or entry is None or entry.pool is None:
                return None
            entry.users += 1
            return entry.pool

    def acquire(self, env: Environment) -> WarmPool:
        """The environment's pool, started now if needed (blocking: call it in a thread);
        in use until :meth:`release`."""
        with self._lock:
            if self._closed:
                raise EngineError("the engine is closed")
            entry = self._entries.setdefault(env.key, _Entry(env))
            entry.users += 1
        try:
            with entry.starting:
                if entry.pool is None:
                    pool = self.make_pool(env)
                    pool.start()
                    entry.pool = pool
        except BaseException:
            self.release(env.key)
            raise
        with self._lock:
            closed = self._closed
        if closed:  # close() ran while it started: it did not see this pool
            entry.pool.close()
            raise EngineError("the engine is closed")
        self._close_extra()
        self._ensure_evictor()
        return entry.pool

    def release(self, key: str) -> None:
        """One user of the environment's pool is done with it."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return
            entry.users -= 1
            entry.last_used = time.monotonic()
            if entry.pool is None and entry.users == 0:
                del self._entries[key]  # its start failed
            self._changed.notify_all()

    def pool_of(self, key: str) -> WarmPool | None:
        with self._lock:
            entry = self._entries.get(key)
            return entry.pool if entry is not None else None

    def running(self) -> dict[str, WarmPool]:
        """The running pools by environment key."""
        with self._lock:
            return {k: e.pool for k, e in self._entries.items() if e.pool is not None}

    def _take_idle(self, now: float, *, extra_only: bool) -> list[WarmPool]:
        """Unregister the pools to close (the caller holds the lock)."""
        idle = sorted(
            (e for e in self._entries.values() if e.pool is not None and e.users == 0),
            key=lambda e: e.last_used,
        )
        if extra_only:
            running = sum(1 for e in self._entries.values() if e.pool is not None)
            doomed = idle[: max(0, running - self.max_pools)]
        else:
            doomed = [e for e in idle if now - e.last_used >= self.idle_seconds]
        for entry in doomed:
            del self._entries[entry.env.key]
        return [e.pool for e in doomed if e.pool is not None]

    def _close_extra(self) -> None:
        with self._lock:
            doomed = self._take_idle(time.monotonic(), extra_only=True)
        for pool in doomed:
            pool.close()

    def _ensure_evictor(self) -> None:
        with self._lock:
            if self._evictor is None and not self._closed:
                self._evictor = threading.Thread(
                    target=self._evict_loop, name="sandbox-tool-env-evict", daemon=True
                )
                self._evictor.start()

    def _evict_loop(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                now = time.monotonic()
                doomed = self._take_idle(now, extra_only=False)
                if not doomed:
                    idle = [e.last_used for e in self._entries.values() if e.users == 0]
                    wait = min(idle) + self.idle_seconds - now if idle else None
                    self._changed.wait(None if wait is None else max(wait, 0.05))
                    continue
            for pool in doomed:
                pool.close()

    def close(self) -> None:
        """Close every pool (the engine is closing; no runner is out any more)."""
        with self._lock:
            self._closed = True
            entries, self._entries = list(self._entries.values()), {}
            self._changed.notify_all()
            evictor = self._evictor
        for entry in entries:
            if entry.pool is not None:
                entry.pool.close()
        if evictor is not None:
            evictor.join(timeout=5)
