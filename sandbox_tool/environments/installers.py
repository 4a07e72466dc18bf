"""The two installers environments are built with: uv (fast; the ``uv`` package ships its
binary: ``pip install 'sandbox-tool[environments]'``) and, when uv is missing, pip (slower,
and offline only from a wheel directory).

Each creates a venv and installs requirements into it; their output is streamed to the
build's progress line by line, and a failure is turned into a :class:`PackageError` that
names the package and the way out.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sandbox_tool.environments.progress import Progress
from sandbox_tool.environments.requirements import normalize_name
from sandbox_tool.errors import (
    PackageError,
    PackageInstallFailed,
    PackageNotFound,
    UsageError,
)

__all__ = [
    "InstallFailure",
    "Installer",
    "InstallerName",
    "Sources",
    "choose_installer",
    "find_uv",
    "looks_offline",
]

InstallerName = Literal["auto", "uv", "pip"]
_EXTRA = "pip install 'sandbox-tool[environments]'"
_NETWORK = re.compile(
    r"Failed to fetch|error sending request|tcp connect error|dns error|Connection refused|"
    r"NewConnectionError|Max retries exceeded|Temporary failure in name resolution|"
    r"Network is unreachable|timed out",
    re.IGNORECASE,
)


def find_uv() -> str | None:
    """The uv binary: the ``uv`` package's, else one on ``PATH``."""
    try:
        import uv

        found: str = uv.find_uv_bin()
        return found
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


@dataclass(frozen=True)
class Sources:
    """Where packages come from."""

    index_url: str | None = None
    """The package index (None: the installer's own configuration, else PyPI)."""
    find_links: tuple[Path, ...] = ()
    """Local directories of wheels, searched besides the index (and alone offline)."""
    offline: bool = False
    """Do not reach the index: wheels from ``find_links`` (and uv's cache) only."""
    cache_dir: Path | None = None
    """uv's cache (None: uv's default, ``~/.cache/uv``)."""
    source_builds: bool = False


@dataclass
class InstallFailure(Exception):
    """An installer command failed; ``output`` is the end of what it printed."""

    command: list[str]
    output: str
    network: bool = field(default=False)


@dataclass(frozen=True)
class Installer:
    """One installer: ``kind`` is ``uv`` or ``pip``; ``program`` its binary (uv) or the
    interpreter that runs pip."""

    kind: Literal["uv", "pip"]
    program: str
    version: str

    @property
    def label(self) -> str:
        return f"{self.kind} {self.version}"

    def venv_command(self, python: str, target: Path) -> list[str]:
        if self.kind == "uv":
            return [self.program, "venv", "--quiet", "--relocatable", "--no-project",
                    "--no-python-downloads", "--no-config",
                    "--python", python, str(target)]  # fmt: skip
        return [python, "-m", "venv", "--without-pip", str(target)]

    def install_command(self, env_python: str, requirements: list[str], src: Sources) -> list[str]:
        if self.kind == "uv":
            # no bytecode for every file (tens of seconds): the build compiles what is
            # imported first (build.precompile)
            cmd = [self.program, "pip", "install", "--no-progress", "--color", "never",
                   "--python", env_python]  # fmt: skip
            if src.index_url:
                cmd += ["--index-url", src.index_url]
            if src.cache_dir is not None:
                cmd += ["--cache-dir", str(src.cache_dir)]
            if src.offline:
                cmd += ["--offline"]
            if not src.source_builds:
                cmd += ["--no-build"]
        else:
            cmd = [self.program, "-m", "pip", "--python", env_python, "install", "--no-input",
                   "--disable-pip-version-check", "--progress-bar", "off",
                   "--no-compile"]  # fmt: skip
            if src.offline:
                cmd += ["--no-index"]
            elif src.index_url:
                cmd += ["--index-url", src.index_url]
            if not src.source_builds:
                cmd += ["--only-binary", ":all:"]
        for directory in src.find_links:
            cmd += ["--find-links", str(directory)]
        return [*cmd, "--", *requirements] if self.kind == "uv" else [*cmd, *requirements]

    def run(self, cmd: list[str], progress: Progress, *, cwd: Path, timeout: float) -> None:
        """Run ``cmd``, streaming its output to ``progress``; ``InstallFailure`` if it
        fails or passes ``timeout`` seconds. Blocking."""
        env = dict(os.environ, NO_COLOR="1", PIP_DISABLE_PIP_VERSION_CHECK="1",
                   PYTHONNOUSERSITE="1", UV_NO_PROGRESS="1")  # fmt: skip
        tail: deque[str] = deque(maxlen=40)
        with subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            text=True, errors="replace", cwd=cwd, env=env, start_new_session=True,
        ) as proc:  # fmt: skip
            # a silent, hung installer is killed too: the watchdog does not wait for a line
            timed_out = threading.Event()

            def stop() -> None:
                timed_out.set()
                proc.kill()

            watchdog = threading.Timer(timeout, stop)
            watchdog.start()
            try:
                assert proc.stdout is not None
                for line in proc.stdout:
                    if line.strip():
                        tail.append(line.rstrip())
                        progress.detail(line.rstrip())
                proc.wait()
            except BaseException:
                proc.kill()
                raise
            finally:
                watchdog.cancel()
        if proc.returncode != 0:
            text = "\n".join(tail)
            if timed_out.is_set():
                text += f"\n(stopped after {timeout:g} s: raise EnvironmentManager(timeout=...))"
            raise InstallFailure(cmd, text, network=bool(_NETWORK.search(text)))


