"""Namespaces, the private root and the pid-1 reaper on this kernel, as root and not."""

from __future__ import annotations

import errno
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox_tool.runner.layers import namespaces
from sandbox_tool.runner.layers.probe import probe

from .helpers import IS_ROOT, Outcome, errno_of, in_child, sandboxed

PROBE = probe()
pytestmark = pytest.mark.skipif(not PROBE["available"], reason=str(PROBE["reason"]))


def bare(plan: dict[str, Any]) -> dict[str, Any]:
    """The plan with only namespaces and mounts: no landlock, no seccomp."""
    return {**plan, "landlock": None, "seccomp": None}


@pytest.fixture
def plan(exec_dirs: dict[str, str]) -> dict[str, Any]:
    return namespaces.default_plan(exec_dirs["work"], exec_dirs["tmp"], exec_dirs["meta"])


@pytest.fixture
def host_sleeper() -> Iterator[int]:
    proc = subprocess.Popen(["sleep", "30"])
    yield proc.pid
    proc.kill()
    proc.wait()


def test_probe_reports_every_layer() -> None:
    report = PROBE["report"]
    assert report["namespaces"] == dict.fromkeys(
        ("user", "pid", "mount", "ipc", "uts", "net"), True
    )
    assert report["mode"] == ("root" if IS_ROOT else "userns")
    assert report["landlock"]["applied"] and report["seccomp"]["applied"]
    assert "landlock ABI" in PROBE["reason"]


def test_sandbox_sees_only_its_own_processes(plan: dict[str, Any], host_sleeper: int) -> None:
    def look() -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "procs": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
            "signal_host": errno_of(lambda: os.kill(host_sleeper, 0)),
            "host_proc": os.path.exists(f"/proc/{host_sleeper}"),
        }

    outside = in_child(look).unwrap()
    assert outside["signal_host"] == 0 and outside["host_proc"]
    inside = sandboxed(plan, look).unwrap()["out"]
    assert inside == {"pid": 2, "procs": [1, 2], "signal_host": errno.ESRCH, "host_proc": False}


@pytest.fixture
def tcp_listener() -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


def _net_view(port: int) -> dict[str, Any]:
    def connect_host() -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass

    def own_loopback() -> None:
        with socket.socket() as srv:
            srv.bind(("127.0.0.1", 0))
            srv.listen(1)
            with socket.create_connection(srv.getsockname(), timeout=2):
                pass

    with open("/proc/net/dev") as f:
        interfaces = sorted(line.split(":")[0].strip() for line in f.readlines()[2:])
    return {"interfaces": interfaces, "host": errno_of(connect_host), "lo": errno_of(own_loopback)}


def test_network_namespace_has_only_loopback(plan: dict[str, Any], tcp_listener: int) -> None:
    outside = in_child(_net_view, tcp_listener).unwrap()
    assert outside["host"] == 0 and outside["interfaces"] != ["lo"]
    inside = sandboxed(bare(plan), lambda: _net_view(tcp_listener)).unwrap()["out"]
    assert inside == {"interfaces": ["lo"], "host": errno.ECONNREFUSED, "lo": 0}


def test_network_true_keeps_the_host_network(exec_dirs: dict[str, str], tcp_listener: int) -> None:
    plan = namespaces.default_plan(
        exec_dirs["work"], exec_dirs["tmp"], exec_dirs["meta"], network=True
    )
    out = sandboxed(plan, lambda: _net_view(tcp_listener)).unwrap()
    assert out["out"]["host"] == 0
    assert out["report"]["namespaces"]["net"] is False
    assert out["report"]["seccomp"]["socket_families"] == ["AF_UNIX", "AF_INET", "AF_INET6"]


def _status() -> dict[str, str]:
    with open("/proc/self/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    keep = ("Uid", "Gid", "CapEff", "CapPrm", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")
    return {k: " ".join(fields[k].split()) for k in keep} | {"hostname": socket.gethostname()}


def test_identity_capabilities_and_filters(plan: dict[str, Any]) -> None:
    zero = "0000000000000000"
    out = sandboxed(plan, _status).unwrap()
    assert out["out"] == {
        "Uid": "1000 1000 1000 1000", "Gid": "1000 1000 1000 1000",
        "CapEff": zero, "CapPrm": zero, "CapBnd": zero, "CapAmb": zero,
        "NoNewPrivs": "1", "Seccomp": "2", "hostname": "sandbox",
    }  # fmt: skip
    report = out["report"]
    assert report["uid"] == 1000 and report["pid"] == 2 and report["loopback"] is True
    assert report["host_uid"] == (namespaces.ROOT_MODE_HOST_ID if IS_ROOT else os.getuid())
    assert report["capabilities_dropped"] and report["no_new_privs"]


