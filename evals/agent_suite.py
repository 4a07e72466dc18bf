"""Suite 2: data-analysis tasks run by the agent loops of ``agents/`` (``run_task``).

Three modes: ``replay`` (the default) serves the model's side from the task's cassette
while the sandbox runs the model's code for real; ``record`` runs against an
OpenAI-compatible server and writes the cassettes; ``live`` calls the server without
recording. A replay whose requests no longer match its cassette counts the task as
``stale`` (with what differs), never as a crash.

Per task: ``passed`` / ``failed`` (a checker said why) / ``stale`` / ``error`` (the
harness or the engine failed; a bug to fix), the turns, and every tool call's
outcome class (:mod:`evals.outcome`) and time. Scores (:func:`scores`) leave the
times out: two replays give the same scores.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from evals.cassettes import (
    CASSETTES_DIR,
    find_stale,
    load_meta,
    record_meta,
    scrub_paths,
    vcr_for,
)
from evals.checkers import Evidence, check_all
from evals.make_data import DATA_DIR
from evals.outcome import hit_limit, outcome_class
from evals.progress import Progress
from evals.tasks import Task
from sandbox_tool import Artifact, ExecutionOptions, ImportPolicy, PythonSandbox
from sandbox_tool.agents.loop import ToolChoicePolicy
from sandbox_tool.tool import InterpreterInfo, PythonTool

__all__ = ["RECORDED_MODEL", "Settings", "run_suite", "scores", "summarize_tasks"]

#: The model the committed cassettes were recorded with (``docs/evals.md``).
RECORDED_MODEL = "qwen2.5-coder-0.5b-instruct"
#: Where recording talks to the model (agents.record_cassettes serves it there).
DEFAULT_BASE_URL = "http://127.0.0.1:8080/v1"


@dataclass(frozen=True)
class Settings:
    """How the loops are run: the same when recording and replaying."""

    mode: str = "replay"
    model: str = RECORDED_MODEL
    base_url: str = DEFAULT_BASE_URL
    """The Chat Completions server (record, live); replay sends nothing out."""
    responses_base_url: str | None = None
    """The Responses API server; ``None``: the same as ``base_url``."""
    policy: ToolChoicePolicy = "first-success"
    """The loops' tool-choice policy: a small model answers with code as text otherwise."""
    temperature: float = 0.7
    """Sampled, as agents.record_cassettes does: at 0 a 0.5B model repeats a failed call."""
    images: bool = False
    """The recorded model reads text only: plots are listed in the messages, not sent."""
    max_tokens: int = 512
    """The cap on each answer: a small model that starts repeating itself would otherwise
    generate until its context is full (minutes, on one thread)."""
    engine: str = "auto"
    """The sandbox engine; :func:`run_suite` puts the one it runs on here."""
    cassettes: Path = CASSETTES_DIR

    def as_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "temperature": self.temperature,
            "images": self.images,
            "max_tokens": self.max_tokens,
        }


def data_files(data_dir: Path = DATA_DIR) -> dict[str, Path]:
    """Every task sees every data file, as in an analyst's working directory: the
    question names the one to use (and the prompt is the same for every task)."""
    return {path.name: path for path in sorted(data_dir.glob("*.csv"))}


def task_options(task: Task, data_dir: Path = DATA_DIR) -> ExecutionOptions:
    """The sandbox options of a task: the agents' defaults, the data, its overrides."""
    fields: dict[str, Any] = {"timeout": 30, **task.options}
    return ExecutionOptions(
        files=data_files(data_dir),
        import_policy=ImportPolicy.data_science_whitelist(),
        **fields,
    )


def _api_key() -> str:
    # a local server needs none; a replay sends none (and a cassette never holds one)
    return os.environ.get("OPENAI_API_KEY") or "not-needed"


def _client(task: Task, settings: Settings) -> Any:
    """The model client of the task's API, over the transport llama-cpp-python's server
    needs (``agents.record_cassettes.local_server_http_client``)."""
    from agents.record_cassettes import langchain_model, local_server_http_client

    if task.api == "langchain":
        return langchain_model(
            _api_key(),
            model=settings.model,
            base_url=settings.base_url,
            max_tokens=settings.max_tokens,
        )
    import openai

    url = settings.base_url
    if task.api == "responses":
        url = settings.responses_base_url or url
    return openai.AsyncOpenAI(
        base_url=url,
        api_key=_api_key(),
        max_retries=0,
        http_client=local_server_http_client(settings.max_tokens),
    )


