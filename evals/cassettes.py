"""The agent suite's recorded model traffic: vcrpy cassettes under ``evals/cassettes/``.

One cassette per task (``<task id>.yaml``), plus ``meta.json``: the model, the server,
the settings, the sandbox engine and when each task was recorded. Replay matches every
request on its method, path and what the model read in its body (:func:`seen`): the
conversation (``messages``, or the Responses API's ``input`` and ``instructions``),
the tool's definition and the ``tool_choice``; the model's name, the sampling
settings and fields a client library adds are not compared. Facts of the machine
that ran the sandbox are masked on both sides (:func:`normalize`): the Python and
library versions the description names, paths of libraries, workspaces and this
repository, temporary directory names, memory addresses, the memory peak seen. A
request that still differs (because a message or the description changed) makes the
task *stale*; :func:`stale_reason` says what differs.

Cassettes hold no secrets (the key, cookie and organisation headers are dropped) and
no paths of the recording machine (:func:`scrub_paths`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from agents.record_cassettes import SECRET_HEADERS  # the headers never written

__all__ = [
    "CASSETTES_DIR",
    "SECRET_HEADERS",
    "find_stale",
    "load_meta",
    "normalize",
    "record_meta",
    "recorded_engine",
    "scrub_paths",
    "seen",
    "stale_reason",
    "vcr_for",
]

CASSETTES_DIR = Path(__file__).resolve().parent / "cassettes"
META = "meta.json"


#: The request fields the model reads; the rest (model name, temperature, the answer
#: cap, ``store``, defaults a client library version adds) is not compared.
SEEN_FIELDS = ("messages", "input", "instructions", "tools", "tool_choice")

#: A version as libraries and Python spell it: 3.11.7, 2.4, 1.26.4rc1, 2.3.0.post1.
_VERSION = r"\d+(?:\.\d+)+(?:[a-z]+\d*|\.(?:post|dev)\d+|\+[\w.]+)?"
#: The lists of importable libraries with their versions (the description, the
#: ImportNotAllowed and ModuleNotFoundError messages): up to the end of the sentence.
_LIBRARY_LIST = re.compile(
    r"((?:Libraries you can import|Libraries installed|Modules you can import|installed): )"
    r"([^;\n]*)"
)
_LIBRARY_VERSION = re.compile(rf"([\w.-]+) {_VERSION}(?=,|\.?$| and \d+ more)")

#: Parts of a request that differ between runs, machines and engines of the same code.
_VOLATILE = [
    (re.compile(rf"\bPython {_VERSION}"), "Python <version>"),
    (re.compile(r"peak seen: \d+ MB"), "peak seen: N MB"),
    # a workspace: /tmp/sandbox-tool-<pid ns>.<pid>-<random>, wherever its parent is
    (re.compile(r"(?:/[^\s'\"/:]+)*/sandbox-tool-[^\s'\"/:]*"), "<workspace>"),
    # a library's file and line (warnings, tracebacks): the install path and the line
    # number change with the machine and the library's version
    (
        re.compile(
            r"(?:/[^\s'\"/:]+)*/(?:site-packages|dist-packages|lib/python\d\.\d+)/"
            r"([^\s'\":]+\.py)(?::\d+|\", line \d+)"
        ),
        r"<lib>/\1:N",
    ),
    # tempfile's names: /tmp/tmpab12_xyz
    (re.compile(r"/tmp\w{8}\b"), "/tmp<random>"),
    (re.compile(r"\b0x[0-9a-fA-F]{6,}\b"), "0x<address>"),
    # a plot's size in the attachments list: fonts and matplotlib's version change it
    (re.compile(r"(\(image/[\w.+-]+), \d+ (?:bytes|KB)\)"), r"\1, <size>)"),
]


def _mask_versions(text: str) -> str:
    def versions(match: re.Match[str]) -> str:
        return match.group(1) + _LIBRARY_VERSION.sub(r"\1 <version>", match.group(2))

    return _LIBRARY_LIST.sub(versions, text)


def local_paths() -> list[str]:
    """This machine's paths a cassette must not hold: the repository's, the home's."""
    return [str(Path(__file__).resolve().parent.parent), str(Path.home())]


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        value = _mask_versions(value)
        for pattern, replacement in _VOLATILE:
            value = pattern.sub(replacement, value)
        return scrub_paths(value)

    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


def normalize(body: bytes | str | None) -> Any:
    """A request body with its volatile parts masked: parsed JSON (text if not JSON)."""
    if not body:
        return None
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        return _clean(json.loads(text))
    except json.JSONDecodeError:
        return _clean(text)


def seen(body: bytes | str | None) -> Any:
    """What the matcher compares: the :data:`SEEN_FIELDS` of the :func:`normalize`-d
    body (a body that is not a JSON object is compared whole)."""
    value = normalize(body)
    if not isinstance(value, dict):
        return value
    return {key: value[key] for key in SEEN_FIELDS if key in value}


