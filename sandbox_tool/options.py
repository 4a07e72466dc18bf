"""Per-execution options: limits, policies, environment and files."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from sandbox_tool.environments.environment import Environment
from sandbox_tool.environments.requirements import parse_requirements
from sandbox_tool.policies import BuiltinsPolicy, ImportPolicy

__all__ = ["ExecutionOptions", "coerce_options"]

# kernel file systems: files there show the host's live state, not data
_KERNEL_DIRS = ("/proc", "/sys", "/dev")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Variables the engines set themselves; a caller may not override them.
_ENGINE_ENV = frozenset(
    {
        "PATH", "HOME", "TMPDIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "MPLBACKEND",
        "MPLCONFIGDIR", "LANG", "LC_ALL", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
        "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
    }
)  # fmt: skip
# Read when a process starts. A cold runner is started on the host, as the caller, before
# its sandbox exists: a library in LD_PRELOAD or a module in PYTHONPATH would run there.
_LOADER_ENV = ("LD_", "GLIBC_TUNABLES")
_INTERPRETER_ENV = "PYTHON"


def reserved_env_reason(name: str) -> str | None:
    """Why the caller may not set the environment variable ``name`` (None: it may)."""
    if name in _ENGINE_ENV:
        return f"{name} is set by the engine for the runner and cannot be overridden"
    if name.startswith(_LOADER_ENV):
        return (
            f"{name} is read by the dynamic loader when the runner starts, on the host "
            "before its sandbox exists, so it is refused"
        )
    if name.startswith(_INTERPRETER_ENV):
        return (
            f"{name} is read by the interpreter when the runner starts (on the host, "
            "before its sandbox exists) and would change the runner, not the code, so it "
            "is refused; set it from the code (os.environ) if a library reads it later"
        )
    return None


class ExecutionOptions(BaseModel):
    """Limits and policies for one execution. Defaults suit a data-analysis snippet.

    >>> ExecutionOptions(timeout=5, memory_mb=512).cpu_seconds
    30.0

    Invalid values raise ``pydantic.ValidationError`` (a ``ValueError``) naming the field.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    memory_mb: int = Field(default=1024, ge=128, le=1024 * 1024)
    """Address-space limit of the code's process in MiB (``RLIMIT_AS``: virtual, not
    resident memory; numpy+pandas+matplotlib loaded take about 250 MiB of it)."""
    cpu_seconds: float = Field(default=30.0, gt=0, le=24 * 3600)
    """CPU time the code may use, in seconds (``RLIMIT_CPU``, rounded up to whole seconds)."""
    timeout: float = Field(default=30.0, gt=0, le=24 * 3600)
    """Wall-clock limit in seconds; past it the whole process tree is killed."""
    import_policy: ImportPolicy = Field(default_factory=ImportPolicy.default)
    """Which modules the user's code may import (policy, not a security boundary)."""
    builtins_policy: BuiltinsPolicy = Field(default_factory=BuiltinsPolicy)
    """Which builtins the user's code may call (policy, not a security boundary)."""
    env_vars: dict[str, str] = Field(default_factory=dict)
    """Environment variables given to the code. Nothing else from the host is passed.
    Refused: what the engine sets itself (``HOME``, ``TMPDIR``, ``MPLCONFIGDIR``, the BLAS
    thread counts...), and what the loader or interpreter read at start-up (``LD_*``,
    ``GLIBC_TUNABLES``, ``PYTHON*``)."""
    max_code_bytes: int = Field(default=1024 * 1024, ge=1, le=16 * 1024 * 1024)
    """Largest code accepted, in bytes of UTF-8 (1 MiB: a hundred times a long analysis
    script; data belongs in ``inputs`` or ``files``)."""
    max_input_bytes: int = Field(default=64 * 1024 * 1024, ge=0, le=128 * 1024 * 1024)
    """Largest ``inputs`` accepted, in bytes of JSON (64 MiB: a table of about a million
    cells; larger data is better passed as ``files``). ``inputs`` may also be nested at
    most ``sandbox_tool.inputs.MAX_INPUT_DEPTH`` (100) levels deep."""
    max_output_bytes: int = Field(default=1024 * 1024, ge=1024, le=1024**3)
    """stdout and stderr together; past it the code is stopped with ``OutputLimitExceeded``.
    Also the largest JSON ``result`` kept (a larger one comes back as a shortened repr)."""
    max_processes: int = Field(default=32, ge=1, le=4096)
    """Processes and threads the code may have at once (where the engine can enforce it)."""
    max_file_mb: int = Field(default=256, ge=1, le=1024 * 1024)
    """Largest file the code may write, in MiB (``RLIMIT_FSIZE``)."""
    max_disk_mb: int = Field(default=512, ge=16, le=1024 * 1024)
    """Total size of the files the code may write (work and temp dirs together), where the
    engine can enforce it: the process engine keeps them in a tmpfs of this size (memory,
    not disk); the native engine cannot and reports so."""
    max_artifact_bytes: int = Field(default=50 * 1024 * 1024, ge=0, le=1024**3)
    """Total size of the artifacts returned; files past it are left out and flagged."""
    network: bool = False
    """Let the code use the network. Off by default; the native engine cannot enforce
    "off" and reports so."""
    files: dict[str, Path] = Field(default_factory=dict)
    """Host files exposed read-only to the code, in its working directory under the key's
    name: ``{"sales.csv": Path("/data/sales-2024.csv")}``. A copy, made when the execution
    starts, with the caller's rights: symlinks are followed, so what a path names is the
    caller's choice. Only regular files; none under /proc, /sys or /dev unless
    ``allow_special_files``."""
    allow_special_files: bool = False
    """Let ``files`` name files under /proc, /sys and /dev (after symlinks are resolved).
    Off by default: they hold the host's live state (``/proc/self/environ`` is the
    caller's own environment, with its secrets)."""

    packages: tuple[str, ...] = ()
    """Packages the code needs beyond the engine's interpreter (``"statsmodels"``,
    ``"scikit-learn==1.5.2"``): the code runs in an environment that has the base set (the
    data-science stack) and them, built outside the sandbox on first use (with uv) and
    shared afterwards; only what the sandbox's install policy allows. A whitelist import
    policy gains their import names. See docs/environments.md."""
    environment: Environment | None = None
    """A built environment to run in (``EnvironmentManager.ensure``); set from ``packages``
    when the sandbox resolves them."""

    @field_validator("packages", mode="before")
    @classmethod
    def _check_packages(cls, value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            raise ValueError("give a list of package names, not a single string")
        return tuple(str(r) for r in parse_requirements(value))

    @field_validator("env_vars")
    @classmethod
    def _check_env(cls, value: dict[str, str]) -> dict[str, str]:
        for key, val in value.items():
            if not _ENV_NAME.match(key):
                raise ValueError(f"{key!r} is not a valid environment variable name")
            reason = reserved_env_reason(key)
            if reason is not None:
                raise ValueError(reason)
            if "\0" in val:
                raise ValueError(f"the value of {key} contains a NUL byte")
        return value

    @field_validator("files")
    @classmethod
    def _check_files(cls, value: dict[str, Path]) -> dict[str, Path]:
        for name, path in value.items():
            if not name or "/" in name or "\\" in name or name in {".", ".."} or "\0" in name:
                raise ValueError(f"{name!r} is not a plain file name (no directories)")
            if not path.is_file():
                what = "not a regular file" if path.exists() else "not a readable file"
                raise ValueError(f"{path} (exposed as {name!r}) is {what}")
        return value

    @model_validator(mode="after")
    def _check_special_files(self) -> ExecutionOptions:
        if self.allow_special_files:
            return self
        for name, path in self.files.items():
            real = os.path.realpath(path)
            top = next((d for d in _KERNEL_DIRS if real == d or real.startswith(d + "/")), None)
            if top is not None:
                via = "" if real == str(path) else f" (through symlinks, {real})"
                raise ValueError(
                    f"files: {path}{via}, exposed as {name!r}, is under {top}, which holds "
                    "the host's live state; copy what the code needs into a regular file, "
                    "or set ExecutionOptions.allow_special_files=True"
                )
        return self

    @classmethod
    def for_evaluation(cls, timeout: float = 3.0, **overrides: Any) -> ExecutionOptions:
        """The preset for checking model-written programs against tests (HumanEval-style
        evaluation, RL rewards), where the test code itself needs what the agent defaults
        refuse: every module may be imported (``ImportPolicy.allow_all()``) and every
        builtin called, ``eval``, ``exec``, ``compile``, ``input``, ``breakpoint`` and
        ``help`` included, with ``open()`` reaching whatever the engine's sandbox lets
        the process reach (``BuiltinsPolicy.allow_all()``). ``timeout`` is the wall clock
        and the CPU budget (3 s: the reference harness's default); the rest keeps its
        defaults (memory 1024 MiB, network off, 1 MiB of output) unless ``overrides``
        says otherwise.

        The policies were never the boundary; with this preset they are not even
        policy: only the engine contains the code, so use an isolating engine
        (``process``), not ``native``.

        >>> ExecutionOptions.for_evaluation().builtins_policy.deny
        frozenset()
        """
        fields: dict[str, Any] = {
            "import_policy": ImportPolicy.allow_all(),
            "builtins_policy": BuiltinsPolicy.allow_all(),
            "timeout": timeout,
            "cpu_seconds": timeout,
        }
        return cls(**{**fields, **overrides})

    @property
    def cpu_limit_seconds(self) -> int:
        """The CPU limit as the whole seconds ``RLIMIT_CPU`` takes."""
        return max(1, int(-(-self.cpu_seconds // 1)))


def coerce_options(
    value: ExecutionOptions | dict[str, Any] | None, default: ExecutionOptions
) -> ExecutionOptions:
    """``value`` as options (``default`` when None); a bad dict is the caller's mistake."""
    from sandbox_tool.errors import UsageError

    if value is None:
        return default
    if isinstance(value, ExecutionOptions):
        return value
    try:
        return ExecutionOptions.model_validate(value)
    except ValidationError as exc:
        raise UsageError(f"invalid options: {exc}") from exc
