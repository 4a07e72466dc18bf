"""The runner's supervisor: forks the worker, outlives it, reports how it ended."""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any, NoReturn

from ..framing import read_frame, write_all
from ..protocol import (
    IsolationSummary,
    RunnerErrorFrame,
    RunnerSetup,
    SupervisorReport,
)
from ..strays import children_of
from ..syscalls import (
    PR_SET_CHILD_SUBREAPER,
    PR_SET_DUMPABLE,
    PR_SET_PDEATHSIG,
    kill_quietly,
    try_prctl,
)


def reap_everything(worker_pgid: int | None) -> None:
    """Kill and reap every process the worker left behind.

    On Linux this process is the child subreaper, so orphaned descendants,
    setsid'd daemons included, are re-parented to it: kill its children until
    none is left. Elsewhere, kill the worker's process group.
    """
    if worker_pgid is not None:
        try:
            os.killpg(worker_pgid, signal.SIGKILL)
        except OSError:
            pass
    me = os.getpid()
    linux = sys.platform.startswith("linux")
    try:
        os.waitpid(-1, os.WNOHANG)  # reaps one that exited; raises when none is left
    except ChildProcessError:
        return  # none left (the usual case): no need to scan /proc
    while True:
        if linux:
            for kid in children_of(me):
                try:
                    os.kill(kid, signal.SIGKILL)
                except OSError:
                    pass
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return
        except InterruptedError:
            continue


def _isolation_plan(request: RunnerSetup) -> dict[str, Any] | None:
    """The sandbox plan for this interpreter, when the request asks for isolation."""
    isolation = request.get("isolation")
    if isolation is None:
        return None
    from ..layers import namespaces

    paths = request["paths"]
    copy_out: dict[str, int] = {}
    if "copy_out_max_bytes" in isolation:
        copy_out["copy_out_max_bytes"] = int(isolation["copy_out_max_bytes"])
    if "copy_out_max_files" in isolation:
        copy_out["copy_out_max_files"] = int(isolation["copy_out_max_files"])
    plan = namespaces.default_plan(
        paths["work"], paths["tmp"], paths["meta"],
        network=bool(isolation.get("network")),
        nproc=isolation.get("nproc"),
        extra_ro=tuple(isolation.get("extra_ro", ())),
        scratch_mb=isolation.get("scratch_mb"),
        ro_files=tuple(isolation.get("ro_files", ())),
        **copy_out,
    )  # fmt: skip
    for layer in isolation.get("skip_layers", ()):
        plan[layer] = None  # a degraded mode the caller accepted explicitly
    return plan


def _summary(report: dict[str, Any]) -> IsolationSummary:
    """The layers of an isolation report, without mount lists and timings."""
    landlock, seccomp = report.get("landlock") or {}, report.get("seccomp") or {}
    return {
        "mode": report.get("mode"),
        "namespaces": report.get("namespaces"),
        "uid": report.get("uid"),
        "host_uid": report.get("host_uid"),
        "private_root": bool(report.get("mounts")),
        "capabilities_dropped": report.get("capabilities_dropped"),
        "no_new_privs": report.get("no_new_privs"),
        "process_cap": (report.get("nproc") or {}).get("limit"),
        "landlock": {"applied": bool(landlock.get("applied")), "abi": landlock.get("abi"),
                     "scoped": landlock.get("scoped"), "net": landlock.get("handled_net")},
        "seccomp": {"applied": bool(seccomp.get("applied")), "arch": seccomp.get("arch"),
                    "socket_families": seccomp.get("socket_families")},
        "disk_mb": ((report.get("mounts") or {}).get("scratch") or {}).get("size_mb"),
        "setup_ms": (report.get("timings_ms") or {}).get("total"),
    }  # fmt: skip


def _read_nonblocking(fd: int) -> bytes:
    os.set_blocking(fd, False)
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except BlockingIOError:
        pass
    os.close(fd)
    return b"".join(chunks)


def _start_worker(setup: RunnerSetup, control_fd: int, request_fd: int) -> NoReturn:
    """In the forked child of a runner without isolation: wait for the code and run it."""
    os.close(control_fd)
    try_prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the worker does not outlive its supervisor
    _serve_or_run(setup, request_fd, None)


def _serve_or_run(
    setup: RunnerSetup, request_fd: int, summary: IsolationSummary | None
) -> NoReturn:
    """In the worker (sandboxed already, if it is to be): serve the frames of the
    runner's channel (:mod:`.cells`)."""
    from . import cells, worker

    confined = worker.prepare(setup)
    cells.serve(setup, request_fd, summary or confined)  # never returns


