"""gVisor: the runner under a user-space kernel (``runsc``), in a sandbox kept running.

The engine pays gVisor's start-up once: a long-lived gVisor sandbox (:mod:`..runsc.box`)
hosts the warm template, which forks the runners (:mod:`sandbox_tool.runner.roles.boxed`).
Each runner still gets a fresh process, root, work dir and namespaces, and nothing left
by the one before; what the runners of one sandbox share is said in
``docs/security.md`` ("What gVisor runners share").

Layers, outside in: gVisor's kernel (the sentry, itself seccomp-filtered on the host:
the code's system calls never reach the host kernel), a sandbox that sees only read-only
binds of what Python needs and the workspaces' directory (no network unless asked); then
per runner: a chroot into a root of its own with its work, meta and temp dirs in a tmpfs
of ``max_disk_mb`` (copied back to the host when it ends), pid, ipc, uts and net
namespaces, a uid of its own without any capability (``RLIMIT_NPROC`` of
``max_processes`` on it, and a pids cgroup), ``no_new_privs`` and the process engine's
seccomp filter with ``execve`` refused too.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Hashable
from pathlib import Path
from typing import Any

from sandbox_tool.engines.isolation.base import Isolation, Probe
from sandbox_tool.engines.isolation.linux import sandbox_key, sandbox_setup
from sandbox_tool.engines.runners import fontcache
from sandbox_tool.engines.runners.requests import RUNNER_PARENT
from sandbox_tool.engines.runners.treewatch import POLL_SECONDS
from sandbox_tool.engines.runners.workspace import Workspace, private_dir, remove_stale
from sandbox_tool.engines.runsc.box import BoxSpec
from sandbox_tool.engines.runsc.command import Runsc, check
from sandbox_tool.engines.runsc.runners import BoxTemplate
from sandbox_tool.errors import EngineUnavailable
from sandbox_tool.options import ExecutionOptions
from sandbox_tool.runner.protocol import Confinement, IsolationSetup

__all__ = ["GVISOR_MEMORY_BOUND", "Gvisor"]

GVISOR_MEMORY_BOUND = (
    "memory_mb: no cgroup limit bounds the sandbox's memory (gVisor's memory cgroup only "
    "counts it); it bounds each process's virtual size (RLIMIT_AS) and, from the host, "
    f"what the runner's cgroup counts, polled every {POLL_SECONDS:g} s while a cell runs "
    "(a spike between two polls can pass)"
)
_PREFIXES = (
    "import json, sys; print(json.dumps(sorted({sys.prefix, sys.base_prefix, sys.exec_prefix,"
    " sys.base_exec_prefix})))"
)


class Gvisor(Isolation):
    """The runner in a long-lived gVisor sandbox, a fresh root and namespaces per runner.

    >>> Gvisor()                          # runsc on PATH, ptrace platform
    >>> Gvisor(platform="kvm")            # needs /dev/kvm and hardware virtualization
    """

    name = "gvisor"
    promises_layers = True
    # RLIMIT_NPROC on the worker's own uid (one per runner), a pids cgroup behind it
    # (gVisor's pids controller lets a few more tasks through than pids.max under load)
    caps_processes = True
    hosts_runners = True
    #: On a timeout the runner's keeper gets this long to copy its files out.
    stop_grace = 2.0

    def __init__(self, *, runsc: str | None = None, platform: str = "ptrace") -> None:
        self.runsc_path = runsc
        self.platform = platform
        self.runsc: Runsc | None = None
        #: This engine's private directory (its sandboxes, the default work dir).
        self.home: Path | None = None
        self._prefixes: dict[str, list[str]] = {}

    def probe(self, interpreter: str) -> Probe:
        runsc, reason = check(self.runsc_path, self.platform)
        if runsc is None:
            return False, reason
        return True, runsc.describe()

    def prepare(self, interpreter: str) -> None:
        runsc, reason = check(self.runsc_path, self.platform)
        if runsc is None:
            raise EngineUnavailable(f"gvisor engine: {reason}", engine="gvisor")
        self.runsc = runsc
        if interpreter not in self._prefixes:
            out = subprocess.run(
                [interpreter, "-I", "-c", _PREFIXES], capture_output=True, text=True,
                timeout=30, check=True,
            )  # fmt: skip
            self._prefixes[interpreter] = list(json.loads(out.stdout))
        if self.home is None or not self.home.exists():
            remove_stale(None)  # the homes of engines whose host died (their runsc with it)
            self.home = private_dir(None, "gvisor")

    def workspace_parent(self, requested: Path | None) -> Path | None:
        if requested is not None or self.home is None:
            return requested
        work = self.home / "work"
        work.mkdir(mode=0o700, exist_ok=True)
        return work

    def make_template(
        self, argv: list[str], env: dict[str, str], preload: list[str], work_root: Path | None
    ) -> BoxTemplate:
        assert self.runsc is not None and self.home is not None, "prepare() first"
        python = argv[0]
        # matplotlib insists on a writable config dir: the template gets a copy of the
        # font cache of its own (the host's stays out of the sandbox's reach)
        fonts = self.home / "mplconfig"
        if not fonts.exists():
            cache = env.get("MPLCONFIGDIR")
            fontcache.seed(Path(cache) if cache else None, fonts)
        env = {**env, "MPLCONFIGDIR": str(fonts)}
        work = self.workspace_parent(work_root)
        spec = BoxSpec(
            self.runsc, python=python, env=env, preload=preload,
            read_only=[*self._prefixes.get(python, []), RUNNER_PARENT],
            read_write=[str(work), str(fonts)], runner_parent=RUNNER_PARENT,
        )  # fmt: skip
        return _OwnedBoxTemplate(spec, self.home)

    def degraded(self, options: ExecutionOptions) -> list[str]:
        notes = []
        if options.network:
            notes.append(
                "network: the code shares the host's network (network=True): its runners "
                "live in a second gVisor sandbox started with runsc --network=host"
            )
        notes.append(GVISOR_MEMORY_BOUND)
        return notes

    def pool_key(self, options: ExecutionOptions) -> Hashable:
        return sandbox_key(options)

    def setup(self, ws: Workspace, key: Hashable) -> IsolationSetup:
        # the runner's keeper builds its root from it: the supervisor never sees it
        return sandbox_setup(ws, key, ())

    def confine(self, ws: Workspace, key: Hashable) -> Confinement:
        network = bool(key[0]) if isinstance(key, tuple) else False
        # the runner's keeper adds the uid its worker becomes (one per live runner)
        return {
            "mode": "gvisor",
            "seccomp": {"network": network, "unix_sockets": False, "programs": False},
            "namespaces": {
                "user": False,
                "pid": True,
                "mount": False,
                "ipc": True,
                "uts": True,
                "cgroup": False,
                "net": not network,
            },
            "private_root": True,
        }

    def layers(self, reported: dict[str, Any] | None) -> dict[str, Any] | None:
        if reported is None or self.runsc is None:
            return None  # a runner that did not report its layers is not trusted
        return {
            **reported,
            "kernel": "gvisor",
            "gvisor": {
                "runsc": self.runsc.version,
                "platform": self.runsc.platform,
                "rootless": self.runsc.rootless,
            },
        }


class _OwnedBoxTemplate(BoxTemplate):
    """The boxes of one engine start: closing them removes the engine's directory too
    (its default work dir included); the next start makes a new one."""

    def close(self) -> None:
        super().close()
        shutil.rmtree(self.home, ignore_errors=True)
