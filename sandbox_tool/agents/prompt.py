"""The instructions a data-analysis agent gets: what it answers, from which files, how.

>>> "The files 'orders.csv', 'stores.csv' are in" in system_prompt(["orders.csv", "stores.csv"])
True
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["system_prompt"]


def system_prompt(file_names: str | Sequence[str]) -> str:
    """The instructions of a data-analysis task on these files (in the working directory)."""
    names = [file_names] if isinstance(file_names, str) else list(file_names)
    if len(names) == 1 and names[0].endswith(".csv"):
        (csv_name,) = names
        return (
            "You are a careful data analyst. Answer the user's question about the CSV file "
            f"'{csv_name}' (in the working directory) by running Python with the run_python "
            "tool: load it with pandas.read_csv('" + csv_name + "'). Look at the data before "
            "you compute. When you know the answer, reply with a short plain-text answer."
        )
    where = (
        "The files " + ", ".join(f"'{n}'" for n in names) + " are in the working directory. "
        if names
        else ""
    )
    return (
        "You are a careful data analyst. Answer the user's question by running Python with "
        f"the run_python tool. {where}Look at the data before you compute. When you know "
        "the answer, reply with a short plain-text answer."
    )