def test_files_outside_the_plan_do_not_exist(
    plan: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    canary = tmp_path_factory.mktemp("host") / "canary.txt"
    canary.write_text("secret")
    home = os.path.expanduser("~")
    binds = [b if isinstance(b, str) else b[1] for b in plan["ro_binds"] + plan["rw_binds"]]
    # what the home holds besides the directories leading to a bind (the pyenv here)
    private = [
        e for e in os.listdir(home) if not any(b.startswith(os.path.join(home, e)) for b in binds)
    ]

    def look() -> dict[str, Any]:
        return {
            "canary": errno_of(canary.read_text),
            "home": [e for e in private if os.path.lexists(os.path.join(home, e))],
            "project": errno_of(lambda: os.stat(Path(namespaces.__file__).parents[3] / "tests")),
            "write_root": errno_of(lambda: open("/evil", "w").close()),
        }

    before = in_child(look).unwrap()
    assert before["canary"] == 0 and before["project"] == 0 and before["home"] == private
    inside = sandboxed(bare(plan), look).unwrap()["out"]
    assert inside["canary"] == errno.ENOENT
    assert inside["project"] == errno.ENOENT
    assert inside["home"] == []
    assert inside["write_root"] == errno.EROFS
    with_landlock = sandboxed(plan, look).unwrap()["out"]
    assert with_landlock["write_root"] in (errno.EACCES, errno.EROFS)


def _unreadable_by_others(path: str) -> bool:
    parts = Path(path).resolve().parts
    return any(
        not os.stat(os.path.join(*parts[: i + 1])).st_mode & 0o001 for i in range(1, len(parts))
    )


@pytest.mark.skipif(not IS_ROOT, reason="needs root: shows the root-mode sandbox uid")
@pytest.mark.skipif(
    not _unreadable_by_others(sys.base_prefix),
    reason=f"the interpreter ({sys.base_prefix}) is readable by everyone here",
)
def test_interpreter_in_a_0700_home_is_usable(plan: dict[str, Any]) -> None:
    stdlib_file = os.path.join(os.path.dirname(os.__file__), "colorsys.py")

    def lazy_import() -> dict[str, Any]:
        sys.modules.pop("colorsys", None)
        result: dict[str, Any] = {"read": errno_of(lambda: open(stdlib_file).close())}
        try:
            import colorsys

            result["import"] = colorsys.rgb_to_hsv(1, 0, 0)[2]
        except ImportError as exc:
            result["import"] = repr(exc)
        return result

    def as_sandbox_uid_without_mounts() -> dict[str, Any]:
        os.setgroups([])
        os.setresgid(namespaces.ROOT_MODE_HOST_ID, *(namespaces.ROOT_MODE_HOST_ID,) * 2)
        os.setresuid(namespaces.ROOT_MODE_HOST_ID, *(namespaces.ROOT_MODE_HOST_ID,) * 2)
        return lazy_import()

    assert in_child(as_sandbox_uid_without_mounts).unwrap()["read"] == errno.EACCES
    assert sandboxed(plan, lazy_import).unwrap()["out"] == {"read": 0, "import": 1.0}


def test_data_stack_under_full_isolation(exec_dirs: dict[str, str]) -> None:
    plan = namespaces.default_plan(exec_dirs["work"], exec_dirs["tmp"], exec_dirs["meta"], nproc=16)
    png = os.path.join(exec_dirs["work"], "plot.png")

    def body() -> dict[str, Any]:
        os.environ["MPLCONFIGDIR"] = os.path.join(exec_dirs["meta"], "mpl")
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np
        import pandas as pd  # type: ignore[import-untyped]

        df = pd.DataFrame({"k": np.arange(10_000) % 7, "v": np.ones(10_000)})
        plt.plot([1, 2, 3], [3, 1, 2])
        plt.savefig(png)
        return {"sums": df.groupby("k")["v"].sum().tolist(), "mean": float(np.mean([1, 2, 3]))}

    out = sandboxed(plan, body, timeout=60).unwrap()
    assert out["out"] == {"sums": [1429.0] * 4 + [1428.0] * 3, "mean": 2.0}
    assert out["report"]["nproc"]["limit"] == 16
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_daemonised_children_die_with_the_sandbox(plan: dict[str, Any]) -> None:
    def spawn_daemon(lifeline_r: int, lifeline_w: int) -> str:
        os.close(lifeline_r)
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover
            os.setsid()
            if os.fork() == 0:
                for fd in range(3, 1024):  # hold the lifeline only, not in_child's pipe
                    if fd not in (lifeline_w, ready_w):
                        try:
                            os.close(fd)
                        except OSError:
                            pass
                os.write(lifeline_w, f"{os.getpid()}\n".encode())
                os.close(ready_w)  # tells the parent the pid is written
                time.sleep(30)
            os._exit(0)
        os.close(ready_w)
        os.waitpid(pid, 0)
        os.read(ready_r, 1)  # EOF once the daemon has written its pid
        os.close(lifeline_w)
        return "spawned"

    def lifeline_cut(run: Callable[[int, int], Outcome]) -> tuple[bool, int]:
        r, w = os.pipe()
        try:
            run(r, w).unwrap()
            os.close(w)
            daemon_pid = int(os.read(r, 64).split()[0])
            ready, _, _ = select.select([r], [], [], 2.0)
            return bool(ready) and os.read(r, 1) == b"", daemon_pid
        finally:
            os.close(r)

    cut_without, daemon = lifeline_cut(lambda r, w: in_child(spawn_daemon, r, w))
    os.kill(daemon, signal.SIGKILL)
    assert not cut_without, "without a pid namespace the setsid daemon outlives its parent"
    cut, _ = lifeline_cut(lambda r, w: sandboxed(plan, lambda: spawn_daemon(r, w)))
    assert cut, "the daemon must die with the sandbox's pid 1"


@pytest.mark.parametrize(
    ("body", "code", "sig"),
    [
        pytest.param(lambda: os._exit(7), 7, None, id="exit-code"),
        pytest.param(lambda: os.kill(os.getpid(), signal.SIGTERM), None, signal.SIGTERM,
                     id="killed-by-sigterm"),
        pytest.param(lambda: os.kill(os.getpid(), signal.SIGKILL), None, signal.SIGKILL,
                     id="killed-by-sigkill"),
    ],
)  # fmt: skip
def test_exit_status_is_relayed(
    plan: dict[str, Any], body: Callable[[], Any], code: int | None, sig: int | None
) -> None:
    outcome = sandboxed(plan, body)
    assert (outcome.exit_code, outcome.signal) == (code, sig)


def test_signals_to_the_caller_reach_the_sandbox(plan: dict[str, Any]) -> None:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover
        try:
            os.close(r)
            namespaces.enter_sandbox(plan)
            signal.signal(signal.SIGTERM, lambda *_: os._exit(42))
            os.write(w, b"ready")
            time.sleep(20)
        finally:
            os._exit(1)
    os.close(w)
    try:
        assert select.select([r], [], [], 10)[0] and os.read(r, 5) == b"ready"
        os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(r)
    assert os.waitstatus_to_exitcode(status) == 42


def _fork_until_refused(limit: int = 64) -> dict[str, Any]:
    kids = []
    refused = None
    try:
        for _ in range(limit):
            pid = os.fork()
            if pid == 0:  # pragma: no cover
                time.sleep(10)
                os._exit(0)
            kids.append(pid)
    except OSError as exc:
        refused = exc.errno
    for pid in kids:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    return {"forked": len(kids), "refused": refused}


def test_process_cap_counts_only_the_sandbox(exec_dirs: dict[str, str]) -> None:
    if IS_ROOT:

        def root_without_userns() -> dict[str, Any]:
            import resource

            resource.setrlimit(resource.RLIMIT_NPROC, (4, 4))
            return _fork_until_refused(12)

        assert in_child(root_without_userns).unwrap() == {"forked": 12, "refused": None}
    plan = namespaces.default_plan(exec_dirs["work"], exec_dirs["tmp"], exec_dirs["meta"], nproc=8)
    assert sandboxed(plan, _fork_until_refused).unwrap()["out"] == {
        "forked": 7,
        "refused": errno.EAGAIN,
    }
    threads = sandboxed(plan, lambda: _start_threads(12)).unwrap()["out"]
    assert threads == {"started": 7, "refused": "RuntimeError"}


def _start_threads(count: int) -> dict[str, Any]:
    stop = threading.Event()
    started = []
    refused = None
    try:
        for _ in range(count):
            t = threading.Thread(target=stop.wait)
            t.start()
            started.append(t)
    except RuntimeError as exc:
        refused = type(exc).__name__
    stop.set()
    for t in started:
        t.join()
    return {"started": len(started), "refused": refused}


def test_setup_errors_name_the_problem(plan: dict[str, Any]) -> None:
    relative = sandboxed({**plan, "ro_binds": ["usr"]}, lambda: None)
    assert relative.error and "must be absolute" in relative.error
    in_pid1 = sandboxed({**plan, "files": {"/a": "x"}, "ro_binds": [["/usr", "/a/b"]]}, lambda: 0)
    assert in_pid1.error and "SandboxSetupError" in in_pid1.error
    assert "set-up failed" in in_pid1.error
    in_sandbox = sandboxed({**plan, "cwd": "/no/such/dir"}, lambda: 0)
    assert in_sandbox.error and "SandboxSetupError" in in_sandbox.error
    assert "/no/such/dir" in in_sandbox.error


def test_a_threaded_caller_is_refused(plan: dict[str, Any]) -> None:
    def threaded() -> None:
        stop = threading.Event()
        threading.Thread(target=stop.wait, daemon=True).start()
        namespaces.enter_sandbox(plan)

    outcome = in_child(threaded)
    assert outcome.error and "single-threaded" in outcome.error


# ------------------------------------------------------------- as a non-root user

NON_ROOT_SCRIPT = textwrap.dedent(
    """
    import errno, json, os, sys, time
    sys.path.insert(0, sys.argv[1])
    from runner.layers import namespaces
    base, canary = sys.argv[2], sys.argv[3]
    before = os.path.exists(canary) and open(canary).read()
    plan = namespaces.default_plan(base + "/work", base + "/tmp", base + "/meta", nproc=6)
    pid = os.fork()
    if pid == 0:
        try:
            report = namespaces.enter_sandbox(plan)
            sys.modules.pop("colorsys", None)
            import colorsys
            out = {"mode": report["mode"], "pid": os.getpid(), "uid": os.getuid(),
                   "procs": sorted(p for p in os.listdir("/proc") if p.isdigit()),
                   "lazy_import": colorsys.rgb_to_hsv(1, 0, 0)[2], "canary_before": before}
            try:
                open(canary).read()
                out["canary"] = "read"
            except OSError as exc:
                out["canary"] = exc.errno
            kids = []
            try:
                for _ in range(20):
                    k = os.fork()
                    if k == 0:
                        time.sleep(10)
                        os._exit(0)
                    kids.append(k)
            except OSError as exc:
                out["fork_refused"] = exc.errno
            out["forked"] = len(kids)
            for k in kids:
                os.kill(k, 9)
                os.waitpid(k, 0)
            with open(base + "/meta/out.json", "w") as f:
                json.dump(out, f)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    print(open(base + "/meta/out.json").read())
    """
)


@pytest.fixture
def unprivileged_user() -> str:
    if not IS_ROOT:
        pytest.skip("already non-root: the other tests in this file exercise userns mode")
    if shutil.which("useradd") is None:
        pytest.skip("useradd is not installed, cannot create an unprivileged user")
    name = "sbx-isolation"
    if subprocess.run(["id", name], capture_output=True).returncode != 0:
        created = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            capture_output=True,
            text=True,
        )
        if created.returncode != 0:
            pytest.skip(f"useradd {name} failed: {created.stderr.strip()}")
    return name


