"""The ``sandbox-tool`` command (also ``python -m sandbox_tool``).

::

    sandbox-tool run [FILE|-] [--engine NAME] [--memory-mb N] [--cpu-seconds N] [--timeout S]
                     [--imports default|data-science|allow-all] [--allow-import MOD]...
                     [--deny-import MOD]... [--env KEY=VALUE]... [--inputs JSON]
                     [--file PATH]... [--network] [--out DIR] [--json]
    sandbox-tool engines [--json]

Exit status: 0 success, 1 the code failed or hit a limit, 2 a usage or engine error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sandbox_tool.engines import ENGINES, probe_all
from sandbox_tool.errors import ExecutionFailed, SandboxError, UsageError
from sandbox_tool.options import ExecutionOptions
from sandbox_tool.policies import ImportPolicy
from sandbox_tool.result import Artifact, ExecutionResult, error_json_dict, write_artifacts
from sandbox_tool.sandbox import PythonSandbox

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

_IMPORT_BASES = {
    "default": ImportPolicy.default,
    "data-science": ImportPolicy.data_science_whitelist,
    "allow-all": ImportPolicy.allow_all,
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # exit 2 with the usage, as argparse does
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sandbox-tool", description="Run Python code in a sandbox.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run a file (or - for stdin) in a sandbox")
    run.add_argument("file", nargs="?", default="-", help="code to run; - (default) reads stdin")
    run.add_argument("--engine", default="auto", help="engine name, or auto (the strongest here)")
    run.add_argument("--memory-mb", type=int, help="memory limit in MiB")
    run.add_argument("--cpu-seconds", type=float, help="CPU-time limit in seconds")
    run.add_argument("--timeout", type=float, help="wall-clock limit in seconds")
    run.add_argument(
        "--imports", choices=sorted(_IMPORT_BASES), default="default", help="base import policy"
    )
    run.add_argument("--allow-import", action="append", default=[], metavar="MOD")
    run.add_argument("--deny-import", action="append", default=[], metavar="MOD")
    run.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    run.add_argument("--inputs", help="JSON value given to the code as `inputs`")
    run.add_argument(
        "--file",
        dest="files",
        action="append",
        default=[],
        metavar="PATH",
        help="expose a host file read-only in the code's work dir",
    )
    run.add_argument("--network", action="store_true", help="let the code use the network")
    run.add_argument("--out", type=Path, help="write the artifacts to this directory")
    run.add_argument("--json", action="store_true", help="print one JSON object")

    engines = sub.add_parser("engines", help="list the engines and whether they run here")
    engines.add_argument("--json", action="store_true")
    return parser


def _options(args: argparse.Namespace) -> ExecutionOptions:
    policy = _IMPORT_BASES[args.imports]()
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
        "network": args.network,
        "memory_mb": args.memory_mb,
        "cpu_seconds": args.cpu_seconds,
        "timeout": args.timeout,
    }
    try:
        return ExecutionOptions(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UsageError(f"invalid option: {problems}") from exc


def _read_code(file: str) -> str:
    try:
        if file == "-":
            return sys.stdin.read()
        return Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the code from {file}: {exc}") from exc


def _write_artifacts(out: Path, artifacts: list[Artifact]) -> dict[str, str]:
    try:
        written = write_artifacts(out, artifacts)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot write the artifacts to {out}: {exc}") from exc
    return {name: str(path) for name, path in written.items()}


def _print_human(payload: dict[str, Any]) -> None:
    if payload["stdout"]:
        sys.stdout.write(
            payload["stdout"] if payload["stdout"].endswith("\n") else payload["stdout"] + "\n"
        )
    if payload["stderr"]:
        sys.stderr.write(
            payload["stderr"] if payload["stderr"].endswith("\n") else payload["stderr"] + "\n"
        )
    err = payload["error"]
    if err:
        print(f"error [{err['type']}]: {err['message']}", file=sys.stderr)
        if err.get("traceback"):
            print(err["traceback"], file=sys.stderr)
    elif payload["result"] is not None:
        print(f"result: {json.dumps(payload['result'])}")
    for art in payload["artifacts"]:
        where = f" -> {art['path']}" if "path" in art else ""
        print(f"artifact: {art['name']} ({art['mime_type']}, {art['size']} bytes){where}")
    print(f"[{payload['engine']}, {payload['duration_ms']:.0f} ms]", file=sys.stderr)


def _cmd_run(args: argparse.Namespace) -> int:
    try:
        options = _options(args)
        code = _read_code(args.file)
        inputs = json.loads(args.inputs) if args.inputs is not None else None
    except json.JSONDecodeError as exc:
        return _usage_failure(args, UsageError(f"--inputs is not valid JSON: {exc}"))
    except SandboxError as exc:
        return _usage_failure(args, exc)

    status = EXIT_OK
    try:
        # one execution: a warm template would cost more to start than it saves
        sandbox = PythonSandbox(args.engine, warm=False)
        result: ExecutionResult | SandboxError = sandbox.execute_sync(code, inputs, options)
    except ExecutionFailed as exc:
        result, status = exc, EXIT_FAILED
    except SandboxError as exc:
        return _usage_failure(args, exc)

    paths = _write_artifacts(args.out, result.artifacts) if args.out else None
    if isinstance(result, ExecutionResult):
        payload = result.to_json_dict(artifact_paths=paths)
    else:
        payload = error_json_dict(result, artifact_paths=paths)
    if args.json:
        print(json.dumps(payload))
    else:
        _print_human(payload)
    return status


def _usage_failure(args: argparse.Namespace, exc: SandboxError) -> int:
    if getattr(args, "json", False):
        exc.engine = exc.engine or args.engine
        print(json.dumps(error_json_dict(exc)))
    else:
        print(f"sandbox-tool: {type(exc).__name__}: {exc}", file=sys.stderr)
    return EXIT_USAGE


def _cmd_engines(args: argparse.Namespace) -> int:
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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        return _cmd_run(args)
    return _cmd_engines(args)


if __name__ == "__main__":
    sys.exit(main())
