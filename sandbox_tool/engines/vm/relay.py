"""The host's end of a runner in a microVM: a small process that stands in for the runner.

The shared machinery starts a cold runner as a process with four channels (its framed
socket on stdin, stdout, stderr and the control pipe) and drives it by pid. For a VM
engine that process is this relay (the isolation strategy's ``wrap_argv`` names it):
it connects to the engine's running microVM through the microsandbox SDK, starts the
runner's guest role there (:mod:`sandbox_tool.runner.roles.guest`) with one exec, and
moves the four channels over that exec's stdin and stdout as :mod:`sandbox_tool.runner.mux`
frames. So the driver, its timeout, output cap and kill, and the parsing of answers are
the same as for every other engine:

- a SIGTERM (the driver's stop) becomes ``T`` for the guest (the supervisor stops the
  code and the sandbox saves its files), then ``K`` and the exec's kill before the
  driver's SIGKILL comes;
- killing this process ends the exec's connection, on which the VM's agent kills the
  exec's process group, and the guest role's children die with it;
- the files a runner that did not answer left in the VM come back into the host's
  workspace before the control pipe ends, within the copy-out budget, so the host reads
  them as it reads a cold run's;
- what fails here (the VM is gone, the SDK refused the exec) is reported on the control
  pipe as a supervisor report with a ``message``, which the host turns into an
  ``EngineError`` naming the cause.

Everything that comes from the guest is treated as written by the code: frame sizes are
bounded, file paths must name a file inside the work or private dir, and the copy-out
has a byte budget. It imports only the runner package and the SDK (its bootstrap skips
sandbox_tool's own ``__init__`` modules, which import pydantic): it runs once per
execution.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import signal
import socket
import sys
from typing import Any, TypedDict

from sandbox_tool.runner import mux
from sandbox_tool.runner.framing import HEADER, write_all
from sandbox_tool.runner.protocol import MAX_ARTIFACT_FILES, Paths

__all__ = ["RELAY_BOOTSTRAP", "Relay", "RelayConfig", "failure_report", "main"]

RELAY_BOOTSTRAP = (
    "import sys, types\n"
    "for name, path in (('sandbox_tool', sys.argv[1]), ('sandbox_tool.engines', sys.argv[2])):\n"
    "    package = types.ModuleType(name); package.__path__ = [path]; sys.modules[name] = package\n"
    "from sandbox_tool.engines.vm.relay import main\n"
    "main(sys.argv[3], int(sys.argv[4]))"
)
"""``python -I -B -c RELAY_BOOTSTRAP <sandbox_tool dir> <engines dir> <config> <control fd>``
(the driver appends the control fd and ``framed``)."""

_DIAGNOSTIC_BYTES = 4000
#: The runner's setup frame, read before the exec starts.
_SETUP_BYTES = 1 << 20


class RelayConfig(TypedDict):
    """What the isolation strategy tells a relay (JSON on its command line)."""

    vm: str
    """The running microVM's name."""
    sdk: str
    """The SDK's module (``microsandbox``; tests name a double of it)."""
    sdk_path: str | None
    """A directory to import the SDK from (tests only)."""
    msb_home: str
    """The runtime's home (``MSB_HOME``): the relay's environment is the runner's."""
    python: str
    """The guest's Python."""
    guest_parent: str
    """The guest's directory holding the runner package."""
    mplconfig: str | None
    """The guest's warmed matplotlib font cache, or None."""
    copy_out_max_bytes: int
    stop_grace: float
    connect_timeout: float


class _CopyOut:
    """Files coming back from the guest into the host's workspace, within a budget."""

    def __init__(self, paths: Paths, max_bytes: int) -> None:
        self.paths = paths
        self.left = max_bytes
        self.files = MAX_ARTIFACT_FILES + 2  # and the runner's report and copy-out summary
        self.cut = False

    def open(self, rel: str, size: int) -> int | None:
        path = mux.inside_workspace(self.paths, rel)
        if path is None:
            raise mux.MuxError(f"the guest sent a file outside the workspace: {rel!r}")
        if size > self.left or self.files <= 0:
            self.cut = True
            return None
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # an exposed input file the code changed (read-only)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except OSError:
            self.cut = True
            return None
        self.left -= size
        self.files -= 1
        return fd

    def finish(self) -> None:
        """Say that files were left behind, as the process engine's copy-out does."""
        if self.cut:
            summary = os.path.join(self.paths["meta"], ".scratch.json")
            with contextlib.suppress(OSError), open(summary, "w") as f:
                json.dump({"reason": "the microVM's copy-out budget was reached"}, f)


