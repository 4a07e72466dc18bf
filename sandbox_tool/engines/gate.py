"""Deprecated: moved to :mod:`sandbox_tool.engines.runners.gate` (this name goes in 0.3)."""

import warnings

from sandbox_tool.engines.runners.gate import *  # noqa: F403
from sandbox_tool.engines.runners.gate import __all__  # noqa: F401

warnings.warn(
    "sandbox_tool.engines.gate moved to sandbox_tool.engines.runners.gate",
    DeprecationWarning,
    stacklevel=2,
)
