"""``python -m evals compare OLD NEW``: what changed between two results directories.

How a change to a tool message is judged: run the suites before and after (``--out``),
then compare. Prints snippets whose outcome class became wrong or right, facts a
message gained or lost, agent tasks that started or stopped passing (or went stale),
and the deltas of every summary metric, overall and per category.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evals.report import load_results

__all__ = ["compare", "compare_dirs"]


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _metric_deltas(label: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    lines = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) or isinstance(b, dict) or a == b:
            continue
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            lines.append(f"  {label} {key}: {_fmt(a)} -> {_fmt(b)} ({b - a:+.4g})")
        else:
            lines.append(f"  {label} {key}: {_fmt(a)} -> {_fmt(b)}")
    return lines


def _summary_deltas(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    lines = _metric_deltas("overall", old["overall"], new["overall"])
    before, after = old["categories"], new["categories"]
    for cat in sorted(before.keys() | after.keys()):
        if cat in before and cat in after:
            lines += _metric_deltas(cat, before[cat], after[cat])
        else:
            lines.append(f"  category {cat}: only in the {'old' if cat in before else 'new'} run")
    return lines


def _snippets(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    before = {f"{r['category']}/{r['id']}": r for r in old["results"]}
    after = {f"{r['category']}/{r['id']}": r for r in new["results"]}
    lines = ["Snippets:"]
    for key in sorted(before.keys() & after.keys()):
        a, b = before[key], after[key]
        if a["outcome_correct"] and not b["outcome_correct"]:
            lines.append(f"  REGRESSED {key}: expected {b['expected']}, got {b['actual']}")
        elif b["outcome_correct"] and not a["outcome_correct"]:
            lines.append(f"  fixed {key}: now {b['actual']}")
        lost = sorted(set(b["facts_missing"]) - set(a["facts_missing"]))
        gained = sorted(set(a["facts_missing"]) - set(b["facts_missing"]))
        if lost:
            lines.append(f"  {key}: message lost facts {lost}")
        if gained:
            lines.append(f"  {key}: message gained facts {gained}")
    lines += [f"  added {k}" for k in sorted(after.keys() - before.keys())]
    lines += [f"  removed {k}" for k in sorted(before.keys() - after.keys())]
    lines += _summary_deltas(old["summary"], new["summary"])
    return lines if len(lines) > 1 else ["Snippets: no change."]


def _agent(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    before = {t["id"]: t for t in old["tasks"]}
    after = {t["id"]: t for t in new["tasks"]}
    lines = ["Agent tasks:"]
    for key in sorted(before.keys() & after.keys()):
        a, b = before[key]["status"], after[key]["status"]
        if a == b:
            continue
        if b == "passed":
            lines.append(f"  started passing {key} (was {a})")
        elif a == "passed":
            lines.append(f"  stopped passing {key}: now {b}: {after[key]['detail'][:100]}")
        else:
            lines.append(f"  {key}: {a} -> {b}")
    lines += [f"  added {k} ({after[k]['status']})" for k in sorted(after.keys() - before.keys())]
    lines += [f"  removed {k}" for k in sorted(before.keys() - after.keys())]
    lines += _summary_deltas(old["summary"], new["summary"])
    return lines if len(lines) > 1 else ["Agent tasks: no change."]


def compare(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The lines ``compare`` prints for two results records."""
    lines = [f"old: {old['created']} ({old['engine']}), new: {new['created']} ({new['engine']})"]
    for suite, diff in (("snippets", _snippets), ("agent", _agent)):
        a, b = old.get(suite), new.get(suite)
        if a and b:
            lines += diff(a, b)
        elif a or b:
            lines.append(f"{suite}: only in the {'old' if a else 'new'} run")
    return lines


def compare_dirs(old: Path, new: Path) -> list[str]:
    return compare(load_results(old), load_results(new))