def _start_sandbox(setup: RunnerSetup, control_fd: int, request_fd: int) -> tuple[Any, int]:
    """Start the worker in a new sandbox whose pid 1 is this process's child; return the
    sandbox (to wait for) and the read end of the pipe its layers are reported on.

    In the sandbox, the worker reports its layers, before any user code runs, then runs
    the request; this function returns only here, outside."""
    from ..layers import namespaces
    from . import worker

    layers_r, layers_w = os.pipe()
    me = os.getpid()
    try:
        plan = _isolation_plan(setup)
        assert plan is not None
        spawned = namespaces.spawn_sandbox(plan, close_in_child=(control_fd, layers_r))
    except BaseException as exc:  # noqa: BLE001 - no user code has run
        if os.getpid() != me:  # raised in the sandbox's own process
            worker.fail(setup, f"sandbox set-up failed: {type(exc).__name__}: {exc}")
        _report_setup_failure(setup, exc, control_fd, layers_r, layers_w)
    if isinstance(spawned, dict):  # in the sandbox
        summary = _summary(spawned)
        write_all(layers_w, json.dumps(summary).encode())
        os.close(layers_w)  # closed before any user code runs
        _serve_or_run(setup, request_fd, summary)
    os.close(layers_w)
    return spawned, layers_r


def _report_setup_failure(
    setup: RunnerSetup, exc: BaseException, control_fd: int, *fds: int
) -> NoReturn:
    """The sandbox could not be built: say why in the report file, and end the runner."""
    from . import worker

    for fd in fds:
        os.close(fd)
    message = f"sandbox set-up failed: {type(exc).__name__}: {exc}"
    failed: RunnerErrorFrame = {"status": "runner_error", "message": message}
    try:
        worker.write_report(setup["paths"]["meta"], failed)
    except OSError:
        pass
    finally:
        # the reason goes on the control pipe too: the file may be out of reach (a failure
        # after unshare(CLONE_NEWUSER) leaves this process without a mapped uid)
        _send_report(control_fd, {"exit_code": 71, "signal": None, "maxrss_kb": 0,
                                  "cpu_seconds": 0.0, "isolation": None,
                                  "message": message})  # fmt: skip
        os._exit(0)


def _send_report(control_fd: int, report: SupervisorReport) -> None:
    write_all(control_fd, json.dumps(report).encode())


def main(control_fd: int, mode: str = "framed") -> None:
    """Entry point of a cold start: stdin is the runner's channel (:mod:`.cells`), the
    report goes on ``control_fd``. The runner's setup comes as the channel's first frame,
    then the worker serves the frames that follow. ``mode`` must be ``"framed"`` (the
    one mode left: the whole request as one JSON document on stdin is gone)."""
    if mode != "framed":
        raise SystemExit(f"runner: unknown mode {mode!r} (only 'framed')")
    setup: RunnerSetup | None = read_frame(0)
    if setup is None:
        os._exit(0)  # the host went away before the setup
    channel = os.dup(0)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.path.pop(0)  # the runner's directory: not for the user's code to import
    supervise(setup, control_fd, channel)


def supervise(setup: RunnerSetup, control_fd: int, request_fd: int) -> NoReturn:
    """Fork the worker, wait for it, kill what it left, report on ``control_fd``, exit.

    ``setup`` says how to sandbox the worker (paths, isolation); the request (code,
    inputs, limits, policies) arrives later as frames on ``request_fd`` (:mod:`.cells`).
    """
    # Everything the worker needs is imported now, before any sandbox exists,
    # so the runner's directory need not be visible inside one.
    from . import cells, worker  # noqa: F401

    isolated = setup.get("isolation") is not None
    subreaper = try_prctl(PR_SET_CHILD_SUBREAPER, 1)
    # Not dumpable: same-uid code cannot open /proc/<this pid>/fd/N to forge the report.
    try_prctl(PR_SET_DUMPABLE, 0)

    sandbox, layers_r = None, None
    if isolated:
        # this process waits for the sandbox itself: one process fewer per runner
        sandbox, layers_r = _start_sandbox(setup, control_fd, request_fd)
        pid = sandbox.pid
    else:
        pid = os.fork()
        if pid == 0:
            _start_worker(setup, control_fd, request_fd)
    os.close(request_fd)

    # The host asks for a stop with SIGTERM (then SIGKILLs after a grace period): pass it
    # to the worker, or to the sandbox's pid 1, which stops the code and saves its files.
    signal.signal(signal.SIGTERM, lambda _s, _f: kill_quietly(pid, signal.SIGTERM))
    if sandbox is not None:
        try:
            status, usage = sandbox.wait()
        except OSError as exc:  # set-up failed in pid 1: no user code ran
            reap_everything(None)
            _report_setup_failure(setup, exc, control_fd, *([layers_r] if layers_r else []))
    else:
        _, status, usage = os.wait4(pid, 0)  # retried after the handler runs (PEP 475)
    reap_everything(pid)

    report: SupervisorReport = {
        "exit_code": os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else None,
        "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        # ru_maxrss is KiB on Linux and bytes on macOS
        "maxrss_kb": _maxrss_kb(usage),
        "cpu_seconds": (usage.ru_utime + usage.ru_stime) if usage is not None else 0.0,
        "subreaper": subreaper,
    }
    if layers_r is not None:
        layers = _read_nonblocking(layers_r)
        report["isolation"] = json.loads(layers) if layers else None
    _send_report(control_fd, report)
    os._exit(0)


def _maxrss_kb(usage: Any) -> int:
    if usage is None:
        return 0
    return int(usage.ru_maxrss // 1024 if sys.platform == "darwin" else usage.ru_maxrss)
