"""Code running in an environment: the package imports under the import policy in force,
the environment is read-only to the code, its runners come warm from a pool of its own,
and that pool is closed when idle (never while a session uses it)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import psutil
import pytest

from sandbox_tool import (
    BuiltinsPolicy,
    ExecutionError,
    ExecutionOptions,
    ImportNotAllowed,
    ImportPolicy,
    PythonSandbox,
    UsageError,
)
from sandbox_tool.engines.process import ProcessEngine
from tests.environments.conftest import NEEDS_UV, ManagerFactory

PROCESS = ProcessEngine.probe()
pytestmark = [
    NEEDS_UV,
    pytest.mark.skipif(not PROCESS.available, reason=f"process engine: {PROCESS.reason}"),
]
TINY = ExecutionOptions(packages=["tiny-dist"], import_policy=ImportPolicy.whitelist({"sys"}))


def _engine(**settings: float) -> ProcessEngine:
    engine = ProcessEngine(preload=(), pool_size=1)
    for name, value in settings.items():
        setattr(engine, name, value)  # read when the engine starts
    return engine


@pytest.fixture(scope="module")
def sandbox(manager_factory: ManagerFactory) -> Iterator[PythonSandbox]:
    box = PythonSandbox(_engine(), environments=manager_factory())
    yield box
    asyncio.run(box.aclose())


def _until(condition: object, within: float = 15.0) -> bool:
    end = time.monotonic() + within
    while time.monotonic() < end:
        if callable(condition) and condition():
            return True
        time.sleep(0.05)
    return False


def test_the_package_imports_under_a_whitelist_that_gained_it(sandbox: PythonSandbox) -> None:
    res = sandbox.execute_sync(
        "import tinymod, sys\nresult = [tinymod.VALUE, sys.prefix]", options=TINY
    )
    env = sandbox.environments.ensure_sync(["tiny-dist"])
    assert res.result == [42, str(env.path)]
    assert res.isolation is not None  # the process engine's layers, reported
    # the same code without packages runs in the engine's interpreter, which lacks it
    with pytest.raises(ImportNotAllowed):
        sandbox.execute_sync("import tinymod", options=TINY.model_copy(update={"packages": ()}))


def test_the_environment_is_read_only_to_the_code(sandbox: PythonSandbox) -> None:
    options = TINY.model_copy(
        update={
            "builtins_policy": BuiltinsPolicy.allow_all(),
            "import_policy": ImportPolicy.allow_all(),
        }
    )
    code = (
        "import os, tinymod\n"
        "open(os.path.join(os.path.dirname(tinymod.__file__), 'planted.py'), 'w')"
    )
    with pytest.raises(ExecutionError) as info:
        sandbox.execute_sync(code, options=options)
    assert info.value.exception in {"OSError", "PermissionError"}
    assert "Read-only" in info.value.message or "denied" in info.value.message


def test_an_explicit_import_deny_is_not_lifted_by_asking_for_the_package(
    sandbox: PythonSandbox,
) -> None:
    options = ExecutionOptions(
        packages=["tiny-dist"], import_policy=ImportPolicy.default().with_denied({"tinymod"})
    )
    with pytest.raises(ImportNotAllowed) as info:
        sandbox.execute_sync("import tinymod", options=options)
    assert info.value.module == "tinymod"


def test_later_executions_run_warm_from_the_environments_own_pool(sandbox: PythonSandbox) -> None:
    sandbox.execute_sync("import tinymod", options=TINY)
    env = sandbox.environments.ensure_sync(["tiny-dist"])
    pools = sandbox.engine.environment_pools  # type: ignore[attr-defined]
    pool = pools.running()[env.key]
    template = pool.template_pid()
    assert template is not None and pool.info["python"]
    for _ in range(3):
        assert sandbox.execute_sync("import tinymod\ntinymod.VALUE", options=TINY).result == 42
    assert pools.running()[env.key] is pool and pool.template_pid() == template
    assert "tinymod" in pool.preload  # what the environment was asked for is preloaded
    # the engine's own pool is another template, running the engine's interpreter
    default = sandbox.engine.pool  # type: ignore[attr-defined]
    assert default is not None and default.template_pid() != template


def test_a_session_runs_in_the_environment_and_keeps_its_packages(sandbox: PythonSandbox) -> None:
    async def go() -> None:
        async with sandbox.session(TINY) as session:
            await session.execute("import tinymod\nx = tinymod.VALUE")
            assert (await session.execute("x + 1")).result == 43
            with pytest.raises(UsageError, match="chosen when it opens"):
                await session.execute("x", options=ExecutionOptions(packages=["other-dist"]))

    asyncio.run(go())


def test_an_engine_refuses_packages_nobody_resolved(sandbox: PythonSandbox) -> None:
    with pytest.raises(UsageError, match=r"EnvironmentManager\.resolve"):
        asyncio.run(sandbox.engine.execute("1", None, ExecutionOptions(packages=["tiny-dist"])))


def test_an_idle_pool_is_closed_but_not_while_a_session_uses_it(
    manager_factory: ManagerFactory,
) -> None:
    box = PythonSandbox(_engine(environment_idle_seconds=0.3), environments=manager_factory())

    async def go() -> None:
        session = await box.open_session(TINY)
        pools = box.engine.environment_pools  # type: ignore[attr-defined]
        ((key, pool),) = pools.running().items()
        template = pool.template_pid()
        await asyncio.sleep(1.0)  # idle past 0.3 s, but the session holds a runner
        assert pools.running() == {key: pool}
        assert (await session.execute("import tinymod\ntinymod.VALUE")).result == 42
        await session.aclose()
        assert await asyncio.to_thread(_until, lambda: not pools.running())
        assert await asyncio.to_thread(_until, lambda: not psutil.pid_exists(template))
        # the next execution starts it again
        assert (await box.execute("import tinymod\ntinymod.VALUE", options=TINY)).result == 42
        await box.aclose()

    asyncio.run(go())


def test_beyond_the_cap_the_least_recently_used_idle_pool_closes(
    manager_factory: ManagerFactory,
) -> None:
    box = PythonSandbox(_engine(max_environment_pools=1), environments=manager_factory())
    other = TINY.model_copy(update={"packages": ("other-dist",)})
    try:
        box.execute_sync("import tinymod", options=TINY)
        pools = box.engine.environment_pools  # type: ignore[attr-defined]
        (first,) = pools.running().values()
        template = first.template_pid()
        assert box.execute_sync("import othermod\nothermod.VALUE", options=other).result == 42
        assert _until(lambda: len(pools.running()) == 1 and first not in pools.running().values())
        assert _until(lambda: not psutil.pid_exists(template))
    finally:
        asyncio.run(box.aclose())


def test_a_cold_engine_runs_the_environments_interpreter(manager_factory: ManagerFactory) -> None:
    box = PythonSandbox("native", warm=False, environments=manager_factory())
    res = box.execute_sync("import sys, tinymod\nsys.prefix", options=TINY)
    assert res.result == str(box.environments.ensure_sync(["tiny-dist"]).path)


def test_prepare_builds_the_environment_and_starts_its_pool_before_any_code(
    sandbox: PythonSandbox,
) -> None:
    other = TINY.model_copy(update={"packages": ("other-dist",)})
    asyncio.run(sandbox.prepare(other))
    env = sandbox.environments.ensure_sync(["other-dist"])
    pools = sandbox.engine.environment_pools  # type: ignore[attr-defined]
    assert env.key in pools.running()
