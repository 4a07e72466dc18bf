"""Optional heavy libraries stay unimported until asked for, and say how to get them."""

from __future__ import annotations

import subprocess
import sys


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_importing_the_package_and_tool_layer_imports_no_heavy_library() -> None:
    proc = run(
        "import sys, sandbox_tool, sandbox_tool.tool\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in "
        "{'langchain_core', 'openai', 'numpy', 'pandas', 'matplotlib'}]\n"
        "print(heavy)"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_missing_langchain_names_the_extra() -> None:
    proc = run(
        "import sys\nsys.modules['langchain_core'] = None\n"
        "from sandbox_tool.tool import LangChainPythonTool"
    )
    assert proc.returncode != 0
    assert "pip install 'sandbox-tool[langchain]'" in proc.stderr