def test_userns_mode_as_an_unprivileged_user(unprivileged_user: str) -> None:
    python = "/usr/bin/python3"
    if not os.access(python, os.X_OK):
        pytest.skip(f"{python} missing: the unprivileged user needs an interpreter it can read")
    runner_parent = str(Path(namespaces.__file__).parents[2])
    if _unreadable_by_others(runner_parent):
        pytest.skip(f"{runner_parent} is not readable by other users")
    base = tempfile.mkdtemp(prefix="sbx-user-")
    try:
        canary = os.path.join(base, "canary.txt")
        with open(canary, "w") as f:
            f.write("host secret")
        os.chmod(canary, 0o644)
        os.chmod(base, 0o755)
        import pwd

        entry = pwd.getpwnam(unprivileged_user)
        for name in ("work", "tmp", "meta"):
            os.mkdir(os.path.join(base, name))
            os.chown(os.path.join(base, name), entry.pw_uid, entry.pw_gid)
        done = subprocess.run(
            [python, "-I", "-c", NON_ROOT_SCRIPT, runner_parent, base, canary],
            user=entry.pw_uid,
            group=entry.pw_gid,
            extra_groups=[],
            cwd="/",
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert out == {
        "mode": "userns", "pid": 2, "uid": 1000, "procs": ["1", "2"], "lazy_import": 1.0,
        "canary_before": "host secret", "canary": errno.ENOENT,
        "fork_refused": errno.EAGAIN, "forked": 5,
    }  # fmt: skip
