"""Batches: many programs through one sandbox (or a Ray cluster), results as they complete.

>>> from sandbox_tool import PythonSandbox
>>> from sandbox_tool.batch import BatchItem
>>> async with PythonSandbox().map([BatchItem(id="a", code="result = 6 * 7")]) as results:
...     async for res in results:                                 # doctest: +SKIP
...         print(res.id, res.result.result)
a 42

:mod:`sandbox_tool.batch.humaneval` checks HumanEval-style samples the way the
reference harness does; ``sandbox-tool batch`` runs JSONL files from the command line.
"""

from sandbox_tool.batch.items import BatchItem, BatchResult, ItemId
from sandbox_tool.batch.mapping import BatchStream, ItemExecutor

__all__ = ["BatchItem", "BatchResult", "BatchStream", "ItemExecutor", "ItemId"]
