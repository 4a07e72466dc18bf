"""The ``install_packages`` tool: lets the model ask for a package the sandbox lacks, when
the developer enables it (``PythonTool(sandbox, installs=True)``).

Only what the sandbox's install policy allows is installed (its description lists it),
outside the sandbox, before any code runs; the code never installs anything. After a
successful call, ``run_python`` runs in an environment that has the packages. A package
that is not allowed, not found or fails to install gives a message naming it and what
to do instead. In a conversation that keeps state, the interpreter is restarted in the
new environment, and the message says that earlier variables are gone.

>>> tool = PythonTool(sandbox, installs=True)                       # doctest: +SKIP
>>> [spec.name for spec in tool.specs]                               # doctest: +SKIP
['run_python', 'install_packages']
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sandbox_tool.environments.catalog import import_to_package
from sandbox_tool.environments.requirements import Requirement
from sandbox_tool.errors import PackageError, SandboxError, UsageError
from sandbox_tool.options import ExecutionOptions
from sandbox_tool.tool.spec import ArgumentsError, ToolSpec

if TYPE_CHECKING:
    from sandbox_tool.environments.manager import EnvironmentManager

__all__ = ["INSTALL_TOOL", "InstallOutcome", "PackageInstaller"]

INSTALL_TOOL = "install_packages"
#: At most this many packages per call (a model listing twenty is guessing).
MAX_PER_CALL = 8
_MISSING = re.compile(r"No module named '([\w.]+)'")

Reopen = Callable[[ExecutionOptions], Awaitable[Any]]


class InstallingTool(Protocol):
    """What the installer needs of its tool (a :class:`~sandbox_tool.tool.PythonTool`)."""

    name: str
    options: ExecutionOptions
    keeps_state: bool
    runner: Any


@dataclass(frozen=True)
class InstallOutcome:
    """One call of ``install_packages`` (the tool turns it into a ``ToolOutcome``)."""

    ok: bool
    text: str
    error: dict[str, Any] | None = None


def _parameters() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "packages": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Package names as on the package index, optionally with a "
                'version: ["statsmodels"], ["scikit-learn==1.5.2"].',
            }
        },
        "required": ["packages"],
        "additionalProperties": False,
    }


class PackageInstaller:
    """The ``install_packages`` tool of one ``PythonTool`` (whose options it extends)."""

    def __init__(
        self,
        tool: InstallingTool,
        manager: EnvironmentManager,
        *,
        name: str = INSTALL_TOOL,
        reopen: Reopen | None = None,
    ) -> None:
        self.tool = tool
        self.manager = manager
        self.name = name
        #: For a tool whose runner is a session: opens one in the new environment.
        self.reopen = reopen

    def bind(self, tool: InstallingTool, reopen: Reopen | None = None) -> PackageInstaller:
        """The same installer for another tool (a conversation's)."""
        return PackageInstaller(tool, self.manager, name=self.name, reopen=reopen)

    @property
    def spec(self) -> ToolSpec:
        policy = self.manager.policy
        description = (
            f"Install Python packages for {self.tool.name} when a library you need is "
            "missing. It may install: " + policy.describe() + ". Installing takes a few "
            "seconds the first time; afterwards import them in "
            f"{self.tool.name} as usual (by their import name)."
        )
        if self.tool.keeps_state:
            description += (
                " It restarts the interpreter: variables from earlier calls are lost, so "
                "install first."
            )
        return ToolSpec(name=self.name, description=description, parameters=_parameters())

    def hint(self) -> str:
        """The line ``run_python``'s description gains."""
        return (
            f"A library that is not installed can be asked for with {self.name} "
            "(the allowed ones are listed there)."
        )

    def missing_hint(self, error: SandboxError) -> str | None:
        """For a failure that is a missing module the policy can install, what to call."""
        module = getattr(error, "module", None)
        if module is None:
            match = _MISSING.search(error.message)
            module = match.group(1) if match else None
        if not module:
            return None
        top = module.split(".")[0]
        candidate = import_to_package(top) or top
        try:
            req = self.manager.policy.check(candidate)
        except (PackageError, ValueError):
            return None
        return f'{req.name} can be installed: call {self.name} with {{"packages": ["{req.name}"]}}.'

    async def run_arguments(self, arguments: str | dict[str, Any] | None) -> InstallOutcome:
        """Run a model's raw tool-call arguments."""
        try:
            packages = _parse(arguments)
        except ArgumentsError as exc:
            return InstallOutcome(
                ok=False,
                text=f'The call could not run: {exc}. Call {self.name} with {{"packages": '
                '["<name>", ...]}.',
            )
        return await self.install(packages)

    async def install(self, packages: list[str]) -> InstallOutcome:
        """Install ``packages`` (with those installed before) and run the tool's next
        calls in the environment that has them."""
        current = list(self.tool.options.packages)
        try:
            asked = [str(self.manager.policy.check(p)) for p in packages]
            wanted = _merge(current, asked)
            env = await self.manager.ensure(wanted)
        except PackageError as exc:
            return InstallOutcome(ok=False, text=_refused(exc, self.tool.name), error=exc.to_dict())
        except (UsageError, ValueError) as exc:
            text = f"Nothing was installed: {exc}. Give package names such as 'statsmodels'."
            return InstallOutcome(ok=False, text=text)
        options = self.tool.options.model_copy(update={"packages": tuple(wanted)})
        restarted = await self._restart(options) if wanted != current else False
        prepare = getattr(self.tool.runner, "prepare", None)
        if not restarted and prepare is not None:
            await prepare(options)  # its warm pool: the next run is as fast as before
        self.tool.options = options
        lines = []
        for name in dict.fromkeys(Requirement.parse(r).name for r in asked):
            imports = ", ".join(env.imports.get(name, ())) or name
            lines.append(f"{name} {env.packages.get(name, '?')} (import {imports})")
        text = "Installed: " + "; ".join(lines) + f". Use them in {self.tool.name} now."
        if restarted:
            text += (
                " The interpreter was restarted in the new environment: variables, imports "
                "and files from earlier calls are gone; load what you need again."
            )
        return InstallOutcome(ok=True, text=text)

    async def _restart(self, options: ExecutionOptions) -> bool:
        """For a stateful tool, a session in the new environment replaces the old one."""
        if self.reopen is None or not self.tool.keeps_state:
            return False
        old = self.tool.runner
        self.tool.runner = await self.reopen(options)
        closer = getattr(old, "aclose", None)
        if closer is not None:
            await closer()
        return True


def _merge(current: list[str], asked: list[str]) -> list[str]:
    """``current`` with ``asked`` added; an asked version replaces a current one."""
    merged = {Requirement.parse(r).name: r for r in current}
    merged.update({Requirement.parse(r).name: r for r in asked})
    return sorted(merged.values())


def _refused(exc: PackageError, tool: str) -> str:
    return f"Nothing was installed. {exc.message}. {tool} still has the libraries it had."


def _parse(arguments: str | dict[str, Any] | None) -> list[str]:
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError as exc:
            raise ArgumentsError(f"the arguments are not valid JSON ({exc})") from exc
    if not isinstance(arguments, dict):
        raise ArgumentsError("the arguments must be a JSON object")
    packages = arguments.get("packages")
    if isinstance(packages, str):
        packages = [packages]
    if not isinstance(packages, list) or not packages:
        raise ArgumentsError('a non-empty "packages" list is required')
    if not all(isinstance(p, str) and p.strip() for p in packages):
        raise ArgumentsError('"packages" must hold package names (strings)')
    if len(packages) > MAX_PER_CALL:
        raise ArgumentsError(f"at most {MAX_PER_CALL} packages per call")
    return [p.strip() for p in packages]
