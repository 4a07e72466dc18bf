"""The agent tasks' data files and their reference answers, generated deterministically.

    .venv/bin/python -m evals data            # rewrites evals/data/*.csv and answers.json
    .venv/bin/python -m evals data --check    # exit 1 if the committed files differ

Stdlib only (``random.Random`` with fixed seeds, ``csv``): the same files on every
machine and Python version, so the committed files are the generated ones. The
reference answers are computed here from the same rows, independently of pandas,
and tasks refer to them by key (``answers.json``), never by a number typed by hand.
"""

from __future__ import annotations

import csv
import io
import json
import random
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = ["DATA_DIR", "check", "generate", "write"]

DATA_DIR = Path(__file__).resolve().parent / "data"

Row = dict[str, Any]
Answers = dict[str, Any]

REGIONS = ["North", "South", "East", "West"]
PRODUCTS = ["widget", "gadget", "gizmo", "doohickey", "sprocket"]
CITIES = ["Lisbon", "Oslo", "Cairo"]
SEGMENTS = ["consumer", "small_business", "enterprise"]
COUNTRIES = ["PT", "NO", "EG", "DE", "BR"]


def _csv(rows: Sequence[Row]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _r2(x: float) -> float:
    return round(x + 0.0, 2)


def _argmax(totals: dict[str, float]) -> str:
    return max(sorted(totals), key=lambda k: totals[k])


def _sums(rows: Iterable[Row], key: str, value: Callable[[Row], float]) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for row in rows:
        totals[row[key]] += value(row)
    return dict(totals)


def _sales(answers: Answers) -> list[Row]:
    rng = random.Random(101)
    base_price = {"widget": 4.5, "gadget": 12.0, "gizmo": 7.25, "doohickey": 19.9, "sprocket": 2.4}
    rows: list[Row] = []
    day = date(2024, 1, 1)
    for i in range(240):
        product = rng.choice(PRODUCTS)
        region = rng.choice(REGIONS)
        rows.append(
            {
                "date": (day + timedelta(days=i * 366 // 240)).isoformat(),
                "region": region,
                "product": product,
                "units": rng.randint(1, 40) + (15 if region == "West" else 0),
                "unit_price": _r2(base_price[product] * rng.uniform(0.85, 1.15)),
            }
        )

    def revenue(r: Row) -> float:
        return float(r["units"] * r["unit_price"])

    answers["sales_rows"] = len(rows)
    answers["sales_mean_unit_price"] = _r2(statistics.fmean(r["unit_price"] for r in rows))
    answers["sales_median_units"] = statistics.median(r["units"] for r in rows)
    answers["sales_total_units"] = sum(r["units"] for r in rows)
    answers["sales_total_revenue"] = _r2(sum(revenue(r) for r in rows))
    answers["sales_distinct_products"] = len({r["product"] for r in rows})
    answers["sales_max_unit_price"] = max(r["unit_price"] for r in rows)
    by_region = _sums(rows, "region", revenue)
    answers["sales_top_region_revenue"] = _argmax(by_region)
    answers["sales_top_region_revenue_value"] = _r2(by_region[_argmax(by_region)])
    answers["sales_region_revenue"] = {k: _r2(v) for k, v in sorted(by_region.items())}
    by_product = _sums(rows, "product", revenue)
    answers["sales_top_product_revenue"] = _argmax(by_product)
    units = _sums(rows, "product", lambda r: r["units"])
    counts = _sums(rows, "product", lambda r: 1)
    mean_units = {k: units[k] / counts[k] for k in units}
    answers["sales_product_most_units_per_sale"] = _argmax(mean_units)
    by_month = _sums(rows, "date", revenue)
    months: dict[str, float] = defaultdict(float)
    for day_text, value in by_month.items():
        months[day_text[:7]] += value
    answers["sales_top_month"] = _argmax(months)
    answers["sales_top_month_revenue"] = _r2(months[_argmax(months)])
    per_region_units = _sums(rows, "region", lambda r: r["units"])
    answers["sales_top_region_units"] = _argmax(per_region_units)
    return rows


def _customers_orders(answers: Answers) -> tuple[list[Row], list[Row]]:
    rng = random.Random(202)
    customers: list[Row] = [
        {
            "customer_id": 1000 + i,
            "name": f"Customer {i:02d}",
            "segment": SEGMENTS[i % 3] if i % 7 else "enterprise",
            "country": rng.choice(COUNTRIES),
        }
        for i in range(40)
    ]
    orders: list[Row] = []
    start = date(2024, 3, 1)
    for i in range(300):
        customer = rng.choice(customers[:34])  # six customers never order
        amount = rng.uniform(20, 400) * (2.5 if customer["segment"] == "enterprise" else 1)
        orders.append(
            {
                "order_id": 50000 + i,
                "customer_id": customer["customer_id"],
                "order_date": (start + timedelta(days=rng.randint(0, 150))).isoformat(),
                "amount": _r2(amount),
            }
        )
    segment_of = {c["customer_id"]: c["segment"] for c in customers}
    country_of = {c["customer_id"]: c["country"] for c in customers}
    by_segment = _sums(orders, "customer_id", lambda r: r["amount"])
    segment_totals: dict[str, float] = defaultdict(float)
    for cid, total in by_segment.items():
        segment_totals[segment_of[cid]] += total
    answers["orders_segment_revenue"] = {k: _r2(v) for k, v in sorted(segment_totals.items())}
    answers["orders_top_segment"] = _argmax(segment_totals)
    country_counts: dict[str, float] = defaultdict(float)
    for order in orders:
        country_counts[country_of[order["customer_id"]]] += 1
    answers["orders_top_country_by_count"] = _argmax(country_counts)
    ordered = {o["customer_id"] for o in orders}
    answers["orders_customers_without_orders"] = sum(
        1 for c in customers if c["customer_id"] not in ordered
    )
    enterprise = [o["amount"] for o in orders if segment_of[o["customer_id"]] == "enterprise"]
    answers["orders_enterprise_mean_amount"] = _r2(statistics.fmean(enterprise))
    answers["orders_total_amount"] = _r2(sum(o["amount"] for o in orders))
    return customers, orders


def _temperatures(answers: Answers) -> list[Row]:
    rng = random.Random(303)
    rows: list[Row] = []
    offsets = {"Lisbon": 17.0, "Oslo": 6.0, "Cairo": 23.0}
    swing = {"Lisbon": 6.0, "Oslo": 11.0, "Cairo": 7.0}
    day = date(2024, 1, 1)
    for i in range(366):
        d = day + timedelta(days=i)
        season = -1.0 if d.month in (12, 1, 2) else (1.0 if d.month in (6, 7, 8) else 0.0)
        for city in CITIES:
            temp = offsets[city] + swing[city] * season + rng.uniform(-3, 3)
            rows.append({"date": d.isoformat(), "city": city, "temp_c": round(temp, 1)})
    means = {c: statistics.fmean(r["temp_c"] for r in rows if r["city"] == c) for c in CITIES}
    answers["temps_warmest_city"] = _argmax(means)
    answers["temps_oslo_mean"] = _r2(means["Oslo"])
    hottest = max(rows, key=lambda r: (r["temp_c"], r["date"]))
    answers["temps_max"] = hottest["temp_c"]
    answers["temps_max_city"] = hottest["city"]
    july = [r["temp_c"] for r in rows if r["city"] == "Lisbon" and r["date"].startswith("2024-07")]
    answers["temps_lisbon_july_mean"] = _r2(statistics.fmean(july))
    oslo_month: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r["city"] == "Oslo":
            oslo_month[r["date"][:7]].append(r["temp_c"])
    coldest = min(sorted(oslo_month), key=lambda m: statistics.fmean(oslo_month[m]))
    answers["temps_oslo_coldest_month"] = coldest
    return rows


def _sensors(answers: Answers) -> list[Row]:
    rng = random.Random(404)
    rows: list[Row] = []
    start = datetime(2024, 5, 1)
    for h in range(24 * 14):
        ts = start + timedelta(hours=h)
        for sensor in ("s1", "s2"):
            value = 50 + 10 * rng.random() + (30 if sensor == "s2" and h == 200 else 0)
            rows.append({"timestamp": ts.isoformat(sep=" "), "sensor": sensor, "value": _r2(value)})
    s1_daily: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r["sensor"] == "s1":
            s1_daily[r["timestamp"][:10]].append(r["value"])
    daily_means = {d: statistics.fmean(v) for d, v in s1_daily.items()}
    answers["sensors_s1_best_day"] = _argmax(daily_means)
    spike = max((r for r in rows if r["sensor"] == "s2"), key=lambda r: r["value"])
    answers["sensors_s2_spike_time"] = spike["timestamp"]
    answers["sensors_s2_spike_day"] = spike["timestamp"][:10]
    values = [r["value"] for r in rows]
    answers["sensors_value_range"] = _r2(max(values) - min(values))
    return rows


def _survey(answers: Answers) -> list[Row]:
    rng = random.Random(505)
    rows: list[Row] = []
    good_ages, good_incomes, bad_dates = [], [], 0
    for i in range(120):
        age: Any = rng.randint(18, 80)
        income_value = rng.randint(800, 9000)
        income: Any = f"{income_value:,}" if i % 4 == 0 else income_value
        signup = (date(2023, 1, 1) + timedelta(days=rng.randint(0, 500))).isoformat()
        if i % 9 == 0:
            age = ""
        elif i % 13 == 0:
            age = "unknown"
        else:
            good_ages.append(age)
        if i % 11 == 0:
            income = "n/a"
        else:
            good_incomes.append(income_value)
        if i % 10 == 3:
            signup = rng.choice(["2023-13-01", "yesterday", "31/02/2024", "2024-02-30"])
            bad_dates += 1
        rows.append(
            {
                "respondent": f"r{i:03d}",
                "age": age,
                "income": income,
                "signup_date": signup,
                "satisfaction": rng.randint(1, 5),
            }
        )
    rows += [dict(rows[5]), dict(rows[17]), dict(rows[42])]  # exact duplicates
    answers["survey_mean_age"] = _r2(statistics.fmean(good_ages))
    answers["survey_mean_income"] = _r2(statistics.fmean(good_incomes))
    answers["survey_bad_dates"] = bad_dates
    answers["survey_rows"] = len(rows)
    answers["survey_unique_rows"] = len(rows) - 3
    answers["survey_missing_age"] = sum(1 for r in rows[:120] if r["age"] in ("", "unknown"))
    return rows


def _misleading(answers: Answers) -> list[Row]:
    """``revenue_target`` is a target, not revenue; the revenue is ``sales_amount``."""
    rng = random.Random(606)
    rows: list[Row] = [
        {
            "store": f"store-{i:02d}",
            "revenue_target": 5000 + 500 * (i % 5),
            "sales_amount": _r2(rng.uniform(2000, 9000)),
        }
        for i in range(25)
    ]
    answers["stores_total_revenue"] = _r2(sum(r["sales_amount"] for r in rows))
    answers["stores_target_total"] = sum(r["revenue_target"] for r in rows)
    answers["stores_met_target"] = sum(1 for r in rows if r["sales_amount"] >= r["revenue_target"])
    return rows


def generate() -> dict[str, str]:
    """Every data file's text, by name, plus ``answers.json``."""
    answers: Answers = {}
    customers, orders = _customers_orders(answers)
    files = {
        "sales.csv": _csv(_sales(answers)),
        "customers.csv": _csv(customers),
        "orders.csv": _csv(orders),
        "temperatures.csv": _csv(_temperatures(answers)),
        "sensors.csv": _csv(_sensors(answers)),
        "survey.csv": _csv(_survey(answers)),
        "stores.csv": _csv(_misleading(answers)),
    }
    files["answers.json"] = json.dumps(answers, indent=2, sort_keys=True) + "\n"
    return files


def write(directory: Path = DATA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in generate().items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written


def check(directory: Path = DATA_DIR) -> list[str]:
    """The names of the files in ``directory`` that differ from what :func:`generate` makes."""
    stale = []
    for name, text in generate().items():
        path = directory / name
        if not path.exists() or path.read_text() != text:
            stale.append(name)
    return stale
