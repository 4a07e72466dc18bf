"""Complete agent loops around the ``run_python`` tool, runnable from the command line.

- :func:`run_task` (:mod:`agents.task`): one call that runs a loop on a question and
  returns its :class:`AgentRun` (:mod:`agents.run`: the answer, the turns, a
  :class:`ToolCall` per call), for harnesses and scripts.
- :mod:`agents.loop`: the turn loop every API shares; :mod:`agents.openai_agent` (Chat
  Completions, the Responses API) and :mod:`agents.langchain_agent` (any LangChain chat
  model with ``bind_tools``) adapt it to their API and have a command line
  (:mod:`agents.cli`).
- :mod:`agents.record_cassettes`: re-records the test cassettes from a local model.
"""

from agents.run import AgentRun, ToolCall
from agents.task import run_task

__all__ = ["AgentRun", "ToolCall", "run_task"]
