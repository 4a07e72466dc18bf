"""A batch run from files to a file: what ``sandbox-tool batch`` does once its flags are
read. The items stream from the input through a sandbox (or a Ray cluster) to the
output, one complete line per result as it completes, with progress on stderr; a
SIGINT or SIGTERM stops the items still running, leaves only complete lines, and the
run can be resumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import quote

from sandbox_tool.batch.humaneval import Problem, Sample, check_item, sample_id, verdict
from sandbox_tool.batch.items import BatchItem, BatchResult
from sandbox_tool.batch.jsonl import OutputFile
from sandbox_tool.batch.progress import Progress
from sandbox_tool.result import write_artifacts

__all__ = [
    "EvalLines",
    "Interrupted",
    "ResultStream",
    "artifact_dir_name",
    "eval_counts",
    "plain_line",
    "run_job",
    "stop_on_signals",
]


class ResultStream(Protocol):
    """What ``PythonSandbox.map`` and ``RayExecutor.map`` return."""

    def __aiter__(self) -> AsyncIterator[BatchResult]: ...

    async def __aenter__(self) -> Any: ...

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


#: Starts the batch over the given items.
OpenResults = Callable[[Iterable[BatchItem]], ResultStream]


@dataclass
class Interrupted:
    """Which signal stopped the run (None: it was not)."""

    signal: signal.Signals | None = None


@contextlib.contextmanager
def stop_on_signals(flag: Interrupted) -> Iterator[None]:
    """SIGINT and SIGTERM cancel the current task (the run), recording which came."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    caught = (signal.SIGINT, signal.SIGTERM)

    def stop(sig: signal.Signals) -> None:
        if flag.signal is None:
            flag.signal = sig
            task.cancel()

    for sig in caught:
        loop.add_signal_handler(sig, stop, sig)
    try:
        yield
    finally:
        for sig in caught:
            loop.remove_signal_handler(sig)


async def run_job(
    items: Iterable[BatchItem],
    open_results: OpenResults,
    out: OutputFile,
    line_of: Callable[[BatchResult], dict[str, Any]],
    progress: Progress,
    passed: Callable[[BatchResult], bool] = lambda res: res.ok,
) -> None:
    """Run ``items`` and append each result's line to ``out`` as it completes.
    Cancelled (a signal), it stops the items still running and returns after them."""
    async with open_results(items) as results:
        async for res in results:
            out.write(line_of(res))
            progress.update(ok=passed(res))


def artifact_dir_name(item_id: Any) -> str:
    """A directory name for an item's artifacts that no two ids share and that stays
    inside the artifacts directory (``HumanEval/0`` -> ``HumanEval%2F0``)."""
    name = quote(str(item_id), safe="-_.")
    return name.replace(".", "%2E") if set(name) == {"."} else name


def plain_line(artifacts: Path | None) -> Callable[[BatchResult], dict[str, Any]]:
    """The output line of an item: ``id``, ``ok``, ``result``, ``error``, ``stdout``,
    ``stderr``, ``duration_ms``... with its artifacts written under ``artifacts/<id>/``."""

    def line(res: BatchResult) -> dict[str, Any]:
        paths: dict[str, str] | None = None
        problem = None
        if artifacts is not None and res.artifacts:
            try:
                written = write_artifacts(artifacts / artifact_dir_name(res.id), res.artifacts)
                paths = {name: str(path) for name, path in written.items()}
            except (OSError, ValueError) as exc:
                problem = f"the artifacts could not be written: {exc}"
        data = res.to_json_dict(artifact_paths=paths)
        if problem is not None:
            data["artifacts_error"] = problem
        return data

    return line


@dataclass
class EvalLines:
    """Functional-correctness mode: samples in, check items out, and the sample's line
    (its fields, ``completion_id``, ``result``, ``passed``) for each verdict."""

    pending: dict[str, tuple[Sample, Problem]] = field(default_factory=dict)

    def items(
        self, samples: Iterable[tuple[Problem, Sample]], done: set[str]
    ) -> Iterator[BatchItem]:
        for problem, sample in samples:
            key = eval_key({"task_id": sample.task_id, "completion_id": sample.completion_id})
            if key in done:
                continue
            item = check_item(problem, sample)
            self.pending[str(item.id)] = (sample, problem)
            yield item

    def line(self, res: BatchResult) -> dict[str, Any]:
        sample, _ = self.pending.pop(str(res.id))
        outcome = verdict(res)
        return {
            **sample.fields,
            "completion_id": sample.completion_id,
            "result": outcome,
            "passed": outcome == "passed",
            "duration_ms": round(res.duration_ms, 3),
            # the sandbox's own account when the verdict came from a limit or a crash
            "error": res.error.to_dict() if res.error is not None else None,
        }


def eval_key(line: dict[str, Any]) -> str:
    """The key of a sample's output line (its task id and completion id)."""
    return json.dumps(sample_id(str(line["task_id"]), int(line["completion_id"])))


def eval_counts(path: Path) -> dict[str, tuple[int, int]]:
    """Per task id, (samples, passed) over every line of a functional-correctness
    output file, this run's and earlier ones'."""
    counts: dict[str, tuple[int, int]] = {}
    with open(path, encoding="utf-8") as f:
        for raw in f:
            if not raw.strip():
                continue
            data = json.loads(raw)
            n, c = counts.get(str(data["task_id"]), (0, 0))
            counts[str(data["task_id"])] = (n + 1, c + bool(data.get("passed")))
    return counts
