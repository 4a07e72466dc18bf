"""The desktop guide (docs/embedding.md, "In a desktop app"): its sidecar example is the
file the guide shows, and it runs, with Node, against the real ``sandbox-tool mcp``."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "desktop" / "sidecar.mjs"
GUIDE = ROOT / "docs" / "embedding.md"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_the_guide_shows_the_example_word_for_word() -> None:
    blocks = re.findall(
        r"<!-- example: docs/examples/desktop/sidecar\.mjs -->\n```js\n(.*?)```",
        GUIDE.read_text(encoding="utf-8"),
        re.DOTALL,
    )
    assert blocks == [EXAMPLE.read_text(encoding="utf-8")]


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not on PATH (the example is JS)")
def test_the_sidecar_example_runs(tmp_path: Path) -> None:
    pytest.importorskip(
        "mcp", reason="the MCP SDK is not installed: pip install 'sandbox-tool[mcp]'"
    )
    server = [sys.executable, "-m", "sandbox_tool", "mcp", "--engine", "native"]
    proc = subprocess.run(
        ["node", str(EXAMPLE), *server], cwd=tmp_path, capture_output=True, text=True,
        timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == [
        "tool: run_python",
        "[stdout] plotting",  # shown while the code ran, before its result
        "result: 3, plot.png written",
        "isError: true: ZeroDivisionError: division by zero",
        "long call: stopped",
        "after the stop: still here",
        "sidecar exited with 0",
    ]
    assert (tmp_path / "plot.png").read_bytes().startswith(PNG_MAGIC)
