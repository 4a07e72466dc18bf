"""The rules replay matches a request by: what the model read, with the facts of the
machine that ran the sandbox masked; and the engine a replay runs on by default."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from evals.agent_cli import replay_engine
from evals.cassettes import load_meta, record_meta, seen, stale_reason, vcr_for

DESCRIPTION = (
    "Run Python {py} code in a sandbox and get back its printed output.\n"
    "Libraries you can import: matplotlib {mpl}, numpy 2.4.6, pandas {pd}.\n"
    "Limits per call: {timeout} s wall clock, 30 s CPU, 1024 MB memory."
)


def _body(
    *,
    tool_text: str = "The code ran successfully.\nResult (int):\n17",
    py: str = "3.11.7",
    mpl: str = "3.11.2",
    pd: str = "3.1.1",
    timeout: int = 30,
    **extra: Any,
) -> str:
    body: dict[str, Any] = {
        "model": "qwen2.5-coder-0.5b-instruct",
        "messages": [
            {"role": "system", "content": "You are a careful data analyst."},
            {"role": "user", "content": "How many units?"},
            {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1"}]},
            {"role": "tool", "tool_call_id": "call_1", "content": tool_text},
        ],
        "temperature": 0.7,
        "tool_choice": {"type": "function", "function": {"name": "run_python"}},
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "run_python",
                    "description": DESCRIPTION.format(py=py, mpl=mpl, pd=pd, timeout=timeout),
                },
            }
        ],
        "max_tokens": 512,
    }
    body.update(extra)
    return json.dumps(body)


def _matches(a: str, b: str) -> bool:
    return bool(seen(a) == seen(b))


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(_body(py="3.12.1"), id="python-version"),
        pytest.param(_body(mpl="3.10.0rc1", pd="2.2.3.post1"), id="library-versions"),
        pytest.param(_body(model="gpt-4o-mini"), id="model-name"),
        pytest.param(_body(temperature=0.2, max_tokens=128, stream=False), id="sampling-settings"),
        pytest.param(_body(parallel_tool_calls=True, n=1), id="fields-a-client-adds"),
    ],
)
def test_facts_of_the_machine_or_the_client_do_not_make_a_request_differ(other: str) -> None:
    assert _matches(_body(), other)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(
            "FileNotFoundError: '/tmp/sandbox-tool-4026531836.812-k2j1x9/work/x.csv'",
            "FileNotFoundError: '/var/tmp/sandbox-tool-0.77-abcd12/work/x.csv'",
            id="workspace-path",
        ),
        pytest.param(
            "stderr:\n/root/.venv/lib/python3.11/site-packages/pandas/core/frame.py:4112: "
            "FutureWarning: use .loc",
            "stderr:\n/usr/lib/python3/dist-packages/pandas/core/frame.py:4307: "
            "FutureWarning: use .loc",
            id="library-file-and-line",
        ),
        pytest.param(
            'File "/opt/py/lib/python3.11/json/decoder.py", line 337, in decode',
            'File "/usr/local/lib/python3.11/json/decoder.py", line 340, in decode',
            id="stdlib-traceback-frame",
        ),
        pytest.param("wrote /tmp/tmpab12_xyz/out.csv", "wrote /tmp/tmpQQ9k3mn0/out.csv", id="tmp"),
        pytest.param(
            "<Figure object at 0x7f3a2c1b9d90>", "<Figure object at 0x7fe811aa0450>", id="address"
        ),
        pytest.param(
            "MemoryLimitExceeded: more than the 1024 MB memory limit (peak seen: 1490 MB)",
            "MemoryLimitExceeded: more than the 1024 MB memory limit (peak seen: 1102 MB)",
            id="memory-peak",
        ),
        pytest.param(
            "Attachments:\n- figure_1.png (image/png, 23 KB): a plot (not shown to you)",
            "Attachments:\n- figure_1.png (image/png, 980 bytes): a plot (not shown to you)",
            id="plot-size",
        ),
        pytest.param(
            "Hint: installed: matplotlib 3.11.2, numpy 2.4.6 and 3 more.",
            "Hint: installed: matplotlib 3.9.0, numpy 2.1.0 and 3 more.",
            id="versions-in-a-message",
        ),
    ],
)
def test_volatile_parts_of_a_tool_message_are_masked(first: str, second: str) -> None:
    assert _matches(_body(tool_text=first), _body(tool_text=second))


@pytest.mark.parametrize(
    ("other", "said"),
    [
        pytest.param(_body(tool_text="The code ran successfully.\nResult (int):\n18"), "18",
                     id="tool-result"),
        pytest.param(_body(tool_text="The code failed.\nKeyError: 'price'"), "failed",
                     id="tool-message"),
        pytest.param(_body(timeout=10), "10 s wall clock", id="limit-in-description"),
        pytest.param(_body(tool_text="- out.csv (text/csv, 1 KB): a file it wrote"), "out.csv",
                     id="file-written"),
        pytest.param(_body(tool_choice="auto"), "tool_choice", id="tool-choice"),
    ],
)  # fmt: skip
def test_what_the_model_reads_still_makes_a_request_differ(other: str, said: str) -> None:
    assert not _matches(_body(), other)
    assert said in stale_reason(other, _body())


def test_a_changed_library_list_is_a_changed_description() -> None:
    # a version is a fact of the machine, but a library the model can no longer use is not
    other = _body().replace("numpy 2.4.6, ", "")
    assert not _matches(_body(), other)
    assert stale_reason(other, _body()).startswith("the tool's definition")


def test_the_replay_matcher_uses_these_rules(tmp_path: Path) -> None:
    recorder = vcr_for("none", tmp_path)
    matcher = recorder.matchers["eval_body"]
    matcher(SimpleNamespace(body=_body()), SimpleNamespace(body=_body(py="3.10.4")))
    with pytest.raises(AssertionError):
        matcher(SimpleNamespace(body=_body()), SimpleNamespace(body=_body(timeout=10)))


def test_recording_notes_the_engine_and_replay_uses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert replay_engine(None, "replay", tmp_path) == "auto"  # nothing recorded yet
    record_meta(tmp_path, "t1", model="m", server="http://127.0.0.1:8080/v1", settings={},
                engine="gvisor")  # fmt: skip
    meta = load_meta(tmp_path)
    assert meta["engine"] == "gvisor" and meta["recorded"]["t1"]["engine"] == "gvisor"

    class Probe:
        available = True
        reason = ""

        @classmethod
        def probe(cls, interpreter: str | None = None) -> Any:
            return cls

    monkeypatch.setattr("sandbox_tool.engines.ENGINES", {"gvisor": Probe})
    assert replay_engine(None, "replay", tmp_path) == "gvisor"
    assert replay_engine("process", "replay", tmp_path) == "process"  # asked for: kept
    assert replay_engine(None, "record", tmp_path) == "auto"  # recording: the strongest

    Probe.available, Probe.reason = False, "runsc is not installed"
    assert replay_engine(None, "replay", tmp_path) == "auto"
    assert "recorded on the gvisor engine, which cannot run here" in capsys.readouterr().err
