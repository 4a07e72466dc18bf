"""Deprecated: moved to :mod:`sandbox_tool.engines.isolation.seatbelt` (this name goes in 0.3)."""

import warnings

from sandbox_tool.engines.isolation.seatbelt import *  # noqa: F403
from sandbox_tool.engines.isolation.seatbelt import __all__  # noqa: F401

warnings.warn(
    "sandbox_tool.engines.seatbelt moved to sandbox_tool.engines.isolation.seatbelt",
    DeprecationWarning,
    stacklevel=2,
)
