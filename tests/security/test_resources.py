"""Denial of service and persistence: process, memory, output, CPU and time limits,
daemons that outlive the run, and state that leaks into the next execution.

The native engine applies most of these limits too (rlimits, the wall-clock kill). Its
baseline runs lift the limit under test (``baseline_overrides``) to show what the
attack does when nothing stops it; the sandbox runs keep it.
"""

from __future__ import annotations

import asyncio
import glob
import os
import time
from pathlib import Path
from typing import Any

import pytest

from sandbox_tool import (
    CpuLimitExceeded,
    ExecutionOptions,
    MemoryLimitExceeded,
    OutputLimitExceeded,
    SandboxError,
    Timeout,
)

from .harness import (
    ALLOW_ALL,
    Side,
    assert_refused_as,
    bare_run,
    kill_all,
    processes_named,
)

MAX_PROCESSES = 16

# -- fork and thread bombs ----------------------------------------------------------------

# A binary tree of forks, 2**depth processes at most; every process stays alive (so the
# count is real) until the engine ends the run.
FORK_BOMB = """
import errno, os, time
root = os.getpid()
r, w = os.pipe()
for level in range(inputs["depth"]):
    try:
        pid = os.fork()
    except OSError as exc:
        os.write(w, b"E%d\\n" % exc.errno)
        break
    if pid == 0:
        os.write(w, b"+\\n")
if os.getpid() != root:
    time.sleep(60)
    os._exit(0)
time.sleep(inputs["settle"])
os.set_blocking(r, False)
data = b""
try:
    while chunk := os.read(r, 65536):
        data += chunk
except BlockingIOError:
    pass
codes = {int(x[1:]) for x in data.split() if x.startswith(b"E")}
return {"forks": data.count(b"+"), "errors": sorted(errno.errorcode[c] for c in codes)}
"""


def test_fork_bomb(side: Side) -> None:
    if side.is_baseline:
        if os.geteuid() == 0:
            pytest.skip(
                "RLIMIT_NPROC does not apply to root; a real fork bomb would take the host down"
            )
        # a tiny bounded tree (32 processes), with the native engine's own RLIMIT_NPROC
        # cap lifted: the attack works when nothing caps it
        outcome = side.attack(
            FORK_BOMB, {"depth": 5, "settle": 1.0}, max_processes=4096, timeout=20
        )
        assert outcome.value == {"forks": 31, "errors": []}
        return
    # up to 512 processes if the cap failed: bounded even then
    outcome = side.attack(
        FORK_BOMB, {"depth": 9, "settle": 1.0}, max_processes=MAX_PROCESSES, timeout=20
    )
    report = outcome.value
    assert "EAGAIN" in report["errors"], f"no fork was refused: {report}"
    assert report["forks"] < MAX_PROCESSES, report


THREAD_BOMB = """
import threading
threading.stack_size(256 * 1024)
stop = threading.Event()
started, error = 0, None
try:
    for _ in range(inputs["n"]):
        threading.Thread(target=stop.wait, daemon=True).start()
        started += 1
except RuntimeError as exc:
    error = str(exc)
stop.set()
return {"started": started, "error": error}
"""


def test_thread_bomb(side: Side) -> None:
    # 64 threads are harmless; the native engine caps threads for non-root callers
    # (RLIMIT_NPROC counts threads), so the baseline lifts max_processes
    outcome = side.attack(
        THREAD_BOMB,
        {"n": 64},
        max_processes=MAX_PROCESSES,
        baseline_overrides={"max_processes": 4096},
    )
    report = outcome.value
    if side.is_baseline:
        assert report == {"started": 64, "error": None}
        return
    assert report["error"] == "can't start new thread", report
    # threads work at all (FIELD_NOTES 10), and the cap holds
    assert 1 <= report["started"] < MAX_PROCESSES, report


# -- memory bombs ---------------------------------------------------------------------------

MEMORY_MB = 256
BOMB_MB = 2 * MEMORY_MB

MEMORY_BOMB = """
mb, how = inputs["mb"], inputs["how"]
if how == "plain":
    block = bytearray(mb * 2**20)
    block[::4096] = b"\\1" * len(range(0, len(block), 4096))     # touch every page
elif how == "numpy":
    import numpy as np
    block = np.ones(mb * 2**20 // 8)
else:
    blocks = [bytearray(b"\\1" * 2**24) for _ in range(mb // 16)]
return {"held_mb": mb}
"""


