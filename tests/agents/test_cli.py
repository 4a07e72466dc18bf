"""Without a key or a server the agents say how to configure one, and do not crash."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CSV = Path(__file__).with_name("orders.csv")


@pytest.mark.parametrize("module", ["agents.openai_agent", "agents.langchain_agent"])
def test_without_key_or_server_it_explains_the_configuration(module: str) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    proc = subprocess.run(
        [sys.executable, "-m", module, "Which region sold most?", str(CSV)],
        capture_output=True, text=True, timeout=120, env=env, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    assert proc.returncode == 2
    assert "No model is configured" in proc.stderr
    assert "OPENAI_API_KEY" in proc.stderr and "--base-url" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unreachable_server_is_explained() -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    proc = subprocess.run(
        [sys.executable, "-m", "agents.openai_agent", "q", str(CSV),
         "--base-url", "http://127.0.0.1:9/v1", "--engine", "native"],
        capture_output=True, text=True, timeout=120, env=env, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    assert proc.returncode == 2
    assert "Could not use the model at http://127.0.0.1:9/v1" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_installed_command_runs_outside_the_repository(tmp_path: Path) -> None:
    # from a directory where the repository's own agents/ cannot be imported
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "sandbox_tool", "agent", "q?", str(CSV), "--api", "responses"],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2 and "No model is configured" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-c", "import agents"], capture_output=True, cwd=tmp_path, env=env
    )
    assert proc.returncode != 0, "the repository's agents/ must not be installed"
