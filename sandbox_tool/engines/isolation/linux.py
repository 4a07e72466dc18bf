"""Linux process isolation: a fresh sandbox per runner, built by the runner itself
(:mod:`sandbox_tool.runner.layers`) before any user code runs: user, pid, net,
ipc, uts, cgroup and mount namespaces, a private read-only root, an unprivileged uid without
capabilities, landlock, seccomp, rlimits, a per-sandbox process cap and a size-capped
tmpfs for the execution's files.

A layer that cannot be applied here makes the strategy refuse to start, unless it was
built with ``accept_degraded=True``; then every result lists what is missing.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Hashable
from typing import Any

from sandbox_tool.budgets import Budgets
from sandbox_tool.engines.isolation.base import Isolation, Probe
from sandbox_tool.engines.runners.requests import RUNNER_PARENT
from sandbox_tool.engines.runners.treewatch import MEMORY_BOUND
from sandbox_tool.engines.runners.workspace import Workspace
from sandbox_tool.errors import EngineUnavailable
from sandbox_tool.options import ExecutionOptions
from sandbox_tool.runner.protocol import IsolationSetup

__all__ = ["OPTIONAL_LAYERS", "LinuxNamespaces", "run_probe", "sandbox_key", "sandbox_setup"]

_PROBE = (
    "import json, sys; sys.path.insert(0, sys.argv[1]); "
    "from runner.layers.probe import probe; plan = None\n"
    "if len(sys.argv) > 2:\n"
    "    plan = {'ro_binds': ['/usr'], 'rw_binds': [], 'files': {}, 'cwd': '/',\n"
    "            'landlock': {'read_only': ['/usr']}, 'seccomp': {}}\n"
    "    for layer in sys.argv[2].split(','): plan[layer] = None\n"
    "print(json.dumps(probe(plan)))"
)
#: Layers that can be left out when the caller accepts a degraded sandbox.
OPTIONAL_LAYERS = ("landlock", "seccomp")


def run_probe(python: str, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Build a throw-away sandbox (without the ``skip`` layers) in a child of ``python``
    and report whether it worked and why not."""
    cmd = [python, "-I", "-B", "-c", _PROBE, RUNNER_PARENT, *([",".join(skip)] if skip else [])]
    try:
        out = subprocess.run(
            cmd, capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"},
            stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
        result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        return result
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError) as exc:
        return {"available": False, "reason": f"the probe failed: {exc}", "report": None}


class LinuxNamespaces(Isolation):
    """A namespaces + landlock + seccomp sandbox per runner.

    >>> LinuxNamespaces()                        # refuses to start if a layer is missing
    >>> LinuxNamespaces(accept_degraded=True)    # runs without it, and says so
    """

    name = "linux-namespaces"
    promises_layers = True
    caps_processes = True
    #: On a timeout the sandbox's pid 1 gets this long to stop the code and copy its
    #: files out of the size-capped tmpfs before everything is killed.
    stop_grace = 2.0

    def __init__(self, *, accept_degraded: bool = False) -> None:
        self.accept_degraded = accept_degraded
        self.skip_layers: tuple[str, ...] = ()
        self._probes: dict[str, dict[str, Any]] = {}

    def probe(self, interpreter: str) -> Probe:
        if interpreter not in self._probes:
            self._probes[interpreter] = run_probe(interpreter)
        result = self._probes[interpreter]
        return bool(result.get("available")), str(result.get("reason"))

    def _missing_layers(self, interpreter: str) -> tuple[str, ...] | None:
        """The optional layers to leave out for a degraded sandbox, or None if none helps."""
        for skip in [(layer,) for layer in OPTIONAL_LAYERS] + [OPTIONAL_LAYERS]:
            if run_probe(interpreter, skip).get("available"):
                return skip
        return None

    def prepare(self, interpreter: str) -> None:
        available, reason = self.probe(interpreter)
        if available:
            return
        skip = self._missing_layers(interpreter) if self.accept_degraded else None
        if skip is None:
            hint = (
                "; accept_degraded=True runs without landlock or seccomp where only those "
                "are missing"
                if not self.accept_degraded
                else ""
            )
            raise EngineUnavailable(
                f"process engine: {reason}{hint}; or use the native engine, which "
                "is not a security boundary",
                engine="process",
            )
        self.skip_layers = skip

    def degraded(self, options: ExecutionOptions) -> list[str]:
        notes = [
            f"{layer}: not applied on this host (accept_degraded)" for layer in self.skip_layers
        ]
        if options.network:
            notes.append("network: the code shares the host's network (network=True)")
        notes.append(MEMORY_BOUND)
        return notes

    def pool_key(self, options: ExecutionOptions) -> Hashable:
        return sandbox_key(options)

    def setup(self, ws: Workspace, key: Hashable) -> IsolationSetup:
        return sandbox_setup(ws, key, self.skip_layers)


def sandbox_key(options: ExecutionOptions) -> Hashable:
    """The options a runner's sandbox is built with (its namespaces, cap, scratch size)."""
    return (options.network, options.max_processes, options.max_disk_mb,
            options.max_artifact_bytes, tuple(sorted(options.files)))  # fmt: skip


def sandbox_setup(ws: Workspace, key: Hashable, skip_layers: tuple[str, ...]) -> IsolationSetup:
    """The runner setup's ``isolation`` part for a :func:`sandbox_key`."""
    assert isinstance(key, tuple)
    network, max_processes, disk_mb, artifact_bytes, files = key
    return {
        "network": bool(network),
        "nproc": int(max_processes),
        "skip_layers": list(skip_layers),
        # the writable dirs live in a tmpfs of max_disk_mb, not on the host's disk;
        # exposed files are bound read-only and do not count against it
        "scratch_mb": int(disk_mb),
        "ro_files": [str(ws.work / name) for name in files],
        # the code's files, plus the runner's report and figures
        "copy_out_max_bytes": Budgets.copy_out_for(int(artifact_bytes)),
    }
