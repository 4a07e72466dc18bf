"""The ``install_packages`` tool: off unless enabled; when on, its description lists what
may be asked for, and each outcome is a message the model can act on."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from sandbox_tool import ExecutionError, ExecutionOptions, ExecutionResult, PythonSandbox
from sandbox_tool.engines.fake import FakeEngine
from sandbox_tool.engines.native import NativeEngine
from sandbox_tool.environments import InstallPolicy
from sandbox_tool.sandbox import run_sync
from sandbox_tool.tool import InterpreterInfo, OpenAIFunctions, PythonTool
from tests.environments.conftest import NEEDS_UV, ManagerFactory

pytestmark = NEEDS_UV
INFO = InterpreterInfo("3.11.7", {"numpy": "2.0.0"}, frozenset({"json", "math"}))


def _tool(manager_factory: ManagerFactory, handler: Any = None, **policy: Any) -> PythonTool:
    manager = manager_factory(**policy)

    def answer(code: str, inputs: Any, options: ExecutionOptions) -> ExecutionResult:
        if "tinymod" in code and options.environment is None:
            raise ExecutionError(
                "ModuleNotFoundError: No module named 'tinymod'",
                exception="ModuleNotFoundError", lineno=1, line=code,
            )  # fmt: skip
        prefix = str(options.environment.path) if options.environment else "default"
        return ExecutionResult(result=prefix, result_repr=repr(prefix), result_type="str")

    sandbox = PythonSandbox(FakeEngine(handler or answer), environments=manager)
    return PythonTool(sandbox, info=INFO, installs=True)


def test_installs_are_off_unless_enabled(manager_factory: ManagerFactory) -> None:
    sandbox = PythonSandbox(
        FakeEngine(lambda *a: ExecutionResult()), environments=manager_factory()
    )
    tool = PythonTool(sandbox, info=INFO)
    assert [s.name for s in tool.specs] == ["run_python"]
    assert [t["function"]["name"] for t in OpenAIFunctions(tool).chat_completions_tools()] == [
        "run_python"
    ]


def test_the_description_says_what_may_be_asked_for(manager_factory: ManagerFactory) -> None:
    tool = _tool(manager_factory, policy=InstallPolicy.only(["tiny-dist", "scikit-learn"]))
    run, install = tool.specs
    assert "install_packages" in run.description
    assert install.name == "install_packages"
    assert "scikit-learn (import sklearn), tiny-dist" in install.description
    assert install.parameters["required"] == ["packages"]
    names = [t["name"] for t in OpenAIFunctions(tool).responses_tools()]
    assert names == ["run_python", "install_packages"]


def test_a_missing_module_names_the_call_that_installs_it(manager_factory: ManagerFactory) -> None:
    def missing(code: str, inputs: Any, options: ExecutionOptions) -> ExecutionResult:
        raise ExecutionError(
            "ModuleNotFoundError: No module named 'sklearn'",
            exception="ModuleNotFoundError", lineno=1, line=code,
        )  # fmt: skip

    allowed = _tool(manager_factory, missing, policy=InstallPolicy.default())
    text = allowed.run_sync("import sklearn").text
    assert 'call install_packages with {"packages": ["scikit-learn"]}' in text
    refused = _tool(manager_factory, missing, policy=InstallPolicy.only(["tiny-dist"]))
    assert "install_packages" not in refused.run_sync("import sklearn").text


def test_installing_then_running(manager_factory: ManagerFactory) -> None:
    tool = _tool(manager_factory)

    async def go() -> None:
        functions = OpenAIFunctions(tool)
        call = {"type": "function_call", "call_id": "c1", "name": "install_packages",
                "arguments": json.dumps({"packages": ["Tiny_Dist"]})}  # fmt: skip
        reply = await functions.handle(call)
        assert reply.outcome.ok, reply.outcome.text
        assert reply.outcome.text.startswith("Installed: tiny-dist 1.0 (import tinymod)")
        assert tool.options.packages == ("tiny-dist",)
        ran = await tool.run("import tinymod")
        env = tool.installer.manager.ensure_sync(["tiny-dist"])  # type: ignore[union-attr]
        assert ran.ok and ran.result is not None and ran.result.result == str(env.path)
        # a second package keeps the first
        again = await tool.call("install_packages", {"packages": ["other-dist"]})
        assert again.ok and tool.options.packages == ("other-dist", "tiny-dist")

    asyncio.run(go())


@pytest.mark.parametrize(
    ("packages", "expected"),
    [
        pytest.param(["requests"], "requests is not on the list", id="not-allowed"),
        pytest.param(["colourama"], "typo-squat of colorama", id="known-malicious"),
        pytest.param(["source-only"], "has no wheel", id="no-wheel"),
        pytest.param(["pkg @ https://evil/x.whl"], "Give package names", id="not-a-name"),
    ],
)
def test_refusals_name_the_package_and_change_nothing(
    manager_factory: ManagerFactory, packages: list[str], expected: str
) -> None:
    tool = _tool(manager_factory)
    outcome = asyncio.run(tool.call("install_packages", {"packages": packages}))
    assert not outcome.ok and expected in outcome.text
    assert outcome.text.startswith("Nothing was installed")
    assert tool.options.packages == ()


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"packages": []}', "non-empty"),
        ("not json", "not valid JSON"),
        ({"packages": [1]}, "strings"),
    ],
)
def test_unusable_arguments_get_a_message(
    manager_factory: ManagerFactory, arguments: Any, expected: str
) -> None:
    outcome = asyncio.run(_tool(manager_factory).call("install_packages", arguments))
    assert not outcome.ok and expected in outcome.text and '{"packages"' in outcome.text


def test_in_a_conversation_the_interpreter_restarts_in_the_new_environment(
    manager_factory: ManagerFactory,
) -> None:
    sandbox = PythonSandbox(NativeEngine(preload=(), pool_size=1), environments=manager_factory())
    tool = PythonTool(sandbox, info=INFO, installs=True)

    async def go() -> None:
        try:
            async with tool.conversation() as chat:
                assert (await chat.run("x = 1\nx")).ok
                installed = await chat.call("install_packages", {"packages": ["tiny-dist"]})
                assert (
                    installed.ok and "variables, imports and files from earlier" in installed.text
                )
                after = await chat.run("import tinymod\ntinymod.VALUE")
                assert after.ok and after.result is not None and after.result.result == 42
                assert not (await chat.run("x")).ok  # the earlier state is gone, as it said
        finally:
            await sandbox.aclose()

    asyncio.run(go())


def test_a_sync_conversation_restarts_in_the_new_environment_too(
    manager_factory: ManagerFactory,
) -> None:
    sandbox = PythonSandbox(NativeEngine(preload=(), pool_size=1), environments=manager_factory())
    tool = PythonTool(sandbox, info=INFO, installs=True)
    try:
        with tool.conversation_sync() as chat:
            assert chat.run_sync("x = 1\nx").ok
            first = chat.runner
            installed = run_sync(chat.call("install_packages", {"packages": ["tiny-dist"]}))
            assert installed.ok, installed.text
            assert first.runner.closed  # the old session ended with the install
            after = chat.run_sync("import tinymod\ntinymod.VALUE")
            assert after.ok and after.result is not None and after.result.result == 42
            assert not chat.run_sync("x").ok  # a new interpreter, in the new environment
            replaced = chat.runner
        # the session the install opened is the one closed at the end
        assert replaced.runner.closed
    finally:
        tool.close()


def test_langchain_gets_both_tools(manager_factory: ManagerFactory) -> None:
    from sandbox_tool.tool import langchain_tools

    tool = _tool(manager_factory)
    run, install = langchain_tools(tool)
    assert (run.name, install.name) == ("run_python", "install_packages")
    assert "tiny-dist" in install.description
    text = asyncio.run(install.ainvoke({"packages": ["tiny-dist"]}))
    assert str(text).startswith("Installed: tiny-dist 1.0") and tool.options.packages == (
        "tiny-dist",
    )
