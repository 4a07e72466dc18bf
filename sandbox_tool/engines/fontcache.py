"""Deprecated: moved to :mod:`sandbox_tool.engines.runners.fontcache` (this name goes in 0.3)."""

import warnings

from sandbox_tool.engines.runners.fontcache import *  # noqa: F403
from sandbox_tool.engines.runners.fontcache import __all__  # noqa: F401

warnings.warn(
    "sandbox_tool.engines.fontcache moved to sandbox_tool.engines.runners.fontcache",
    DeprecationWarning,
    stacklevel=2,
)
