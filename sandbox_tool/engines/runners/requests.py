"""``ExecutionOptions`` turned into the runner's protocol messages, in one place.

A runner gets three kinds of message (their schema is :mod:`sandbox_tool.runner.protocol`):

- its **setup** (paths, the usual environment, how to build its sandbox), known
  before the code is, so that a warm runner is built ahead of time;
- the **execution request** (environment, limits, policies, inputs): a one-shot's
  comes with its single cell; a session's opens the session;
- one **cell** per piece of code, with its marker and per-cell limits.

Every engine builds them here; the isolation strategy adds only its own part of the
setup (:meth:`~sandbox_tool.engines.isolation.base.Isolation.setup`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox_tool.budgets import Budgets
from sandbox_tool.engines.runners.driver import CellLimits
from sandbox_tool.engines.runners.frames import new_marker
from sandbox_tool.engines.runners.workspace import Workspace
from sandbox_tool.options import ExecutionOptions
from sandbox_tool.runner import protocol
from sandbox_tool.runner.framing import encode_frame

__all__ = [
    "RUNNER_PARENT",
    "CellMessage",
    "base_env",
    "execution_request",
    "new_cell",
    "one_shot_frames",
    "runner_setup",
    "sandbox_env",
]

RUNNER_PARENT = str(Path(__file__).resolve().parents[2])
"""The directory holding the ``runner`` package, put on the runner's sys.path."""

# Host variables that are hardware knobs, not secrets: old OpenBLAS builds
# crash or compute wrong results on some CPUs without them.
_PASSTHROUGH = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def base_env() -> dict[str, str]:
    """What every runner's environment holds: nothing from the host but ``_PASSTHROUGH``."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        # one thread per BLAS: predictable memory, and no spinning when threads
        # are refused (FIELD_NOTES 1-2); a template must stay single-threaded
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "NUMEXPR_NUM_THREADS": "1",
    }
    env.update({k: os.environ[k] for k in _PASSTHROUGH if k in os.environ})
    return env


def sandbox_env(ws: Workspace, options: ExecutionOptions) -> dict[str, str]:
    """The whole environment of the code."""
    env = base_env()
    env.update(
        {
            "HOME": str(ws.work),
            "TMPDIR": str(ws.tmp),
            "XDG_CACHE_HOME": str(ws.tmp / ".cache"),
            "XDG_CONFIG_HOME": str(ws.tmp / ".config"),
            "MPLCONFIGDIR": str(ws.meta / protocol.MPLCONFIG_DIR),
        }
    )
    env.update(options.env_vars)
    return env


def runner_setup(ws: Workspace, isolation: protocol.IsolationSetup | None) -> protocol.RunnerSetup:
    """How to build a runner for ``ws``: known before the code is (with the usual
    environment, which a pre-forked worker applies while it waits)."""
    return {
        "paths": {"work": str(ws.work), "tmp": str(ws.tmp), "meta": str(ws.meta)},
        "env": sandbox_env(ws, ExecutionOptions()),
        "isolation": isolation,
    }


def execution_request(
    options: ExecutionOptions,
    ws: Workspace,
    *,
    inputs: Any = None,
    sandbox_caps_processes: bool = False,
    session: bool = False,
) -> protocol.ExecutionRequest:
    """What the runner needs to run code under ``options``. ``sandbox_caps_processes``:
    the sandbox has its own process cap, which replaces ``RLIMIT_NPROC``'s per-user
    count. A ``session``'s CPU limit is set per cell."""
    return {
        "inputs": inputs,
        "env": sandbox_env(ws, options),
        "max_result_bytes": Budgets.of(options).result_bytes,
        "limits": {
            "memory_bytes": options.memory_mb * 1024 * 1024,
            "cpu_seconds": None if session else options.cpu_limit_seconds,
            "file_bytes": options.max_file_mb * 1024 * 1024,
            "open_files": 1024,
            "processes": None if sandbox_caps_processes else options.max_processes,
        },
        "import_policy": {
            "unlisted": options.import_policy.unlisted,
            "allow": sorted(options.import_policy.allow),
            "deny": sorted(options.import_policy.deny),
        },
        "builtins_policy": {
            "deny": sorted(options.builtins_policy.deny),
            "restrict_open": options.builtins_policy.restrict_open,
        },
        "one_shot": not session,
    }


@dataclass(frozen=True)
class CellMessage:
    """One cell's frame and what bounds its exchange."""

    frame: protocol.Cell
    limits: CellLimits


def new_cell(code: str, options: ExecutionOptions, *, inputs: Any = None,
             session: bool = False) -> CellMessage:  # fmt: skip
    """A cell running ``code``; a session's cell carries its CPU limit and inputs."""
    marker = new_marker()
    frame: protocol.Cell = {
        "code": code,
        "marker": marker.decode(),
        "max_artifact_bytes": options.max_artifact_bytes,
    }
    if session:
        frame["cpu_seconds"] = options.cpu_limit_seconds
        if inputs is not None:
            frame["inputs"] = inputs
    budgets = Budgets.of(options)
    return CellMessage(frame, CellLimits(marker, budgets.output_bytes, budgets.answer_frame_bytes))


def one_shot_frames(
    code: str, inputs: Any, options: ExecutionOptions, ws: Workspace, *,
    sandbox_caps_processes: bool,
) -> tuple[bytes, CellLimits]:  # fmt: skip
    """A single execution's frames (its request, then its one cell), sent at once."""
    request = execution_request(
        options, ws, inputs=inputs, sandbox_caps_processes=sandbox_caps_processes
    )
    cell = new_cell(code, options)
    return encode_frame(request) + encode_frame(cell.frame), cell.limits
