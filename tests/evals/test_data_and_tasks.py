"""The generated data and the task definitions: committed files are the generated ones,
the reference answers agree with pandas, and the tasks cover what the suite promises."""

from __future__ import annotations

import pandas as pd
import pytest

from evals.checkers import answers
from evals.make_data import DATA_DIR, check, generate
from evals.tasks import load_tasks


def test_the_committed_data_is_what_the_generator_makes() -> None:
    assert check() == [], "run: .venv/bin/python -m evals data"
    assert generate() == generate()


def test_reference_answers_agree_with_pandas() -> None:
    ref = answers()
    sales = pd.read_csv(DATA_DIR / "sales.csv", parse_dates=["date"])
    sales["revenue"] = sales["units"] * sales["unit_price"]
    assert sales["unit_price"].mean() == pytest.approx(ref["sales_mean_unit_price"], abs=0.005)
    assert sales.groupby("region")["revenue"].sum().idxmax() == ref["sales_top_region_revenue"]
    monthly = sales.set_index("date")["revenue"].resample("MS").sum()
    assert monthly.idxmax().strftime("%Y-%m") == ref["sales_top_month"]
    orders = pd.read_csv(DATA_DIR / "orders.csv").merge(pd.read_csv(DATA_DIR / "customers.csv"))
    assert orders.groupby("segment")["amount"].sum().idxmax() == ref["orders_top_segment"]
    survey = pd.read_csv(DATA_DIR / "survey.csv")
    assert len(survey.drop_duplicates()) == ref["survey_unique_rows"]
    ages = pd.to_numeric(survey["age"].iloc[:120], errors="coerce")
    assert ages.mean() == pytest.approx(ref["survey_mean_age"], abs=0.005)
    bad = pd.to_datetime(survey["signup_date"].iloc[:120], errors="coerce", format="%Y-%m-%d")
    assert int(bad.isna().sum()) == ref["survey_bad_dates"]


def test_tasks_cover_every_category_and_api() -> None:
    tasks = load_tasks()
    assert len(tasks) >= 30
    categories = {t.category for t in tasks}
    assert {"descriptive", "groupby", "joins", "timeseries", "plotting", "cleaning"} <= categories
    assert {"traps", "conversation", "files"} <= categories
    assert {t.api for t in tasks} == {"chat", "responses", "langchain"}
    assert any(t.conversation and len(t.questions) > 1 for t in tasks)
    kinds = {c.kind for t in tasks for c in t.check}
    assert kinds == {"number", "text", "texts", "plot", "file"}


def test_every_task_refers_to_existing_answers() -> None:
    ref = answers()
    for task in load_tasks():
        for checker in task.check:
            key = getattr(checker, "key", None)
            assert key is None or key in ref, f"{task.id}: {key}"