class Relay:
    """One runner's relay: ``host`` is the runner's socket (the driver's channel),
    ``control_fd`` its control pipe; stdout and stderr are fds 1 and 2."""

    def __init__(self, config: RelayConfig, host: socket.socket, control_fd: int) -> None:
        self.config = config
        self.host = host
        self.control_fd = control_fd
        self.sdk: Any = None
        self.exec: Any = None
        self.sink: Any = None
        self.open_fds = {mux.STDOUT: 1, mux.STDERR: 2, mux.CONTROL: control_fd}
        self.control_sent = False
        self.diagnostic = bytearray()
        self.copy_out: _CopyOut | None = None
        self.files = mux.FileSink()
        self.stopping: asyncio.Task[None] | None = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        read = await self._read_setup()
        if read is None:
            return  # the host went away before the runner was set up
        setup, early = read
        self.copy_out = _CopyOut(setup["paths"], self.config["copy_out_max_bytes"])
        loop.add_signal_handler(signal.SIGTERM, self._on_stop)
        try:
            await self._start(setup, early)
        except Exception as exc:  # noqa: BLE001 - the SDK's errors, reported to the host
            await self._fail(f"the microVM {self.config['vm']!r} could not start the runner: "
                             f"{type(exc).__name__}: {exc}")  # fmt: skip
            return
        to_guest = asyncio.ensure_future(self._to_guest())
        try:
            await self._from_guest()
        except mux.MuxError as exc:
            await self._kill_exec()
            await self._fail(f"the microVM's runner broke the relay's protocol: {exc}")
        finally:
            to_guest.cancel()
            with contextlib.suppress(BaseException):
                await to_guest
        self.copy_out.finish()
        if not self.control_sent:
            await self._fail("the runner in the microVM ended without a report: "
                             + self.diagnostic.decode(errors="replace").strip())  # fmt: skip

    async def _read_setup(self) -> tuple[dict[str, Any], bytes] | None:
        """The runner's setup frame, and the channel bytes that came after it already."""
        loop = asyncio.get_running_loop()
        data = bytearray()
        while True:
            if len(data) >= HEADER.size:
                (size,) = HEADER.unpack_from(data)
                if size > _SETUP_BYTES:
                    raise mux.MuxError(f"a setup frame of {size} bytes")
                end = HEADER.size + size
                if len(data) >= end:
                    setup: dict[str, Any] = json.loads(data[HEADER.size : end])
                    return setup, bytes(data[end:])
            chunk = await loop.sock_recv(self.host, mux.CHUNK)
            if not chunk:
                return None
            data += chunk

    async def _start(self, setup: dict[str, Any], early: bytes) -> None:
        """Connect to the VM, start the guest role and hand it the setup and the files."""
        config = self.config
        if config["sdk_path"]:
            sys.path.insert(0, config["sdk_path"])
        os.environ["MSB_HOME"] = config["msb_home"]
        self.sdk = sdk = importlib.import_module(config["sdk"])
        handle = await sdk.Sandbox.get(config["vm"])
        vm = await handle.connect(timeout=config["connect_timeout"])
        guest = ["-I", "-B", "-c", mux.GUEST_BOOTSTRAP, config["guest_parent"], "run"]
        self.exec = await vm.exec_stream(
            config["python"], guest, cwd="/", stdin=sdk.Stdin.pipe(),
            env={"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"},
        )  # fmt: skip
        self.sink = self.exec.take_stdin()
        start = {"setup": setup, "copy_out_max_bytes": config["copy_out_max_bytes"],
                 "mplconfig": config["mplconfig"]}  # fmt: skip
        frames = [mux.encode_json(mux.START, start)]
        work = setup["paths"]["work"]
        for name in sorted(_regular_files(work)):
            with open(os.path.join(work, name), "rb") as f:
                frames += mux.file_frames(f"work/{name}", f.read())
        frames.append(mux.encode(mux.GO))
        frames += mux.chunks(mux.CHANNEL, early)
        for frame in frames:
            await self.sink.write(frame)

    async def _to_guest(self) -> None:
        """The driver's channel bytes into the guest; its end too."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                data = await loop.sock_recv(self.host, mux.CHUNK)
            except OSError:
                data = b""
            await self.sink.write(mux.encode(mux.CHANNEL, data))
            if not data:
                return

    async def _from_guest(self) -> None:
        decoder = mux.Decoder(mux.TO_HOST)
        types = self.sdk.ExecEventType
        while (event := await self.exec.recv()) is not None:
            kind = event.event_type
            if kind == types.STDOUT:
                for tag, payload in decoder.feed(event.data or b""):
                    if tag == mux.EXIT:
                        return
                    await self._dispatch(tag, payload)
            elif kind == types.STDERR:
                self._remember(event.data or b"")
            elif kind in (types.FAILED, types.STDIN_ERROR):
                self._remember((event.data or b"") + b"\n")
            elif kind == types.EXITED:
                self._remember(f"\nthe guest role exited with status {event.code}".encode())
                return

    async def _dispatch(self, tag: bytes, payload: bytes) -> None:
        loop = asyncio.get_running_loop()
        if tag == mux.CHANNEL and payload:
            await loop.sock_sendall(self.host, payload)
        elif tag == mux.CHANNEL:
            with contextlib.suppress(OSError):
                self.host.shutdown(socket.SHUT_WR)
        elif tag in self.open_fds:
            await self._to_pipe(tag, payload)
        elif tag == mux.FILE:
            assert self.copy_out is not None
            self.files.header(payload, self.copy_out.open)
        elif tag == mux.BYTES:
            self.files.data(payload)
        elif tag == mux.DIAGNOSTIC:
            self._remember(payload)

    async def _to_pipe(self, tag: bytes, payload: bytes) -> None:
        fd = self.open_fds[tag]
        if tag == mux.CONTROL:
            self.control_sent = True
        if not payload:
            del self.open_fds[tag]
            os.close(fd)
            return
        view = memoryview(payload)
        while view:
            try:
                view = view[os.write(fd, view) :]
            except BlockingIOError:
                if self.stopping is not None and tag != mux.CONTROL:
                    return  # the host stopped the runner: what it printed since is dropped
                await _writable(fd)
            except OSError:  # the host gave the runner up and closed its end
                return

    def _remember(self, data: bytes) -> None:
        self.diagnostic += data
        del self.diagnostic[:-_DIAGNOSTIC_BYTES]

    def _on_stop(self) -> None:
        if self.exec is None:  # stopped before the exec started: nothing runs in the VM yet
            os._exit(0)
        if self.stopping is None:
            self.stopping = asyncio.ensure_future(self._stop())

    async def _stop(self) -> None:
        """The driver asks the runner to stop: SIGTERM in the guest, then, before the
        driver's own SIGKILL comes, a kill there too."""
        with contextlib.suppress(Exception):
            await self.sink.write(mux.encode(mux.STOP))
        await asyncio.sleep(self.config["stop_grace"] * 0.75)
        with contextlib.suppress(Exception):
            await self.sink.write(mux.encode(mux.KILL))
        await self._kill_exec()

    async def _kill_exec(self) -> None:
        if self.exec is not None:
            with contextlib.suppress(Exception):
                await self.exec.kill()

    async def _fail(self, message: str) -> None:
        """Report a failure as the supervisor would (no code ran, or its report is lost),
        unless the guest's supervisor reported already."""
        if self.control_sent or mux.CONTROL not in self.open_fds:
            return
        await self._to_pipe(mux.CONTROL, failure_report(message))


