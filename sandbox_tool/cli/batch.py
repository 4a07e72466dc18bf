"""``sandbox-tool batch``: many programs from a JSONL file, results to a JSONL file.

::

    sandbox-tool batch INPUT.jsonl -o OUTPUT.jsonl [--concurrency N] [--engine NAME]
                       [--resume | --overwrite] [--artifacts DIR] [--progress-every N]
                       [--scope execution|batch] [--preload MODULES]
                       [--ray ADDRESS [--chunk-size N]] [option flags of run]
    sandbox-tool batch --problems PROBLEMS.jsonl --samples SAMPLES.jsonl -o OUT.jsonl
                       [--k 1,10,100] [--timeout 3] ...

Input lines: ``{"id": ..., "code": ..., "inputs": ..., "files": {...}, "options": {...}}``;
output lines: ``id`` and the fields of ``run --json``. With ``--problems`` and
``--samples`` (HumanEval format) each sample gets the reference harness's verdict and
pass@k is printed as JSON. Exit status: 0 every line ran (whatever the code did), 1
some input lines were bad and skipped, 2 a usage or engine error, 128+N stopped by
signal N (SIGINT 130, SIGTERM 143): the output then holds only complete lines, and
``--resume`` goes on from there. See docs/batch.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from sandbox_tool.batch import humaneval
from sandbox_tool.batch.items import BatchItem, BatchResult
from sandbox_tool.batch.jobs import (
    EvalLines,
    Interrupted,
    OpenResults,
    eval_counts,
    eval_key,
    plain_line,
    run_job,
    stop_on_signals,
)
from sandbox_tool.batch.jsonl import OutputFile, count_lines, id_key, read_items
from sandbox_tool.batch.progress import Progress
from sandbox_tool.batch.scope import SCOPES, check_scope
from sandbox_tool.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    add_option_flags,
    options_from_args,
    usage_failure,
)
from sandbox_tool.engines.runner_engine import RunnerEngine
from sandbox_tool.errors import SandboxError, UsageError
from sandbox_tool.options import ExecutionOptions
from sandbox_tool.sandbox import PythonSandbox

__all__ = ["register"]

Passed = Callable[[BatchResult], bool]


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "batch", help="run the programs of a JSONL file (or check HumanEval samples)"
    )
    parser.add_argument("input", nargs="?", help="JSONL of items (- for stdin)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="JSONL of results")
    parser.add_argument("--concurrency", type=int, help="items at once (default: the engine's)")
    parser.add_argument("--resume", action="store_true", help="skip ids already in the output")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.add_argument("--artifacts", type=Path, metavar="DIR", help="write artifacts here")
    parser.add_argument(
        "--progress-every", type=int, default=100, metavar="N",
        help="without a terminal, a progress line every N items (default 100)",
    )  # fmt: skip
    parser.add_argument("--problems", type=Path, help="HumanEval-format problems (.jsonl[.gz])")
    parser.add_argument("--samples", type=Path, help="samples: task_id and completion per line")
    parser.add_argument("--k", default="1,10,100", help="pass@k for these k (default 1,10,100)")
    parser.add_argument("--ray", metavar="ADDRESS", help="run on this Ray cluster ('auto')")
    parser.add_argument("--chunk-size", type=int, default=16, help="items per Ray task")
    parser.add_argument(
        "--scope", choices=SCOPES, default="execution",
        help="execution: a sandbox per item (default); batch: the items share a sandbox per "
        "concurrent slot, each in a fresh process with a fresh work dir (docs/batch.md)",
    )  # fmt: skip
    parser.add_argument(
        "--preload", metavar="MODULES",
        help="modules the warm template imports once, comma-separated ('' for none; default: "
        "the data-science stack, or with --problems the few the checks import)",
    )  # fmt: skip
    add_option_flags(parser)
    parser.set_defaults(handler=run)


def _ks(text: str) -> list[int]:
    try:
        ks = [int(k) for k in text.split(",") if k.strip()]
    except ValueError:
        ks = []
    if not ks or min(ks) < 1:
        raise UsageError(f"--k expects positive integers separated by commas, got {text!r}")
    return ks


class _BadLines:
    """Reports each bad input line on stderr and counts them."""

    def __init__(self, source: str, progress: Progress) -> None:
        self.source = source
        self.progress = progress
        self.count = 0

    def __call__(self, number: int, reason: str) -> None:
        self.count += 1
        self.progress.skip()
        print(f"sandbox-tool batch: {self.source}, line {number}: {reason}; skipped",
              file=sys.stderr)  # fmt: skip


def _lines(name: str) -> Iterable[str]:
    if name == "-":
        return sys.stdin
    try:
        return humaneval.open_text(Path(name))
    except OSError as exc:
        raise UsageError(f"cannot read {name}: {exc}") from exc


def _opener(args: argparse.Namespace, options: ExecutionOptions) -> tuple[OpenResults, Any]:
    """How the items run (this machine's sandbox or a Ray cluster) and what to close."""
    if args.ray:
        from sandbox_tool.batch.ray_executor import RayExecutor

        if args.scope != "execution" or args.preload is not None:
            raise UsageError("--scope and --preload do not apply to --ray runs (yet)")
        executor = RayExecutor(args.ray, chunk_size=args.chunk_size)
        return (
            lambda items: executor.map(
                items, engine=args.engine, options=options, concurrency=args.concurrency
            ),
            executor,
        )
    sandbox = PythonSandbox(args.engine, options=options)
    if args.problems and sandbox.engine.security_level < 7:
        print(
            f"sandbox-tool batch: note: the {sandbox.engine_name} engine does not isolate the "
            "code, and the evaluation preset lets it import and call anything: prefer "
            "--engine process",
            file=sys.stderr,
        )
    preload = args.preload
    if preload is None and args.problems:
        preload = ",".join(humaneval.EVALUATION_PRELOAD)
    if preload is not None and isinstance(sandbox.engine, RunnerEngine):
        sandbox.engine.preload = [m.strip() for m in preload.split(",") if m.strip()]
    scope = check_scope(args.scope, sandbox.engine)
    return (lambda items: sandbox.map(items, args.concurrency, scope=scope)), sandbox


def _plan(
    args: argparse.Namespace, evaluating: bool, out: OutputFile, bad: _BadLines
) -> tuple[Iterable[BatchItem], Callable[[BatchResult], dict[str, Any]], Passed]:
    """The items to run (lazily), the output line of a result, and whether it passed."""
    if not evaluating:
        items = read_items(_lines(bad.source), bad, out.done)
        return items, plain_line(args.artifacts), lambda res: res.ok
    try:
        problems = humaneval.read_problems(args.problems)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the problems: {exc}") from exc
    lines = EvalLines()
    samples = humaneval.read_samples(_lines(bad.source), problems, bad)
    return (
        lines.items(samples, out.done),
        lines.line,
        lambda res: humaneval.verdict(res) == "passed",
    )


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except SandboxError as exc:
        return usage_failure(args, exc)


async def _run(args: argparse.Namespace) -> int:
    evaluating = args.problems is not None or args.samples is not None
    if (evaluating and not (args.problems and args.samples)) or evaluating == bool(args.input):
        raise UsageError(
            "give either INPUT, or both --problems and --samples (functional correctness)"
        )
    if args.concurrency is not None and args.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    base = ExecutionOptions.for_evaluation(args.timeout or 3.0) if evaluating else None
    options = options_from_args(args, base)
    ks = _ks(args.k) if evaluating else []
    key: Callable[[dict[str, Any]], str] = (
        eval_key if evaluating else (lambda line: id_key(line["id"]))
    )
    out = OutputFile.open(args.output, resume=args.resume, overwrite=args.overwrite, key=key)
    source = str(args.samples if evaluating else args.input)
    if out.repaired:
        print("sandbox-tool batch: removed a partial last line of the output", file=sys.stderr)
    total = None if source == "-" else max(count_lines(Path(source)) - len(out.done), 0)
    progress = Progress(
        total, sys.stderr, tty=sys.stderr.isatty(), every=args.progress_every,
        label="sandbox-tool batch",
    )  # fmt: skip
    bad = _BadLines(source, progress)
    items, line_of, passed = _plan(args, evaluating, out, bad)
    flag = Interrupted()
    open_results, closer = _opener(args, options)
    try:
        with stop_on_signals(flag):
            try:
                await run_job(items, open_results, out, line_of, progress, passed)
            except asyncio.CancelledError:
                if flag.signal is None:
                    raise
    finally:
        out.close()
        await closer.aclose()
    return _finish(args, out, progress, flag, ks, bad.count)


def _finish(
    args: argparse.Namespace,
    out: OutputFile,
    progress: Progress,
    flag: Interrupted,
    ks: list[int],
    skipped: int,
) -> int:
    notes = [f"{len(out.done)} already in the output"] if out.done else []
    if skipped:
        notes.append(f"{skipped} bad input lines skipped")
    if flag.signal is not None:
        notes.append(f"stopped by {flag.signal.name}: run again with --resume to go on")
    progress.finish("; ".join(notes))
    if args.problems:
        counts = eval_counts(args.output)
        summary: dict[str, Any] = humaneval.pass_at_k(counts.values(), ks)
        summary["problems"] = len(counts)
        summary["samples"] = sum(n for n, _ in counts.values())
        summary["passed"] = sum(c for _, c in counts.values())
        print(json.dumps(summary))
    if flag.signal is not None:
        return 128 + int(flag.signal)
    return EXIT_FAILED if skipped else EXIT_OK
