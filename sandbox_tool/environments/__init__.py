"""Python environments on demand: venvs built with uv (or pip), cached under the user's
cache dir, shared by every sandbox that asks for the same packages, and seen read-only by
the code. See docs/environments.md.

>>> from sandbox_tool import ExecutionOptions
>>> options = ExecutionOptions(packages=["statsmodels"])   # the sandbox finds or builds it

:class:`EnvironmentManager` finds and builds them, :class:`InstallPolicy` says what may
be installed, :class:`Environment` is a built one. Nothing here imports uv: its binary is
run when an environment is built.
"""

from sandbox_tool.environments.catalog import CATALOG, DEFAULT_PACKAGES, KNOWN_MALICIOUS
from sandbox_tool.environments.environment import Environment
from sandbox_tool.environments.locations import ROOT_VARIABLE, default_root
from sandbox_tool.environments.manager import WHEELS_VARIABLE, EnvironmentManager, importable
from sandbox_tool.environments.policy import InstallPolicy
from sandbox_tool.environments.progress import (
    LineProgress,
    LogProgress,
    Progress,
    TerminalProgress,
)
from sandbox_tool.environments.requirements import Requirement, parse_requirements
from sandbox_tool.environments.store import PruneReport

__all__ = [
    "CATALOG",
    "DEFAULT_PACKAGES",
    "KNOWN_MALICIOUS",
    "ROOT_VARIABLE",
    "WHEELS_VARIABLE",
    "Environment",
    "EnvironmentManager",
    "InstallPolicy",
    "LineProgress",
    "LogProgress",
    "Progress",
    "PruneReport",
    "Requirement",
    "TerminalProgress",
    "default_root",
    "importable",
    "parse_requirements",
]
