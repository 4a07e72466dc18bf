"""What both agent loops share: the prompt, the tool-choice policy, the sandbox, the CLI."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TextIO

from sandbox_tool import ExecutionOptions, ImportPolicy, PythonSandbox
from sandbox_tool.tool import PythonTool, ToolOutcome

__all__ = [
    "AgentRun",
    "ToolChoicePolicy",
    "build_tool",
    "cli_parser",
    "connection_help",
    "run_and_report",
    "system_prompt",
    "tool_choice",
]

ToolChoice = Literal["auto", "required", "none"]
# "required" is sent as "this function" (one tool, same meaning): more servers honour it.
ToolChoicePolicy = Literal["auto", "first-success"]
"""``auto``: the model decides every turn. ``first-success``: it must call the tool until
one call succeeds, then answer (small models answer with code as text under ``auto``)."""


@dataclass
class AgentRun:
    """What a loop did: the final answer and every tool outcome on the way."""

    answer: str | None = None
    """The model's final text, or ``None`` when the turn limit came first."""
    outcomes: list[ToolOutcome] = field(default_factory=list)
    turns: int = 0
    """Model calls made."""

    @property
    def stopped_by_turn_limit(self) -> bool:
        return self.answer is None


def tool_choice(
    policy: ToolChoicePolicy, outcomes: Sequence[ToolOutcome], last_turn: bool
) -> ToolChoice:
    """The ``tool_choice`` for the next model call; the last turn must answer."""
    if last_turn:
        return "none"
    if policy == "first-success":
        return "none" if any(o.ok for o in outcomes) else "required"
    return "auto"


def system_prompt(csv_name: str) -> str:
    return (
        "You are a careful data analyst. Answer the user's question about the CSV file "
        f"'{csv_name}' (in the working directory) by running Python with the run_python "
        "tool: load it with pandas.read_csv('" + csv_name + "'). Look at the data before "
        "you compute. When you know the answer, reply with a short plain-text answer."
    )


def build_tool(csv: Path, *, engine: str = "auto", images: bool = True) -> PythonTool:
    """A ``run_python`` tool whose sandbox sees ``csv`` under its own name."""
    options = ExecutionOptions(
        files={csv.name: csv},
        import_policy=ImportPolicy.data_science_whitelist(),
        timeout=30,
    )
    return PythonTool(PythonSandbox(engine, options=options), images=images)


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


def api_key(base_url: str | None) -> str | None:
    """The key to use: OPENAI_API_KEY, or a placeholder for a local server that needs none."""
    key = os.environ.get("OPENAI_API_KEY")
    if key:
        return key
    return "not-needed" if base_url else None


_OPTIONS = """\
  - set OPENAI_API_KEY (and optionally --model) to use OpenAI, or
  - point --base-url (or OPENAI_BASE_URL) at any OpenAI-compatible server, e.g. a local
    llama-cpp-python server: python -m llama_cpp.server --model MODEL.gguf --port 8080
    then: --base-url http://127.0.0.1:8080/v1
"""
HOW_TO_CONFIGURE = "No model is configured. Either\n" + _OPTIONS


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


async def run_and_report(
    base_url: str | None, tool: PythonTool, loop: Callable[[], Awaitable[AgentRun]]
) -> int:
    """Run an agent ``loop`` for the command line: print its run (exit 0 with an answer,
    1 without) or how to reach a server (exit 2); the tool's sandbox is closed after."""
    import openai

    try:
        run = await loop()
    except (openai.APIConnectionError, openai.AuthenticationError, openai.NotFoundError) as exc:
        print(connection_help(base_url, exc), file=sys.stderr)
        return 2
    finally:
        await tool.runner.aclose()  # type: ignore[attr-defined]  # stops the warm pool
    print_run(run)
    return 0 if run.answer is not None else 1


def print_run(run: AgentRun, out: TextIO | None = None) -> None:
    """Show each tool outcome, then the answer."""
    out = out or sys.stdout
    for i, outcome in enumerate(run.outcomes, 1):
        print(f"--- tool call {i} ({'ok' if outcome.ok else 'failed'}) ---", file=out)
        print(outcome.text, file=out)
    print("=== answer ===", file=out)
    print(run.answer if run.answer is not None else "(no answer within the turn limit)", file=out)
