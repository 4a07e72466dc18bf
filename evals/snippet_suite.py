"""Suite 1: snippets of the code models write, run through the tool on a real engine.

Each file under ``evals/snippets/`` is one category (see ``docs/evals.md``)::

    category: bugs
    description: mistakes models make
    options: {timeout: 5}          # ExecutionOptions fields for every snippet of the file
    snippets:
      - id: keyerror-column
        files: [sales.csv]         # data files (evals/data) the code sees
        code: |
          import pandas as pd
          pd.read_csv("sales.csv")["price"].mean()
        expect: ExecutionError:KeyError
        facts: ["At line 2", "unit_price"]

A snippet's outcome class (:mod:`evals.outcome`) must equal ``expect`` (or its
``engines`` entry for the engine in use): a mismatch is a regression. Each fact is a
substring the model-facing message must contain, each ``absent`` one it must not; an
engine whose ``engines`` entry expects another outcome is held to the ``absent`` ones only.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any, Literal

import yaml  # type: ignore[import-untyped]  # PyYAML ships no stubs (types-PyYAML not a dependency)
from pydantic import BaseModel, ConfigDict, Field

from evals.make_data import DATA_DIR
from evals.outcome import outcome_class, outcome_matches
from evals.progress import Progress
from sandbox_tool import ExecutionOptions, ImportPolicy, PythonSandbox
from sandbox_tool.tool import InterpreterInfo, PythonTool

__all__ = [
    "SNIPPETS_DIR",
    "Snippet",
    "SnippetFile",
    "SnippetResult",
    "load_snippets",
    "run_snippets",
    "summarize_snippets",
]

SNIPPETS_DIR = Path(__file__).resolve().parent / "snippets"

PolicyName = Literal["default", "data_science", "allow_all"]


def import_policy(name: PolicyName) -> ImportPolicy:
    """The import policy a snippet file or task names."""
    if name == "data_science":
        return ImportPolicy.data_science_whitelist()
    if name == "allow_all":
        return ImportPolicy.allow_all()
    return ImportPolicy.default()


class Snippet(BaseModel):
    """One snippet and what it must give."""

    model_config = ConfigDict(extra="forbid")

    id: str
    code: str
    expect: str
    """The outcome class: ``ok``, ``Timeout``, ``ExecutionError:KeyError``..."""
    facts: list[str] = Field(default_factory=list)
    """Substrings the model-facing message must contain."""
    absent: list[str] = Field(default_factory=list)
    """Substrings it must not contain (a host secret, a wrong claim)."""
    options: dict[str, Any] = Field(default_factory=dict)
    """``ExecutionOptions`` fields for this snippet (over the file's)."""
    files: list[str] = Field(default_factory=list)
    """Data files from ``evals/data`` exposed to the code under their own names."""
    policy: PolicyName | None = None
    """The import policy, when not the file's."""
    engines: dict[str, str] = Field(default_factory=dict)
    """A different expected outcome class on a named engine (``{native: ok}``)."""
    note: str = ""
    """Why the snippet is here, or why its outcome is what it is."""

    def expected_on(self, engine: str) -> str:
        return self.engines.get(engine, self.expect)


class SnippetFile(BaseModel):
    """One category's file."""

    model_config = ConfigDict(extra="forbid")

    category: str
    description: str = ""
    policy: PolicyName = "data_science"
    options: dict[str, Any] = Field(default_factory=dict)
    snippets: list[Snippet]


class SnippetResult(BaseModel):
    """What one snippet gave."""

    id: str
    category: str
    expected: str
    actual: str
    outcome_correct: bool
    facts_total: int
    facts_missing: list[str]
    """Facts not in the message, and ``absent`` ones that were in it (prefixed ``not:``)."""
    seconds: float
    message: str

    @property
    def facts_found(self) -> int:
        return self.facts_total - len(self.facts_missing)


def load_snippets(directory: Path = SNIPPETS_DIR, pattern: str = "*") -> list[SnippetFile]:
    """Every category file in ``directory`` (``*.yaml``), snippet ids unique across them;
    ``pattern`` keeps only the snippets whose ``category/id`` matches (fnmatch)."""
    from fnmatch import fnmatch

    files, seen = [], set()
    for path in sorted(directory.glob("*.yaml")):
        loaded = SnippetFile.model_validate(yaml.safe_load(path.read_text()))
        for snippet in loaded.snippets:
            if snippet.id in seen:
                raise ValueError(f"{path.name}: snippet id {snippet.id!r} is used twice")
            seen.add(snippet.id)
        kept = [s for s in loaded.snippets if fnmatch(f"{loaded.category}/{s.id}", pattern)]
        if kept:
            files.append(loaded.model_copy(update={"snippets": kept}))
    return files


def snippet_options(
    file: SnippetFile, snippet: Snippet, data_dir: Path = DATA_DIR
) -> ExecutionOptions:
    fields = {**file.options, **snippet.options}
    files = {name: data_dir / name for name in snippet.files}
    policy = import_policy(snippet.policy or file.policy)
    return ExecutionOptions(import_policy=policy, files=files, **fields)


def judge(
    file: SnippetFile, snippet: Snippet, engine: str, actual: str, message: str, seconds: float
) -> SnippetResult:
    """The result of one snippet from its outcome class and message."""
    expected = snippet.expected_on(engine)
    # the facts describe the message of ``expect``: an engine whose outcome differs by
    # design (its ``engines`` entry) is judged on the outcome and the absent facts only
    facts = snippet.facts if expected == snippet.expect else []
    missing = [f for f in facts if f not in message]
    missing += [f"not:{f}" for f in snippet.absent if f in message]
    return SnippetResult(
        id=snippet.id,
        category=file.category,
        expected=expected,
        actual=actual,
        outcome_correct=outcome_matches(expected, actual),
        facts_total=len(facts) + len(snippet.absent),
        facts_missing=missing,
        seconds=round(seconds, 3),
        message=message,
    )


async def run_snippets(
    files: list[SnippetFile], *, engine: str = "auto", progress: Progress | None = None
) -> tuple[str, list[SnippetResult]]:
    """Run every snippet through :class:`PythonTool` on ``engine``, one at a time.

    Returns the engine's name and the results, in file order. One sandbox serves all
    (its warm pool is started once); it is closed at the end.
    """
    sandbox = PythonSandbox(engine)
    info: InterpreterInfo | None = None
    results = []
    try:
        name = sandbox.engine_name
        for file in files:
            for snippet in file.snippets:
                tool = PythonTool(sandbox, options=snippet_options(file, snippet), info=info)
                info = tool.info
                started = time.perf_counter()
                outcome = await tool.run(snippet.code)
                seconds = time.perf_counter() - started
                result = judge(file, snippet, name, outcome_class(outcome), outcome.text, seconds)
                results.append(result)
                if progress:
                    status = "ok" if result.outcome_correct else f"REGRESSION ({result.actual})"
                    progress.step(f"{file.category}/{snippet.id}", status)
    finally:
        await sandbox.aclose()
    return name, results


def _group_summary(results: list[SnippetResult]) -> dict[str, Any]:
    facts = sum(r.facts_total for r in results)
    return {
        "snippets": len(results),
        "outcome_accuracy": round(sum(r.outcome_correct for r in results) / len(results), 4),
        "fact_accuracy": round(sum(r.facts_found for r in results) / facts, 4) if facts else 1.0,
        "median_seconds": round(statistics.median(r.seconds for r in results), 3),
    }


def summarize_snippets(results: list[SnippetResult]) -> dict[str, Any]:
    """Outcome-class accuracy, message-fact accuracy and median time, per category and
    overall, and the regressions (snippets whose outcome class was wrong)."""
    categories: dict[str, list[SnippetResult]] = {}
    for r in results:
        categories.setdefault(r.category, []).append(r)
    return {
        "overall": _group_summary(results) if results else {},
        "categories": {c: _group_summary(rs) for c, rs in categories.items()},
        "regressions": [f"{r.category}/{r.id}" for r in results if not r.outcome_correct],
    }


def run_snippets_sync(
    files: list[SnippetFile], *, engine: str = "auto", progress: Progress | None = None
) -> tuple[str, list[SnippetResult]]:
    return asyncio.run(run_snippets(files, engine=engine, progress=progress))
