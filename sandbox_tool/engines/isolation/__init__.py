"""Isolation strategies: how a runner's sandbox is built (one module each).

- :class:`~.rlimits.RlimitsOnly`: rlimits only (the native engine);
- :class:`~.linux.LinuxNamespaces`: namespaces, landlock, seccomp (the process engine on Linux);
- :class:`~.seatbelt.Seatbelt`: a ``sandbox-exec`` profile (the process engine on macOS).
"""

from sandbox_tool.engines.isolation.base import Isolation, Probe

__all__ = ["Isolation", "Probe"]
