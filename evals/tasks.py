"""Suite 2's task definitions: one YAML file per task under ``evals/tasks/``.

    id: groupby-top-region
    category: groupby
    api: chat                      # chat | responses | langchain
    question: Which region has the highest total revenue?
    check:                         # every checker must pass (evals.checkers)
      - {kind: text, key: sales_top_region_revenue}

Every task sees every data file of ``evals/data`` (the question names the one to
use). ``turns`` (a list of questions) instead of ``question`` makes a conversation: with
``conversation: true`` the sandbox keeps its state from one turn to the next.
"""

from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path
from typing import Any, Literal

import yaml  # type: ignore[import-untyped]  # PyYAML ships no stubs
from pydantic import BaseModel, ConfigDict, Field, model_validator

from evals.checkers import Checker

__all__ = ["TASKS_DIR", "Api", "Task", "load_tasks"]

TASKS_DIR = Path(__file__).resolve().parent / "tasks"

Api = Literal["chat", "responses", "langchain"]


class Task(BaseModel):
    """One data-analysis task for an agent, with how its answer is checked."""

    model_config = ConfigDict(extra="forbid")

    id: str
    category: str
    api: Api
    question: str | None = None
    turns: list[str] = Field(default_factory=list)
    """Several user turns, asked one after the other (the last one's answer is checked)."""
    conversation: bool = False
    """Keep the sandbox's state across the calls and turns (a session)."""
    max_turns: int = 4
    """Model calls per user turn: room for a failed call, a retry, one more and the
    answer (the recorded model runs at a few tokens a second on a shared machine)."""
    options: dict[str, Any] = Field(default_factory=dict)
    """``ExecutionOptions`` fields over the harness's defaults."""
    note: str = ""
    """What the task tests, for the person reading it."""
    check: list[Checker] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_question(self) -> Task:
        if (self.question is None) == (not self.turns):
            raise ValueError(f"task {self.id}: give either question or turns")
        return self

    @property
    def questions(self) -> list[str]:
        return [self.question] if self.question is not None else list(self.turns)


def load_tasks(directory: Path = TASKS_DIR, pattern: str = "*") -> list[Task]:
    """The tasks whose id matches ``pattern`` (fnmatch), sorted by id."""
    tasks = []
    for path in sorted(directory.glob("*.yaml")):
        task = Task.model_validate(yaml.safe_load(path.read_text()))
        if task.id != path.stem:
            raise ValueError(f"{path.name}: the id {task.id!r} must be the file's name")
        if fnmatch(task.id, pattern):
            tasks.append(task)
    return tasks