def _short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_difference(new: Any, old: Any, where: str = "") -> str:
    if isinstance(new, dict) and isinstance(old, dict):
        for key in sorted(new.keys() | old.keys()):
            if new.get(key) != old.get(key):
                return _first_difference(new.get(key), old.get(key), f"{where}.{key}")
    if isinstance(new, list) and isinstance(old, list):
        for i, (a, b) in enumerate(zip(new, old, strict=False)):
            if a != b:
                return _first_difference(a, b, f"{where}[{i}]")
        return f"{where}: {len(new)} items sent, {len(old)} recorded"
    if isinstance(new, str) and isinstance(old, str):
        diffs = (i for i, (a, b) in enumerate(zip(new, old, strict=False)) if a != b)
        i = next(diffs, min(len(new), len(old)))
        start = max(0, i - 40)
        return (
            f"{where} differs at character {i}: sent {_short(new[start : i + 80])!r}, "
            f"recorded {_short(old[start : i + 80])!r}"
        )
    return f"{where}: sent {_short(new)}, recorded {_short(old)}"


def stale_reason(sent: bytes | str | None, recorded: bytes | str | None) -> str:
    """What differs between a request sent now and the one recorded at that point."""
    new, old = seen(sent), seen(recorded)
    if isinstance(new, dict) and isinstance(old, dict) and new.get("tools") != old.get("tools"):
        return "the tool's definition (description or schema) changed: " + _first_difference(
            new.get("tools"), old.get("tools"), "tools"
        )
    return "the request changed: " + _first_difference(new, old).lstrip(".")


def _body_matcher(r1: Any, r2: Any) -> None:
    if seen(r1.body) != seen(r2.body):
        raise AssertionError("the bodies differ")


def vcr_for(record_mode: str, library: Path, *, keep: Callable[[Any], Any] | None = None) -> Any:
    """A ``vcr.VCR`` for the agent suite (``none`` to replay, ``all`` to record);
    ``keep`` filters the requests written (``before_record_request``)."""
    import vcr

    recorder = vcr.VCR(
        cassette_library_dir=str(library),
        record_mode=record_mode,
        match_on=["method", "path", "eval_body"],
        filter_headers=SECRET_HEADERS,
        decode_compressed_response=True,
        before_record_request=keep,
    )
    recorder.register_matcher("eval_body", _body_matcher)
    return recorder


def find_stale(exc: BaseException, tape: Any) -> str | None:
    """Why a replay failed because its requests no longer match the cassette, or
    ``None`` when ``exc`` has another cause. Looks through the exception's chain (the
    OpenAI client wraps the transport's errors)."""
    from vcr.errors import CannotOverwriteExistingCassetteException

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, CannotOverwriteExistingCassetteException):
            played = tape.play_count
            if played >= len(tape.requests):
                return "the run made more model calls than were recorded"
            return stale_reason(current.failed_request.body, tape.requests[played].body)
        current = current.__cause__ or current.__context__
    return None


def scrub_paths(text: str, paths: list[str] | None = None) -> str:
    """``text`` with these absolute paths (default: :func:`local_paths`) as ``<local>``;
    the matcher masks them too, so a request that held one still matches."""
    for path in sorted({p for p in paths or local_paths() if len(p) > 1}, key=len, reverse=True):
        text = text.replace(path, "<local>")
    return text


def load_meta(library: Path = CASSETTES_DIR) -> dict[str, Any]:
    """``{"server", "settings", "engine", "recorded": {task id: {"model", "date",
    "engine"}}}``; ``engine``: the sandbox engine of the last recording."""
    path = library / META
    if not path.is_file():
        return {"server": None, "settings": {}, "engine": None, "recorded": {}}
    meta: dict[str, Any] = json.loads(path.read_text())
    return meta


def recorded_engine(library: Path = CASSETTES_DIR) -> str | None:
    """The engine the cassettes were recorded on (replay uses it by default: a tool
    message can differ between engines, e.g. how a memory hog is stopped)."""
    engine = load_meta(library).get("engine")
    return str(engine) if engine else None


def record_meta(
    library: Path,
    task_id: str,
    *,
    model: str,
    server: str,
    settings: dict[str, Any],
    engine: str,
) -> None:
    """Note in ``meta.json`` that ``task_id`` was just recorded with ``model`` on
    ``engine``."""
    meta = load_meta(library)
    meta.update(server=server, settings=settings, engine=engine)
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    meta.setdefault("recorded", {})[task_id] = {"model": model, "date": date, "engine": engine}
    meta["recorded"] = dict(sorted(meta["recorded"].items()))
    (library / META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
