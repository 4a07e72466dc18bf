"""The agents' command lines: one parser, one run through :func:`~agents.task.run_task`,
one report (exit 0 with an answer, 1 without, 2 when the model or the setup is unusable)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TextIO

from agents.common import api_key
from agents.run import AgentRun
from agents.task import Api
from sandbox_tool.errors import UsageError

__all__ = ["cli_parser", "connection_help", "print_run", "run_and_report", "run_cli"]

_OPTIONS = """\
  - set OPENAI_API_KEY (and optionally --model) to use OpenAI, or
  - point --base-url (or OPENAI_BASE_URL) at any OpenAI-compatible server, e.g. a local
    llama-cpp-python server: python -m llama_cpp.server --model MODEL.gguf --port 8080
    then: --base-url http://127.0.0.1:8080/v1
"""
HOW_TO_CONFIGURE = "No model is configured. Either\n" + _OPTIONS


def cli_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("question", help="the question about the data")
    parser.add_argument("csv", type=Path, help="the CSV file the code may read")
    parser.add_argument("--model", default=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"))
    parser.add_argument(
        "--base-url",
        default=os.environ.get("OPENAI_BASE_URL"),
        help="an OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1 (env OPENAI_BASE_URL)",
    )
    parser.add_argument("--max-turns", type=int, default=6)
    parser.add_argument("--tool-choice", choices=["auto", "first-success"], default="auto")
    parser.add_argument("--no-images", action="store_true", help="for text-only models")
    parser.add_argument("--engine", default="auto", help="sandbox engine (default: auto)")
    return parser


def connection_help(base_url: str | None, error: Exception) -> str:
    where = base_url or "the OpenAI API"
    return (
        f"Could not use the model at {where}: {error}\n"
        "Check that the server runs and the key is valid. To configure a model:\n" + _OPTIONS
    )


def check_inputs(args: argparse.Namespace) -> str | None:
    """A message when the command line cannot work, else ``None``."""
    if not args.csv.is_file():
        return f"{args.csv} is not a readable file"
    if api_key(args.base_url) is None:
        return HOW_TO_CONFIGURE
    return None


def run_cli(args: argparse.Namespace, *, api: Api) -> int:
    """Run the agent of ``api`` for parsed command-line ``args`` and report it."""
    from agents.task import run_task

    problem = check_inputs(args)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    return asyncio.run(
        run_and_report(
            args.base_url,
            lambda: run_task(
                args.question, [args.csv], api=api, base_url=args.base_url, model=args.model,
                engine=args.engine, images=not args.no_images, max_turns=args.max_turns,
                policy=args.tool_choice,
            ),
        )
    )  # fmt: skip


def _model_errors() -> tuple[type[Exception], ...]:
    """The model API's errors a configuration fix cures (none without ``openai``)."""
    try:
        import openai
    except ImportError:
        return ()
    return (openai.APIConnectionError, openai.AuthenticationError, openai.NotFoundError)


async def run_and_report(base_url: str | None, start: Callable[[], Awaitable[AgentRun]]) -> int:
    """Run an agent for the command line: print its run (exit 0 with an answer, 1
    without), or what to fix (exit 2) when the setup or the model cannot be used."""
    try:
        run = await start()
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    except _model_errors() as exc:
        print(connection_help(base_url, exc), file=sys.stderr)
        return 2
    print_run(run)
    return 0 if run.answer is not None else 1


def print_run(run: AgentRun, out: TextIO | None = None) -> None:
    """Show each tool call and its outcome, then the answer."""
    out = out or sys.stdout
    for i, call in enumerate(run.calls, 1):
        print(f"--- tool call {i} ({'ok' if call.ok else 'failed'}) ---", file=out)
        print(call.tool_outcome.text, file=out)
    print("=== answer ===", file=out)
    print(run.answer if run.answer is not None else "(no answer within the turn limit)", file=out)