def choose_installer(name: InstallerName, python: str, progress: Progress) -> Installer:
    """The installer to build with: uv when available (``auto``), else pip with a notice."""
    if name in ("auto", "uv"):
        uv = find_uv()
        if uv is not None:
            words = _version([uv, "--version"]).split()  # "uv 0.13.9 (x86_64-...)"
            return Installer("uv", uv, words[1] if len(words) > 1 else "?")
        if name == "uv":
            raise UsageError(f"uv is not installed: {_EXTRA} (or put uv on PATH)")
        progress.notice(
            f"uv is not installed ({_EXTRA}): building with pip, which is several times "
            "slower and works offline only from a wheel directory"
        )
    pip = _version([python, "-m", "pip", "--version"])
    if not pip.startswith("pip "):
        raise UsageError(
            f"neither uv nor pip can build environments for {python}: {_EXTRA}, or install pip"
        )
    return Installer("pip", python, pip.split()[1])


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else ""


def looks_offline(index_url: str | None, timeout: float = 3.0) -> bool:
    """Whether the index cannot be reached (any HTTP answer counts as reached). Honours
    the usual proxy variables, as the installers do."""
    import urllib.error
    import urllib.request

    url = index_url or os.environ.get("UV_DEFAULT_INDEX") or os.environ.get("UV_INDEX_URL")
    url = url or "https://pypi.org/simple/"
    if not url.startswith(("http://", "https://")):
        return not os.path.exists(url.removeprefix("file://"))
    try:
        # a fresh opener: urlopen's shared one keeps the proxy settings of its first use
        opener = urllib.request.build_opener()
        with opener.open(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return False
    except urllib.error.HTTPError:
        return False  # it answered
    except (OSError, ValueError):
        return True


_NOT_FOUND = (
    re.compile(r"Because ([A-Za-z0-9._-]+) was not found"),
    re.compile(r"there is no version of ([A-Za-z0-9._-]+)"),
    re.compile(r"only ([A-Za-z0-9._-]+)[<>=!~]\S* (?:is|are) available"),
    re.compile(r"No matching distribution found for ([A-Za-z0-9._-]+)"),
)
_NO_WHEEL = (
    re.compile(r"Wheels are required for `([A-Za-z0-9._-]+)`"),
    re.compile(r"([A-Za-z0-9._-]+?)(?:==\S+)? has no usable wheels"),
    re.compile(r"source distributions for ([A-Za-z0-9._-]+) is disabled", re.IGNORECASE),
    re.compile(r"Building ([A-Za-z0-9._-]+?)(?:==\S+)? from source is disabled", re.IGNORECASE),
)


def to_package_error(
    failure: InstallFailure, asked: list[str], src: Sources, python_version: str, kind: str
) -> PackageError:
    """The error for a failed install, naming the package (``asked``: the names asked,
    the likeliest culprits first) and what to do instead."""
    text = failure.output
    for pattern in _NO_WHEEL:  # first: "only X==1.0 is available" also reads as not found
        match = pattern.search(text)
        if match:
            name = _which(match.group(1), asked)
            return PackageInstallFailed(
                f"{name} has no wheel for Python {python_version} on this platform, and "
                "building it from source is off (its build code would run on the host). Use "
                "another package or version, or allow builds with "
                "InstallPolicy(source_builds=True)",
                package=name,
            )
    for pattern in _NOT_FOUND:
        match = pattern.search(text)
        if match:
            name = _which(match.group(1), asked)
            return PackageNotFound(_not_found_message(name, text, src, kind), package=name)
    name = _which("", asked)
    last = "\n".join(text.splitlines()[-8:])
    return PackageInstallFailed(
        f"installing {', '.join(asked) or name} failed:\n{last}\nTry another version or "
        "package, or fewer packages at once",
        package=name,
    )


def _which(found: str, asked: list[str]) -> str:
    """The asked name the installer's message is about (else the first asked)."""
    key = normalize_name(found) if found else ""
    return key if key in asked or not asked else asked[0]


def _not_found_message(name: str, text: str, src: Sources, kind: str) -> str:
    wheels = ", ".join(map(str, src.find_links))
    if src.offline:
        where = [f"the wheel directory {wheels}"] if wheels else []
        if kind == "uv":
            where.append("uv's cache")
        has = f"neither {' nor '.join(where)} has it" if len(where) > 1 else (
            f"{where[0]} does not have it" if where else "there is no wheel directory"
        )  # fmt: skip
        return (
            f"{name} is not available offline: the package index cannot be reached and "
            f"{has}. Put its wheel in a wheel directory (EnvironmentManager(find_links=...)), "
            "or try again when the index is reachable"
        )
    versions = re.search(r"from versions: ([^)]*)\)", text)
    known = f" (versions there: {versions.group(1)})" if versions else ""
    index = src.index_url or "the package index"
    also = f" or in the wheel directory {wheels}" if wheels else ""
    return f"{name} was not found on {index}{also}{known}: check its name and the version asked"
