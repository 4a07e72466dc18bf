"""Complete agent loops around the ``run_python`` tool, for harnesses and scripts.

- :func:`run_task` (:mod:`.task`): one call that runs a loop on a question and returns
  its :class:`AgentRun` (:mod:`.run`: the answer, the turns, a :class:`ToolCall` per
  call). The command line over it is ``sandbox-tool agent``.
- :mod:`.loop`: the turn loop every API shares; :mod:`.openai_loop` (Chat Completions,
  the Responses API, ``pip install 'sandbox-tool[openai]'``) and :mod:`.langchain_loop`
  (any LangChain chat model with ``bind_tools``, ``pip install 'sandbox-tool[langchain]'``)
  adapt it to their API. Neither SDK is imported until a loop runs.

>>> from sandbox_tool.agents import run_task
>>> run = await run_task("Which region sold most?", [Path("sales.csv")], api="chat",
...                      base_url="http://127.0.0.1:8080/v1", model="qwen")  # doctest: +SKIP
"""

from sandbox_tool.agents.run import AgentRun, ToolCall
from sandbox_tool.agents.task import APIS, Api, run_task

__all__ = ["APIS", "AgentRun", "Api", "ToolCall", "run_task"]
