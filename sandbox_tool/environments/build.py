"""Building one environment: a venv created in ``building/``, the requirements installed,
what was installed read back, then published by a rename under the hash of its installed
packages and interpreter. Any failure removes the build; nothing half-built is ever used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sandbox_tool.environments.environment import Environment
from sandbox_tool.environments.installers import (
    Installer,
    InstallFailure,
    Sources,
    to_package_error,
)
from sandbox_tool.environments.metadata import Inspection, inspect
from sandbox_tool.environments.progress import Progress
from sandbox_tool.environments.requirements import Requirement
from sandbox_tool.environments.store import Store
from sandbox_tool.errors import EngineError, PackageInstallFailed

__all__ = ["BuildPlan", "build", "environment_key", "set_key"]

#: How long creating the venv itself may take.
_VENV_SECONDS = 120.0


def _digest(data: object) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def environment_key(identity: str, packages: dict[str, str]) -> str:
    """The key of an environment: its interpreter and every installed version."""
    return _digest(
        {"python": identity, "packages": sorted(f"{n}=={v}" for n, v in packages.items())}
    )


def set_key(identity: str, requirements: Sequence[Requirement], source_builds: bool) -> str:
    """The key of a package set as asked (what it resolves to is looked up under it)."""
    return _digest(
        {"python": identity, "asked": [str(r) for r in requirements], "sdists": source_builds}
    )


@dataclass(frozen=True)
class BuildPlan:
    """What to build."""

    python: str
    """The interpreter the venv is made from (a venv's interpreter works: its base is used)."""
    python_version: str
    requirements: tuple[Requirement, ...]
    """Everything to install: the base set and the packages asked for."""
    asked: tuple[str, ...]
    """The names asked beyond the base set (named first in errors)."""
    sources: Sources
    timeout: float


def build(
    store: Store, key: str, plan: BuildPlan, installer: Installer, progress: Progress
) -> Environment:
    """Build ``plan`` and publish it (the caller holds the set's build lock). Blocking."""
    target = store.new_build_dir(key)
    started = time.monotonic()
    what = ", ".join(map(str, plan.requirements)) or "no packages"
    progress.begin(f"Building an environment with {what} ({installer.label})", steps=5)
    try:
        progress.step("creating the venv")
        try:
            installer.run(installer.venv_command(plan.python, target), progress,
                          cwd=store.root, timeout=_VENV_SECONDS)  # fmt: skip
        except InstallFailure as failure:
            raise EngineError(
                f"could not create a venv from {plan.python}: {failure.output}"
            ) from None
        env_python = str(target / "bin" / "python")
        if plan.requirements:
            offline = " offline" if plan.sources.offline else ""
            progress.step(f"installing {len(plan.requirements)} packages{offline}")
            _install(installer, target, plan, progress)
        else:
            progress.step("nothing to install")
        progress.step("reading what was installed")
        found = inspect(env_python)
        progress.step("compiling what is imported first")
        precompile(env_python, found, plan.requirements)
        missing = [r.name for r in plan.requirements if r.name not in found.distributions]
        if missing:
            raise PackageInstallFailed(
                f"{missing[0]} is not in the environment after installing it; try another version",
                package=missing[0],
            )
        packages = {name: d.version for name, d in sorted(found.distributions.items())}
        env = Environment(
            key=environment_key(found.identity, packages),
            path=target,
            requested=tuple(str(r) for r in plan.requirements),
            packages=packages,
            imports={name: d.imports for name, d in found.distributions.items()},
            python_version=found.python_version,
            installer=installer.label,
            created=time.time(),
        )
        progress.step("publishing")
        env = store.publish(target, env)
    except BaseException as exc:
        shutil.rmtree(target, ignore_errors=True)
        progress.end(f"failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
        raise
    progress.end(f"environment {env.key} ready in {time.monotonic() - started:.1f} s: {env.path}")
    return env


def _install(installer: Installer, target: Path, plan: BuildPlan, progress: Progress) -> None:
    """Install the plan's requirements; when the index cannot be reached, once more offline."""
    asked = [*plan.asked, *(r.name for r in plan.requirements if r.name not in plan.asked)]
    requirements = [str(r) for r in plan.requirements]
    env_python = str(target / "bin" / "python")
    sources = plan.sources
    for attempt in range(2):
        command = installer.install_command(env_python, requirements, sources)
        try:
            installer.run(command, progress, cwd=target, timeout=plan.timeout)
            return
        except InstallFailure as failure:
            if attempt or not failure.network or sources.offline:
                raise to_package_error(
                    failure, asked, sources, plan.python_version, installer.kind
                ) from None
        progress.notice(
            "the package index cannot be reached: trying again offline, from the wheel "
            "directory" + (" and uv's cache" if installer.kind == "uv" else "")
        )
        sources = dataclasses.replace(sources, offline=True)


def precompile(env_python: str, found: Inspection, requirements: Sequence[Requirement]) -> None:
    """Write the bytecode of what the warm template imports (the asked distributions'
    top-level modules, and pyplot): runners start with ``-B`` and see the environment
    read-only, so without it every start would compile those modules from source, while
    compiling every file of the environment takes tens of seconds. The imports run on the
    host, as the template's do. Failures are left to the template to report. Blocking."""
    names = sorted({m for r in requirements for m in found.distributions[r.name].imports})
    if "matplotlib" in names:
        names.append("matplotlib.pyplot")
    code = (
        "import importlib, sys\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception:\n"
        "        pass\n"
    )
    with tempfile.TemporaryDirectory(prefix="sandbox-tool-mpl-") as mpl:
        env = {"PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg", "MPLCONFIGDIR": mpl,
               "OPENBLAS_NUM_THREADS": "1", "LC_ALL": "C.UTF-8"}  # fmt: skip
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run([env_python, "-I", "-c", code, *names], env=env, timeout=300,
                           stdin=subprocess.DEVNULL, capture_output=True, check=False)  # fmt: skip
