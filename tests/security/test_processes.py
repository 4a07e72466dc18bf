"""Escapes through processes: other programs, raw syscalls, host processes, namespaces."""

from __future__ import annotations

import os
import time

import pytest

from .conftest import SECRET_ENV
from .harness import (
    FS_DENIED,
    PID_DENIED,
    SOCKET_REFUSED,
    HostProcess,
    Side,
    assert_refused,
    tracer_of,
)

# -- running other programs -------------------------------------------------------------

EXECV = """
import os
stage("fork")
pid = os.fork()
if pid == 0:
    try:
        os.execv("/bin/sh", ["sh", "-c", "echo " + inputs["token"]])
    except OSError as exc:
        os._exit(100 + exc.errno)
    os._exit(99)
stage("exec")
_, status = os.waitpid(pid, 0)
code = os.waitstatus_to_exitcode(status)
if code >= 100:
    raise OSError(code - 100, os.strerror(code - 100))
return code
"""

SUBPROCESS = """
import subprocess      # fork_exec in _posixsubprocess: no audit hook sees it (FIELD_NOTES 16)
stage("exec")
done = subprocess.run(["/bin/sh", "-c", "echo " + inputs["token"]], capture_output=True, timeout=10)
print(done.stdout.decode(), end="")
return done.returncode
"""

POSIX_SPAWN = """
import os
stage("exec")
pid = os.posix_spawn("/bin/sh", ["sh", "-c", "echo " + inputs["token"]], {})
_, status = os.waitpid(pid, 0)
return os.waitstatus_to_exitcode(status)
"""

# EACCES: no landlock execute right; ENOENT: not in the mount namespace; EPERM: seccomp
EXEC_DENIED = frozenset({"EACCES", "ENOENT", "EPERM"})


@pytest.mark.parametrize(
    "code",
    [
        pytest.param(EXECV, id="fork-and-execv-bin-sh"),
        pytest.param(SUBPROCESS, id="subprocess-via-_posixsubprocess"),
        pytest.param(POSIX_SPAWN, id="posix-spawn"),
    ],
)
def test_run_another_program(side: Side, code: str) -> None:
    secret = f"shell-{os.urandom(6).hex()}"
    outcome = side.attack(code, {"token": secret})
    if side.is_baseline:
        assert outcome.value == 0
        assert secret in outcome.stdout
        return
    assert_refused(outcome.report, EXEC_DENIED, stages={"exec"})
    outcome.assert_no_leak(secret)


# -- ctypes: raw system calls past any Python-level guard ---------------------------------

CTYPES = """
import ctypes, os, platform
NR = {
    "x86_64": {"getpid": 39, "openat": 257, "socket": 41},
    "aarch64": {"getpid": 172, "openat": 56, "socket": 198},
}[platform.machine()]
libc = ctypes.CDLL(None, use_errno=True)

def syscall(name, *args):
    return check_libc(libc.syscall(NR[name], *args))

def read_canary():
    fd = syscall("openat", -100, inputs["path"].encode(), os.O_RDONLY)  # AT_FDCWD
    buf = ctypes.create_string_buffer(4096)
    n = check_libc(libc.read(fd, buf, 4096))
    libc.close(fd)
    text = buf.raw[:n].decode(errors="replace")
    print(text)
    return text

def inet_socket():
    fd = syscall("socket", 2, 1, 0)  # AF_INET, SOCK_STREAM
    libc.close(fd)
    return fd

return {
    "getpid": attempt(lambda: [libc.getpid(), syscall("getpid"), os.getpid()]),
    "openat": attempt(read_canary),
    "socket": attempt(inet_socket),
}
"""


