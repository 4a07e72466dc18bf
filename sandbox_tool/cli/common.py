"""What the subcommands share: exit codes, the parser class, options from flags, and
how a usage or engine error is printed."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sandbox_tool.errors import SandboxError, UsageError
from sandbox_tool.options import ExecutionOptions
from sandbox_tool.policies import ImportPolicy
from sandbox_tool.result import error_json_dict

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "IMPORT_BASES",
    "Parser",
    "add_option_flags",
    "options_from_args",
    "usage_failure",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

IMPORT_BASES = {
    "default": ImportPolicy.default,
    "data-science": ImportPolicy.data_science_whitelist,
    "allow-all": ImportPolicy.allow_all,
}


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # exit 2 with the usage, as argparse does
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def add_option_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that set :class:`ExecutionOptions` (and ``--engine``)."""
    parser.add_argument(
        "--engine", default="auto", help="engine name, or auto (the strongest here)"
    )
    parser.add_argument("--memory-mb", type=int, help="memory limit in MiB")
    parser.add_argument("--cpu-seconds", type=float, help="CPU-time limit in seconds")
    parser.add_argument("--timeout", type=float, help="wall-clock limit in seconds")
    parser.add_argument(
        "--imports",
        choices=sorted(IMPORT_BASES),
        help="base import policy (default: the command's, 'default' for run)",
    )
    parser.add_argument("--allow-import", action="append", default=[], metavar="MOD")
    parser.add_argument("--deny-import", action="append", default=[], metavar="MOD")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--file",
        dest="files",
        action="append",
        default=[],
        metavar="PATH",
        help="expose a host file read-only in the code's work dir",
    )
    parser.add_argument("--network", action="store_true", help="let the code use the network")
    parser.add_argument(
        "--package",
        dest="packages",
        action="append",
        default=[],
        metavar="PKG",
        help="run in an environment that has PKG (installed first if the policy allows)",
    )


def options_from_args(
    args: argparse.Namespace, base: ExecutionOptions | None = None
) -> ExecutionOptions:
    """The options the flags of :func:`add_option_flags` ask for, on top of ``base`` (the
    defaults); ``UsageError`` if invalid."""
    base = base or ExecutionOptions()
    policy = IMPORT_BASES[args.imports]() if args.imports else base.import_policy
    if args.allow_import:
        policy = policy.with_allowed(args.allow_import)
    if args.deny_import:
        policy = policy.with_denied(args.deny_import)
    env = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--env expects KEY=VALUE, got {item!r}")
        env[key] = value
    files = {}
    for path in args.files:
        name = os.path.basename(path)
        if name in files:
            raise UsageError(f"two --file arguments share the name {name!r}")
        files[name] = Path(path)
    fields: dict[str, Any] = {
        "import_policy": policy,
        "env_vars": env,
        "files": files,
        "network": args.network or None,
        "packages": getattr(args, "packages", None) or None,
        "memory_mb": args.memory_mb,
        "cpu_seconds": args.cpu_seconds,
        "timeout": args.timeout,
    }
    try:
        chosen = {k: v for k, v in fields.items() if v is not None and v != {}}
        return ExecutionOptions.model_validate({**base.model_dump(), **chosen})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UsageError(f"invalid option: {problems}") from exc


def usage_failure(args: argparse.Namespace, exc: SandboxError) -> int:
    """Print a usage or engine error (as JSON with ``--json``); the exit status for it."""
    if getattr(args, "json", False):
        exc.engine = exc.engine or getattr(args, "engine", None)
        print(json.dumps(error_json_dict(exc)))
    else:
        print(f"sandbox-tool: {type(exc).__name__}: {exc}", file=sys.stderr)
    return EXIT_USAGE
