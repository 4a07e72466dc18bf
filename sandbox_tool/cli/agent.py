"""``sandbox-tool agent QUESTION FILE... [--api chat|responses|langchain]``: a model
answers a question about data files by running Python in a sandbox
(:func:`sandbox_tool.agents.run_task`), against OpenAI or any OpenAI-compatible server.

Prints each tool call's message, then the answer. Exit 0 with an answer, 1 without one
(the turn limit came first), 2 when the model or the setup is unusable (with what to fix).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO

from sandbox_tool.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from sandbox_tool.errors import UsageError

__all__ = ["connection_help", "print_run", "register", "run", "run_and_report"]

_OPTIONS = """\
  - set OPENAI_API_KEY (and optionally --model) to use OpenAI, or
  - point --base-url (or OPENAI_BASE_URL) at any OpenAI-compatible server, e.g. a local
    llama-cpp-python server: python -m llama_cpp.server --model MODEL.gguf --port 8080
    then: --base-url http://127.0.0.1:8080/v1
"""
HOW_TO_CONFIGURE = "No model is configured. Either\n" + _OPTIONS


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "agent",
        help="let a model answer a question about data files by running Python",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument("question", help="the question about the data")
    parser.add_argument("files", type=Path, nargs="+", help="data files the code may read")
    parser.add_argument(
        "--api",
        choices=["chat", "responses", "langchain"],
        default="chat",
        help="OpenAI Chat Completions, the Responses API, or LangChain's ChatOpenAI",
    )
    parser.add_argument("--model", default=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"))
    parser.add_argument(
        "--base-url",
        default=os.environ.get("OPENAI_BASE_URL"),
        help="an OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1 (env OPENAI_BASE_URL)",
    )
    parser.add_argument("--max-turns", type=int, default=6)
    parser.add_argument("--tool-choice", choices=["auto", "first-success"], default="auto")
    parser.add_argument(
        "--no-images", action="store_true", help="for text-only models: send no plots as images"
    )
    parser.add_argument("--engine", default="auto", help="sandbox engine (default: auto)")
    parser.set_defaults(handler=run)


def connection_help(base_url: str | None, error: Exception) -> str:
    where = base_url or "the OpenAI API"
    return (
        f"Could not use the model at {where}: {error}\n"
        "Check that the server runs and the key is valid. To configure a model:\n" + _OPTIONS
    )


def _problem(args: argparse.Namespace) -> str | None:
    """A message when the command line cannot work, else ``None``."""
    from sandbox_tool.agents.clients import api_key

    for path in args.files:
        if not path.is_file():
            return f"{path} is not a readable file"
    if api_key(args.base_url) is None:
        return HOW_TO_CONFIGURE
    return None


def run(args: argparse.Namespace) -> int:
    """Run the agent for parsed command-line ``args`` and report it."""
    from sandbox_tool.agents.task import run_task

    problem = _problem(args)
    if problem:
        print(problem, file=sys.stderr)
        return EXIT_USAGE
    return asyncio.run(
        run_and_report(
            args.base_url,
            lambda: run_task(
                args.question, args.files, api=args.api, base_url=args.base_url,
                model=args.model, engine=args.engine, images=not args.no_images,
                max_turns=args.max_turns, policy=args.tool_choice,
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


async def run_and_report(base_url: str | None, start: Callable[[], Awaitable[Any]]) -> int:
    """Run an agent for the command line: print its run (exit 0 with an answer, 1
    without), or what to fix (exit 2) when the setup or the model cannot be used."""
    try:
        agent_run = await start()
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    except _model_errors() as exc:
        print(connection_help(base_url, exc), file=sys.stderr)
        return EXIT_USAGE
    print_run(agent_run)
    return EXIT_OK if agent_run.answer is not None else EXIT_FAILED


def print_run(agent_run: Any, out: TextIO | None = None) -> None:
    """Show each tool call (an :class:`~sandbox_tool.agents.AgentRun`'s) and its outcome,
    then the answer."""
    out = out or sys.stdout
    for i, call in enumerate(agent_run.calls, 1):
        print(f"--- tool call {i} ({'ok' if call.ok else 'failed'}) ---", file=out)
        print(call.tool_outcome.text, file=out)
    print("=== answer ===", file=out)
    answer = agent_run.answer
    print(answer if answer is not None else "(no answer within the turn limit)", file=out)
