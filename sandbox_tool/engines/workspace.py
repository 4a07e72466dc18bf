"""Deprecated: moved to :mod:`sandbox_tool.engines.runners.workspace` (this name goes in 0.3)."""

import warnings

from sandbox_tool.engines.runners.workspace import *  # noqa: F403
from sandbox_tool.engines.runners.workspace import __all__  # noqa: F401

warnings.warn(
    "sandbox_tool.engines.workspace moved to sandbox_tool.engines.runners.workspace",
    DeprecationWarning,
    stacklevel=2,
)
