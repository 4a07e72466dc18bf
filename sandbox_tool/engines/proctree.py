"""Deprecated: moved to :mod:`sandbox_tool.engines.runners.proctree` (this name goes in 0.3)."""

import warnings

from sandbox_tool.engines.runners.proctree import *  # noqa: F403
from sandbox_tool.engines.runners.proctree import __all__  # noqa: F401

warnings.warn(
    "sandbox_tool.engines.proctree moved to sandbox_tool.engines.runners.proctree",
    DeprecationWarning,
    stacklevel=2,
)