def failure_report(message: str) -> bytes:
    """A supervisor report saying the runner could not run (the host reads its message)."""
    report = {"exit_code": 71, "signal": None, "maxrss_kb": 0, "cpu_seconds": 0.0,
              "isolation": None, "message": message[-_DIAGNOSTIC_BYTES:]}  # fmt: skip
    return json.dumps(report).encode()


async def _writable(fd: int, poll: float = 0.05) -> None:
    """Until ``fd`` (a pipe) takes more bytes, or ``poll`` seconds passed."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_writer(fd, wake)
    try:
        await asyncio.wait_for(ready, poll)
    except asyncio.TimeoutError:
        pass
    finally:
        loop.remove_writer(fd)


def _regular_files(top: str) -> list[str]:
    """The files in ``top`` (the exposed inputs), relative, never through a symlink."""
    found = []
    for dirpath, _, filenames in os.walk(top, followlinks=False):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if os.path.isfile(path) and not os.path.islink(path):
                found.append(os.path.relpath(path, top))
    return found


def main(config_json: str, control_fd: int) -> None:
    config: RelayConfig = json.loads(config_json)
    host = socket.socket(fileno=os.dup(0))
    host.setblocking(False)
    for fd in (1, 2, control_fd):
        os.set_blocking(fd, False)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    relay = Relay(config, host, control_fd)
    try:
        asyncio.run(relay.run())
    except Exception as exc:  # noqa: BLE001 - a bug here: the host must still learn of it
        if not relay.control_sent and mux.CONTROL in relay.open_fds:
            with contextlib.suppress(OSError):
                os.set_blocking(control_fd, True)
                write_all(control_fd, failure_report(f"the microVM relay failed: {exc!r}"))
    finally:
        host.close()
    os._exit(0)  # the SDK's runtime threads must not keep this process alive
