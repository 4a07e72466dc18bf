"""Deprecated: moved to :mod:`sandbox_tool.engines.runners.pool` (this name goes in 0.3)."""

import warnings

from sandbox_tool.engines.runners.pool import *  # noqa: F403
from sandbox_tool.engines.runners.pool import __all__  # noqa: F401

warnings.warn(
    "sandbox_tool.engines.pool moved to sandbox_tool.engines.runners.pool",
    DeprecationWarning,
    stacklevel=2,
)
