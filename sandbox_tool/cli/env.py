"""``sandbox-tool env``: create, list, extend, remove and prune the environments that
``ExecutionOptions(packages=[...])`` runs code in (see docs/environments.md).

::

    sandbox-tool env create [PKG...]          the base set (the data-science stack) + PKGs
    sandbox-tool env install ENV PKG...       ENV's packages + PKGs (a new environment)
    sandbox-tool env list [--json]
    sandbox-tool env remove ENV... [--force]
    sandbox-tool env prune [--older-than DAYS] [--dry-run]

``ENV`` is a key prefix (at least 4 characters) or a path, as ``list`` shows them. A build
draws a progress bar when standard error is a terminal and prints lines otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from sandbox_tool.cli.common import EXIT_FAILED, EXIT_OK, usage_failure
from sandbox_tool.environments import (
    DEFAULT_PACKAGES,
    ROOT_VARIABLE,
    Environment,
    EnvironmentManager,
    InstallPolicy,
    Requirement,
)
from sandbox_tool.environments.progress import for_stream
from sandbox_tool.errors import PackageError, SandboxError, UsageError

__all__ = ["register"]

_BASES = {"data-science": DEFAULT_PACKAGES, "none": ()}


def register(sub: Any) -> None:
    env = sub.add_parser("env", help="manage the environments packages are installed in")
    actions = env.add_subparsers(dest="env_command", required=True, parser_class=type(env))
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--root", help=f"where environments live (default: ${ROOT_VARIABLE} "
                        "or the user cache dir)")  # fmt: skip
    shared.add_argument("--python", help="the interpreter environments are made from")
    shared.add_argument("--json", action="store_true", help="print JSON")
    build = argparse.ArgumentParser(add_help=False)
    build.add_argument("--base", choices=sorted(_BASES), default="data-science",
                       help="the packages every environment has")  # fmt: skip
    build.add_argument("--installer", choices=("auto", "uv", "pip"), default="auto")
    build.add_argument("--index-url", help="the package index (default: the installer's)")
    build.add_argument("--find-links", action="append", default=[], metavar="DIR",
                       help="a local directory of wheels (also used offline)")  # fmt: skip
    build.add_argument("--offline", action="store_true", help="never reach the index")
    build.add_argument("--allow", action="append", default=[], metavar="PKG",
                       help="also allow PKG (pinned with PKG==VERSION)")  # fmt: skip
    build.add_argument("--any", action="store_true", help="allow any package not denied")
    build.add_argument("--source-builds", action="store_true",
                       help="allow building sdists (runs their build code)")  # fmt: skip
    build.add_argument("--refresh", action="store_true", help="resolve and build again")

    create = actions.add_parser("create", parents=[shared, build],
                                help="an environment with the base set plus PKGs")  # fmt: skip
    create.add_argument("packages", nargs="*", metavar="PKG")
    create.set_defaults(handler=_create)
    install = actions.add_parser("install", parents=[shared, build],
                                 help="an environment with ENV's packages plus PKGs")  # fmt: skip
    install.add_argument("env", metavar="ENV")
    install.add_argument("packages", nargs="+", metavar="PKG")
    install.set_defaults(handler=_install)
    listing = actions.add_parser("list", parents=[shared], help="list the environments")
    listing.set_defaults(handler=_list)
    remove = actions.add_parser("remove", parents=[shared], help="remove environments")
    remove.add_argument("envs", nargs="+", metavar="ENV")
    remove.add_argument("--force", action="store_true", help="even when a process uses it")
    remove.set_defaults(handler=_remove)
    prune = actions.add_parser("prune", parents=[shared],
                               help="remove unused environments and failed builds")  # fmt: skip
    prune.add_argument("--older-than", type=float, default=30.0, metavar="DAYS",
                       help="unused for DAYS days (default 30; 0: all not in use)")  # fmt: skip
    prune.add_argument("--dry-run", action="store_true", help="only say what would go")
    prune.set_defaults(handler=_prune)


def _manager(args: argparse.Namespace) -> EnvironmentManager:
    policy = InstallPolicy.any_package() if getattr(args, "any", False) else InstallPolicy()
    if getattr(args, "allow", None):
        policy = policy.allowing(*args.allow)
    if getattr(args, "source_builds", False):
        policy = policy.model_copy(update={"source_builds": True})
    return EnvironmentManager(
        root=args.root,
        python=args.python,
        base=_BASES[getattr(args, "base", "data-science")],
        policy=policy,
        installer=getattr(args, "installer", "auto"),
        index_url=getattr(args, "index_url", None),
        find_links=getattr(args, "find_links", []),
        offline=True if getattr(args, "offline", False) else None,
        progress=for_stream(sys.stderr),
    )


def _guarded(run: Any, args: argparse.Namespace) -> int:
    try:
        status: int = run(args)
        return status
    except PackageError as exc:
        if args.json:
            print(json.dumps({"ok": False, "error": exc.to_dict()}))
        else:
            print(f"sandbox-tool: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (UsageError, SandboxError) as exc:
        return usage_failure(args, exc)


def _show(env: Environment, args: argparse.Namespace, manager: EnvironmentManager) -> None:
    if args.json:
        print(json.dumps({"ok": True, "environment": _as_json(env, manager)}))
    else:
        print(f"{env.key}  {env.path}")
        print(f"  python: {env.python}  ({env.installer})")


def _as_json(env: Environment, manager: EnvironmentManager) -> dict[str, Any]:
    return {
        **env.manifest(),
        "path": str(env.path),
        "python": env.python,
        "last_used": manager.store.last_used(env),
    }


def _create(args: argparse.Namespace) -> int:
    def run(args: argparse.Namespace) -> int:
        manager = _manager(args)
        try:
            env = manager.ensure_sync(args.packages, refresh=args.refresh)
            _show(env, args, manager)
        finally:
            manager.close()
        return EXIT_OK

    return _guarded(run, args)


def _install(args: argparse.Namespace) -> int:
    def run(args: argparse.Namespace) -> int:
        manager = _manager(args)
        try:
            base = manager.find(args.env)
            known = {r.name for r in manager.base}
            # what the environment was asked for beyond the base set, plus the new ones
            packages = [r for r in base.requested if Requirement.parse(r).name not in known]
            env = manager.ensure_sync([*packages, *args.packages], refresh=args.refresh)
            _show(env, args, manager)
        finally:
            manager.close()
        return EXIT_OK

    return _guarded(run, args)


def _list(args: argparse.Namespace) -> int:
    def run(args: argparse.Namespace) -> int:
        manager = _manager(args)
        envs = manager.environments()
        if args.json:
            print(json.dumps([_as_json(env, manager) for env in envs]))
            return EXIT_OK
        if not envs:
            print(f"no environments in {manager.root} (sandbox-tool env create)")
        for env in envs:
            used = time.strftime("%Y-%m-%d %H:%M", time.localtime(manager.store.last_used(env)))
            print(f"{env.key}  Python {env.python_version}  {len(env.packages)} packages  "
                  f"last used {used}  ({env.installer})")  # fmt: skip
            print(f"    asked: {', '.join(env.requested) or 'nothing'}")
            print(f"    {env.path}")
        return EXIT_OK

    return _guarded(run, args)


def _remove(args: argparse.Namespace) -> int:
    def run(args: argparse.Namespace) -> int:
        manager = _manager(args)
        status = EXIT_OK
        for ref in args.envs:
            env = manager.find(ref)
            if manager.remove(env, force=args.force):
                print(f"removed {env.key}")
            else:
                print(f"{env.key} is in use by a running sandbox: stop it, or --force",
                      file=sys.stderr)  # fmt: skip
                status = EXIT_FAILED
        return status

    return _guarded(run, args)


def _prune(args: argparse.Namespace) -> int:
    def run(args: argparse.Namespace) -> int:
        report = _manager(args).prune(args.older_than, dry_run=args.dry_run)
        if args.json:
            print(json.dumps(report.__dict__))
            return EXIT_OK
        verb = "would remove" if args.dry_run else "removed"
        print(f"{verb} {len(report.environments)} environments: "
              f"{', '.join(report.environments) or '-'}")  # fmt: skip
        if report.in_use:
            print(f"kept {len(report.in_use)} in use: {', '.join(report.in_use)}")
        print(f"{verb} {len(report.builds)} unfinished builds, {len(report.sets)} stale sets")
        return EXIT_OK

    return _guarded(run, args)
