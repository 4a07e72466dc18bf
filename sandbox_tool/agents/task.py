"""``run_task``: one call that runs an agent on a question and returns its record.

For harnesses (evals) and scripts: it picks the loop of ``api``, makes the model client
from ``base_url`` unless given one, makes a sandbox that sees ``files`` unless given a
``tool``, and closes what it made.

>>> run = await run_task("Which region has the highest average price?",
...                      [Path("orders.csv")], api="responses",
...                      base_url="http://127.0.0.1:8080/v1", model="qwen")  # doctest: +SKIP
>>> run.answer, run.turns, [c.outcome for c in run.calls]                   # doctest: +SKIP
('North', 3, ['ExecutionError', 'ok'])
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Literal

from sandbox_tool.agents.clients import langchain_model, openai_client
from sandbox_tool.agents.loop import ToolChoicePolicy, run_turns
from sandbox_tool.agents.prompt import system_prompt
from sandbox_tool.agents.run import AgentRun
from sandbox_tool.agents.sandboxes import Files, build_tool, close_tool, file_map
from sandbox_tool.engines import Engine
from sandbox_tool.errors import UsageError
from sandbox_tool.tool import PythonTool

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from openai import AsyncOpenAI

__all__ = ["APIS", "Api", "run_task"]

Api = Literal["chat", "responses", "langchain"]
"""``chat``: OpenAI Chat Completions; ``responses``: the OpenAI Responses API;
``langchain``: any LangChain chat model (``ChatOpenAI`` when none is given)."""
APIS: tuple[Api, ...] = ("chat", "responses", "langchain")


async def run_task(
    question: str,
    files: Files = (),
    *,
    model: str | None = None,
    api: Api = "chat",
    client: AsyncOpenAI | BaseChatModel | None = None,
    base_url: str | None = None,
    tool: PythonTool | None = None,
    engine: Engine | str = "auto",
    images: bool = True,
    max_turns: int = 6,
    policy: ToolChoicePolicy = "auto",
    temperature: float | None = 0,
    instructions: str | None = None,
) -> AgentRun:
    """Ask ``question``, running the model's code in a sandbox, until it answers or
    ``max_turns`` model calls were made.

    ``files``: host files the code may read (paths, seen under their own names, or
    name -> path); a sandbox is made for the run (on ``engine``, plots sent as images
    unless ``images=False``) and closed after. Or pass ``tool`` (e.g.
    ``PythonTool(sandbox)``) to run on a sandbox of your own, which stays open.
    ``client``: an ``openai.AsyncOpenAI`` for ``chat`` and ``responses``, a LangChain
    chat model for ``langchain``; without one a client for ``base_url`` (or OpenAI) is
    made, with the key from ``OPENAI_API_KEY``. ``model`` names the model (not needed
    with a LangChain ``client``, which has its own). ``instructions`` default to a
    data-analysis prompt that names the files. ``policy`` and the turn rules are
    :mod:`sandbox_tool.agents.loop`'s. Errors of the model's API (connection, authentication)
    propagate; a configuration that cannot work raises ``UsageError`` naming the fix.
    """
    if api not in APIS:
        raise UsageError(f"unknown api {api!r}: use one of {', '.join(APIS)}")
    if tool is not None and files:
        raise UsageError(
            "pass files= or tool=, not both: a tool's sandbox sees the files of its own "
            "options (ExecutionOptions.files)"
        )
    if client is not None and base_url is not None:
        raise UsageError("pass client= or base_url=, not both: a client has its own base URL")
    if instructions is None:
        instructions = system_prompt(list(file_map(files) if tool is None else tool.options.files))
    # the model's side first: a missing package or key is said before a sandbox starts
    if api == "langchain":
        from sandbox_tool.agents.langchain_loop import LangChainConversation

        chat_model = langchain_model(client, base_url, model, temperature)
        async with _tool_for(tool, files, engine=engine, images=images) as run_tool:
            conversation = LangChainConversation(
                chat_model, run_tool, question, instructions=instructions, temperature=temperature
            )
            return await run_turns(conversation, max_turns=max_turns, policy=policy)

    from sandbox_tool.agents.openai_loop import openai_conversation

    if model is None:
        raise UsageError(f"api={api!r} needs model= (e.g. 'gpt-4o-mini')")
    async with (
        openai_client(client, base_url) as sdk_client,
        _tool_for(tool, files, engine=engine, images=images) as run_tool,
    ):
        openai_chat = openai_conversation(
            api, sdk_client, run_tool, question, instructions=instructions, model=model,
            temperature=temperature,
        )  # fmt: skip
        return await run_turns(openai_chat, max_turns=max_turns, policy=policy)


@contextlib.asynccontextmanager
async def _tool_for(
    tool: PythonTool | None, files: Files, *, engine: Engine | str, images: bool
) -> AsyncIterator[PythonTool]:
    """The caller's tool as it is, or a tool on a new sandbox, closed after."""
    if tool is not None:
        yield tool
        return
    made = build_tool(files, engine=engine, images=images)
    try:
        yield made
    finally:
        await close_tool(made)
