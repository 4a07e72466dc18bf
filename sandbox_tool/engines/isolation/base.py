"""What an isolation strategy is: the part of an engine that says how a runner's
sandbox is built around the interpreter. The engines that run the runner
(:class:`~sandbox_tool.engines.runner_engine.RunnerEngine`) share everything else.

A strategy answers: can it run here (:meth:`Isolation.probe`), what it cannot apply
for given options (:meth:`Isolation.degraded`), which settings a pre-built runner's
sandbox depends on (:meth:`Isolation.pool_key`), its part of the runner's setup
(:meth:`Isolation.setup`), what the worker applies to itself when the runner builds no
sandbox (:meth:`Isolation.confine`), the command that wraps the interpreter, if any
(:meth:`Isolation.wrap_argv`), and the layers a result names (:meth:`Isolation.layers`).

A strategy whose runners live in a sandbox it keeps running (gVisor) also supplies the
template they are forked from (:meth:`Isolation.make_template`) and where their
workspaces go (:meth:`Isolation.workspace_parent`).
"""

from __future__ import annotations

import abc
from collections.abc import Hashable
from pathlib import Path
from typing import Any

from sandbox_tool.engines.runners.template import TemplateLike
from sandbox_tool.engines.runners.workspace import Workspace
from sandbox_tool.options import ExecutionOptions
from sandbox_tool.runner.protocol import Confinement, IsolationSetup

__all__ = ["Isolation", "Probe", "Unavailable"]

#: Whether a strategy can run here, and why (not).
Probe = tuple[bool, str]


class Isolation(abc.ABC):
    """How a runner's sandbox is built. One instance per engine: it owns its caches."""

    #: Short name, shown in ``sandbox-tool engines`` and in docs.
    name: str = ""
    #: Results must name the layers they ran under, or no result is trusted.
    promises_layers: bool = False
    #: The sandbox caps its own processes (``RLIMIT_NPROC``'s per-user count is not used).
    caps_processes: bool = False
    #: Runners can be forked from a warm template (a strategy whose sandbox names the
    #: execution's dirs when the process starts cannot).
    forks_warm: bool = True
    #: On a timeout, the seconds the runner gets to stop the code and save its files.
    stop_grace: float = 0.0
    #: Runners live in a sandbox the strategy keeps running: a template is started even
    #: without ``warm``, which then only skips the preload and the pre-forking.
    hosts_runners: bool = False

    @abc.abstractmethod
    def probe(self, interpreter: str) -> Probe:
        """Whether this strategy can run here, without side effects beyond a probe
        process; cached by the instance."""

    def prepare(self, interpreter: str) -> None:  # noqa: B027 - optional hook
        """Check the host once before the engine starts; raise ``EngineUnavailable``."""

    @abc.abstractmethod
    def degraded(self, options: ExecutionOptions) -> list[str]:
        """What of ``options`` (or of the strategy's own layers) is not applied here."""

    def pool_key(self, options: ExecutionOptions) -> Hashable:
        """The settings a runner's sandbox is built with (runners are reused per key)."""
        return None

    def setup(self, ws: Workspace, key: Hashable) -> IsolationSetup | None:
        """The runner setup's ``isolation`` part for ``ws`` and ``key`` (None: no sandbox
        is built by the runner itself)."""
        return None

    def confine(self, ws: Workspace, key: Hashable) -> Confinement | None:
        """The runner setup's ``confine`` part: what a worker without a sandbox of its own
        applies to itself before any code runs (None: nothing)."""
        return None

    def wrap_argv(self, argv: list[str], ws: Workspace, options: ExecutionOptions) -> list[str]:
        """The command that starts a cold runner (``argv`` is the bare interpreter's)."""
        return argv

    def layers(self, reported: dict[str, Any] | None) -> dict[str, Any] | None:
        """A result's ``isolation``: what the runner reported before the code ran, with
        what only the host knows (None: no layers to name)."""
        return reported

    def make_template(
        self, argv: list[str], env: dict[str, str], preload: list[str], work_root: Path | None
    ) -> TemplateLike | None:
        """The process runners are forked from (None: the usual warm template)."""
        return None

    def workspace_parent(self, requested: Path | None) -> Path | None:
        """Where the runners' workspaces are made (``requested``: the engine's
        ``work_root``; None: the temp dir)."""
        return requested


class Unavailable(Isolation):
    """No strategy for this platform: the engine reports ``reason`` and never starts."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def probe(self, interpreter: str) -> Probe:
        return False, self.reason

    def degraded(self, options: ExecutionOptions) -> list[str]:
        return []