@dataclass
class _Run:
    """A task's runs of the loop, one per user turn, taken together."""

    answer: str | None = None
    """The last turn's answer."""
    calls: list[Any] = field(default_factory=list)
    """``sandbox_tool.agents.ToolCall`` of every turn."""
    turns: int = 0
    """Model calls, over all user turns."""


@contextlib.asynccontextmanager
async def _tool_for(task: Task, tool: PythonTool) -> AsyncIterator[PythonTool]:
    if task.conversation:
        async with tool.conversation() as kept:
            yield kept
    else:
        yield tool


async def _run_loops(task: Task, tool: PythonTool, settings: Settings) -> _Run:
    """Every user turn of ``task`` through ``sandbox_tool.agents.run_task``."""
    from sandbox_tool.agents.task import run_task

    client = _client(task, settings)
    done = _Run()
    try:
        async with _tool_for(task, tool) as run_tool:
            for question in task.questions:
                run = await run_task(
                    question,
                    api=task.api,
                    client=client,
                    model=settings.model,
                    tool=run_tool,
                    max_turns=task.max_turns,
                    policy=settings.policy,
                    temperature=settings.temperature,
                )
                done.answer = run.answer
                done.calls += run.calls
                done.turns += run.turns
    finally:
        if task.api == "langchain":
            await client.http_async_client.aclose()
        else:
            await client.close()
    return done


def _call_record(call: Any) -> dict[str, Any]:
    outcome = call.tool_outcome
    cls = outcome_class(outcome) if (outcome.ok or outcome.error) else call.outcome
    return {"outcome": cls, "limit": hit_limit(cls), "ms": round(call.duration_ms, 1)}


def _recovered(classes: list[str]) -> bool | None:
    """A failed call followed by a successful one; ``None`` when no call failed."""
    if all(c == "ok" for c in classes):
        return None
    first = next(i for i, c in enumerate(classes) if c != "ok")
    return "ok" in classes[first:]


def _keep_port(port: int | None) -> Any:
    def keep(request: Any) -> Any:
        return request if port is None or request.port == port else None

    return keep


def _port(url: str) -> int | None:
    from urllib.parse import urlparse

    return urlparse(url).port


@contextlib.contextmanager
def _cassette(task: Task, settings: Settings) -> Iterator[Any]:
    """The vcrpy cassette of this run (none when live). A recording is made in a
    temporary directory and put in place only when the run went through."""
    if settings.mode == "live":
        yield None
        return
    if settings.mode == "replay":
        path = settings.cassettes / f"{task.id}.yaml"
        if not path.is_file():
            raise _Stale(f"no cassette {path.name}: record it (make record-evals)")
        with vcr_for("none", settings.cassettes).use_cassette(path.name) as tape:
            yield tape
        return
    url = settings.responses_base_url if task.api == "responses" else settings.base_url
    # only what the loop sent: not the Responses shim's own calls to the model server,
    # which run in this process too
    keep = _keep_port(_port(url or settings.base_url))
    with tempfile.TemporaryDirectory() as tmp:
        recorder = vcr_for("all", Path(tmp), keep=keep)
        with recorder.use_cassette(f"{task.id}.yaml") as tape:
            yield tape
        _finish_recording(task, Path(tmp) / f"{task.id}.yaml", settings)


def _finish_recording(task: Task, written: Path, settings: Settings) -> None:
    text = scrub_paths(written.read_text())
    settings.cassettes.mkdir(parents=True, exist_ok=True)
    (settings.cassettes / f"{task.id}.yaml").write_text(text)
    record_meta(
        settings.cassettes,
        task.id,
        model=settings.model,
        server=settings.base_url,
        settings=settings.as_dict(),
        engine=settings.engine,
    )


async def run_one(task: Task, tool: PythonTool, settings: Settings) -> dict[str, Any]:
    """Run one task; every failure becomes the task's status, never an exception."""
    started = time.perf_counter()
    result: dict[str, Any] = {
        "id": task.id,
        "category": task.category,
        "api": task.api,
        "status": "error",
        "detail": "",
        "answer": None,
        "turns": 0,
        "calls": [],
        "recovered": None,
    }
    tape = None
    try:
        with _cassette(task, settings) as tape:
            run = await _run_loops(task, tool, settings)
        if settings.mode == "replay" and tape is not None and not tape.all_played:
            raise _Stale("the run made fewer model calls than were recorded")
    except _Stale as exc:
        result.update(status="stale", detail=str(exc))
    except Exception as exc:  # noqa: BLE001  # one task's failure is its status, the suite goes on
        why = find_stale(exc, tape) if tape is not None and settings.mode == "replay" else None
        if why is not None:
            result.update(status="stale", detail=why)
        else:
            result.update(status="error", detail=f"{type(exc).__name__}: {exc}"[:500])
    else:
        result.update(_judge(task, run))
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result


