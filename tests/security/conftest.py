"""Fixtures of the escape suite: the two sides, the host-side targets, the leftover check.

Every test runs once per side:

- ``baseline-native``: the ``native`` engine without its seccomp filter
  (``seccomp=False``), which is not a security boundary; the attack must work there (or
  the test says why that cannot be shown safely);
- ``sandbox-process``: the ``process`` engine; the attack must fail in a named way.
  Skipped, with the probe's reason, until that engine is registered and available;
- ``sandbox-process-warm``: the same, on runners forked from its warm template;
- ``sandbox-gvisor``: the ``gvisor`` engine (one sandbox kept running for the suite, as
  it is meant to be used). Skipped, with the probe's reason, where runsc cannot run.

Both run with every import and every builtin allowed: the OS boundary must hold alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from sandbox_tool import ENGINES, PythonSandbox

from .harness import HostProcess, Listener, ListenerKind, Side, kill_all, processes_named, token

#: Environment variable the test process holds while the engine starts (a stand-in for
#: an API key); it must never be visible to the sandboxed code.
SECRET_ENV = "SANDBOX_TOOL_ESCAPE_SECRET"

#: ``comm`` names of processes the attacks start (daemons); checked after every test.
WATCHED_NAMES: set[str] = set()

SIDES = [
    pytest.param(("baseline", "native"), id="baseline-native"),
    pytest.param(("sandbox", "process"), id="sandbox-process"),
    # runners forked from a warm template must be exactly as isolated as cold ones
    pytest.param(("sandbox", "process-warm"), id="sandbox-process-warm"),
    pytest.param(("sandbox", "gvisor"), id="sandbox-gvisor"),
]
#: Sides served by one engine for the whole suite (name -> the engine's registry name).
SHARED = {"process-warm": "process", "gvisor": "gvisor"}
#: Warm pools alive across tests: their template and waiting runners are not leftovers.
RESIDENT_POOLS: list[Any] = []


def engine_unavailable(name: str) -> str | None:
    """Why the engine ``name`` cannot be the sandbox side here, or None."""
    cls = ENGINES.get(name)
    if cls is None:
        return "not registered in sandbox_tool.engines.ENGINES"
    info = cls.probe()
    return None if info.available else info.reason


def _living_descendants() -> list[psutil.Process]:
    templates = {pool.template_pid() for pool in RESIDENT_POOLS}
    runners = set().union(*(pool.resident_pids() for pool in RESIDENT_POOLS)) - templates
    living = []
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            if proc.pid in templates or proc.pid in runners:
                continue
            if runners & {a.pid for a in proc.parents()}:
                continue  # inside a warm runner waiting for its request
            if proc.status() != psutil.STATUS_ZOMBIE:
                living.append(proc)
    return living


@pytest.fixture(autouse=True)
def no_leftovers() -> Iterator[None]:
    """After every test (all other fixtures torn down): no process it started is left, by
    either engine (processes already there before the test are not its own)."""
    before = {(p.pid, _started(p)) for p in _living_descendants()}
    yield
    living = [p for p in _living_descendants() if (p.pid, _started(p)) not in before]
    for _ in range(20):
        if not living:
            break
        psutil.wait_procs(living, timeout=0.1)
        living = [p for p in _living_descendants() if (p.pid, _started(p)) not in before]
    strays = [p for name in sorted(WATCHED_NAMES) for p in processes_named(name)]
    WATCHED_NAMES.clear()
    kill_all(living + strays)
    assert living == [], f"processes left behind: {living}"
    assert strays == [], f"processes the attack started outlived the test: {strays}"


def _started(proc: psutil.Process) -> float:
    try:
        return float(proc.create_time())
    except psutil.Error:
        return 0.0


@pytest.fixture
def host_secret(monkeypatch: pytest.MonkeyPatch) -> str:
    """A secret in the test process's environment, set before any engine starts."""
    value = token("sbx-env-secret")
    monkeypatch.setenv(SECRET_ENV, value)
    return value


