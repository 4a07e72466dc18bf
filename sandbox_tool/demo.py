"""The demo behind ``make demo``: a data analysis an LLM might write, run in the sandbox.

    python -m sandbox_tool.demo [--out DIR]

Generates synthetic sales data, computes statistics and draws charts, all
inside the sandbox; prints a short report and where the PNG files are. Then
shows two guardrails at work. No API key, no network.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import textwrap
from pathlib import Path

from sandbox_tool import (
    ExecutionOptions,
    ImportNotAllowed,
    ImportPolicy,
    SandboxError,
    Timeout,
    create_default_sandbox,
)
from sandbox_tool.result import write_artifacts

# What a model would write when asked "analyse our sales by region and month".
ANALYSIS = textwrap.dedent(
    """
    import numpy as np
    import pandas as pd
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(inputs["seed"])
    n = inputs["rows"]
    regions = np.array(["North", "South", "East", "West"])
    df = pd.DataFrame({
        "date": pd.to_datetime("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D"),
        "region": rng.choice(regions, n, p=[0.4, 0.25, 0.2, 0.15]),
        "units": rng.poisson(12, n),
        "price": rng.normal(25, 4, n).round(2).clip(5),
    })
    df["revenue"] = df["units"] * df["price"]
    df.to_csv("sales.csv", index=False)

    by_region = df.groupby("region")["revenue"].agg(["sum", "mean", "count"]).sort_values(
        "sum", ascending=False)
    monthly = df.set_index("date").resample("MS")["revenue"].sum()
    print(f"{len(df)} orders, total revenue {df['revenue'].sum():,.0f}")
    print(by_region.round(1).to_string())

    fig, ax = plt.subplots(figsize=(7, 4))
    by_region["sum"].plot.bar(ax=ax, color="#4C72B0")
    ax.set_title("Revenue by region, 2024")
    ax.set_ylabel("revenue")
    fig.tight_layout()
    fig.savefig("revenue_by_region.png", dpi=110)

    fig, ax = plt.subplots(figsize=(7, 4))
    monthly.plot(ax=ax, marker="o")
    ax.set_title("Monthly revenue, 2024")
    ax.set_xlabel("")
    fig.tight_layout()
    fig.savefig("monthly_revenue.png", dpi=110)

    result = {
        "orders": len(df),
        "total_revenue": round(float(df["revenue"].sum()), 2),
        "best_region": by_region.index[0],
        "best_month": monthly.idxmax().strftime("%B"),
        "revenue_by_region": by_region["sum"].round(2),
    }
    """
)


async def run_demo(out: Path) -> int:
    sandbox = await create_default_sandbox()
    print(f"engine: {sandbox.engine_name}", end="")
    if sandbox.passed_over:
        print(
            " (stronger engines not available here: "
            + "; ".join(f"{i.name}: {i.reason}" for i in sandbox.passed_over)
            + ")",
            end="",
        )
    print()

    options = ExecutionOptions(
        import_policy=ImportPolicy.data_science_whitelist(), timeout=60, memory_mb=1536
    )
    try:
        res = await sandbox.execute(ANALYSIS, inputs={"seed": 7, "rows": 5000}, options=options)
    except SandboxError as exc:
        print(f"the analysis failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1

    out.mkdir(parents=True, exist_ok=True)
    print("\n== what the code printed ==")
    print(res.stdout.rstrip())
    print("\n== result (JSON from the sandbox) ==")
    summary = res.result
    print(f"orders: {summary['orders']}, total revenue: {summary['total_revenue']:,.2f}")
    print(f"best region: {summary['best_region']}, best month: {summary['best_month']}")
    print("\n== files written by the code ==")
    written = write_artifacts(out, res.artifacts)
    for art in res.artifacts:
        print(f"{written[art.name]}  ({art.mime_type}, {art.size:,} bytes)")
    peak = f", peak memory {res.peak_memory_mb:.0f} MB" if res.peak_memory_mb else ""
    print(f"\nran in {res.duration_ms:.0f} ms on the {res.engine} engine{peak}")
    if res.degraded:
        print("not enforced by this engine: " + "; ".join(res.degraded))

    print("\n== guardrails ==")
    try:
        await sandbox.execute("import subprocess\nsubprocess.run(['id'])")
    except ImportNotAllowed as exc:
        print(f"blocked import: {exc.module!r}: {exc}")
    try:
        await sandbox.execute("while True:\n    pass", options=ExecutionOptions(timeout=1))
    except Timeout as exc:
        print(f"stopped runaway loop: {exc}")
    await sandbox.aclose()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox_tool.demo", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("demo-output"), help="where to write")
    args = parser.parse_args(argv)
    return asyncio.run(run_demo(args.out))


if __name__ == "__main__":
    sys.exit(main())
