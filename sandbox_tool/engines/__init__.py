"""The engines sandbox_tool knows, strongest first.

``ENGINES`` maps a name to its class; :func:`probe_all` says which can run
here and why not. The fake engine (:mod:`sandbox_tool.engines.fake`) is a test
double and is never chosen automatically.
"""

from __future__ import annotations

from sandbox_tool.engines.base import Engine, EngineInfo
from sandbox_tool.engines.gvisor import GvisorEngine
from sandbox_tool.engines.microvm import MicrosandboxEngine
from sandbox_tool.engines.native import NativeEngine
from sandbox_tool.engines.process import ProcessEngine

__all__ = ["ENGINES", "Engine", "EngineInfo", "probe_all"]

#: Every real engine, strongest first: ``create_default_sandbox`` takes the first available.
_KNOWN: list[type[Engine]] = [MicrosandboxEngine, GvisorEngine, ProcessEngine, NativeEngine]
ENGINES: dict[str, type[Engine]] = {
    cls.name: cls for cls in sorted(_KNOWN, key=lambda c: -c.security_level)
}


def probe_all(interpreter: str | None = None) -> list[EngineInfo]:
    """Availability of every known engine, strongest first."""
    return [cls.probe(interpreter) for cls in ENGINES.values()]
