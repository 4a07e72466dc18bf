"""``import sandbox_tool`` stays light: no heavy or optional dependency is imported."""

from __future__ import annotations

import subprocess
import sys

HEAVY = [
    "numpy", "pandas", "matplotlib", "langchain_core", "openai", "microsandbox", "mcp",
    "uvicorn", "uv", "ray",
]  # fmt: skip


def test_import_is_light() -> None:
    code = (
        "import sys, sandbox_tool, sandbox_tool.cli, sandbox_tool.batch.ray_executor\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
