"""What may be asked for: requirement syntax, the install policy, the import-policy rule,
and where environments live. No process is started here."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pydantic import ValidationError

from sandbox_tool import ExecutionOptions, ImportPolicy, PackageNotAllowed
from sandbox_tool.environments import (
    CATALOG,
    KNOWN_MALICIOUS,
    InstallPolicy,
    Requirement,
    default_root,
    importable,
    parse_requirements,
)
from sandbox_tool.environments.progress import for_stream


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("statsmodels", "statsmodels", id="bare-name"),
        pytest.param("Scikit_Learn", "scikit-learn", id="normalized"),
        pytest.param("pandas [Excel, performance]", "pandas[excel,performance]", id="extras"),
        pytest.param("numpy >= 2, <3", "numpy>=2,<3", id="clauses"),
        pytest.param("scipy==1.14.1", "scipy==1.14.1", id="pinned"),
    ],
)
def test_requirements_accepted(text: str, expected: str) -> None:
    assert str(Requirement.parse(text)) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("-e .", id="installer-option"),
        pytest.param("--index-url=http://evil/simple", id="index-option"),
        pytest.param("git+https://github.com/x/y", id="vcs-url"),
        pytest.param("pkg @ https://evil/pkg.whl", id="direct-url"),
        pytest.param("./local/dir", id="path"),
        pytest.param("numpy; sys_platform == 'linux'", id="marker"),
        pytest.param("numpy==1.0\nrequests", id="two-lines"),
        pytest.param("numpy =! 2", id="bad-operator"),
        pytest.param("", id="empty"),
    ],
)
def test_requirements_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not"):
        Requirement.parse(text)


def test_the_same_package_twice_with_different_versions_is_refused() -> None:
    assert [str(r) for r in parse_requirements(["numpy", "NumPy"])] == ["numpy"]
    with pytest.raises(ValueError, match="asked for twice"):
        parse_requirements(["numpy==1.26.4", "numpy==2.0.0"])


def test_pinned_version() -> None:
    assert Requirement.parse("scipy==1.14.1").pinned_version == "1.14.1"
    assert Requirement.parse("scipy==1.14.*").pinned_version is None
    assert Requirement.parse("scipy>=1").pinned_version is None


def test_the_default_policy_allows_the_catalog_and_nothing_else() -> None:
    policy = InstallPolicy.default()
    assert str(policy.check("statsmodels")) == "statsmodels"
    assert str(policy.check("scikit-learn>=1.5")) == "scikit-learn>=1.5"
    with pytest.raises(PackageNotAllowed) as info:
        policy.check("requests")
    assert info.value.package == "requests"
    assert (
        "not on the list" in info.value.message and "InstallPolicy.allowing" in info.value.message
    )


@pytest.mark.parametrize(
    ("asked", "installed"),
    [
        ("sklearn", "scikit-learn"),
        ("yaml", "pyyaml"),
        ("PIL", "pillow"),
        ("cv2", "opencv-python-headless"),
    ],
)
def test_a_package_asked_by_its_import_name_is_mapped(asked: str, installed: str) -> None:
    assert InstallPolicy.default().check(asked).name == installed


def test_a_close_misspelling_gets_a_suggestion() -> None:
    with pytest.raises(PackageNotAllowed, match="did you mean statsmodels"):
        InstallPolicy.default().check("statsmodel")


def test_pins_apply_and_other_versions_are_refused() -> None:
    policy = InstallPolicy.default().allowing("scipy==1.14.1")
    assert str(policy.check("scipy")) == "scipy==1.14.1"
    assert str(policy.check("scipy==1.14.1")) == "scipy==1.14.1"
    with pytest.raises(PackageNotAllowed, match=r"pins scipy==1\.14\.1"):
        policy.check("scipy==1.13.0")


def test_only_allows_exactly_its_list() -> None:
    policy = InstallPolicy.only(["openpyxl"])
    assert policy.check("openpyxl").name == "openpyxl"
    with pytest.raises(PackageNotAllowed):
        policy.check("numpy")


@pytest.mark.parametrize("name", sorted(KNOWN_MALICIOUS))
def test_known_malicious_packages_are_refused_even_when_any_package_is_allowed(name: str) -> None:
    with pytest.raises(PackageNotAllowed, match="may not be installed") as info:
        InstallPolicy.any_package().allowing().check(name)
    assert info.value.package == name


def test_a_deny_wins_over_allow_any() -> None:
    policy = InstallPolicy.any_package().denying("leftpad", "we said so")
    assert policy.check("anything-else").name == "anything-else"
    with pytest.raises(PackageNotAllowed, match="we said so"):
        policy.check("LeftPad")


def test_the_description_names_import_names_that_differ() -> None:
    text = InstallPolicy.only(["scikit-learn", "openpyxl", "pyyaml==6.0.2"]).describe()
    assert text == "openpyxl, pyyaml==6.0.2 (import yaml), scikit-learn (import sklearn)"
    assert "any package" in InstallPolicy.any_package().describe()


def test_the_catalog_has_no_networking_or_process_package() -> None:
    risky = {"requests", "httpx", "urllib3", "aiohttp", "paramiko", "pexpect", "sh", "psutil"}
    assert not risky & set(CATALOG)


def test_whitelist_gains_the_asked_import_names_but_a_deny_stays() -> None:
    whitelist = ImportPolicy.whitelist({"json"}).with_denied({"yaml"})
    policy = importable(whitelist, {"sklearn", "yaml"})
    assert policy.allows("sklearn") and policy.allows("sklearn.linear_model")
    assert not policy.allows("yaml")
    # a policy that allows unlisted modules is left as it is
    default = ImportPolicy.default()
    assert importable(default, {"socket"}) is default
    assert not importable(default, {"socket"}).allows("socket")


def test_options_validate_packages() -> None:
    assert ExecutionOptions(packages=["Statsmodels", "numpy>=2"]).packages == (
        "numpy>=2",
        "statsmodels",
    )
    with pytest.raises(ValidationError, match="packages"):
        ExecutionOptions(packages=["--extra-index-url=http://evil"])
    with pytest.raises(ValidationError, match="not a single string"):
        ExecutionOptions(packages="numpy")  # type: ignore[arg-type]


def test_root_from_the_variable_then_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SANDBOX_TOOL_ENVIRONMENTS", str(tmp_path / "envs"))
    assert default_root() == tmp_path / "envs"
    monkeypatch.delenv("SANDBOX_TOOL_ENVIRONMENTS")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_root() == tmp_path / "cache" / "sandbox_tool" / "environments"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/is/ignored")
    assert default_root() == Path.home() / ".cache" / "sandbox_tool" / "environments"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_terminal_and_lines_otherwise() -> None:
    terminal = _Terminal()
    bar = for_stream(terminal)
    bar.begin("Building", steps=4)
    bar.step("creating the venv")
    bar.step("installing 3 packages")
    bar.detail(" + numpy==2.3.1")
    bar.end("ready")
    drawn = terminal.getvalue()
    assert "[############------------] 2/4 installing 3 packages: + numpy==2.3.1" in drawn
    assert "\r\033[K" in drawn and drawn.endswith("ready\n")
    plain = io.StringIO()
    lines = for_stream(plain)
    lines.begin("Building", steps=4)
    lines.step("creating the venv")
    lines.notice("uv is not installed")
    text = plain.getvalue()
    assert "\r" not in text and len(text.splitlines()) == 3
    assert "note: uv is not installed" in text
