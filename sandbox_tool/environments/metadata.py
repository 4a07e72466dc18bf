"""What an interpreter is and what an environment holds, asked of the interpreter itself.

One run of the interpreter (about 50 ms) gives its identity (the real base executable,
its full version, the machine) and every installed distribution with its version and
the top-level names it is imported by (``top_level.txt``, else the files it installed).
"""

from __future__ import annotations

import functools
import json
import subprocess
from dataclasses import dataclass, field

from sandbox_tool.environments.requirements import normalize_name
from sandbox_tool.errors import EngineError

__all__ = ["Distribution", "Inspection", "inspect", "interpreter_identity"]

_PROBE = r"""
import importlib.metadata as md, json, os, platform, sys
base = getattr(sys, "_base_executable", sys.executable) or sys.executable
dists = {}
for dist in md.distributions():
    name = dist.metadata["Name"]
    if not name:
        continue
    top = (dist.read_text("top_level.txt") or "").split()
    if not top:
        for f in dist.files or ():
            first = f.parts[0] if f.parts else ""
            if first.endswith(".py"):
                first = first[:-3]
            if first and first.isidentifier():
                top.append(first)
    imports = sorted({t for t in top if t.isidentifier() and not t.startswith("_")})
    dists[name] = {"version": dist.version, "imports": imports}
print(json.dumps({
    "identity": {"base": os.path.realpath(base), "version": sys.version,
                 "machine": platform.machine(), "cache_tag": sys.implementation.cache_tag},
    "python_version": platform.python_version(),
    "prefix": sys.prefix,
    "distributions": dists,
}))
"""


@dataclass(frozen=True)
class Distribution:
    version: str
    imports: tuple[str, ...]


@dataclass(frozen=True)
class Inspection:
    """What :func:`inspect` found."""

    identity: str
    """The interpreter's identity as JSON text (what environment keys hash)."""
    python_version: str
    prefix: str
    distributions: dict[str, Distribution] = field(default_factory=dict)
    """Normalized name -> version and import names."""


def inspect(python: str, *, timeout: float = 60.0) -> Inspection:
    """Run ``python`` once and read what it is and holds; ``EngineError`` if it cannot
    run. Blocking."""
    try:
        proc = subprocess.run(
            [python, "-I", "-c", _PROBE],
            capture_output=True, text=True, timeout=timeout, check=True,
            stdin=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
        )  # fmt: skip
        data = json.loads(proc.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        detail = getattr(exc, "stderr", "") or ""
        raise EngineError(f"could not inspect the interpreter {python}: {exc} {detail}") from exc
    dists = {
        normalize_name(str(name)): Distribution(str(d["version"]), tuple(d["imports"]))
        for name, d in data["distributions"].items()
    }
    return Inspection(
        identity=json.dumps(data["identity"], sort_keys=True),
        python_version=str(data["python_version"]),
        prefix=str(data["prefix"]),
        distributions=dists,
    )


@functools.lru_cache(maxsize=32)
def interpreter_identity(python: str) -> tuple[str, str]:
    """``(identity, version)`` of ``python`` (cached per path for this process)."""
    found = inspect(python)
    return found.identity, found.python_version
