"""The eval harness's command line: snippets, agent, compare, data.

    python -m evals snippets [--engine NAME] [--only PATTERN] [--out DIR]
    python -m evals agent [--mode replay|record|live] [--model M] [--base-url URL]
                          [--tasks PATTERN] [--engine NAME] [--out DIR]
    python -m evals compare OLD NEW
    python -m evals data [--check]

``snippets`` exits 1 when a snippet's outcome class is wrong (a regression), not on
message facts; ``agent`` exits 0 whatever the score, 1 only when a task crashed the
harness. Both write results.json, report.md and chart.png to ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main"]

DEFAULT_OUT = Path("eval-results")
#: evals/snippets, without importing the suite (and pydantic, yaml) for --help
SNIPPETS_DIR = Path(__file__).resolve().parent / "snippets"


def _snippets(args: argparse.Namespace) -> int:
    from evals.progress import Progress
    from evals.report import new_results, write_results
    from evals.snippet_suite import load_snippets, run_snippets_sync, summarize_snippets

    files = load_snippets(args.dir, pattern=args.only)
    total = sum(len(f.snippets) for f in files)
    if not total:
        print(f"no snippet matches {args.only!r}", file=sys.stderr)
        return 2
    progress = Progress(total, "snippets")
    engine, results = run_snippets_sync(files, engine=args.engine, progress=progress)
    progress.close()
    summary = summarize_snippets(results)
    record = new_results(engine)
    record["snippets"] = {
        "engine": engine,
        "summary": summary,
        "results": [r.model_dump() for r in results],
    }
    paths = write_results(args.out, record)
    overall = summary["overall"]
    print(
        f"snippets on {engine}: {overall['snippets']} run, outcome class "
        f"{100 * overall['outcome_accuracy']:.0f}%, message facts "
        f"{100 * overall['fact_accuracy']:.0f}%, median {overall['median_seconds']:.2f} s"
    )
    print(f"report: {paths[1]}")
    if summary["regressions"]:
        print("REGRESSIONS (wrong outcome class):", file=sys.stderr)
        for r in results:
            if not r.outcome_correct:
                print(
                    f"  {r.category}/{r.id}: expected {r.expected}, got {r.actual}", file=sys.stderr
                )
        return 1
    return 0


def _compare(args: argparse.Namespace) -> int:
    from evals.compare import compare_dirs

    try:
        lines = compare_dirs(args.old, args.new)
    except (FileNotFoundError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


def _data(args: argparse.Namespace) -> int:
    from evals.make_data import check, write

    if args.check:
        stale = check()
        if stale:
            print(f"differ from the generator: {', '.join(stale)}; run: python -m evals data")
            return 1
        print("the data files are the generated ones")
        return 0
    for path in write():
        print(f"wrote {path.name}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m evals", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("snippets", help="run the snippet suite through PythonTool")
    s.add_argument("--engine", default="auto", help="sandbox engine (default: the strongest)")
    s.add_argument("--only", default="*", help="fnmatch pattern on CATEGORY/ID")
    s.add_argument(
        "--dir", type=Path, default=SNIPPETS_DIR, help="the snippet files (default: evals/snippets)"
    )
    s.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results directory")
    s.set_defaults(run=_snippets)

    a = sub.add_parser("agent", help="run the agent task suite (replayed by default)")
    a.add_argument("--mode", choices=["replay", "record", "live"], default="replay")
    a.add_argument(
        "--model", default=None, help="model name (record/live; default: the recorded one)"
    )
    a.add_argument("--base-url", default=None, help="OpenAI-compatible server (record/live)")
    a.add_argument("--tasks", default="*", help="fnmatch pattern on task ids")
    a.add_argument(
        "--responses-base-url",
        default=None,
        help="a Responses API server (record/live; default: a local shim over --base-url)",
    )
    a.add_argument(
        "--engine",
        default=None,
        help="sandbox engine (default: in replay, the one the cassettes were recorded on; "
        "else the strongest)",
    )
    a.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results directory")
    a.set_defaults(run=_agent)

    c = sub.add_parser("compare", help="what changed between two results directories")
    c.add_argument("old", type=Path)
    c.add_argument("new", type=Path)
    c.set_defaults(run=_compare)

    d = sub.add_parser("data", help="regenerate the tasks' data files deterministically")
    d.add_argument("--check", action="store_true", help="only check the committed files")
    d.set_defaults(run=_data)
    return p


def _agent(args: argparse.Namespace) -> int:
    from evals.agent_cli import run_agent_command

    return run_agent_command(args)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.run(args))
