"""The environment manager: finds, builds, shares and cleans up the environments that
sandboxes run in.

>>> manager = EnvironmentManager()                              # doctest: +SKIP
>>> env = await manager.ensure(["statsmodels"])                 # doctest: +SKIP
>>> env.python                                                  # doctest: +SKIP
'/home/me/.cache/sandbox_tool/environments/envs/3f2a.../bin/python'

An environment holds the base set (:data:`DEFAULT_PACKAGES`, the data-science stack,
unless ``base`` says otherwise) plus the packages asked for, each checked by the install
policy first. The first request of a set builds it (seconds with uv and its cache); every
later one, in this process or another, finds it at once. Installing happens here, on
the host, never inside a sandbox; the code sees the environment read-only.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sandbox_tool.environments.build import BuildPlan, build, set_key
from sandbox_tool.environments.catalog import DEFAULT_PACKAGES
from sandbox_tool.environments.environment import Environment
from sandbox_tool.environments.installers import (
    InstallerName,
    Sources,
    choose_installer,
    looks_offline,
)
from sandbox_tool.environments.locations import default_root
from sandbox_tool.environments.metadata import interpreter_identity
from sandbox_tool.environments.policy import InstallPolicy
from sandbox_tool.environments.progress import LogProgress, Progress
from sandbox_tool.environments.requirements import Requirement, parse_requirements
from sandbox_tool.environments.store import PruneReport, Store
from sandbox_tool.errors import UsageError
from sandbox_tool.policies import ImportPolicy

if TYPE_CHECKING:
    from sandbox_tool.options import ExecutionOptions

__all__ = ["WHEELS_VARIABLE", "EnvironmentManager", "importable"]

#: Environment variable naming a wheel directory (several: separated by ``os.pathsep``).
WHEELS_VARIABLE = "SANDBOX_TOOL_WHEELS"


class EnvironmentManager:
    """Builds and finds environments under ``root`` (default: the user's cache dir or
    ``$SANDBOX_TOOL_ENVIRONMENTS``, see :mod:`~sandbox_tool.environments.locations`).

    ``python``: the interpreter environments are made from (default: this one).
    ``base``: the packages every environment has (default: the data-science stack; ``()``
    for small environments). ``policy``: what may be asked for (the base set is the
    developer's choice and is not checked). ``installer``: ``"auto"`` (uv, else pip with
    a notice), ``"uv"`` or ``"pip"``. ``index_url``: the package index (default: the
    installer's configuration, else PyPI). ``find_links``: local wheel directories (also
    ``$SANDBOX_TOOL_WHEELS``). ``offline``: ``None`` checks whether the index answers before
    each build; ``True`` never reaches it (wheel directories and uv's cache only).
    ``cache_dir``: uv's cache. ``timeout``: seconds one install may take.
    """

    def __init__(
        self,
        *,
        root: Path | str | None = None,
        python: str | None = None,
        base: Iterable[str] = DEFAULT_PACKAGES,
        policy: InstallPolicy | None = None,
        installer: InstallerName = "auto",
        index_url: str | None = None,
        find_links: Sequence[Path | str] = (),
        offline: bool | None = None,
        cache_dir: Path | str | None = None,
        progress: Progress | None = None,
        timeout: float = 900.0,
    ) -> None:
        self.store = Store(Path(root) if root is not None else default_root())
        self.python = python or sys.executable
        try:
            self.base = parse_requirements(list(base))
        except ValueError as exc:
            raise UsageError(f"EnvironmentManager(base=...): {exc}") from exc
        self.policy = policy or InstallPolicy.default()
        self.installer: InstallerName = installer
        self.index_url = index_url
        wheels = [p for p in os.environ.get(WHEELS_VARIABLE, "").split(os.pathsep) if p]
        self.find_links = tuple(Path(p).absolute() for p in [*find_links, *wheels])
        self.offline = offline
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.progress: Progress = progress or LogProgress()
        self.timeout = timeout
        self._known: dict[str, Environment] = {}  # set key -> environment, this process
        self._holds: dict[str, int] = {}  # environment key -> its shared lock's fd
        self._lock = threading.Lock()

    @property
    def root(self) -> Path:
        return self.store.root

    # -- asking for a set ---------------------------------------------------------------

    def requirements(
        self, packages: Iterable[str]
    ) -> tuple[tuple[Requirement, ...], tuple[str, ...]]:
        """Every requirement of the set for ``packages`` (the base set, with the asked
        packages checked by the policy and taking precedence), and the names asked.
        ``PackageNotAllowed`` or ``UsageError`` (a malformed name)."""
        try:
            parsed = parse_requirements(list(packages))
        except ValueError as exc:
            raise UsageError(f"packages: {exc}") from exc
        asked = [self.policy.check(r) for r in parsed]
        merged = {r.name: r for r in self.base}
        merged.update({r.name: r for r in asked})
        return tuple(sorted(merged.values())), tuple(r.name for r in asked)

    def _set_key(self, requirements: Sequence[Requirement]) -> str:
        identity, _ = interpreter_identity(self.python)
        return set_key(identity, requirements, self.policy.source_builds)

    def cached(self, packages: Iterable[str] = ()) -> Environment | None:
        """The environment for ``packages`` if this process has it already (no I/O)."""
        requirements, _ = self.requirements(packages)
        with self._lock:
            return self._known.get(self._set_key(requirements))

    def ensure_sync(self, packages: Iterable[str] = (), *, refresh: bool = False) -> Environment:
        """The environment for the base set plus ``packages``, built if needed. Blocking;
        safe from several threads and processes at once (one build per set)."""
        requirements, asked = self.requirements(packages)
        key = self._set_key(requirements)
        with self._lock:
            env = None if refresh else self._known.get(key)
        if env is not None and env.path.is_dir():
            return env
        env = None if refresh else self.store.find_set(key)
        if env is None:
            with self.store.build_lock(key):
                env = None if refresh else self.store.find_set(key)
                if env is None:
                    env = self._build(key, requirements, asked)
                    self.store.record_set(key, [str(r) for r in requirements], env)
        self._adopt(key, env)
        return env

    async def ensure(self, packages: Iterable[str] = (), *, refresh: bool = False) -> Environment:
        """:meth:`ensure_sync` without blocking the event loop (a known set costs no
        thread; a build runs in one)."""
        packages = list(packages)
        if not refresh:
            env = self.cached(packages)
            if env is not None:
                return env
        return await asyncio.to_thread(self.ensure_sync, packages, refresh=refresh)

    def _build(
        self, key: str, requirements: tuple[Requirement, ...], asked: tuple[str, ...]
    ) -> Environment:
        installer = choose_installer(self.installer, self.python, self.progress)
        _, version = interpreter_identity(self.python)
        offline = self.offline
        if offline is None:
            offline = looks_offline(self.index_url)
            if offline:
                self.progress.notice(
                    f"the package index ({self.index_url or 'default'}) cannot be reached: "
                    "installing offline, from the wheel directory"
                    + (" and uv's cache" if installer.kind == "uv" else "")
                )
        sources = Sources(self.index_url, self.find_links, offline, self.cache_dir,
                          self.policy.source_builds)  # fmt: skip
        plan = BuildPlan(self.python, version, requirements, asked, sources, self.timeout)
        return build(self.store, key, plan, installer, self.progress)

    def _adopt(self, key: str, env: Environment) -> None:
        """Remember ``env`` for this process and hold it (``remove`` leaves it alone)."""
        with self._lock:
            self._known[key] = env
            if env.key not in self._holds:
                self._holds[env.key] = self.store.hold(env.key)
        self.store.touch(env.key)

    # -- options -----------------------------------------------------------------------

    async def resolve(self, options: ExecutionOptions) -> ExecutionOptions:
        """``options`` with ``environment`` set for their ``packages`` (built if needed)
        and their import policy letting the code import what was asked (:func:`importable`)."""
        if not options.packages and options.environment is None:
            return options
        if options.environment is None:
            _, asked = self.requirements(options.packages)
            env = await self.ensure(options.packages)
        else:
            env = options.environment
            asked = tuple(r.name for r in self._asked_of(env))
            missing = [p for p in options.packages if Requirement.parse(p).name not in env.packages]
            if missing:
                raise UsageError(
                    f"the environment {env.key} has no {', '.join(missing)}: drop "
                    "ExecutionOptions.environment to have one built for the packages"
                )
        policy = importable(options.import_policy, env.import_names(asked))
        return options.model_copy(update={"environment": env, "import_policy": policy})

    def _asked_of(self, env: Environment) -> list[Requirement]:
        """The requirements of ``env`` beyond this manager's base set."""
        base = {r.name for r in self.base}
        return [r for r in map(Requirement.parse, env.requested) if r.name not in base]

    # -- looking after them --------------------------------------------------------------

    def environments(self) -> list[Environment]:
        """Every complete environment under the root, newest first."""
        return self.store.environments()

    def find(self, ref: str) -> Environment:
        """The environment whose key starts with ``ref`` (or whose path is ``ref``)."""
        return self.store.find(ref)

    def remove(self, env: Environment | str, *, force: bool = False) -> bool:
        """Remove an environment (an ``Environment`` or a key prefix); False when another
        process uses it (``force`` removes it anyway)."""
        target = env if isinstance(env, Environment) else self.find(env)
        self._forget(target.key)
        return self.store.remove(target, force=force)

    def prune(self, older_than_days: float = 30.0, *, dry_run: bool = False) -> PruneReport:
        """Remove environments unused for ``older_than_days`` and what failed builds left
        (this process's environments count as in use)."""
        return self.store.prune(older_than_days, dry_run=dry_run)

    def _forget(self, key: str) -> None:
        with self._lock:
            self._known = {k: e for k, e in self._known.items() if e.key != key}
            fd = self._holds.pop(key, None)
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        """Let go of the environments this process holds (they may be removed then)."""
        with self._lock:
            holds, self._holds = self._holds, {}
            self._known.clear()
        for fd in holds.values():
            os.close(fd)


def importable(policy: ImportPolicy, names: Iterable[str]) -> ImportPolicy:
    """The import policy under which the packages asked for can be imported: a whitelist
    (``unlisted="deny"``) gains their import names (``scikit-learn`` gives ``sklearn``);
    a policy that allows unlisted modules already allows them. A name the policy denies
    explicitly stays denied: asking for a package does not lift a ``deny``."""
    if policy.unlisted == "allow":
        return policy
    gained = {n for n in names if n not in policy.deny} - policy.allow
    if not gained:
        return policy
    return ImportPolicy(unlisted=policy.unlisted, allow=policy.allow | gained, deny=policy.deny)