@pytest.mark.parametrize("how", ["plain", "numpy", "gradual"])
def test_memory_bomb(side: Side, how: str) -> None:
    outcome = side.attack(
        MEMORY_BOMB,
        {"mb": BOMB_MB, "how": how},
        memory_mb=MEMORY_MB,
        baseline_overrides={"memory_mb": 4 * BOMB_MB},
    )
    if side.is_baseline:
        assert outcome.value == {"held_mb": BOMB_MB}
        return
    assert isinstance(outcome.error, MemoryLimitExceeded), outcome.error or outcome.result


# memfd and tmpfs pages are not part of the address space: RLIMIT_AS does not count them
SHARED_MEMORY_BOMB = """
import os
chunk = b"\\1" * 2**24
fds, held = [], 0
try:
    while held < inputs["mb"]:
        if inputs["how"] == "memfd":
            stage("memfd_create")
            fd = os.memfd_create(f"sbx-{len(fds)}")
        else:
            stage("open")
            path = f"/dev/shm/{inputs['prefix']}-{len(fds)}"
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        fds.append(fd)
        stage("write")
        if os.write(fd, chunk) != len(chunk):
            raise OSError(28, "short write")
        held += 16
except OSError as exc:
    return {"held_mb": held, "error": refusal(exc)}
return {"held_mb": held, "error": None}
"""

SHARED_MEMORY_REFUSALS = {
    # seccomp refusing memfd_create
    "memfd_create": frozenset({"EPERM", "ENOSYS", "EACCES"}),
    # /dev/shm absent, read-only or out of reach in the sandbox
    "open": frozenset({"ENOENT", "EACCES", "EPERM", "EROFS"}),
    # a per-sandbox cap: a size-limited tmpfs (ENOSPC), RLIMIT_FSIZE (EFBIG), accounting
    "write": frozenset({"ENOSPC", "EFBIG", "ENOMEM"}),
}


@pytest.mark.parametrize("how", ["memfd", "dev-shm"])
def test_shared_memory_bomb(side: Side, how: str) -> None:
    """memfd_create + write, and files in /dev/shm: memory outside RLIMIT_AS. The
    baseline runs with the very same options (memory_mb=256) and holds twice that."""
    prefix = f"sbx-shm-{os.urandom(4).hex()}"
    try:
        outcome = side.attack(
            SHARED_MEMORY_BOMB,
            {"mb": BOMB_MB, "how": how, "prefix": prefix},
            memory_mb=MEMORY_MB,
        )
        host_files = glob.glob(f"/dev/shm/{prefix}-*")
    finally:
        for path in glob.glob(f"/dev/shm/{prefix}-*"):
            os.unlink(path)
    if side.is_baseline:
        assert outcome.value == {"held_mb": BOMB_MB, "error": None}
        if how == "dev-shm":
            assert len(host_files) == BOMB_MB // 16, "the host's /dev/shm was not used"
        return
    assert host_files == [], "the sandbox wrote into the host's /dev/shm"
    if isinstance(outcome.error, MemoryLimitExceeded):
        return
    report = outcome.value
    assert report["error"] is not None, f"the sandbox held {report['held_mb']} MiB"
    assert report["held_mb"] <= MEMORY_MB, report
    assert_refused_as(report["error"], SHARED_MEMORY_REFUSALS)


# -- output floods -------------------------------------------------------------------------

FLOOD = """
import os, sys
line = "flood " * 166 + "\\n"
n, how = inputs["lines"], inputs["how"]
if how == "print":
    for _ in range(n):
        print(line, end="")
elif how == "stderr":
    for _ in range(n):
        sys.stderr.write(line)
else:
    data = line.encode()
    pid = os.fork() if how == "child" else 0
    if pid == 0:
        for _ in range(n):
            os.write(1, data)       # below sys.stdout: straight into the pipe
        if how == "child":
            os._exit(0)
    else:
        os.waitpid(pid, 0)
return "flooded"
"""

MAX_OUTPUT = 10_000
FLOOD_LINES = 2_000  # about 2 MB


