"""Shared fixtures: a wheel directory made here, an index that cannot be reached (a
closed loopback port), and managers on temporary roots with a recording progress."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox_tool.environments import EnvironmentManager, InstallPolicy
from sandbox_tool.environments.installers import find_uv
from tests.environments.wheels import make_sdist, make_wheel

NEEDS_UV = pytest.mark.skipif(
    find_uv() is None, reason="uv is not installed (the [environments] extra)"
)
#: What the test environments may install (made locally, see wheels.py).
LOCAL = ["tiny-dist", "other-dist", "source-only", "iniconfig"]


def closed_index() -> str:
    """An index URL on a loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/simple"


class Recorder:
    """A progress that remembers what it was told."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def begin(self, title: str, steps: int) -> None:
        self.events.append(("begin", title))

    def step(self, text: str) -> None:
        self.events.append(("step", text))

    def detail(self, line: str) -> None:
        self.events.append(("detail", line))

    def notice(self, text: str) -> None:
        self.events.append(("notice", text))

    def end(self, text: str) -> None:
        self.events.append(("end", text))

    def said(self, kind: str) -> list[str]:
        return [text for k, text in self.events if k == kind]


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny-dist 1.0 (import tinymod), other-dist 2.0 (import othermod, needs tiny-dist)
    and an sdist-only package."""
    directory = tmp_path_factory.mktemp("wheels")
    make_wheel(directory)
    make_wheel(directory, "other-dist", "2.0", "othermod", "from tinymod import VALUE\n",
               requires=("tiny-dist",))  # fmt: skip
    make_sdist(directory)
    return directory


ManagerFactory = Callable[..., EnvironmentManager]


@pytest.fixture(scope="module")
def manager_factory(
    tmp_path_factory: pytest.TempPathFactory, wheels: Path
) -> Iterator[ManagerFactory]:
    """``make(root=None, **overrides)``: a small-environment manager (no base set) that
    installs from the wheel directory with the index unreachable."""
    made: list[EnvironmentManager] = []
    cache = tmp_path_factory.mktemp("uv-cache")

    def make(root: Path | None = None, **overrides: Any) -> EnvironmentManager:
        settings: dict[str, Any] = {
            "root": root or tmp_path_factory.mktemp("envs"),
            "base": (),
            "policy": InstallPolicy.only(LOCAL),
            "find_links": [wheels],
            "index_url": closed_index(),
            "cache_dir": cache,
            "progress": Recorder(),
        }
        settings.update(overrides)
        manager = EnvironmentManager(**settings)
        made.append(manager)
        return manager

    yield make
    for manager in made:
        manager.close()
