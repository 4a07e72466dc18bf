"""``sandbox-tool mcp``: serve the ``run_python`` tool over MCP (stdio, or streamable HTTP).

::

    sandbox-tool mcp [--config FILE.json] [--engine NAME] [--memory-mb N] [--cpu-seconds N]
                     [--timeout S] [--imports default|data-science|allow-all]
                     [--allow-import MOD]... [--deny-import MOD]... [--env KEY=VALUE]...
                     [--file PATH]... [--data-dir DIR] [--network] [--stateless]
                     [--idle-timeout S] [--max-sessions N] [--no-images] [--cold]
                     [--http HOST:PORT] [--token-file FILE]

Needs ``pip install 'sandbox-tool[mcp]'``; the SDK is imported only when it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from sandbox_tool.cli.common import EXIT_OK, EXIT_USAGE, add_option_flags, options_from_args
from sandbox_tool.cli.common import usage_failure as _usage_failure
from sandbox_tool.cli.config import Layered, layered
from sandbox_tool.errors import SandboxError, UsageError

__all__ = ["TOKEN_ENV", "parse_address", "register", "resolve"]

#: The environment variable a bearer token may come in (a command line is world-readable).
TOKEN_ENV = "SANDBOX_TOOL_MCP_TOKEN"


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "mcp",
        help="serve the run_python tool over MCP (stdio, or --http)",
        description="Serve the run_python tool to MCP clients: on stdin/stdout (a desktop "
        "client starts it), or on streamable HTTP with --http. Flags may also come from a "
        "JSON config file (--config) whose keys are the flags' names.",
    )
    parser.add_argument(
        "--config", type=Path, help="a JSON object of flags (the command line wins)"
    )
    add_option_flags(parser)
    parser.add_argument(
        "--data-dir", type=Path,
        help="expose every file directly in DIR read-only to the code, by its name (a copy "
        "per session or call)",
    )  # fmt: skip
    parser.add_argument(
        "--stateless", action="store_true",
        help="every call in a fresh interpreter (default: one session per client)",
    )  # fmt: skip
    parser.add_argument(
        "--idle-timeout", type=float, default=600.0,
        help="seconds without a call after which a client's session ends (600)",
    )  # fmt: skip
    parser.add_argument("--max-sessions", type=int, default=8, help="sessions open at once (8)")
    parser.add_argument(
        "--no-images", dest="images", action="store_false",
        help="do not send plots as images (text-only clients)",
    )  # fmt: skip
    parser.add_argument(
        "--cold", action="store_true",
        help="start a fresh interpreter per session or call, without a warm pool",
    )  # fmt: skip
    parser.add_argument(
        "--http", metavar="HOST:PORT",
        help="serve streamable HTTP at http://HOST:PORT/mcp instead of stdio (HOST defaults "
        "to 127.0.0.1; another address needs a bearer token)",
    )  # fmt: skip
    parser.add_argument(
        "--token-file", type=Path,
        help=f"a file holding the bearer token HTTP clients must send (or set {TOKEN_ENV})",
    )  # fmt: skip
    parser.set_defaults(handler=run, layers=layered(parser, skip={"config"}))


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    """The flags the server runs with: the defaults, under the config file, under the
    command line; with ``--data-dir``'s files added to ``--file``'s."""
    layers: Layered = args.layers
    return _with_data_dir(layers.resolve(args, args.config))


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[v6]:PORT``, ``:PORT`` or ``PORT`` (host 127.0.0.1)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    try:
        number = int(port)
        if not 0 <= number <= 65535:
            raise ValueError(port)
    except ValueError:
        raise UsageError(f"--http expects HOST:PORT, got {text!r}") from None
    return (host or "127.0.0.1"), number


def _token(args: argparse.Namespace) -> str | None:
    if args.token_file is not None:
        try:
            return str(args.token_file.read_text(encoding="utf-8")).strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read the token file {args.token_file}: {exc}") from exc
    return os.environ.get(TOKEN_ENV) or None


def _with_data_dir(args: argparse.Namespace) -> argparse.Namespace:
    """The ``--data-dir`` files added to ``--file``'s (each exposed by its name)."""
    if args.data_dir is None:
        return args
    directory: Path = args.data_dir
    if not directory.is_dir():
        raise UsageError(f"--data-dir {directory} is not a directory")
    found = sorted(p for p in directory.iterdir() if p.is_file())
    named = {os.path.basename(f) for f in args.files}
    clash = sorted(named & {p.name for p in found})
    if clash:
        raise UsageError(f"--file and --data-dir both expose {', '.join(clash)}")
    return argparse.Namespace(**{**vars(args), "files": [*args.files, *map(str, found)]})


def run(args: argparse.Namespace) -> int:
    try:
        args = resolve(args)
        from sandbox_tool.mcp_server.server import ServerSettings

        settings = ServerSettings(
            engine=args.engine, options=options_from_args(args), stateless=args.stateless,
            idle_timeout=args.idle_timeout, max_sessions=args.max_sessions,
            images=args.images, warm=not args.cold,
        )  # fmt: skip
        if args.idle_timeout <= 0 or args.max_sessions < 1:
            raise UsageError("--idle-timeout must be positive and --max-sessions at least 1")
        if args.http is None:
            from sandbox_tool.mcp_server.server import serve_stdio

            asyncio.run(serve_stdio(settings))
        else:
            from sandbox_tool.mcp_server.http import serve_http

            host, port = parse_address(args.http)
            asyncio.run(serve_http(settings, host, port, _token(args)))
    except ImportError as exc:
        print(f"sandbox-tool: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SandboxError as exc:
        return _usage_failure(args, exc)
    except KeyboardInterrupt:
        pass
    return EXIT_OK
