"""How an agent task's answer is judged: each checker looks at the final answer text
and at what the tool calls produced (plots, files).

- ``number``: a number in the answer within ``tolerance`` of the expected one;
- ``text``: a string in the answer (case-insensitive);
- ``texts``: a set of strings, all of them (``match: all``) or one (``match: any``);
- ``plot``: at least ``min`` plots produced by the tool calls;
- ``file``: a file the code wrote (``name``) whose CSV header has ``columns``.

Expected values are literal (``value``) or a key of ``evals/data/answers.json``
(``key``), which the data generator computes from the rows it writes.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sandbox_tool import Artifact

__all__ = ["Checker", "Evidence", "answers", "check_all", "numbers_in"]


@functools.cache
def answers(path: Path | None = None) -> dict[str, Any]:
    """The reference answers the data generator wrote."""
    from evals.make_data import DATA_DIR

    loaded: dict[str, Any] = json.loads((path or DATA_DIR / "answers.json").read_text())
    return loaded


class Evidence(BaseModel):
    """What a task's run left to judge."""

    answer: str | None
    artifacts: list[Artifact] = Field(default_factory=list)


class _Expected(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: Any = None
    key: str | None = None

    @model_validator(mode="after")
    def _one(self) -> _Expected:
        if (self.value is None) == (self.key is None):
            raise ValueError("give either value or key (a key of answers.json)")
        return self

    def expected(self) -> Any:
        if self.key is None:
            return self.value
        table = answers()
        if self.key not in table:
            raise KeyError(f"{self.key!r} is not in answers.json: run python -m evals data")
        return table[self.key]


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?|-?\.\d+")


def numbers_in(text: str) -> list[float]:
    """Every number written in ``text`` (thousands separators allowed).

    >>> numbers_in("West: 19,176.15 (of 53427.04), 2024-06")
    [19176.15, 53427.04, 2024.0, -6.0]
    """
    found = []
    for match in _NUMBER.findall(text):
        try:
            found.append(float(match.replace(",", "")))
        except ValueError:
            continue
    return found


class NumberCheck(_Expected):
    kind: Literal["number"]
    tolerance: float = 0.0

    def judge(self, ev: Evidence) -> str | None:
        want = float(self.expected())
        got = numbers_in(ev.answer or "")
        if any(abs(x - want) <= self.tolerance + 1e-9 for x in got):
            return None
        shown = got[:6] or "no number"
        return f"expected {want:g} (within {self.tolerance:g}); the answer has {shown}"


class TextCheck(_Expected):
    kind: Literal["text"]

    def judge(self, ev: Evidence) -> str | None:
        want = str(self.expected())
        if want.lower() in (ev.answer or "").lower():
            return None
        return f"expected {want!r} in the answer"


class TextsCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["texts"]
    values: list[str] = Field(min_length=1)
    match: Literal["all", "any"] = "all"

    def judge(self, ev: Evidence) -> str | None:
        text = (ev.answer or "").lower()
        present = [v for v in self.values if v.lower() in text]
        if (len(present) == len(self.values)) if self.match == "all" else bool(present):
            return None
        missing = [v for v in self.values if v not in present]
        return f"expected {self.match} of {self.values} in the answer; missing {missing}"


class PlotCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["plot"]
    min: int = 1

    def judge(self, ev: Evidence) -> str | None:
        images = [a for a in ev.artifacts if a.mime_type.startswith("image/")]
        if len(images) >= self.min:
            return None
        return f"expected at least {self.min} plot(s); the tool calls made {len(images)}"


class FileCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["file"]
    name: str
    columns: list[str] = Field(default_factory=list)

    def judge(self, ev: Evidence) -> str | None:
        files = [a for a in ev.artifacts if a.name == self.name]
        if not files:
            return f"expected a file {self.name}; written: {[a.name for a in ev.artifacts]}"
        header = next(csv.reader(io.StringIO(files[-1].data.decode("utf-8", "replace"))), [])
        missing = [c for c in self.columns if c not in header]
        return f"{self.name} lacks columns {missing} (has {header})" if missing else None


Checker = Annotated[
    NumberCheck | TextCheck | TextsCheck | PlotCheck | FileCheck, Field(discriminator="kind")
]


def check_all(checkers: Sequence[Checker], ev: Evidence) -> list[str]:
    """Why the run fails its checks (empty: it passes)."""
    if ev.answer is None and any(c.kind in ("number", "text", "texts") for c in checkers):
        return ["no answer within the turn limit"]
    return [why for c in checkers if (why := c.judge(ev)) is not None]
