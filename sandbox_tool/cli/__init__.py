"""The ``sandbox-tool`` command (also ``python -m sandbox_tool``): one module per
subcommand, each with ``register(subparsers)`` that adds its parser and sets the
function that runs it.

::

    sandbox-tool run [FILE|-] [--engine NAME] [--json] ...   (sandbox_tool.cli.run)
    sandbox-tool engines [--json]                            (sandbox_tool.cli.engines)
    sandbox-tool batch INPUT.jsonl -o OUTPUT.jsonl [...]     (sandbox_tool.cli.batch)
    sandbox-tool agent QUESTION FILE... [--api API] ...      (sandbox_tool.cli.agent)
    sandbox-tool env create|install|list|remove|prune        (sandbox_tool.cli.env)
    sandbox-tool mcp [--http HOST:PORT] [--config FILE] ...  (sandbox_tool.cli.mcp)

Exit status: 0 success, 1 the code failed or hit a limit, 2 a usage or engine error.
"""

from __future__ import annotations

import argparse
import sys

import sandbox_tool.cli.agent as agent_command
import sandbox_tool.cli.batch as batch_command
import sandbox_tool.cli.engines as engines_command
import sandbox_tool.cli.env as env_command
import sandbox_tool.cli.mcp as mcp_command
import sandbox_tool.cli.run as run_command
from sandbox_tool.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Parser

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "main"]

#: The subcommands, in the order ``--help`` lists them.
COMMANDS = (
    run_command, batch_command, engines_command, env_command, mcp_command, agent_command
)  # fmt: skip


def parser() -> argparse.ArgumentParser:
    """The whole command line: every subcommand's parser."""
    top = Parser(prog="sandbox-tool", description="Run Python code in a sandbox.")
    sub = top.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in COMMANDS:
        command.register(sub)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    status: int = args.handler(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
