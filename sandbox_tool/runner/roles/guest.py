"""The runner's role inside a microVM: one exec of the VM carries one runner.

The host's relay (``sandbox_tool/engines/vm/relay.py``) runs, through the VM's exec::

    python3 -I -B -c mux.GUEST_BOOTSTRAP <dir holding this package> run

with the exec's stdin and stdout carrying :mod:`..mux` frames. This process then

1. reads the runner's setup (``S``), creates the execution's dirs at the paths the host
   named (the host's paths, inside the guest's own file system), seeds matplotlib's
   font cache, writes the exposed input files (``F``/``B``) and, on ``G``, forks the
   runner's supervisor with that setup, as the warm template does (this process has the
   runner imported already), on a socket and pipes of its own;
2. multiplexes the runner's four channels onto the exec's stdout (``C`` ``O`` ``E``
   ``R``) and the host's channel bytes into the runner's socket, and passes on a stop
   (``T``: SIGTERM to the supervisor, which lets the sandbox save its files) or a kill
   (``K``);
3. once the supervisor has ended, copies the execution's files back to the host (``F``/
   ``B``) when the runner did not answer normally (the host then reads them as it reads
   a cold run's), removes the dirs, then ends the control stream and says ``X``.

A guest role holds a lock on its workspace while it lives; one killed with its exec
before it cleaned up (a host that gave the runner up) leaves a workspace whose lock is
free, and the next guest role in the VM removes it.

It is the child subreaper of everything the runner starts, and the supervisor dies with
it (``PR_SET_PDEATHSIG``): a host that vanishes (the exec's stdin ends) or an exec killed
by the VM's agent takes the whole runner with it. With ``probe`` instead of ``run`` it
reports, as JSON on stdout, which of the runner's sandbox layers the guest kernel
supports.
"""

from __future__ import annotations

import fcntl
import json
import os
import selectors
import shutil
import signal
import socket
import sys
import time
from typing import Any, NoReturn

from .. import mux
from ..files import read_regular
from ..framing import write_all
from ..protocol import (
    FIGURES_DIR,
    MAX_ARTIFACT_FILES,
    MPLCONFIG_DIR,
    WORKER_REPORT,
    RunnerSetup,
)
from ..syscalls import PR_SET_CHILD_SUBREAPER, PR_SET_PDEATHSIG, kill_quietly, try_prctl
from .answering import files_of
from .supervisor import reap_everything, supervise

__all__ = ["Guest", "main", "probe_layers"]

#: Once the supervisor has ended: how long its streams get to end before what holds
#: them open is killed.
_END_GRACE = 1.0
#: The sandbox's own copy-out summary (:mod:`..layers.scratch`), read by the host.
_SCRATCH_SUMMARY = ".scratch.json"
#: The files the runner leaves in its private dir for a host whose channel failed.
_META_FILES = (WORKER_REPORT, _SCRATCH_SUMMARY)


def _become_supervisor(
    setup: RunnerSetup, channel: int, out_w: int, err_w: int, control_w: int
) -> NoReturn:
    """In the forked child: the runner's supervisor on these fds, as a cold runner's
    would be (its environment, its work dir, nothing else of this process open)."""
    try:
        try_prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # it dies with this process
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        keep = {0, 1, 2, channel, control_w}
        for name in os.listdir("/proc/self/fd"):
            if int(name) not in keep:
                try:
                    os.close(int(name))
                except OSError:
                    pass
        os.chdir(setup["paths"]["work"])
        os.environ.clear()
        os.environ.update(setup["env"])
        supervise(setup, control_w, channel)
    except BaseException:  # noqa: BLE001 - never return into the guest role
        os._exit(70)