def test_ctypes_syscalls(side: Side, canary: dict[str, str]) -> None:
    """libc and raw syscall(2) through ctypes: what a Python guard cannot see."""
    outcome = side.attack(CTYPES, {"path": canary["path"]})
    report = outcome.value
    pids = report["getpid"]["value"]
    # ctypes itself works on both sides: what stops the calls below is the OS
    assert report["getpid"]["ok"] and pids[0] == pids[1] == pids[2], report["getpid"]
    if side.is_baseline:
        assert report["openat"]["value"].strip() == canary["content"]
        assert report["socket"]["ok"], report["socket"]
        return
    assert_refused(report["openat"], FS_DENIED)
    assert_refused(report["socket"], SOCKET_REFUSED)
    outcome.assert_no_leak(canary["content"])


# -- host processes -----------------------------------------------------------------------

KILL = """
import os, signal
how = inputs["how"]
stage(how)
if how == "kill":
    os.kill(inputs["pid"], signal.SIGKILL)
elif how == "killpg":
    os.killpg(inputs["pid"], signal.SIGKILL)      # the target leads its own session
else:
    fd = os.pidfd_open(inputs["pid"])
    signal.pidfd_send_signal(fd, signal.SIGKILL)
    os.close(fd)
return "signalled"
"""


@pytest.mark.parametrize("how", ["kill", "killpg", "pidfd"])
def test_signal_host_process(side: Side, host_process: HostProcess, how: str) -> None:
    outcome = side.attack(KILL, {"pid": host_process.pid, "how": how})
    if side.is_baseline:
        assert outcome.value == "signalled"
        assert host_process.proc.wait(timeout=5) == -9
        return
    # gVisor 2022 has no pidfd_open at all (ENOSYS)
    refused = PID_DENIED | ({"ENOSYS"} if side.engine_name == "gvisor" else set())
    assert_refused(outcome.report, refused, stages={how})
    assert host_process.running(), "the sandbox signalled a host process"


PTRACE = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
libc.ptrace.restype = ctypes.c_long
pid = inputs["pid"]
stage("attach")
check_libc(libc.ptrace(16, pid, None, None))            # PTRACE_ATTACH
stage("wait")
os.waitpid(pid, 0x40000000)                             # __WALL: the attach stop
with open(f"/proc/{pid}/status") as f:
    tracer = int([l for l in f if l.startswith("TracerPid:")][0].split()[1])
stage("detach")
check_libc(libc.ptrace(17, pid, None, None))            # PTRACE_DETACH, resumes it
return {"tracer": tracer, "me": os.getpid()}
"""


def test_ptrace_host_process(side: Side, host_process: HostProcess) -> None:
    outcome = side.attack(PTRACE, {"pid": host_process.pid})
    if side.is_baseline:
        report = outcome.value
        assert report["tracer"] == report["me"], report
    else:
        assert_refused(outcome.report, PID_DENIED, stages={"attach"})
    time.sleep(0.1)
    assert tracer_of(host_process.pid) == 0
    assert host_process.running()


SEE_PROCESSES = """
import os
out = {"kill0": attempt(os.kill, inputs["test_pid"], 0)}
out["proc_entry"] = os.path.exists(f"/proc/{inputs['test_pid']}")
marker = inputs["argv_marker"].encode()
out["marker_pids"] = []
for entry in os.listdir("/proc"):
    if entry.isdigit():
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if marker in cmdline:
            out["marker_pids"].append(int(entry))
return out
"""


def test_see_host_processes(side: Side, host_process: HostProcess) -> None:
    """The test's own pid (kill 0, /proc entry) and the host's ``sleep`` by its argv."""
    test_pid = os.getpid()
    outcome = side.attack(
        SEE_PROCESSES, {"test_pid": test_pid, "argv_marker": host_process.argv_marker}
    )
    report = outcome.value
    if side.is_baseline:
        assert report["kill0"]["ok"], report
        assert report["proc_entry"] is True
        assert report["marker_pids"] == [host_process.pid]
        return
    assert report["marker_pids"] == [], "the sandbox sees the host's processes"
    # a pid this small could be one of the sandbox's own (its pid namespace starts at 1)
    if test_pid > 1000:
        assert_refused(report["kill0"], PID_DENIED)
        assert report["proc_entry"] is False


ENVIRON = """
out = {}
for label, pid in (("host_process", inputs["pid"]), ("test_process", inputs["test_pid"])):
    def read(pid=pid):
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read().decode(errors="replace").split("\\0")
        for entry in env:
            if entry.startswith(inputs["name"] + "="):
                print(entry)       # exfiltrate
        return {"variables": len(env), "has_secret": any(inputs["name"] in e for e in env)}
    out[label] = attempt(read)
