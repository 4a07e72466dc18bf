"""Run the LangChain agent from the repository: ``sandbox-tool agent --api langchain``.

    python -m agents.langchain_agent "Which region sold most?" sales.csv
    python -m agents.langchain_agent "..." sales.csv --base-url http://127.0.0.1:8080/v1

The loop itself ships in the package (:mod:`sandbox_tool.agents.langchain_loop`).
"""

from __future__ import annotations

import sys

from sandbox_tool.cli import main as cli_main


def main(argv: list[str] | None = None) -> int:
    """``sandbox-tool agent --api langchain`` with these arguments."""
    args = sys.argv[1:] if argv is None else argv
    return cli_main(["agent", *args, "--api", "langchain"])


if __name__ == "__main__":
    sys.exit(main())
