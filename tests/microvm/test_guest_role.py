"""The runner's guest role, driven directly through its multiplexed stdin and stdout, as
the host's relay drives it through a VM's exec (here: a subprocess on this host, without
a sandbox around the runner)."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sandbox_tool import ExecutionOptions
from sandbox_tool.engines.runners import requests
from sandbox_tool.engines.runners.workspace import Workspace
from sandbox_tool.runner import mux
from sandbox_tool.runner.framing import HEADER

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")


class Guest:
    """A guest role process and what came back from it, per stream."""

    def __init__(self, tmp_path: Path) -> None:
        self.ws = Workspace(tmp_path / "guest" / "ws")
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-B", "-c", mux.GUEST_BOOTSTRAP, requests.RUNNER_PARENT, "run"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd="/",
            env={"PATH": "/usr/bin:/bin", "OPENBLAS_NUM_THREADS": "1"},
        )
        self.streams: dict[bytes, bytearray] = {tag: bytearray() for tag in mux.STREAMS}
        self.ended: set[bytes] = set()
        self.files: dict[str, bytes] = {}

    def send(self, *frames: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"".join(frames))
        self.proc.stdin.flush()

    def start(self, files: dict[str, bytes] | None = None, copy_out: int = 1 << 20) -> None:
        setup = requests.runner_setup(self.ws, None)
        start = {"setup": setup, "copy_out_max_bytes": copy_out, "mplconfig": None}
        frames = [mux.encode_json(mux.START, start)]
        for name, data in (files or {}).items():
            frames += mux.file_frames(f"work/{name}", data)
        self.send(*frames, mux.encode(mux.GO))

    def run(self, code: str, **options: Any) -> bytes:
        """Send a one-shot's request and cell; the cell's marker."""
        frames, limits = requests.one_shot_frames(
            code, None, ExecutionOptions(**options), self.ws, sandbox_caps_processes=False
        )
        self.send(*mux.chunks(mux.CHANNEL, frames))
        return limits.marker

    def read_until_exit(self, timeout: float = 60) -> dict[str, Any]:
        assert self.proc.stdout is not None
        decoder = mux.Decoder(mux.TO_HOST)
        sink = mux.FileSink()
        current: list[Any] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data = os.read(self.proc.stdout.fileno(), 1 << 16)
            if not data:
                raise AssertionError("the guest role ended without saying X")
            for tag, payload in decoder.feed(data):
                if tag == mux.EXIT:
                    return dict(json.loads(payload))
                if tag in mux.STREAMS:
                    self.streams[tag] += payload
                    if not payload:
                        self.ended.add(tag)
                elif tag == mux.FILE:
                    sink.header(payload, lambda path, size: self._file(path, current))
                elif tag == mux.BYTES:
                    self.files[current[-1]] += payload
                    sink.data(payload)
        raise AssertionError("the guest role did not end")

    def _file(self, path: str, current: list[Any]) -> None:
        current.append(path)
        self.files[path] = b""

    def frames(self) -> list[dict[str, Any]]:
        """The JSON frames the runner sent on its channel (its ready frame, its answer)."""
        data, found = bytes(self.streams[mux.CHANNEL]), []
        while data:
            (size,) = HEADER.unpack_from(data)
            found.append(json.loads(data[HEADER.size : HEADER.size + size]))
            data = data[HEADER.size + size :]
        return found

    def answer(self) -> dict[str, Any]:
        ready, answer = self.frames()[:2]
        assert {k: ready[k] for k in ("status", "isolation")} == {
            "status": "ready",
            "isolation": None,
        }
        assert ready["usage"]["cpu_seconds"] > 0  # where a session's CPU budgets start
        return dict(answer)

    def report(self) -> dict[str, Any]:
        return dict(json.loads(self.streams[mux.CONTROL]))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def guest(tmp_path: Path) -> Any:
    role = Guest(tmp_path)
    yield role
    role.close()


def test_one_execution_through_the_streams(guest: Guest) -> None:
    guest.start({"in.csv": b"a,b\n1,2\n"})
    marker = guest.run("import os\nprint('out')\nresult = open('in.csv').read()")
    assert guest.read_until_exit() == {"ok": True}
    answer = guest.answer()
    assert answer["status"] == "ok" and answer["result"] == "a,b\n1,2\n"
    assert bytes(guest.streams[mux.STDOUT]) == b"out\n" + marker
    assert guest.report()["exit_code"] == 0
    # the channel, stdout and stderr ended, and the control stream last
    assert guest.ended == set(mux.STREAMS)
    assert guest.files == {}  # it answered: nothing is copied back
    assert not guest.ws.root.exists()  # the execution's dirs are gone
    assert guest.proc.wait(10) == 0


def test_workspaces_of_dead_guest_roles_are_swept_not_live_ones(guest: Guest) -> None:
    parent = guest.ws.root.parent
    dead, alive = parent / "dead", parent / "alive"
    for root in (dead, alive):
        (root / "work").mkdir(parents=True)
        (root / ".guest-lock").write_text("")
    held = os.open(alive / ".guest-lock", os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_EX)  # a guest role still running there
    try:
        guest.start()
        guest.run("result = 1")
        guest.read_until_exit()
        assert not dead.exists() and (alive / "work").exists()
    finally:
        os.close(held)


def test_input_files_are_read_only_to_the_code(guest: Guest) -> None:
    guest.start({"in.csv": b"x"})
    guest.run("import os, stat\nresult = oct(stat.S_IMODE(os.stat('in.csv').st_mode))")
    guest.read_until_exit()
    assert guest.answer()["result"] == "0o444"


def test_a_runner_that_died_sends_its_files_back(guest: Guest) -> None:
    guest.start({"in.csv": b"unchanged"})
    guest.run("import os\nopen('made.txt', 'w').write('left')\nos._exit(3)")
    guest.read_until_exit()
    assert guest.report()["exit_code"] == 3
    assert guest.files.get("work/made.txt") == b"left"
    assert "work/in.csv" not in guest.files  # an unchanged input does not come back


def test_the_copy_out_keeps_to_its_budget(guest: Guest) -> None:
    guest.start(copy_out=5)
    guest.run("import os\nopen('a', 'w').write('12345')\nopen('b', 'w').write('6')\nos._exit(1)")
    guest.read_until_exit()
    assert guest.files == {"work/a": b"12345"}


def test_a_stop_reaches_the_code(guest: Guest) -> None:
    guest.start()
    guest.run("import time\nprint('running', flush=True)\nwhile True: time.sleep(0.05)")
    time.sleep(1.0)
    guest.send(mux.encode(mux.STOP))
    guest.read_until_exit()
    assert guest.report()["signal"] == 15  # SIGTERM, passed on by the supervisor


def test_a_vanished_host_takes_the_runner_with_it(guest: Guest) -> None:
    guest.start()
    guest.run("import os, time\nprint(os.getpid(), flush=True)\ntime.sleep(60)")
    assert guest.proc.stdout is not None
    decoder = mux.Decoder(mux.TO_HOST)
    pid = None
    while pid is None:
        for tag, payload in decoder.feed(os.read(guest.proc.stdout.fileno(), 1 << 16)):
            if tag == mux.STDOUT and payload.strip():
                pid = int(payload.split()[0])
    assert guest.proc.stdin is not None
    guest.proc.stdin.close()  # the exec's client is gone
    assert guest.proc.wait(10) == 0
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{pid}")
    assert not guest.ws.root.exists()


def test_a_broken_protocol_ends_the_role(guest: Guest) -> None:
    guest.send(mux.encode(b"Z", b"?"))
    assert guest.proc.wait(10) == 3


def test_only_work_and_meta_paths_are_files() -> None:
    paths = {"work": "/w/work", "tmp": "/w/tmp", "meta": "/w/meta"}
    assert mux.inside_workspace(paths, "work/a/b.csv") == "/w/work/a/b.csv"  # type: ignore[arg-type]
    assert mux.inside_workspace(paths, "meta/worker.json") == "/w/meta/worker.json"  # type: ignore[arg-type]
    for bad in ("/etc/passwd", "work/../meta/x", "tmp/x", "work/", "work/./x", "x"):
        assert mux.inside_workspace(paths, bad) is None, bad  # type: ignore[arg-type]


def test_the_probe_reports_the_guest_kernels_layers() -> None:
    out = subprocess.run(
        [sys.executable, "-I", "-B", "-c", mux.GUEST_BOOTSTRAP, requests.RUNNER_PARENT, "probe"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["python"] == sys.version.split()[0]
    assert isinstance(report["available"], bool) and isinstance(report["skip"], list)
    assert report["reason"]