return out
"""


def test_read_other_process_environment(
    side: Side, host_process: HostProcess, host_secret: str
) -> None:
    """``/proc/<pid>/environ`` of the host's ``sleep`` (which holds the secret) and of the
    test process itself."""
    outcome = side.attack(
        ENVIRON, {"pid": host_process.pid, "test_pid": os.getpid(), "name": SECRET_ENV}
    )
    report = outcome.value
    if side.is_baseline:
        assert report["host_process"]["value"]["has_secret"] is True
        assert report["test_process"]["ok"], report["test_process"]
        assert host_secret in outcome.stdout
        return
    # ENOENT/ESRCH: no such pid in the sandbox's pid namespace; EACCES/EPERM: denied
    assert_refused(report["host_process"], FS_DENIED | PID_DENIED)
    assert_refused(report["test_process"], FS_DENIED | PID_DENIED)
    outcome.assert_no_leak(host_secret)


ENV_LEAK = """
import os
secret = inputs["secret"]
out = {"in_environ": [k for k, v in os.environ.items() if secret in v], "in_proc": []}
for entry in os.listdir("/proc"):
    if entry.isdigit() or entry == "self":
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if secret.encode() in f.read():
                    out["in_proc"].append(entry)
        except OSError:
            continue
return out
"""


def test_host_environment_does_not_leak_in(
    side: Side, host_process: HostProcess, host_secret: str
) -> None:
    """The secret sits in the test process's environment (set before the engine started)
    and in a host process's. The code must find it neither in its own environment nor in
    any ``/proc/<pid>/environ`` it can read: a pid 1 or helper started with the host's
    environment would leak it (FIELD_NOTES 15)."""
    outcome = side.attack(ENV_LEAK, {"secret": host_secret})
    report = outcome.value
    if side.is_baseline:
        # the native engine already gives the code a clean environment of its own...
        assert report["in_environ"] == []
        # ...but the host's environments are one /proc read away
        assert str(host_process.pid) in report["in_proc"], report
        return
    assert report == {"in_environ": [], "in_proc": []}


# -- new namespaces -----------------------------------------------------------------------

UNSHARE = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
stage("fork")
pid = os.fork()
if pid == 0:                 # a single-threaded child; the worker keeps its own namespaces
    rc = libc.unshare(inputs["flags"])
    os._exit(0 if rc == 0 else 100 + ctypes.get_errno())
stage("unshare")
_, status = os.waitpid(pid, 0)
code = os.waitstatus_to_exitcode(status)
if code:
    raise OSError(code - 100, os.strerror(code - 100))
return "unshared"
"""

CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWPID = 0x10000000, 0x20000, 0x40000000, 0x20000000


@pytest.mark.parametrize(
    "flags",
    [
        pytest.param(CLONE_NEWUSER, id="user"),
        pytest.param(
            CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID, id="user-mount-net-pid"
        ),
    ],
)
def test_create_user_namespace(side: Side, flags: int) -> None:
    """A user namespace gives the code every capability over new namespaces: mounts,
    network set-up, and far more kernel attack surface."""
    outcome = side.attack(UNSHARE, {"flags": flags})
    if side.is_baseline:
        assert outcome.value == "unshared"
        return
    # EPERM: seccomp; ENOSPC: user.max_user_namespaces is 0 inside the sandbox
    assert_refused(outcome.report, {"EPERM", "ENOSPC", "EACCES"}, stages={"unshare"})
