"""Complete agent loops around the ``run_python`` tool, runnable from the command line.

- :mod:`agents.openai_agent`: the OpenAI SDK, Chat Completions or the Responses API.
- :mod:`agents.langchain_agent`: LangChain, any chat model with ``bind_tools``.
- :mod:`agents.record_cassettes`: re-records the test cassettes from a local model.
"""
