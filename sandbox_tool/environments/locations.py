"""Where environments live: the user's cache directory, as ``platformdirs`` would put it
(computed here: four lines do not justify a dependency), overridable by an option
(``EnvironmentManager(root=...)``, ``sandbox-tool env --root``) and by the
``SANDBOX_TOOL_ENVIRONMENTS`` environment variable.

- Linux and other Unix: ``$XDG_CACHE_HOME/sandbox_tool/environments`` (an absolute
  ``XDG_CACHE_HOME``, else ``~/.cache``);
- macOS: ``~/Library/Caches/sandbox_tool/environments``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["ROOT_VARIABLE", "default_root", "user_cache_dir"]

#: The environment variable that moves every environment (a shared or larger disk).
ROOT_VARIABLE = "SANDBOX_TOOL_ENVIRONMENTS"


def user_cache_dir() -> Path:
    """The user's cache directory on this platform."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches"
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # the XDG spec: a relative path is invalid and must be ignored
    return Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"


def default_root() -> Path:
    """``$SANDBOX_TOOL_ENVIRONMENTS``, else ``<user cache>/sandbox_tool/environments``."""
    chosen = os.environ.get(ROOT_VARIABLE, "")
    if chosen:
        return Path(chosen).expanduser().absolute()
    return user_cache_dir() / "sandbox_tool" / "environments"
