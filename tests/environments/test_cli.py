"""``sandbox-tool env``: create, install, list, remove and prune, offline from a local
wheel directory; and ``sandbox-tool run --package``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandbox_tool.cli import main
from tests.environments.conftest import NEEDS_UV, closed_index

pytestmark = NEEDS_UV


def env(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["env", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_create_install_list_remove_prune(
    tmp_path: Path, wheels: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    where = ["--root", str(tmp_path / "envs")]
    build = [*where, "--base", "none", "--find-links", str(wheels), "--index-url", closed_index(),
             "--allow", "tiny-dist", "--allow", "other-dist"]  # fmt: skip

    status, out, err = env(capsys, "create", "tiny-dist", *build, "--json")
    assert status == 0, err
    created = json.loads(out)["environment"]
    assert created["packages"] == {"tiny-dist": "1.0"}
    assert Path(created["python"]).exists()
    # not a terminal: the build's progress is printed as lines on stderr
    assert "cannot be reached" in err and "installing 1 packages offline" in err

    status, out, _ = env(capsys, "install", created["key"][:6], "other-dist", *build, "--json")
    extended = json.loads(out)["environment"]
    assert status == 0 and set(extended["packages"]) == {"tiny-dist", "other-dist"}
    assert extended["key"] != created["key"]

    status, out, _ = env(capsys, "list", *where, "--json")
    assert status == 0 and {e["key"] for e in json.loads(out)} == {created["key"], extended["key"]}
    status, out, _ = env(capsys, "list", *where)
    assert "asked: tiny-dist" in out and "asked: other-dist, tiny-dist" in out

    status, out, _ = env(capsys, "remove", created["key"][:8], *where)
    assert status == 0 and out.strip() == f"removed {created['key']}"
    status, out, _ = env(capsys, "prune", *where, "--older-than", "0", "--dry-run")
    assert status == 0 and f"would remove 1 environments: {extended['key']}" in out
    status, out, _ = env(capsys, "prune", *where, "--older-than", "0")
    assert status == 0 and not Path(extended["path"]).exists()


def test_a_refused_package_fails_with_its_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = env(capsys, "create", "requests", "--root", str(tmp_path), "--base", "none")
    assert status == 1
    assert "PackageNotAllowed: requests is not on the list" in err
    status, out, _ = env(
        capsys, "create", "pkg @ https://x/p.whl", "--root", str(tmp_path), "--json"
    )
    assert status == 2 and json.loads(out)["error"]["type"] == "UsageError"


def test_an_unknown_environment_lists_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = env(capsys, "remove", "abcdef", "--root", str(tmp_path))
    assert status == 2 and "names no environment" in err and "sandbox-tool env create" in err


def test_run_with_a_package(
    tmp_path: Path,
    wheels: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SANDBOX_TOOL_ENVIRONMENTS", str(tmp_path / "envs"))
    monkeypatch.setenv("SANDBOX_TOOL_WHEELS", str(wheels))
    script = tmp_path / "job.py"
    script.write_text("import tinymod\nresult = tinymod.VALUE\n")
    # the default policy does not allow a package it does not know
    status = main(["run", str(script), "--engine", "native", "--package", "tiny-dist", "--json"])
    out, _ = capsys.readouterr()
    assert status == 2 and json.loads(out)["error"]["type"] == "PackageNotAllowed"
