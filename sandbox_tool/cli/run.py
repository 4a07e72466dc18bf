"""``sandbox-tool run [FILE|-]``: one execution from the command line. The code's output
is printed as it comes (after the run with ``--json``, inside the one JSON object).

::

    sandbox-tool run [FILE|-] [--engine NAME] [--memory-mb N] [--cpu-seconds N] [--timeout S]
                     [--imports default|data-science|allow-all] [--allow-import MOD]...
                     [--deny-import MOD]... [--env KEY=VALUE]... [--inputs JSON]
                     [--file PATH]... [--network] [--out DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sandbox_tool.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    add_option_flags,
    options_from_args,
    usage_failure,
)
from sandbox_tool.errors import ExecutionFailed, SandboxError, UsageError
from sandbox_tool.result import Artifact, ExecutionResult, error_json_dict, write_artifacts
from sandbox_tool.sandbox import PythonSandbox
from sandbox_tool.streaming import Output

__all__ = ["register"]


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "run", help="run a file (or - for stdin) in a sandbox"
    )
    parser.add_argument("file", nargs="?", default="-", help="code to run; - (default) reads stdin")
    add_option_flags(parser)
    parser.add_argument("--inputs", help="JSON value given to the code as `inputs`")
    parser.add_argument("--out", type=Path, help="write the artifacts to this directory")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=run)


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


def _echo(event: Output) -> None:
    """The code's output on ours, as it prints it."""
    stream = sys.stdout if event.stream == "stdout" else sys.stderr
    stream.write(event.text)
    stream.flush()


def _print_human(payload: dict[str, Any]) -> None:
    """The outcome, after the code's output (which :func:`_echo` printed as it came)."""
    for stream, text in ((sys.stdout, payload["stdout"]), (sys.stderr, payload["stderr"])):
        if text and not text.endswith("\n"):
            stream.write("\n")  # the outcome starts on a line of its own
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


def run(args: argparse.Namespace) -> int:
    try:
        options = options_from_args(args)
        code = _read_code(args.file)
        inputs = json.loads(args.inputs) if args.inputs is not None else None
    except json.JSONDecodeError as exc:
        return usage_failure(args, UsageError(f"--inputs is not valid JSON: {exc}"))
    except SandboxError as exc:
        return usage_failure(args, exc)

    status = EXIT_OK
    try:
        # one execution: a warm template would cost more to start than it saves
        sandbox = PythonSandbox(args.engine, warm=False)
        if options.packages:  # a build shows its progress on stderr
            from sandbox_tool.environments.progress import for_stream

            sandbox.environments.progress = for_stream(sys.stderr)
        result: ExecutionResult | SandboxError = sandbox.execute_sync(
            code, inputs, options, on_output=None if args.json else _echo
        )
    except ExecutionFailed as exc:
        result, status = exc, EXIT_FAILED
    except SandboxError as exc:
        return usage_failure(args, exc)

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
