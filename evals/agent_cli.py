"""``python -m evals agent``: run the agent suite and write its results."""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path

from evals.agent_suite import DEFAULT_BASE_URL, RECORDED_MODEL, Settings, run_suite
from evals.cassettes import CASSETTES_DIR, recorded_engine
from evals.progress import Progress
from evals.report import new_results, write_results
from evals.tasks import load_tasks

__all__ = ["replay_engine", "run_agent_command"]


@contextmanager
def serving(server: ThreadingHTTPServer) -> Iterator[str]:
    """Serve ``server`` (bound to a loopback port) in a thread; yields its ``/v1`` URL."""
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def responses_shim(upstream: str) -> Iterator[str]:
    """A Responses API over ``upstream``'s Chat Completions, on a free loopback port
    (llama-cpp-python serves no ``/v1/responses``); yields its base URL."""
    from agents.responses_shim import serve

    with serving(serve(upstream, 0)) as url:
        yield url


@contextmanager
def _responses_url(args: argparse.Namespace, needs_shim: bool) -> Iterator[str | None]:
    if args.mode == "replay" or not needs_shim or args.responses_base_url:
        yield args.responses_base_url
        return
    with responses_shim(args.base_url or DEFAULT_BASE_URL) as url:
        yield url


def replay_engine(requested: str | None, mode: str, library: Path = CASSETTES_DIR) -> str:
    """The engine to run on: the one asked for; else, in replay, the one the cassettes
    were recorded on when it can run here (a tool message may differ between engines),
    or else the strongest available (``auto``)."""
    if requested:
        return requested
    engine = recorded_engine(library) if mode == "replay" else None
    if engine is None:
        return "auto"
    from sandbox_tool.engines import ENGINES

    info = ENGINES[engine].probe() if engine in ENGINES else None
    if info is None or not info.available:
        why = info.reason if info is not None else "unknown engine"
        print(
            f"the cassettes were recorded on the {engine} engine, which cannot run here "
            f"({why}): replaying on the strongest available; tasks may go stale",
            file=sys.stderr,
        )
        return "auto"
    return engine


def run_agent_command(args: argparse.Namespace) -> int:
    tasks = load_tasks(pattern=args.tasks)
    if not tasks:
        print(f"no task matches {args.tasks!r}", file=sys.stderr)
        return 2
    needs_shim = any(t.api == "responses" for t in tasks)
    with _responses_url(args, needs_shim) as responses_url:
        settings = Settings(
            mode=args.mode,
            model=args.model or RECORDED_MODEL,
            base_url=args.base_url or DEFAULT_BASE_URL,
            responses_base_url=responses_url,
            engine=replay_engine(args.engine, args.mode),
        )
        progress = Progress(len(tasks), f"agent {args.mode}")
        part = asyncio.run(run_suite(tasks, settings, progress))
        progress.close()
    record = new_results(part["engine"])
    record["agent"] = part
    paths = write_results(args.out, record)
    overall = part["summary"]["overall"]
    rate = overall["success_rate"]
    print(
        f"agent tasks ({args.mode}, {part['model']}): {overall['passed']}/{overall['tasks']} "
        f"passed ({'-' if rate is None else f'{100 * rate:.0f}%'} of those measured), "
        f"{overall['stale']} stale, {overall['errors']} errors"
    )
    print(f"report: {paths[1]}")
    for task in part["tasks"]:
        if task["status"] == "error":
            print(f"  ERROR {task['id']}: {task['detail']}", file=sys.stderr)
    return 1 if overall["errors"] else 0
