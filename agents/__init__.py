"""The repository's runnable agents and the tools that record their traffic.

The loops themselves ship in the package, as :mod:`sandbox_tool.agents` (``from
sandbox_tool.agents import run_task``; on the command line ``sandbox-tool agent``); this
folder is not installed, so its name never shadows another ``agents`` package (the
``openai-agents`` SDK's) outside the repository.

- :mod:`agents.openai_agent`, :mod:`agents.langchain_agent`: ``python -m`` entry points
  that run ``sandbox-tool agent`` with their API.
- :mod:`agents.record_cassettes`: re-records ``tests/agents``' cassettes from a local
  model; :mod:`agents.responses_shim`: a Responses API over a Chat Completions server.
"""
