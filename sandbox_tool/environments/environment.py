"""An environment: a built, complete venv that sandboxes run in, and its manifest.

A handle, not a process: pass it as ``ExecutionOptions(environment=env)`` or let
``ExecutionOptions(packages=[...])`` find it. Environments are immutable: their
directory name is the hash of their installed packages and interpreter, and a different
set of packages is a different environment.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["MANIFEST", "Environment"]

#: The manifest's file name in an environment's directory, written before it is published.
MANIFEST = "sandbox-tool-env.json"


class Environment(BaseModel):
    """A complete environment (never a half-built one: it is published by a rename)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    """The hash of its installed packages and interpreter; its directory's name."""
    path: Path
    """Its directory (a venv)."""
    requested: tuple[str, ...] = ()
    """The requirements it was built from (the base set and the packages asked for)."""
    packages: dict[str, str] = Field(default_factory=dict)
    """Every installed distribution (normalized name) and its version."""
    imports: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    """The top-level import names of each installed distribution (``scikit-learn`` ->
    ``("sklearn",)``)."""
    python_version: str = ""
    """The interpreter's version, ``3.11.7``."""
    installer: str = ""
    """What built it: ``uv 0.13.9`` or ``pip 24.0``."""
    created: float = 0.0
    """When it was published (seconds since the epoch)."""

    @property
    def python(self) -> str:
        """Its interpreter, which the engines run."""
        return str(self.path / "bin" / "python")

    def import_names(self, distributions: Iterable[str]) -> set[str]:
        """The top-level import names of ``distributions`` (normalized names)."""
        names: set[str] = set()
        for dist in distributions:
            names.update(self.imports.get(dist, ()))
        return names

    def describe(self) -> str:
        """``<key>: numpy 2.3.1, pandas 2.3.0, ... (Python 3.11.7, uv 0.13.9)``."""
        asked = ", ".join(self.requested) or "no packages"
        return f"{self.key}: {asked} (Python {self.python_version}, {self.installer})"

    def manifest(self) -> dict[str, Any]:
        """What is written to :data:`MANIFEST` (the path is where it is found)."""
        return self.model_dump(mode="json", exclude={"path"})

    @classmethod
    def load(cls, path: Path) -> Environment:
        """The environment in ``path``; ``ValueError`` when its manifest is missing or
        broken (then it is no environment: never a half-built one)."""
        try:
            data = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
            return cls.model_validate({**data, "path": path})
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path} is not a complete environment: {exc}") from exc
