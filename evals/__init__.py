"""The offline eval harness: how well the tool serves a model, measured reproducibly.

Two suites, one report format:

- the **snippet suite** (:mod:`evals.snippet_suite`): code of the kinds models write,
  run through :class:`~sandbox_tool.tool.PythonTool` on a real engine, each checked for
  its outcome class and for the facts its model-facing message must contain;
- the **agent suite** (:mod:`evals.agent_suite`): data-analysis tasks run by the loops
  of ``agents/``, the model's side replayed from cassettes of a real model.

``python -m evals --help`` lists the commands; ``docs/evals.md`` describes the formats.
"""
