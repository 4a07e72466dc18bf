"""matplotlib's font cache, built once per interpreter and copied into each sandbox.

Without it matplotlib rebuilds the cache (about 0.6 s) in every execution
whose ``MPLCONFIGDIR`` is empty (FIELD_NOTES 11).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["cache_root", "seed", "warm"]

_PATTERN = "fontlist-*.json"


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sandbox_tool"


def warm(interpreter: str, *, timeout: float = 120.0) -> Path | None:
    """The font cache dir for ``interpreter``, built if needed; None without matplotlib."""
    real = os.path.realpath(interpreter)
    # the path as given too: a venv's interpreter is its base's, with its own matplotlib
    named = f"{os.path.abspath(interpreter)}:{real}:{os.stat(real).st_mtime_ns}"
    key = hashlib.sha256(named.encode()).hexdigest()[:16]
    target = cache_root() / f"mpl-{key}"
    if any(target.glob(_PATTERN)):
        return target
    target.mkdir(parents=True, exist_ok=True)
    env = {"MPLCONFIGDIR": str(target), "MPLBACKEND": "Agg", "PATH": "/usr/bin:/bin"}
    try:
        subprocess.run(
            [interpreter, "-I", "-c", "import matplotlib.font_manager"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return target if any(target.glob(_PATTERN)) else None


def seed(source: Path | None, dest: Path) -> None:
    """Create ``dest`` (an MPLCONFIGDIR) holding a copy of the warmed cache."""
    dest.mkdir(mode=0o700)
    if source is not None:
        for path in source.glob(_PATTERN):
            shutil.copyfile(path, dest / path.name)