class _Stale(Exception):
    pass


def _judge(task: Task, run: _Run) -> dict[str, Any]:
    artifacts: list[Artifact] = [a for c in run.calls for a in c.tool_outcome.artifacts]
    failures = check_all(task.check, Evidence(answer=run.answer, artifacts=artifacts))
    records = [_call_record(c) for c in run.calls]
    return {
        "status": "failed" if failures else "passed",
        "detail": "; ".join(failures),
        "answer": run.answer,
        "turns": run.turns,
        "calls": records,
        "recovered": _recovered([r["outcome"] for r in records]),
    }


async def run_suite(
    tasks: list[Task], settings: Settings, progress: Progress | None = None
) -> dict[str, Any]:
    """Run ``tasks`` one after the other on one sandbox (closed at the end); the
    ``agent`` part of results.json."""
    sandbox = PythonSandbox(settings.engine)
    settings = replace(settings, engine=sandbox.engine_name)
    info: InterpreterInfo | None = None
    results = []
    try:
        for task in tasks:
            tool = PythonTool(
                sandbox, options=task_options(task), images=settings.images, info=info
            )
            info = tool.info
            result = await run_one(task, tool, settings)
            results.append(result)
            if progress:
                status = result["status"]
                if status in ("stale", "error"):
                    status += f" ({result['detail'][:70]})"
                progress.step(task.id, status)
    finally:
        await sandbox.aclose()
    meta = load_meta(settings.cassettes)
    recorded = [meta["recorded"][t.id] for t in tasks if t.id in meta.get("recorded", {})]
    if settings.mode == "replay":
        models = sorted({r["model"] for r in recorded}) or [settings.model]
        dates = sorted({r["date"] for r in recorded})
        when = f"{dates[0]} to {dates[-1]}" if len(dates) > 1 else (dates[0] if dates else None)
        engines = sorted({r["engine"] for r in recorded if r.get("engine")})
    else:
        models, when, engines = [settings.model], None, [settings.engine]
    return {
        "mode": settings.mode,
        "model": ", ".join(models),
        "recorded": when,
        "engine": sandbox.engine_name,
        "recorded_engine": ", ".join(engines) or None,
        "settings": settings.as_dict(),
        "summary": summarize_tasks(results),
        "tasks": results,
    }


def _group(results: list[dict[str, Any]]) -> dict[str, Any]:
    measured = [r for r in results if r["status"] in ("passed", "failed")]
    calls = [c for r in results for c in r["calls"]]
    with_errors = [r for r in results if r["recovered"] is not None]
    errors = Counter(c["outcome"] for c in calls if c["outcome"] != "ok")
    return {
        "tasks": len(results),
        "passed": sum(r["status"] == "passed" for r in results),
        "failed": sum(r["status"] == "failed" for r in results),
        "stale": sum(r["status"] == "stale" for r in results),
        "errors": sum(r["status"] == "error" for r in results),
        "success_rate": (
            round(sum(r["status"] == "passed" for r in measured) / len(measured), 4)
            if measured
            else None
        ),
        "recovery_rate": (
            round(sum(bool(r["recovered"]) for r in with_errors) / len(with_errors), 4)
            if with_errors
            else None
        ),
        "mean_turns": round(statistics.fmean(r["turns"] for r in measured), 2) if measured else 0.0,
        "tool_calls": len(calls),
        "errors_by_class": dict(sorted(errors.items())),
        "limit_hits": sum(c["limit"] for c in calls),
        "median_sandbox_ms": round(statistics.median(c["ms"] for c in calls), 1) if calls else 0.0,
        "total_seconds": round(sum(r.get("seconds", 0.0) for r in results), 1),
    }


def summarize_tasks(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Success, stale, recovery, turns, tool calls, errors by class, limit hits and
    times, per category and overall. Success is over the tasks measured (not stale)."""
    categories: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        categories.setdefault(r["category"], []).append(r)
    return {
        "overall": _group(results),
        "categories": {c: _group(rs) for c, rs in sorted(categories.items())},
    }


_TIMES = {"ms", "seconds", "median_sandbox_ms", "total_seconds"}


def _without_times(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_times(v) for k, v in value.items() if k not in _TIMES}
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value


def scores(part: dict[str, Any]) -> dict[str, Any]:
    """What must be equal between two replays: everything but the times."""
    kept: dict[str, Any] = _without_times({"summary": part["summary"], "tasks": part["tasks"]})
    return kept
