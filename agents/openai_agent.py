"""Run the OpenAI agent from the repository: ``sandbox-tool agent`` with ``--api chat``
(the default here) or ``--api responses``.

    python -m agents.openai_agent "Which region sold most?" sales.csv --api responses
    python -m agents.openai_agent "..." sales.csv --base-url http://127.0.0.1:8080/v1

The loops themselves ship in the package (:mod:`sandbox_tool.agents.openai_loop`).
"""

from __future__ import annotations

import sys

from sandbox_tool.cli import main as cli_main


def main(argv: list[str] | None = None) -> int:
    """``sandbox-tool agent`` with these arguments (``--api chat`` unless they say)."""
    return cli_main(["agent", "--api", "chat", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
