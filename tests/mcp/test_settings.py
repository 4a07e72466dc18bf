"""What ``sandbox-tool mcp`` serves: flags, the config file, the data directory, and the
refusals (an exposed address without a token, a missing SDK) — without starting a server."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sandbox_tool.cli import EXIT_USAGE, main, parser
from sandbox_tool.cli.mcp import parse_address, resolve
from sandbox_tool.errors import UsageError
from sandbox_tool.mcp_server.http import check_exposure, is_loopback


def resolved(tmp_path: Path, config: dict[str, Any] | None, *argv: str) -> argparse.Namespace:
    """The flags ``sandbox-tool mcp`` would run with (config file < command line)."""
    flags = list(argv)
    if config is not None:
        path = tmp_path / "server.json"
        path.write_text(json.dumps(config))
        flags = ["--config", str(path), *flags]
    return resolve(parser().parse_args(["mcp", *flags]))


def test_defaults(tmp_path: Path) -> None:
    args = resolved(tmp_path, None)
    assert (args.engine, args.stateless, args.idle_timeout, args.max_sessions) == (
        "auto", False, 600.0, 8)  # fmt: skip
    assert args.images is True and args.files == [] and args.http is None


def test_the_config_file_sets_flags_and_the_command_line_wins(tmp_path: Path) -> None:
    config = {"engine": "native", "timeout": 5, "stateless": True, "allow-import": ["scipy"],
              "max_sessions": 3, "no-images": True}  # fmt: skip
    args = resolved(tmp_path, config, "--timeout", "9", "--allow-import", "sympy")
    assert args.engine == "native" and args.stateless and args.max_sessions == 3
    assert args.timeout == 9.0  # the command line wins
    assert args.allow_import == ["scipy", "sympy"]  # repeated flags add up
    assert args.images is False


@pytest.mark.parametrize(
    ("config", "message"),
    [
        pytest.param({"nope": 1}, "unknown key 'nope'", id="unknown-key"),
        pytest.param({"timeout": "soon"}, "timeout must be int or float", id="wrong-type"),
        pytest.param({"stateless": 1}, "must be true/false", id="number-for-a-switch"),
        pytest.param({"imports": "everything"}, "must be one of", id="not-a-choice"),
        pytest.param({"file": "a.csv"}, "must be a list of strings", id="not-a-list"),
    ],
)
def test_a_bad_config_file_is_refused_with_the_key(
    tmp_path: Path, config: dict[str, Any], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        resolved(tmp_path, config)


def test_a_data_directory_exposes_its_files(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "nested").mkdir(parents=True)
    (data / "sales.csv").write_text("a\n1\n")
    (data / "notes.txt").write_text("n")
    args = resolved(tmp_path, {"data_dir": str(data)})
    assert sorted(Path(f).name for f in args.files) == ["notes.txt", "sales.csv"]
    with pytest.raises(UsageError, match=r"both expose sales\.csv"):
        resolved(tmp_path, None, "--data-dir", str(data), "--file", str(data / "sales.csv"))


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("127.0.0.1:8000", ("127.0.0.1", 8000)),
        (":8000", ("127.0.0.1", 8000)),
        ("8000", ("127.0.0.1", 8000)),
        ("[::1]:0", ("[::1]", 0)),
    ],
)
def test_http_addresses(text: str, address: tuple[str, int]) -> None:
    assert parse_address(text) == address


def test_only_loopback_is_served_without_a_token() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("[::1]") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")
    check_exposure("127.0.0.1", None)
    check_exposure("0.0.0.0", "x" * 32)
    with pytest.raises(UsageError, match="not a loopback address"):
        check_exposure("0.0.0.0", None)
    with pytest.raises(UsageError, match="at least 16"):
        check_exposure("127.0.0.1", "short")


def test_the_command_refuses_an_exposed_address_without_a_token(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SANDBOX_TOOL_MCP_TOKEN", raising=False)
    assert main(["mcp", "--engine", "native", "--http", "0.0.0.0:0"]) == EXIT_USAGE
    assert "not a loopback address" in capsys.readouterr().err


def test_without_the_sdk_the_command_names_the_extra() -> None:
    code = (
        "import sys\nsys.modules['mcp'] = None\n"
        "from sandbox_tool.cli import main\nsys.exit(main(['mcp']))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert proc.returncode == EXIT_USAGE
    assert "pip install 'sandbox-tool[mcp]'" in proc.stderr
