"""The committed agent cassettes: each a task's, recorded from a named model on a known
date, small, without secrets or this machine's paths."""

from __future__ import annotations

import json

import pytest
import yaml

from evals.cassettes import CASSETTES_DIR, SECRET_HEADERS, local_paths
from evals.tasks import load_tasks

TASK_IDS = [task.id for task in load_tasks()]
RECORDED = sorted(p.stem for p in CASSETTES_DIR.glob("*.yaml"))


def test_each_cassette_is_a_task_recorded_with_a_named_model_and_date() -> None:
    # a task without a cassette replays as stale ("no cassette"): make record-evals
    meta = json.loads((CASSETTES_DIR / "meta.json").read_text())
    assert RECORDED and set(RECORDED) <= set(TASK_IDS)
    for task_id in RECORDED:
        entry = meta["recorded"][task_id]
        assert entry["model"] and len(entry["date"]) == len("2026-01-01")
        assert entry["engine"] == meta["engine"]  # replay runs on it by default


@pytest.mark.parametrize("task_id", RECORDED)
def test_cassette_holds_no_secret_and_no_local_path(task_id: str) -> None:
    text = (CASSETTES_DIR / f"{task_id}.yaml").read_text()
    assert len(text) < 300_000
    assert "Bearer" not in text and "sk-" not in text
    for local in local_paths():
        assert local not in text
    interactions = yaml.safe_load(text)["interactions"]
    assert interactions, "a recording holds at least the first model call"
    for interaction in interactions:
        headers = {k.lower() for k in interaction["request"]["headers"]}
        assert not headers & set(SECRET_HEADERS)
        assert interaction["request"]["uri"].startswith("http://127.0.0.1:")