class Guest:
    """One runner inside the VM, driven through the exec's stdin and stdout."""

    def __init__(self, runner_parent: str) -> None:
        self.runner_parent = runner_parent
        self.setup: RunnerSetup | None = None
        self.copy_out_max = 0
        self.exposed: dict[str, tuple[int, int]] = {}
        self.files = mux.FileSink()
        self.supervisor: int | None = None
        self.channel: socket.socket | None = None
        self.to_runner = bytearray()
        self.runner_eof = False  # the host ended its side of the channel
        self.control = bytearray()
        self.selector = selectors.DefaultSelector()
        self.lock: int | None = None

    # -- the host's side --------------------------------------------------------------

    def serve(self) -> NoReturn:
        try_prctl(PR_SET_CHILD_SUBREAPER, 1)
        while self.supervisor is None:  # the start, the exposed files, then go
            frame = mux.read(0)
            if frame is None:
                self._end(send=False)
            self._before_start(*frame)
        self._pump()
        self._end(send=True)

    def _before_start(self, tag: bytes, payload: bytes) -> None:
        if tag == mux.START:
            config = json.loads(payload)
            self.setup = config["setup"]
            self.copy_out_max = int(config.get("copy_out_max_bytes") or 0)
            self._make_dirs(config.get("mplconfig"))
        elif tag == mux.FILE and self.setup is not None:
            self.files.header(payload, self._open_exposed)
        elif tag == mux.BYTES:
            self.files.data(payload)
        elif tag == mux.GO and self.setup is not None and not self.files.open:
            self.exposed = files_of(self.setup["paths"]["work"])
            self._start_runner()
        else:
            raise mux.MuxError(f"unexpected {tag!r} before the runner started")

    def _make_dirs(self, mplconfig: str | None) -> None:
        """The execution's dirs, in a workspace this process holds a lock on while it
        lives; first, the workspaces of guest roles that died (killed with their exec
        before they could clean up) are removed."""
        assert self.setup is not None
        paths = self.setup["paths"]
        root = os.path.dirname(paths["work"])
        _sweep_workspaces(os.path.dirname(root))
        os.makedirs(root, mode=0o700, exist_ok=True)
        self.lock = _lock_workspace(root)
        for path in (paths["work"], paths["tmp"], paths["meta"]):
            os.makedirs(path, mode=0o700, exist_ok=True)
        os.makedirs(os.path.join(paths["meta"], FIGURES_DIR), mode=0o700, exist_ok=True)
        fonts = os.path.join(paths["meta"], MPLCONFIG_DIR)
        os.makedirs(fonts, mode=0o700, exist_ok=True)
        if mplconfig and os.path.isdir(mplconfig):
            for name in os.listdir(mplconfig):
                if name.startswith("fontlist-") and name.endswith(".json"):
                    shutil.copyfile(os.path.join(mplconfig, name), os.path.join(fonts, name))

    def _open_exposed(self, rel: str, size: int) -> int:
        assert self.setup is not None
        path = mux.inside_workspace(self.setup["paths"], rel)
        if path is None or not rel.startswith("work/"):
            raise mux.MuxError(f"an input file outside the work dir: {rel!r}")
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
        fd = os.open(path, flags, 0o444)
        os.fchmod(fd, 0o444)  # read-only to the code, as on the host
        return fd

    # -- the runner ---------------------------------------------------------------------

    def _start_runner(self) -> None:
        """Fork the runner's supervisor, as the warm template does (this process has the
        runner imported: no interpreter starts), on a socket, pipes and a control pipe
        of its own."""
        assert self.setup is not None
        host_end, runner_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        control_r, control_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            _become_supervisor(self.setup, runner_end.fileno(), out_w, err_w, control_w)
        runner_end.close()
        for fd in (out_w, err_w, control_w):
            os.close(fd)
        self.supervisor = pid
        host_end.setblocking(False)
        self.channel = host_end
        self.selector.register(0, selectors.EVENT_READ, "host")
        self.selector.register(host_end, selectors.EVENT_READ, mux.CHANNEL)
        for fd, tag in ((out_r, mux.STDOUT), (err_r, mux.STDERR), (control_r, mux.CONTROL)):
            self.selector.register(fd, selectors.EVENT_READ, tag)

    def _pump(self) -> None:
        """Move bytes both ways until the supervisor and its streams have ended."""
        decoder = mux.Decoder(mux.TO_GUEST)
        deadline: float | None = None
        while self._runner_streams():
            if deadline is None and not self._registered(mux.CONTROL):
                deadline = time.monotonic() + _END_GRACE  # the supervisor has ended
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            events = self.selector.select(wait)
            if deadline is not None and not events and time.monotonic() >= deadline:
                reap_everything(None)  # what holds the streams open: they end now
                deadline = time.monotonic() + _END_GRACE
            for key, mask in events:
                if key.data == "host":
                    self._from_host(decoder)
                elif key.data == mux.CHANNEL:
                    self._channel_ready(mask)
                else:
                    self._stream_ready(key.fd, key.data)

    def _runner_streams(self) -> bool:
        """Whether any of the runner's streams is still open."""
        return any(key.data != "host" for key in self.selector.get_map().values())

    def _registered(self, tag: bytes) -> bool:
        return any(key.data == tag for key in self.selector.get_map().values())

    def _from_host(self, decoder: mux.Decoder) -> None:
        data = os.read(0, mux.CHUNK)
        if not data:  # the host is gone: nothing is waiting for this runner any more
            self._end(send=False)
        for tag, payload in decoder.feed(data):
            if tag == mux.CHANNEL and payload and not self.runner_eof:
                if self._registered(mux.CHANNEL):  # else the runner has gone: dropped
                    self.to_runner += payload
                    self._want_write(True)
            elif tag == mux.CHANNEL:
                self.runner_eof = True
                self._want_write(True)
            elif tag == mux.STOP and self.supervisor is not None:
                kill_quietly(self.supervisor, signal.SIGTERM)
            elif tag == mux.KILL:
                reap_everything(None)
            else:
                raise mux.MuxError(f"unexpected {tag!r} while the runner runs")

    def _want_write(self, on: bool) -> None:
        if self.channel is None or self.channel not in self._files():
            return
        mask = selectors.EVENT_READ | (selectors.EVENT_WRITE if on else 0)
        self.selector.modify(self.channel, mask, mux.CHANNEL)

    def _files(self) -> list[Any]:
        return [key.fileobj for key in self.selector.get_map().values()]

    def _channel_ready(self, mask: int) -> None:
        assert self.channel is not None
        if mask & selectors.EVENT_WRITE:
            try:
                if self.to_runner:
                    del self.to_runner[: self.channel.send(self.to_runner)]
                if not self.to_runner:
                    if self.runner_eof:
                        self.channel.shutdown(socket.SHUT_WR)
                    self._want_write(False)
            except BlockingIOError:
                pass
            except OSError:  # the runner closed its end: what is left is dropped
                self.to_runner.clear()
                self._want_write(False)
        if mask & selectors.EVENT_READ:
            try:
                data = self.channel.recv(mux.CHUNK)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            mux.write(1, mux.CHANNEL, data)
            if not data:
                self.selector.unregister(self.channel)
                self.channel.close()

    def _stream_ready(self, fd: int, tag: bytes) -> None:
        data = os.read(fd, mux.CHUNK)
        if tag == mux.CONTROL:
            self.control += data[: max(0, mux.MAX_PAYLOAD - len(self.control))]
        if data or tag != mux.CONTROL:  # the control stream's end is sent last
            mux.write(1, tag, data)
        if not data:
            self.selector.unregister(fd)
            os.close(fd)

    # -- the end -------------------------------------------------------------------------

    def _end(self, *, send: bool) -> NoReturn:
        """Kill what is left, copy the files back if the runner did not answer, remove
        the execution's dirs, then end the control stream and say so (``X``): once the
        control stream ends, the host may kill this exec at any moment."""
        reap_everything(None)
        if send and self.setup is not None and self._needs_copy_out():
            self._copy_out()
        if self.setup is not None:
            shutil.rmtree(os.path.dirname(self.setup["paths"]["work"]), ignore_errors=True)
        if send:
            mux.write(1, mux.CONTROL)
            mux.write(1, mux.EXIT, json.dumps({"ok": True}).encode())
        os._exit(0)

    def _needs_copy_out(self) -> bool:
        """The runner did not answer normally: its report file exists, or its supervisor
        says the worker died, failed to start or exited with a status."""
        assert self.setup is not None
        if os.path.lexists(os.path.join(self.setup["paths"]["meta"], WORKER_REPORT)):
            return True
        try:
            report = json.loads(self.control)
        except ValueError:
            return True
        if not isinstance(report, dict):
            return True
        return bool(report.get("signal") or report.get("exit_code") or report.get("message"))

    def _copy_out(self) -> None:
        """The runner's report, the figures and the files the code wrote, within the
        copy-out budget (the host checks it again)."""
        assert self.setup is not None
        paths = self.setup["paths"]
        meta, work = paths["meta"], paths["work"]
        found = [(f"meta/{name}", os.path.join(meta, name)) for name in _META_FILES]
        figures = os.path.join(meta, FIGURES_DIR)
        if os.path.isdir(figures):
            found += [(f"meta/{FIGURES_DIR}/{n}", os.path.join(figures, n))
                      for n in sorted(os.listdir(figures))]  # fmt: skip
        for rel, stamp in sorted(files_of(work).items()):
            if self.exposed.get(rel) != stamp:
                found.append((f"work/{rel}", os.path.join(work, rel)))
        budget, sent = self.copy_out_max, 0
        for rel, path in found:
            if sent >= MAX_ARTIFACT_FILES + len(_META_FILES):
                break
            data = read_regular(path, budget)
            if data is None:
                continue
            for frame in mux.file_frames(rel, data):
                write_all(1, frame)
            budget -= len(data)
            sent += 1


