"""``sandbox-tool engines [--json]``: every engine, whether it runs here and why."""

from __future__ import annotations

import argparse
import json
from typing import Any

from sandbox_tool.cli.common import EXIT_OK
from sandbox_tool.engines import ENGINES, probe_all

__all__ = ["register"]


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "engines", help="list the engines and whether they run here"
    )
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    infos = probe_all()
    if args.json:
        print(json.dumps([i.to_dict() for i in infos]))
        return EXIT_OK
    chosen = next((i.name for i in infos if i.available), None)
    for info in infos:
        mark = "*" if info.name == chosen else " "
        state = "available" if info.available else "unavailable"
        print(f"{mark} {info.name:<12} level {info.security_level}  {state}: {info.reason}")
        print(f"    {ENGINES[info.name].summary}")
    print("(* = chosen by --engine auto and create_default_sandbox())")
    return EXIT_OK
