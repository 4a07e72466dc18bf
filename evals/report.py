"""A run's results directory: ``results.json``, ``report.md`` and ``chart.png``.

``results.json`` holds every snippet and task with its outcome (the input of
``python -m evals compare``); ``report.md`` the tables a person reads; ``chart.png``
accuracy by category for snippets and success and recovery by category for agent tasks.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["SCHEMA", "load_results", "new_results", "write_results"]

#: Bumped when results.json changes shape.
SCHEMA = 1


def new_results(engine: str) -> dict[str, Any]:
    """An empty results record; the suites fill ``snippets`` and ``agent``."""
    return {
        "schema": SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "engine": engine,
        "snippets": None,
        "agent": None,
    }


def load_results(directory: Path) -> dict[str, Any]:
    path = directory / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: give a directory a run wrote (--out)")
    data: dict[str, Any] = json.loads(path.read_text())
    if data.get("schema") != SCHEMA:
        raise ValueError(f"{path}: results schema {data.get('schema')!r}, expected {SCHEMA}")
    return data


def _merge(directory: Path, results: dict[str, Any]) -> dict[str, Any]:
    """Keep the other suite's part of an earlier run in the same directory."""
    try:
        old = load_results(directory)
    except (FileNotFoundError, ValueError, json.JSONDecodeError):
        return results
    for suite in ("snippets", "agent"):
        if results.get(suite) is None and old.get(suite) is not None:
            results[suite] = old[suite]
    return results


def write_results(directory: Path, results: dict[str, Any]) -> list[Path]:
    """Write the three files (a suite not run keeps its part of an earlier run here)."""
    directory.mkdir(parents=True, exist_ok=True)
    results = _merge(directory, results)
    paths = [directory / "results.json", directory / "report.md", directory / "chart.png"]
    paths[0].write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    paths[1].write_text(markdown(results))
    chart(results, paths[2])
    return paths


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _snippet_section(part: dict[str, Any]) -> list[str]:
    summary = part["summary"]
    lines = ["## Snippets", "", f"Engine `{part['engine']}`."]
    rows = [
        [
            name,
            str(s["snippets"]),
            _pct(s["outcome_accuracy"]),
            _pct(s["fact_accuracy"]),
            f"{s['median_seconds']:.2f}",
        ]
        for name, s in [*summary["categories"].items(), ("**overall**", summary["overall"])]
    ]
    head = ["category", "snippets", "outcome class", "message facts", "median s"]
    lines += ["", *_table(head, rows), ""]
    regressions = summary["regressions"]
    lines.append(
        f"Regressions (wrong outcome class): {', '.join(regressions)}"
        if regressions
        else "No regressions: every outcome class is the expected one."
    )
    misses = [r for r in part["results"] if r["facts_missing"]]
    if misses:
        lines += ["", "Messages missing facts:", ""]
        lines += [f"- `{r['category']}/{r['id']}`: {r['facts_missing']}" for r in misses]
    return [*lines, ""]


def _agent_section(part: dict[str, Any]) -> list[str]:
    summary = part["summary"]
    lines = [
        "## Agent tasks",
        "",
        f"Mode `{part['mode']}`, model `{part['model']}`, traffic recorded "
        f"{part.get('recorded') or 'now (live)'}"
        + (f" on `{part['recorded_engine']}`" if part.get("recorded_engine") else "")
        + f"; engine `{part['engine']}`.",
    ]
    head = ["category", "tasks", "passed", "stale", "recovery", "turns", "tool calls", "limits"]
    rows = []
    for name, s in [*summary["categories"].items(), ("**overall**", summary["overall"])]:
        rows.append(
            [
                name,
                str(s["tasks"]),
                f"{s['passed']} ({_pct(s['success_rate'])})",
                str(s["stale"]),
                _pct(s["recovery_rate"]),
                f"{s['mean_turns']:.1f}",
                str(s["tool_calls"]),
                str(s["limit_hits"]),
            ]
        )
    lines += ["", *_table(head, rows), ""]
    errors = summary["overall"]["errors_by_class"]
    if errors:
        lines.append(
            "Tool errors by class: " + ", ".join(f"{k} {v}" for k, v in sorted(errors.items()))
        )
    lines.append(
        f"Sandbox time per call: median {summary['overall']['median_sandbox_ms']:.0f} ms; "
        f"total time {summary['overall']['total_seconds']:.1f} s."
    )
    head = ["task", "api", "status", "turns", "calls", "outcomes", "why"]
    rows = [
        [
            t["id"],
            t["api"],
            t["status"],
            str(t["turns"]),
            str(len(t["calls"])),
            " ".join(c["outcome"] for c in t["calls"]) or "-",
            t["detail"].replace("|", "/").replace("\n", " ")[:120],
        ]
        for t in part["tasks"]
    ]
    return [*lines, "", *_table(head, rows), ""]


def markdown(results: dict[str, Any]) -> str:
    lines = ["# Eval report", "", f"Run {results['created']}.", ""]
    if results.get("snippets"):
        lines += _snippet_section(results["snippets"])
    if results.get("agent"):
        lines += _agent_section(results["agent"])
    return "\n".join(lines)


def chart(results: dict[str, Any], path: Path) -> None:
    """Bars by category: snippet outcome and fact accuracy; task success and recovery."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: list[tuple[str, dict[str, dict[str, Any]], list[tuple[str, str]]]] = []
    if results.get("snippets"):
        cats = results["snippets"]["summary"]["categories"]
        series = [("outcome_accuracy", "outcome class"), ("fact_accuracy", "message facts")]
        panels.append(("Snippets: accuracy by category", cats, series))
    if results.get("agent"):
        cats = results["agent"]["summary"]["categories"]
        series = [("success_rate", "success"), ("recovery_rate", "error recovery")]
        panels.append(("Agent tasks: by category", cats, series))
    fig, axes = plt.subplots(len(panels) or 1, 1, figsize=(9, 3.6 * max(len(panels), 1)))
    axes_list = list(axes) if len(panels) > 1 else [axes]
    for ax, (title, cats, series) in zip(axes_list, panels, strict=True):
        names = list(cats)
        width = 0.8 / len(series)
        for i, (key, label) in enumerate(series):
            values = [cats[n][key] or 0 for n in names]
            ax.bar([x + i * width for x in range(len(names))], values, width, label=label)
        ax.set_xticks([x + width * (len(series) - 1) / 2 for x in range(len(names))], names)
        ax.set_ylim(0, 1.05)
        ax.set_title(title)
        ax.legend(loc="upper right", fontsize="small")
        ax.tick_params(axis="x", labelrotation=30, labelsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
