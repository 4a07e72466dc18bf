"""The warm pool's lifecycle: backpressure, a crashing template, the host exiting."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from sandbox_tool import EngineError, PythonSandbox, SandboxError
from sandbox_tool.engines.native import NativeEngine
from sandbox_tool.engines.runners.gate import Gate

from ..contract.engine_contract import open_fds

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the warm pool runs on Linux"
)


def _gone(pid: int, within: float) -> bool:
    end = time.monotonic() + within
    while time.monotonic() < end:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_gate_admits_queues_then_refuses() -> None:
    async def go() -> list[str]:
        gate, events = Gate(limit=2, queue=1), []

        async def hold(name: str, seconds: float) -> None:
            async with gate:
                events.append(f"in {name}")
                await asyncio.sleep(seconds)

        first = [asyncio.ensure_future(hold(n, 0.2)) for n in "ab"]
        await asyncio.sleep(0.05)
        queued = asyncio.ensure_future(hold("c", 0))
        await asyncio.sleep(0.05)
        assert (gate.running, gate.waiting) == (2, 1)
        with pytest.raises(EngineError, match="saturated"):
            await hold("d", 0)
        await asyncio.gather(*first, queued)
        assert (gate.running, gate.waiting) == (0, 0)
        return events

    assert asyncio.run(go()) == ["in a", "in b", "in c"]


def test_a_cancelled_waiter_leaves_the_queue() -> None:
    async def go() -> None:
        gate = Gate(limit=1, queue=1)
        async with gate:
            waiter = asyncio.ensure_future(gate.__aenter__())
            await asyncio.sleep(0.01)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
            assert gate.waiting == 0
        assert gate.running == 0

    asyncio.run(go())


def test_executions_beyond_the_queue_are_refused(tmp_path: Path) -> None:
    async def go() -> list[object]:
        engine = NativeEngine(work_root=tmp_path, warm=False, max_concurrent=1, max_queued=0)
        sandbox = PythonSandbox(engine=engine)
        try:
            await sandbox.start()
            running = asyncio.ensure_future(
                sandbox.execute("import time\ntime.sleep(2)\nresult = 'ran'")
            )
            await asyncio.sleep(0.5)  # it holds the only slot now
            refused = await asyncio.gather(sandbox.execute("result = 'second'"),
                                           return_exceptions=True)  # fmt: skip
            return [await running, *refused]
        finally:
            await sandbox.aclose()

    ran, refused = asyncio.run(go())
    assert getattr(ran, "result", None) == "ran"
    assert isinstance(refused, EngineError) and "max_concurrent" in str(refused)


def test_a_crashed_template_is_restarted(tmp_path: Path) -> None:
    async def go() -> tuple[object, object, int]:
        sandbox = PythonSandbox(engine=NativeEngine(work_root=tmp_path))
        try:
            await sandbox.execute("result = 1")
            pool = sandbox.engine.pool  # type: ignore[attr-defined]
            in_flight = asyncio.ensure_future(sandbox.execute("import time\ntime.sleep(30)"))
            await asyncio.sleep(0.5)
            os.kill(pool.template_pid(), signal.SIGKILL)
            lost = (await asyncio.gather(in_flight, return_exceptions=True))[0]
            after = await sandbox.execute("result = 'back'")
            return lost, after, pool.restarts
        finally:
            await sandbox.aclose()

    lost, after, restarts = asyncio.run(go())
    assert isinstance(lost, EngineError)  # its runner died with the template: said, not hung
    assert getattr(after, "result", None) == "back"
    assert restarts == 1


def test_a_warm_runner_goes_back_once_the_caller_has_its_answer(tmp_path: Path) -> None:
    """Its teardown wakes the pool's thread, which would take the GIL from the caller:
    the caller resumes with its result first, and the runner goes back right after."""

    async def go() -> tuple[object, int, int, list[str]]:
        sandbox = PythonSandbox(engine=NativeEngine(work_root=tmp_path))
        try:
            await sandbox.execute("result = 0")
            pool = sandbox.engine.pool  # type: ignore[attr-defined]
            released: list[str] = []
            keep = pool.release
            pool.release = lambda runner: (released.append("back"), keep(runner))
            result = await sandbox.execute("result = 1")
            at_answer = len(released)
            await asyncio.sleep(0)
            after_a_turn = len(released)
            again = await sandbox.execute("result = 2")
            await asyncio.sleep(0)
            return (getattr(result, "result", None), at_answer, after_a_turn,
                    [*released, str(getattr(again, "result", None))])  # fmt: skip
        finally:
            await sandbox.aclose()

    value, at_answer, after_a_turn, released = asyncio.run(go())
    assert value == 1
    assert (at_answer, after_a_turn) == (0, 1)
    assert released == ["back", "back", "2"]


def test_a_cancelled_session_close_still_releases_its_runner(tmp_path: Path) -> None:
    async def go() -> tuple[int, Path, bool, object]:
        sandbox = PythonSandbox(engine=NativeEngine(work_root=tmp_path))
        try:
            async with sandbox.session() as session:
                await session.execute("x = 1")
                runner = session._runner  # type: ignore[attr-defined]
                closing = asyncio.ensure_future(session.aclose())
                await asyncio.sleep(0)  # it is stopping the runner
                closing.cancel()
                await asyncio.gather(closing, return_exceptions=True)
            end = time.monotonic() + 5
            while runner.ws.root.exists() and time.monotonic() < end:
                await asyncio.sleep(0.05)  # a runner given back has its workspace removed
            after = await sandbox.execute("result = 1")  # and the pool still serves
            return runner.pid, runner.ws.root, runner.ws.root.exists(), after
        finally:
            await sandbox.aclose()

    pid, root, left, after = asyncio.run(go())
    assert _gone(pid, within=5)
    assert not left, f"{root} was left behind"
    assert getattr(after, "result", None) == 1


def test_the_host_exiting_leaves_no_process(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, sys
        from sandbox_tool import PythonSandbox
        from sandbox_tool.engines.native import NativeEngine
        sandbox = PythonSandbox(engine=NativeEngine(work_root={str(tmp_path)!r}))
        assert sandbox.execute_sync("result = 1").result == 1
        pool = sandbox.engine.pool
        pool.wait_idle()
        print(*sorted(pool.resident_pids()), flush=True)
        os._exit(0)  # no aclose(), no atexit: as if the host crashed
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    pids = [int(p) for p in out.stdout.split()]
    assert len(pids) >= 2  # the template and at least one waiting runner
    assert all(_gone(pid, 5.0) for pid in pids), "the pool outlived its host"

    # the waiting runners' workspaces stayed; the next engine to start here removes them
    left = list(tmp_path.iterdir())
    assert left
    asyncio.run(_start_and_close(tmp_path))
    assert not [p for p in left if p.exists()]


async def _start_and_close(work_root: Path) -> None:
    sandbox = PythonSandbox(engine=NativeEngine(work_root=work_root, warm=False))
    await sandbox.start()
    await sandbox.aclose()


def test_only_the_workspaces_of_dead_hosts_are_removed(tmp_path: Path) -> None:
    dead_pid = subprocess.Popen(["true"])
    dead_pid.wait()
    keep = tmp_path / "kept"
    keep.mkdir()
    (keep / "file").write_text("mine")
    namespace = os.stat("/proc/self/ns/pid").st_ino
    stale = tmp_path / f"sandbox-tool-{namespace}.{dead_pid.pid}-abc"
    (stale / "work").mkdir(parents=True)
    (stale / "work" / "out.csv").write_text("1")
    live = tmp_path / f"sandbox-tool-{namespace}.{os.getpid()}-def"
    live.mkdir()
    elsewhere = tmp_path / f"sandbox-tool-{namespace + 1}.{dead_pid.pid}-ghi"
    elsewhere.mkdir()  # another pid namespace's host: not ours to judge
    link = tmp_path / f"sandbox-tool-{namespace}.{dead_pid.pid}-link"
    link.symlink_to(keep)
    other = tmp_path / f"sandbox-tool-{namespace}.notapid-x"
    other.mkdir()

    asyncio.run(_start_and_close(tmp_path))

    assert not stale.exists()
    assert live.is_dir() and other.is_dir() and elsewhere.is_dir() and link.is_symlink()
    assert (keep / "file").read_text() == "mine"


def test_closing_the_engine_under_a_running_session_leaks_nothing(tmp_path: Path) -> None:
    async def go() -> tuple[object, set[str], set[str]]:
        before = open_fds()
        sandbox = PythonSandbox(engine=NativeEngine(work_root=tmp_path))
        session = await sandbox.open_session()
        await session.execute("x = 1")
        running = asyncio.ensure_future(session.execute("import time\ntime.sleep(30)"))
        await asyncio.sleep(0.3)
        await sandbox.aclose()  # the pool goes first, the session's runner is still out
        outcome = (await asyncio.gather(running, return_exceptions=True))[0]
        # files opened now take the fd numbers the runner's pipes had: closing those
        # pipes a second time would close these
        mine = [os.open(os.devnull, os.O_RDONLY) for _ in range(16)]
        await session.aclose()
        still_open = [fd for fd in mine if str(fd) in open_fds()]
        for fd in mine:
            os.close(fd)
        assert still_open == mine
        return outcome, before, open_fds()

    outcome, before, after = asyncio.run(go())
    assert isinstance(outcome, SandboxError)  # ended, said, not hung
    assert after <= before  # every pipe and socket of the pool and the runner closed
    assert not any(tmp_path.iterdir())