def _shared_sandbox(name: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One warm engine for this suite (a template per test would dominate); gone before
    other suites run, whose leak checks would otherwise see its template."""
    if engine_unavailable(name) is not None:
        yield None
        return
    work_root = tmp_path_factory.mktemp(f"shared-{name}-root")
    sandbox = PythonSandbox(engine=ENGINES[name](work_root=work_root, warm=True))  # type: ignore[call-arg]
    asyncio.run(sandbox.start())
    pool = sandbox.engine.pool  # type: ignore[attr-defined]
    RESIDENT_POOLS.append(pool)
    try:
        yield sandbox
    finally:
        RESIDENT_POOLS.remove(pool)
        asyncio.run(sandbox.aclose())
    assert list(work_root.iterdir()) == [], f"the shared {name} engine left a directory behind"


@pytest.fixture(scope="package")
def warm_process_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    yield from _shared_sandbox("process", tmp_path_factory)


@pytest.fixture(scope="package")
def gvisor_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    yield from _shared_sandbox("gvisor", tmp_path_factory)


@pytest.fixture(params=SIDES)
def side(request: pytest.FixtureRequest, host_secret: str, tmp_path: Path) -> Iterator[Side]:
    """The engine under attack, with a fresh work root that must be empty afterwards."""
    role, name = request.param
    if name in SHARED:
        engine_name = SHARED[name]
        shared = request.getfixturevalue(
            "warm_process_sandbox" if name == "process-warm" else "gvisor_sandbox"
        )
        if shared is None:
            pytest.skip(f'"{engine_name}" engine not available: {engine_unavailable(engine_name)}')
        pool = shared.engine.pool
        yield Side(role, engine_name, shared)
        pool.wait_idle()
        left = set(shared.engine.work_root.iterdir()) - pool.resident_dirs()
        assert left == set(), f"the shared {engine_name} engine left a working directory behind"
        return
    if name == "process":
        reason = engine_unavailable(name)
        if reason is not None:
            pytest.skip(f'"process" engine not available: {reason}')
    work_root = tmp_path / "engine-root"
    work_root.mkdir()
    # the baseline shows the attack itself works: nothing of the native filter in the way
    extra = {"seccomp": False} if role == "baseline" else {}
    engine = ENGINES[name](work_root=work_root, warm=False, **extra)  # type: ignore[call-arg]
    sandbox = PythonSandbox(engine=engine)
    asyncio.run(sandbox.start())
    try:
        yield Side(role, name, sandbox)
    finally:
        asyncio.run(sandbox.aclose())
    assert list(work_root.iterdir()) == [], "the engine left a working directory behind"


def _private_dir(prefix: str, mode: int) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(mode)
    return path


@pytest.fixture
def canary() -> Iterator[dict[str, str]]:
    """A world-readable secret file outside the engine's work root (so file permissions
    are not what stops the sandbox), and a HOME-like directory with ``.ssh`` in it."""
    outside = _private_dir("sbx-canary-", 0o755)
    home = _private_dir("sbx-home-", 0o755)
    try:
        content = token("CANARY")
        secret = outside / "secret.txt"
        secret.write_text(content + "\n")
        secret.chmod(0o644)
        ssh = home / ".ssh"
        ssh.mkdir(mode=0o700)
        key_content = token("SSH-KEY-CANARY")
        key = ssh / "id_ed25519"
        key.write_text(f"-----BEGIN OPENSSH PRIVATE KEY-----\n{key_content}\n")
        key.chmod(0o600)
        yield {
            "dir": str(outside),
            "path": str(secret),
            "content": content,
            "home": str(home),
            "ssh_key": str(key),
            "ssh_content": key_content,
        }
    finally:
        shutil.rmtree(outside, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def outside_dir() -> Iterator[Path]:
    """A world-writable directory outside the work root (mode 0777: only the sandbox can
    stop a write into it)."""
    path = _private_dir("sbx-outside-", 0o777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def listener() -> Iterator[Callable[[ListenerKind], Listener]]:
    """``listener(kind)``: a started loopback server, stopped after the test."""
    started: list[Listener] = []

    def make(kind: ListenerKind) -> Listener:
        server = Listener(kind).start()
        started.append(server)
        return server

    try:
        yield make
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def host_process(host_secret: str) -> Iterator[HostProcess]:
    """``sleep 61.<digits>`` on the host, with the secret in its environment; killed after."""
    with HostProcess.start(SECRET_ENV, host_secret) as proc:
        yield proc


@pytest.fixture
def watch_name() -> Callable[[str], str]:
    """``watch_name(prefix)``: a unique ``comm`` name that is checked after the test."""

    def make(prefix: str) -> str:
        name = f"{prefix}{os.urandom(4).hex()}"[:15]
        WATCHED_NAMES.add(name)
        return name

    return make
