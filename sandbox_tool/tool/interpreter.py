"""What the sandbox's interpreter offers: its Python version and installed libraries.

Detected by running the interpreter once (about 0.1 s) and cached per path, so
the tool description names what really is there, never a hard-coded list.

>>> info = inspect_interpreter(sys.executable)      # doctest: +SKIP
>>> info.python_version, info.libraries.get("pandas")  # doctest: +SKIP
('3.11.7', '3.1.1')
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from dataclasses import dataclass, field

from sandbox_tool.errors import EngineError

__all__ = ["InterpreterInfo", "inspect_interpreter"]

# Run inside the target interpreter: its version and {import name: version} of
# every installed distribution (private and packaging-only names left out).
_PROBE = """
import importlib.metadata as md, json, platform, sys
skip = {"pip", "setuptools", "wheel", "pkg_resources", "_distutils_hack", "distutils-precedence"}
libs = {}
for top, dists in md.packages_distributions().items():
    if top.startswith("_") or not top.isidentifier() or top in skip:
        continue
    try:
        libs[top] = md.version(dists[0])
    except Exception:
        continue
print(json.dumps({
    "python_version": platform.python_version(),
    "libraries": libs,
    "stdlib": sorted(sys.stdlib_module_names),
}))
"""


@dataclass(frozen=True)
class InterpreterInfo:
    """The Python that runs the code, as the model should know it."""

    python_version: str
    """``major.minor.micro`` of the interpreter."""
    libraries: dict[str, str] = field(default_factory=dict)
    """Importable top-level module name -> version of the distribution that provides it."""
    stdlib: frozenset[str] = frozenset()
    """Top-level names of the standard library's modules."""


@functools.lru_cache(maxsize=16)
def inspect_interpreter(interpreter: str | None = None) -> InterpreterInfo:
    """Ask ``interpreter`` (default: this one) for its version and libraries; cached.

    Raises :class:`~sandbox_tool.errors.EngineError` when it cannot be run.
    """
    path = interpreter or sys.executable
    try:
        proc = subprocess.run(
            [path, "-I", "-c", _PROBE], capture_output=True, text=True, timeout=60, check=True
        )
        data = json.loads(proc.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise EngineError(f"could not inspect the interpreter {path}: {exc}") from exc
    libs = {str(k): str(v) for k, v in sorted(data["libraries"].items(), key=lambda kv: kv[0])}
    return InterpreterInfo(
        python_version=str(data["python_version"]),
        libraries=libs,
        stdlib=frozenset(str(name) for name in data["stdlib"]),
    )
