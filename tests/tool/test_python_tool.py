"""PythonTool on the fake engine: descriptions, messages, developer errors, sessions."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from sandbox_tool import (
    Artifact,
    EngineError,
    EngineUnavailable,
    ExecutionOptions,
    ExecutionResult,
    ImportPolicy,
    PythonSandbox,
    Timeout,
    UsageError,
)
from sandbox_tool.engines.fake import FakeEngine
from sandbox_tool.tool import (
    ArgumentsError,
    InterpreterInfo,
    PythonTool,
    clip_middle,
    parse_arguments,
)

from .conftest import INFO, PNG


def ok(**fields: Any) -> Any:
    return lambda code, inputs, options: ExecutionResult(**fields)


def raising(error: Exception) -> Any:
    def handler(code: str, inputs: Any, options: ExecutionOptions) -> ExecutionResult:
        raise error

    return handler


def test_description_is_generated_from_the_configuration(fake_tool: Any, tmp_path: Path) -> None:
    data = tmp_path / "q3.csv"
    data.write_text("a\n1\n")
    tool = fake_tool(
        ok(),
        timeout=12,
        memory_mb=700,
        files={"sales.csv": data},
        import_policy=ImportPolicy.whitelist({"pandas", "numpy", "math", "json"}),
    )
    text = tool.spec.description
    assert "Python 3.11.7" in text
    assert "'sales.csv'" in text and "working directory" in text
    assert "12 s wall clock" in text and "700 MB memory" in text and "no network" in text
    assert "numpy 2.0.0, pandas 2.2.0" in text
    assert "requests" not in text and "matplotlib" not in text  # installed but not allowed
    assert "from the standard library only: json, math" in text
    assert "`result`" in text and "captured" in text
    assert "nothing persists between calls" in text
    assert tool.spec.name == "run_python"


HOST = InterpreterInfo(
    python_version="3.11.7",
    libraries={
        **INFO.libraries,
        "scipy": "1.14.0",
        "langchain_core": "1.8.3",
        "langsmith": "0.15.1",
        "iniconfig": "2.3.1",
        "pytest": "9.2.0",
        "httpx": "0.29.0",
    },
    stdlib=INFO.stdlib,
)


@pytest.mark.parametrize(
    ("policy", "says", "leaves_out"),
    [
        pytest.param(
            ImportPolicy.default(),
            ["Libraries you can import: matplotlib 3.9.0, numpy 2.0.0, pandas 2.2.0, "
             "scipy 1.14.0.", "Other installed modules may be imported too, except those "
             "that start processes, reach the network", "subprocess"],
            ["langchain_core", "langsmith", "iniconfig", "pytest", "httpx", "_socket"],
            id="default-names-the-work-libraries-not-the-host-tooling",
        ),
        pytest.param(
            ImportPolicy.blacklist({"requests", "os", "not_installed_here"}),
            ["Other installed modules may be imported too, except: os, requests."],
            ["not_installed_here", "langchain_core"],
            id="blacklist-names-the-refused-modules-that-exist",
        ),
        pytest.param(
            ImportPolicy.whitelist({"numpy", "langchain_core", "math"}),
            ["Libraries you can import: langchain_core 1.8.3, numpy 2.0.0.",
             "Only the libraries above may be imported, and from the standard library only: "
             "math."],
            ["pandas", "scipy", "pytest"],
            id="allow-list-names-exactly-what-it-allows",
        ),
    ],
)  # fmt: skip
def test_description_lists_what_the_code_can_usefully_import(
    policy: ImportPolicy, says: list[str], leaves_out: list[str]
) -> None:
    sandbox = PythonSandbox(engine=FakeEngine(ok()), options=ExecutionOptions(import_policy=policy))
    text = PythonTool(sandbox, info=HOST).spec.description
    assert "There are no input files." in text
    for fragment in says:
        assert fragment in text, text
    for name in leaves_out:
        assert name not in text, text
    assert len(text) < 1200, "the description is sent every turn: keep it short"


def test_success_message_lists_each_attachment(fake_tool: Any) -> None:
    fig = Artifact(name="figure-1.png", mime_type="image/png", data=PNG, kind="figure")
    csv = Artifact(name="out.csv", mime_type="text/csv", data=b"a,b\n" * 600, kind="file")
    tool = fake_tool(ok(result=3, result_repr="3", result_type="int", artifacts=[fig, csv]))
    outcome = tool.run_sync("plot()")
    assert outcome.ok
    assert "- figure-1.png (image/png, 66 bytes): a plot, shown to you as an image" in outcome.text
    assert "- out.csv (text/csv, 2 KB): a file it wrote" in outcome.text
    assert outcome.images == [fig]
    assert outcome.image_data_urls()[0].startswith("data:image/png;base64,iVBOR")


def test_long_result_table_keeps_head_and_tail(fake_tool: Any) -> None:
    table = "\n".join(f"{i:>4}  row{i}" for i in range(200))
    tool = fake_tool(ok(result_repr=table, result_type="pandas.DataFrame", result={}))
    text = tool.run_sync("df").text
    assert "   0  row0" in text and " 199  row199" in text
    assert "[... 176 lines cut ...]" in text
    assert " 100  row100" not in text


def test_clip_middle_marks_the_cut() -> None:
    assert clip_middle("short", 10) == "short"
    clipped = clip_middle("a" * 50 + "b" * 50, 20)
    assert clipped == "a" * 10 + "\n[... 80 characters cut ...]\n" + "b" * 10


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(EngineUnavailable("no engine here"), id="engine-unavailable"),
        pytest.param(UsageError("bad options"), id="usage-error"),
    ],
)
def test_developer_errors_are_raised_not_shown_to_the_model(
    fake_tool: Any, error: Exception
) -> None:
    with pytest.raises(type(error)):
        fake_tool(raising(error)).run_sync("1")


def test_an_engine_error_reaches_the_model_as_a_message(fake_tool: Any) -> None:
    # a forged or broken answer (issue 14): the agent loop must not die on it
    error = EngineError("the sandbox's channel broke its protocol", stdout="before\n")
    outcome = fake_tool(raising(error)).run_sync("1")
    assert not outcome.ok
    assert outcome.error == {"type": "EngineError", "message": error.message}
    assert "could not complete" in outcome.text and "broke its protocol" in outcome.text
    assert "before" in outcome.text  # what it printed first is kept


def test_code_failures_become_outcomes_with_the_error(fake_tool: Any) -> None:
    fig = Artifact(name="figure-1.png", mime_type="image/png", data=PNG, kind="figure")
    error = Timeout("slow", limit=5, stdout="step 1\n", artifacts=[fig])
    outcome = fake_tool(raising(error)).run_sync("loop()")
    assert not outcome.ok
    assert outcome.error == {"type": "Timeout", "message": "slow", "limit": 5}
    assert "Output printed before it was stopped:\nstep 1" in outcome.text
    assert "- figure-1.png" in outcome.text and outcome.images == [fig]


@pytest.mark.parametrize(
    ("arguments", "code"),
    [
        pytest.param('{"code": "print(1)"}', "print(1)", id="json-text"),
        pytest.param({"code": "print(1)"}, "print(1)", id="dict"),
        pytest.param({"code": "```python\nprint(1)\n```"}, "print(1)", id="markdown-fence"),
        pytest.param({"code": "```\nx = 1\ny = 2\n```\n"}, "x = 1\ny = 2", id="bare-fence"),
        pytest.param('{"code": "x = 1\ny = 2"}', "x = 1\ny = 2", id="raw-line-break-in-json"),
    ],
)
def test_parse_arguments(arguments: Any, code: str) -> None:
    assert parse_arguments(arguments) == code


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        pytest.param('{"code": "x', "not valid JSON", id="broken-json"),
        pytest.param("[1]", "must be a JSON object", id="not-an-object"),
        pytest.param({"source": "1"}, 'a "code" string is required (got: source)', id="wrong-key"),
        pytest.param({"code": "  "}, 'a "code" string is required', id="empty-code"),
    ],
)
def test_unusable_arguments_get_a_message(fake_tool: Any, arguments: Any, problem: str) -> None:
    with pytest.raises(ArgumentsError) as raised:
        parse_arguments(arguments)
    assert problem in str(raised.value)
    tool = fake_tool(ok())
    outcome = asyncio.run(tool.run_arguments(arguments))
    assert not outcome.ok
    assert problem in outcome.text
    assert 'Call run_python with {"code": "<your Python source>"}' in outcome.text
    assert tool.runner.engine.calls == []  # type: ignore[attr-defined]


def test_tool_uses_the_sandbox_default_options(fake_tool: Any) -> None:
    tool = fake_tool(ok(), timeout=3)
    tool.run_sync("1")
    ((_, _, options),) = tool.runner.engine.calls  # type: ignore[attr-defined]
    assert options.timeout == 3


class _Session:
    keeps_state = True

    def __init__(self, engine: FakeEngine) -> None:
        self.default_options = ExecutionOptions()
        self.engine = engine
        self.closed = False

    async def execute(self, code: str, inputs: Any = None, options: Any = None) -> Any:
        return await self.engine.execute(code, inputs, options or self.default_options)

    async def aclose(self) -> None:
        self.closed = True


class _SandboxWithSessions(PythonSandbox):
    def __init__(self, engine: FakeEngine) -> None:
        super().__init__(engine=engine)
        self.sessions: list[_Session] = []

    async def open_session(self, options: Any = None) -> _Session:
        self.sessions.append(_Session(self.engine))  # type: ignore[arg-type]
        return self.sessions[-1]


def test_conversation_without_sessions_is_single_executions(fake_tool: Any) -> None:
    tool = fake_tool(ok())

    async def go() -> PythonTool:
        async with tool.conversation() as conv:
            return conv

    conv = asyncio.run(go())
    assert conv is tool and not conv.keeps_state


def test_conversation_uses_a_session_where_the_sandbox_has_them() -> None:
    sandbox = _SandboxWithSessions(FakeEngine(ok(result=1, result_repr="1", result_type="int")))
    tool = PythonTool(sandbox, info=INFO)

    async def go() -> tuple[PythonTool, str]:
        async with tool.conversation() as conv:
            return conv, (await conv.run("1")).text

    conv, text = asyncio.run(go())
    assert conv.keeps_state and "persist between calls" in conv.spec.description
    assert "Result (int):\n1" in text
    assert sandbox.sessions[0].closed