_LOCK = ".guest-lock"


def _lock_workspace(root: str) -> int:
    """Hold an exclusive lock on ``root`` for as long as this process lives (the lock file
    is locked before it takes its name, so a sweep never sees it unlocked)."""
    staging = os.path.join(root, f"{_LOCK}.{os.getpid()}")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.rename(staging, os.path.join(root, _LOCK))
    return fd


def _sweep_workspaces(parent: str) -> None:
    """Remove the workspaces in ``parent`` whose guest role is gone (their lock is free)."""
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        root = os.path.join(parent, name)
        try:
            fd = os.open(os.path.join(root, _LOCK), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue  # not a guest role's workspace, or one being set up
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # its guest role is alive
        shutil.rmtree(root, ignore_errors=True)
        os.close(fd)


def probe_layers() -> dict[str, Any]:
    """Which of the runner's sandbox layers this kernel supports: all of them, or all
    but landlock (``skip``), or none (``available`` False, ``reason`` says why)."""
    full = _probe(None)
    if full["available"]:
        return {"available": True, "skip": [], "reason": full["reason"]}
    binds = [p for p in ("/usr", "/lib", "/lib64", "/bin") if os.path.lexists(p)]
    plan: dict[str, Any] = {"ro_binds": binds, "rw_binds": [], "files": {}, "cwd": "/"}
    plan.update(landlock=None, seccomp={})
    partial = _probe(plan)
    if partial["available"]:
        return {"available": True, "skip": ["landlock"], "reason": partial["reason"],
                "landlock_error": full["reason"]}  # fmt: skip
    return {"available": False, "skip": [], "reason": full["reason"]}


def _probe(plan: dict[str, Any] | None) -> dict[str, Any]:
    from ..layers.probe import probe

    try:
        return probe(plan)
    except Exception as exc:  # noqa: BLE001 - a probe that breaks is a missing layer
        return {"available": False, "reason": f"the layer probe failed: {exc!r}"}


def main(runner_parent: str, mode: str) -> None:
    sys.path.pop(0)  # the runner's directory: not for the user's code to import
    if mode == "probe":
        result = probe_layers()
        result["python"] = sys.version.split()[0]
        print(json.dumps(result))
        return
    try:
        Guest(runner_parent).serve()
    except (mux.MuxError, OSError) as exc:  # a broken protocol, or the host went away
        os.write(2, f"sandbox-tool guest: {exc}\n".encode())
        reap_everything(None)
        os._exit(3)