@pytest.mark.parametrize("how", ["print", "stderr", "fd-1", "child"])
def test_output_flood(side: Side, how: str) -> None:
    outcome = side.attack(
        FLOOD,
        {"lines": FLOOD_LINES, "how": how},
        max_output_bytes=MAX_OUTPUT,
        baseline_overrides={"max_output_bytes": 8 * 1024 * 1024},
    )
    total = len(outcome.stdout) + len(outcome.stderr)
    if side.is_baseline:
        assert outcome.value == "flooded"
        assert total >= FLOOD_LINES * 997
        return
    assert isinstance(outcome.error, OutputLimitExceeded), outcome.error or outcome.result
    assert total <= MAX_OUTPUT + 200, f"{total} bytes of output came back"


# -- CPU and wall-clock time ---------------------------------------------------------------

SPIN = """
import signal, time
for name in inputs["ignore"]:
    signal.signal(getattr(signal, name), signal.SIG_IGN)
t0 = time.process_time()
while time.process_time() - t0 < inputs["seconds"]:
    pass
return "done"
"""

SLEEP = """
import signal, time
sigs = [getattr(signal, name) for name in inputs["ignore"]]
for sig in sigs:
    signal.signal(sig, signal.SIG_IGN)
signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
time.sleep(inputs["seconds"])
return "done"
"""

TERMINATION = ["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("code", "inputs", "limits", "lifted", "error"),
    [
        pytest.param(
            SPIN,
            {"seconds": 2, "ignore": []},
            {"cpu_seconds": 1, "timeout": 20},
            {"cpu_seconds": 30},
            CpuLimitExceeded,
            id="cpu-spin",
        ),
        pytest.param(
            SPIN,
            # the hard limit (SIGKILL) one second after the soft one still ends it
            {"seconds": 3, "ignore": ["SIGXCPU"]},
            {"cpu_seconds": 1, "timeout": 20},
            {"cpu_seconds": 30},
            CpuLimitExceeded,
            id="cpu-spin-ignoring-sigxcpu",
        ),
        pytest.param(
            SLEEP,
            {"seconds": 2.5, "ignore": []},
            {"timeout": 1},
            {"timeout": 30},
            Timeout,
            id="sleep-past-the-timeout",
        ),
        pytest.param(
            SLEEP,
            {"seconds": 2.5, "ignore": TERMINATION},
            {"timeout": 1},
            {"timeout": 30},
            Timeout,
            id="ignoring-and-blocking-signals",
        ),
    ],
)
def test_time_limits(
    side: Side,
    code: str,
    inputs: dict[str, Any],
    limits: dict[str, float],
    lifted: dict[str, float],
    error: type[SandboxError],
) -> None:
    outcome = side.attack(code, inputs, baseline_overrides=lifted, **limits)
    if side.is_baseline:
        assert outcome.value == "done"
        return
    assert isinstance(outcome.error, error), outcome.error or outcome.result
    bound = limits.get("timeout", 20) if error is Timeout else 2 * limits["cpu_seconds"] + 1
    assert outcome.wall < bound + 4, f"stopped only after {outcome.wall:.1f} s"


# -- daemons -----------------------------------------------------------------------------

DAEMON = """
import ctypes, os, signal, time
stage("fork")
pid = os.fork()
if pid == 0:
    os.setsid()
    if os.fork() == 0:
        ctypes.CDLL(None).prctl(15, ctypes.c_char_p(inputs["name"].encode()), 0, 0, 0)
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        if inputs["close_stdio"]:
            fd = os.open(os.devnull, os.O_RDWR)
            for n in (0, 1, 2):
                os.dup2(fd, n)
        time.sleep(60)
        os._exit(0)
    os._exit(0)
os.waitpid(pid, 0)
time.sleep(0.3)
return "detached"
"""


