"""What a batch is made of: the items that go in (:class:`BatchItem`) and the tagged
results that come out (:class:`BatchResult`).

>>> item = BatchItem(id="sum", code="result = sum(inputs)", inputs=[1, 2, 3])
>>> item.options_for(ExecutionOptions()).timeout
30.0
>>> BatchItem(code="1", options={"timeout": 5}).options_for(ExecutionOptions()).timeout
5.0

An item's error is part of its result, never an exception that ends the batch.
Results cross process and network boundaries (a Ray cluster) as JSON-ready dicts:
:meth:`BatchResult.to_wire` and :meth:`BatchResult.from_wire`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sandbox_tool.errors import SandboxError, UsageError, error_from_dict
from sandbox_tool.options import ExecutionOptions
from sandbox_tool.result import Artifact, ExecutionResult, error_json_dict

__all__ = ["BatchItem", "BatchResult", "ItemId", "RawItem", "coerce_item", "problems_text"]

#: An item's id: a string or an integer, as JSON gives it.
ItemId = str | int


class BatchItem(BaseModel):
    """One program of a batch: code, with optional inputs, files and option overrides."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: ItemId | None = None
    """Tags the item's result. ``None``: the item's position in the input (0, 1, ...).
    The CLI requires one per line (``--resume`` finds finished items by it)."""
    code: str
    """The Python to run, as for :meth:`~sandbox_tool.PythonSandbox.execute`."""
    inputs: Any = None
    """JSON value given to the code as the variable ``inputs``."""
    files: dict[str, Path] = Field(default_factory=dict)
    """Host files exposed read-only in the item's working directory (added to the
    options' ``files``). On a Ray cluster the paths are read on the worker's node."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Overrides of the batch's :class:`~sandbox_tool.ExecutionOptions` for this item
    (``{"timeout": 5, "memory_mb": 512}``); any field of it, checked as it is."""

    def options_for(self, defaults: ExecutionOptions) -> ExecutionOptions:
        """The batch's ``defaults`` with this item's overrides and files; a bad override
        is a :class:`~sandbox_tool.errors.UsageError` naming the field."""
        if not self.options and not self.files:
            return defaults
        fields = defaults.model_dump()
        fields.update(self.options)
        fields["files"] = {**defaults.files, **fields.get("files", {}), **self.files}
        try:
            return ExecutionOptions.model_validate(fields)
        except ValidationError as exc:
            raise UsageError(f"invalid options for item {self.id!r}: {problems_text(exc)}") from exc


#: What ``map`` accepts for an item: a :class:`BatchItem`, a dict of its fields, or code.
RawItem = BatchItem | dict[str, Any] | str


def problems_text(exc: ValidationError) -> str:
    """A pydantic error as one line: ``field: what is wrong; ...``."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'item'}: {e['msg']}" for e in exc.errors())


def coerce_item(raw: Any, position: int) -> BatchItem:
    """``raw`` as an item whose id is set (its ``position`` when it has none);
    :class:`~sandbox_tool.errors.UsageError` if it is not one."""
    if isinstance(raw, str):
        return BatchItem(id=position, code=raw)
    if isinstance(raw, BatchItem):
        item = raw
    elif isinstance(raw, dict):
        try:
            item = BatchItem.model_validate(raw)
        except ValidationError as exc:
            raise UsageError(f"invalid batch item: {problems_text(exc)}") from exc
    else:
        raise UsageError(
            f"a batch item is a BatchItem, a dict of its fields or a str of code, "
            f"not {type(raw).__name__}"
        )
    return item if item.id is not None else item.model_copy(update={"id": position})


@dataclass(frozen=True)
class BatchResult:
    """The outcome of one item, tagged with its id: exactly one of ``result`` and
    ``error`` is set."""

    id: ItemId
    """The item's id (its position when it had none)."""
    result: ExecutionResult | None = None
    """What the execution returned, when it completed."""
    error: SandboxError | None = None
    """Why it did not: the code's failure, a limit, a bad item (``UsageError``) or the
    engine's failure; it carries the output produced before it."""

    @property
    def ok(self) -> bool:
        """The code ran to completion."""
        return self.error is None

    @property
    def duration_ms(self) -> float:
        """Wall-clock time of the execution as the host saw it (0 for an item that
        never ran)."""
        if self.result is not None:
            return self.result.duration_ms
        return (self.error.duration_ms if self.error is not None else None) or 0.0

    @property
    def artifacts(self) -> list[Artifact]:
        """The figures and files the code produced, before a failure included."""
        if self.result is not None:
            return self.result.artifacts
        return self.error.artifacts if self.error is not None else []

    def to_json_dict(self, *, artifact_paths: dict[str, str] | None = None) -> dict[str, Any]:
        """The CLI's output line: ``id`` then the shape of ``sandbox-tool run --json``."""
        if self.result is not None:
            body = self.result.to_json_dict(artifact_paths=artifact_paths)
        else:
            body = error_json_dict(self.error, artifact_paths=artifact_paths)
        return {"id": self.id, **body}

    def to_wire(self) -> dict[str, Any]:
        """Everything, artifacts' bytes included (base64), as JSON-ready data."""
        if self.result is not None:
            return {"id": self.id, "result": self.result.model_dump(mode="json")}
        error = self.error
        assert error is not None
        return {
            "id": self.id,
            "error": error.to_dict(),
            "output": {
                "stdout": error.stdout,
                "stderr": error.stderr,
                "engine": error.engine,
                "duration_ms": error.duration_ms,
                "peak_memory_mb": error.peak_memory_mb,
                "artifacts": [a.model_dump(mode="json") for a in error.artifacts],
            },
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> BatchResult:
        """The result :meth:`to_wire` described."""
        if "result" in data:
            # JSON mode: bytes come back from their base64
            result = ExecutionResult.model_validate_json(json.dumps(data["result"]))
            return cls(data["id"], result=result)
        output = dict(data.get("output") or {})
        output["artifacts"] = [
            Artifact.model_validate_json(json.dumps(a)) for a in output.get("artifacts", [])
        ]
        return cls(data["id"], error=error_from_dict(data["error"], **output))
