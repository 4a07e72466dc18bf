"""Every sandbox a test creates is closed after it: the agents' tools start warm pools."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox_tool import PythonSandbox


@pytest.fixture(autouse=True)
def close_sandboxes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    created: list[PythonSandbox] = []
    real_init = PythonSandbox.__init__

    def init(self: PythonSandbox, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        created.append(self)

    monkeypatch.setattr(PythonSandbox, "__init__", init)
    yield
    for sandbox in created:
        asyncio.run(sandbox.aclose())