@pytest.mark.parametrize(
    "close_stdio",
    [
        pytest.param(True, id="double-fork-setsid-closed-stdio"),
        pytest.param(False, id="double-fork-setsid-holding-stdout"),
    ],
)
def test_daemon_outliving_the_run(
    side: Side, tmp_path: Path, watch_name: Any, close_stdio: bool
) -> None:
    """A classic daemon (double fork, setsid, SIGTERM/SIGHUP ignored), found afterwards on
    the host by its process name, whatever its parent or pid namespace."""
    name = watch_name("sbxd")
    inputs = {"name": name, "close_stdio": close_stdio}
    if side.is_baseline:
        # The native engine already kills daemons (its supervisor is the child subreaper),
        # so the baseline is a plain `python -c` with no engine at all.
        outcome = bare_run(DAEMON, inputs, tmp_path)
        survivors = processes_named(name)
        kill_all(survivors)
        assert outcome.value == "detached"
        assert survivors, "the daemon did not outlive a plain python process"
        return
    outcome = side.attack(DAEMON, inputs)
    assert outcome.value == "detached"
    survivors = processes_named(name)
    for _ in range(5):  # SIGKILL sent, exit still in progress
        if not survivors:
            break
        time.sleep(0.1)
        survivors = processes_named(name)
    assert survivors == [], f"the daemon outlived the run: {survivors}"


# -- state that persists into the next execution --------------------------------------------

_PATHS = """
import builtins, json, os, tempfile
paths = {
    "work-dir": "persist.txt",
    "temp-dir": os.path.join(tempfile.gettempdir(), "persist.txt"),
    "home": os.path.join(os.path.expanduser("~"), ".persist"),
    "tmp": inputs["tmp"],
    "dev-shm": inputs["shm"],
}
"""

PLANT = (
    _PATHS
    + """
out = {}
for label, path in paths.items():
    def plant(path=path):
        with open(path, "w") as f:
            f.write(inputs["token"])
        return path
    out[label] = attempt(plant)
os.environ["SBX_PERSIST"] = inputs["token"]
json.sbx_persist = inputs["token"]
builtins.sbx_persist = inputs["token"]
return out
"""
)

FIND = (
    _PATHS
    + """
found = []
for label, path in paths.items():
    try:
        with open(path) as f:
            if inputs["token"] in f.read():
                found.append(label)
    except OSError:
        pass
if os.environ.get("SBX_PERSIST") == inputs["token"]:
    found.append("environ")
if getattr(json, "sbx_persist", None) == inputs["token"]:
    found.append("module")
if getattr(builtins, "sbx_persist", None) == inputs["token"]:
    found.append("builtins")
return found
"""
)


def test_state_does_not_persist(side: Side) -> None:
    """Two executions on one engine: files (work dir, temp dir, HOME, /tmp, /dev/shm),
    environment, modules and builtins planted by the first are not seen by the second."""
    name = f"sbx-persist-{os.urandom(6).hex()}"
    host_paths = [Path("/tmp") / name, Path("/dev/shm") / name]
    inputs = {"token": f"persist-{os.urandom(6).hex()}", "tmp": str(host_paths[0])}
    inputs["shm"] = str(host_paths[1])
    try:
        side.attack(PLANT, inputs).value  # noqa: B018 - the harness completed
        found = side.attack(FIND, inputs).value
        on_host = [str(p) for p in host_paths if p.exists()]
    finally:
        for path in host_paths:
            path.unlink(missing_ok=True)
    if side.is_baseline:
        # the host's /tmp and /dev/shm are shared by every run
        assert {"tmp", "dev-shm"} <= set(found), found
        assert len(on_host) == 2
        return
    assert found == [], f"state persisted into the next execution: {found}"
    assert on_host == [], f"the sandbox wrote on the host: {on_host}"


# -- processes a session cell leaves behind ---------------------------------------------

SPINNERS = """
import ctypes, os
for _ in range(2):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            ctypes.CDLL(None).prctl(15, ctypes.c_char_p(inputs["name"].encode()), 0, 0, 0)
            while True:
                pass
        os._exit(0)
    os.wait()
"spinning"
"""


def test_session_cell_leaves_no_spinners(side: Side, watch_name: Any) -> None:
    """The audit's attack: a cell forks two ``setsid`` spinners and returns at once. They
    must be dead when the cell's answer arrives, and the session must go on (its state
    is in ``__main__``)."""
    name = watch_name("sbxspin")

    async def scenario() -> tuple[Any, list[Any], Any]:
        async with side.sandbox.session(ExecutionOptions(**ALLOW_ALL, timeout=30.0)) as s:
            first = await s.execute("kept = 41\n" + SPINNERS, {"name": name})
            survivors = processes_named(name)
            kill_all(survivors)
            second = await s.execute("kept + 1")
        return first.result, survivors, second.result

    first, survivors, second = asyncio.run(scenario())
    assert first == "spinning"
    assert survivors == [], f"the cell's spinners outlived its answer: {survivors}"
    assert second == 42


# -- the CPU budget of the whole sandbox ---------------------------------------------------

# Three spinners that hand over to a fresh child before RLIMIT_CPU (per process) ends
# them: the audit's one-shot attack got 16 CPU-s under cpu_seconds=1 this way.
RE_FORKING_SPINNERS = """
import ctypes, os, time
def spin():
    ctypes.CDLL(None).prctl(15, ctypes.c_char_p(inputs["name"].encode()), 0, 0, 0)
    while True:
        start = time.process_time()
        while time.process_time() - start < 0.4:
            pass
        if os.fork() != 0:
            os._exit(0)
for _ in range(3):
    if os.fork() == 0:
        os.setsid()
        spin()
time.sleep(inputs["seconds"])
return "done"
"""


def test_session_cell_cpu_budget_is_the_cells_own(side: Side, watch_name: Any) -> None:
    """A session cell's budget does not include what the earlier cells used, and one
    whose processes pass it together ends the session with CpuLimitExceeded."""
    if side.is_baseline:
        pytest.skip("the native engine bounds a cell's processes the same way")
    name = watch_name("sbxcellcpu")
    spend = "import time\ns = time.process_time()\nwhile time.process_time() - s < 0.6:\n    pass"

    async def scenario() -> tuple[Any, BaseException | None]:
        opts = ExecutionOptions(**ALLOW_ALL, timeout=20.0, cpu_seconds=1)
        async with side.sandbox.session(opts) as s:
            for _ in range(3):  # 1.8 CPU-s over three cells: each is under its budget
                await s.execute(spend)
            try:
                await s.execute(RE_FORKING_SPINNERS.replace("return ", "result = "),
                                {"name": name, "seconds": 3})  # fmt: skip
            except SandboxError as exc:
                return None, exc
        return "no error", None

    value, error = asyncio.run(scenario())
    survivors = processes_named(name)
    kill_all(survivors)
    assert isinstance(error, CpuLimitExceeded), error or value
    assert "in total" in str(error)
    assert survivors == []


# -- the memory of the whole sandbox -------------------------------------------------------

# The audit's attack: forked children of 200 MB each, every one under memory_mb (which
# RLIMIT_AS applies per process), together twice over it.
FORKED_HOGS = """
import ctypes, os, time
for _ in range(6):
    if os.fork() == 0:
        ctypes.CDLL(None).prctl(15, ctypes.c_char_p(inputs["name"].encode()), 0, 0, 0)
        hog = bytearray(200 * 1024 * 1024)  # zero-filled: every page is resident
        time.sleep(inputs["seconds"])
        os._exit(0)
time.sleep(inputs["seconds"])
return "done"
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("code", "limits", "lifted", "error"),
    [
        pytest.param(
            RE_FORKING_SPINNERS, {"cpu_seconds": 1}, {"cpu_seconds": 1000}, CpuLimitExceeded,
            id="re-forking-spinners-share-one-cpu-budget",
        ),
        pytest.param(
            FORKED_HOGS, {"memory_mb": 600}, {"memory_mb": 8192}, MemoryLimitExceeded,
            id="forked-children-share-one-memory-limit",
        ),
    ],
)  # fmt: skip
def test_processes_share_one_budget(
    side: Side,
    watch_name: Any,
    code: str,
    limits: dict[str, float],
    lifted: dict[str, float],
    error: type[SandboxError],
) -> None:
    """No process reaches the limit itself, but together they pass it: the sandbox's
    total is what counts, the error says so, and no process is left."""
    name = watch_name("sbxtotal")
    inputs = {"name": name, "seconds": 3}
    outcome = side.attack(code, inputs, baseline_overrides=lifted, timeout=20, **limits)
    survivors = processes_named(name)
    kill_all(survivors)
    if side.is_baseline:
        assert outcome.value == "done"  # nothing stopped them while the code ran
        return
    assert isinstance(outcome.error, error), outcome.error or outcome.result
    assert "in total" in str(outcome.error), outcome.error
    assert survivors == [], f"processes outlived the run: {survivors}"
