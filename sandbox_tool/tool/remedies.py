"""What the model should do instead: alternatives to refused modules and builtins,
and hints for common exceptions. Domain knowledge, kept apart from formatting.

>>> module_alternative("requests", ["sales.csv"])
"there is no network access here: work from the input files ('sales.csv')"
"""

from __future__ import annotations

import ast
import csv
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from sandbox_tool.policies import (
    NATIVE_CODE_MODULES,
    NETWORK_MODULES,
    PARALLEL_MODULES,
    PROCESS_MODULES,
    SYSTEM_MODULES,
)
from sandbox_tool.tool.suggestions import (
    builtin_names,
    closest,
    defined_names,
    import_for,
    string_literals,
)

__all__ = [
    "builtin_alternative",
    "csv_columns",
    "exception_hint",
    "missing_keys",
    "module_alternative",
]

# the policy's own categories; "http" and "threading" are named by models too
_NETWORK = NETWORK_MODULES | {"http"}
_PROCESSES = PROCESS_MODULES
_PARALLEL = PARALLEL_MODULES | {"threading"}
_NATIVE = NATIVE_CODE_MODULES
_SYSTEM = SYSTEM_MODULES
_SPECIFIC = {
    "os": "use pathlib or os.path for paths; files are in the working directory",
    "sys": "print() for output; the input files are in the working directory",
    "seaborn": "use matplotlib (pandas' df.plot() draws with it)",
    "scipy": "use numpy, or the statistics module for basic statistics",
    "sklearn": "use numpy (e.g. numpy.polyfit for a linear fit)",
    "statsmodels": "use numpy (e.g. numpy.polyfit) or the statistics module",
    "polars": "use pandas",
    "pyarrow": "use pandas with its default engine",
    "openpyxl": "use CSV files with pandas",
}


def _files_text(files: Sequence[str]) -> str:
    return ", ".join(repr(f) for f in files) if files else "none were given"


def _covers(names: frozenset[str], module: str) -> bool:
    parts = module.split(".")
    return any(".".join(parts[:i]) in names for i in range(1, len(parts) + 1))


def module_alternative(module: str, files: Sequence[str] = ()) -> str | None:
    """A concrete alternative to ``module``, or ``None`` when there is none to suggest."""
    if _covers(_NETWORK, module):
        return f"there is no network access here: work from the input files ({_files_text(files)})"
    if _covers(_PROCESSES, module):
        return "no other programs can be started: do the work in Python itself"
    if _covers(_PARALLEL, module):
        return "no extra processes: vectorise with numpy or pandas instead of parallelising"
    if _covers(_NATIVE, module):
        return "native code is out of reach: numpy covers fast array work"
    if _covers(_SYSTEM, module):
        return "not needed: the sandbox enforces its own time limits"
    return _SPECIFIC.get(module.split(".")[0])


_BUILTINS = {
    "eval": "write the expression directly in your code",
    "exec": "write the statements directly in your code",
    "compile": "write the code directly",
    "input": "nobody can type input here: use the data you have, or hard-code a value",
    "breakpoint": "print the values you want to inspect",
    "help": "print(obj.__doc__) or dir(obj) show documentation",
}


def builtin_alternative(name: str, files: Sequence[str] = ()) -> str:
    """What to do instead of calling the builtin ``name``."""
    if name == "open":
        return (
            "open() reaches only the working directory and temporary files: use relative "
            f"names such as the input files ({_files_text(files)})"
        )
    return _BUILTINS.get(name, "do without it")


#: Tabular input files whose header row can name the columns a KeyError missed.
_TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t"}
#: Columns named in a hint at most; close matches are looked for among all of them.
MAX_COLUMNS = 40


def csv_columns(path: Path) -> list[str] | None:
    """The header row of a CSV or TSV file (read from its first 64 KB), else ``None``."""
    delimiter = _TABLE_SUFFIXES.get(path.suffix.lower())
    if delimiter is None:
        return None
    try:
        with path.open("rb") as f:
            head = f.read(64 * 1024)
    except OSError:
        return None
    first = head.decode("utf-8-sig", errors="replace").splitlines()[:1]
    if not first:
        return None
    try:
        row = next(csv.reader(first, delimiter=delimiter))
    except (csv.Error, StopIteration):
        return None
    names = [name.strip() for name in row]
    return names if any(names) else None


_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'")


def missing_keys(message: str) -> list[str]:
    r"""The string keys a ``KeyError`` says are missing, as pandas and dicts word it.

    >>> missing_keys("KeyError: 'price'")
    ['price']
    >>> missing_keys("KeyError: 'Column not found: price'")
    ['price']
    >>> missing_keys("KeyError: \"['a', 'b'] not in index\"")
    ['a', 'b']
    >>> missing_keys("KeyError: 5")
    []
    """
    text = message.removeprefix("KeyError:").strip()
    try:
        key = ast.literal_eval(text) if text else None
    except (ValueError, SyntaxError):
        return []
    if not isinstance(key, str):
        return []
    if key.startswith("Column not found: "):  # df.groupby(...)["x"]
        return [key.removeprefix("Column not found: ")]
    listed = key.startswith(("Columns not found: ", "None of [")) or key.endswith(
        ("not in index", "not found in axis")
    )
    if listed:  # df[["x", "y"]], df.drop(columns=[...]), df.set_index([...])
        return _QUOTED.findall(re.sub(r"dtype='[^']*'", "", key))
    return [key]


def _did_you_mean(names: Sequence[str]) -> str:
    return f" (did you mean {' or '.join(repr(n) for n in names)}?)" if names else ""


def _column_hint(
    missing: Sequence[str],
    columns: Mapping[str, Sequence[str]],
    known: set[str],
    literals: set[str],
) -> str | None:
    """Which input files' columns (``known``: all of them) the missing keys are not, with
    the closest names (among the files' columns and the code's own strings)."""
    absent = [key for key in missing if key not in known]
    if not columns or not absent:
        return None  # not a column of the inputs: the KeyError is about something else
    parts = [
        f"{key!r} is not a column of the input files"
        + _did_you_mean(closest(key, known | literals))
        for key in absent
    ]
    for file, names in columns.items():
        shown = ", ".join(repr(n) for n in names[:MAX_COLUMNS])
        more = f" and {len(names) - MAX_COLUMNS} more" if len(names) > MAX_COLUMNS else ""
        parts.append(f"the columns of {file!r} are: {shown}{more}")
    parts.append("a DataFrame you changed shows its own with print(df.columns.tolist())")
    return "; ".join(parts)


def _corrected_line(line: str | None, missing: Sequence[str], known: set[str]) -> str | None:
    """The failing line with its one unknown column replaced by the only close name, when
    the line spells it as a string: the fix itself, which small models take best."""
    if not line or len(missing) != 1 or missing[0] in known:
        return None
    key = missing[0]
    close = closest(key, known, n=1)
    if not close:
        return None
    for quote in ("'", '"'):
        spelt = f"{quote}{key}{quote}"
        if spelt in line:
            fixed = line.strip().replace(spelt, f"{quote}{close[0]}{quote}")
            return f"the failing line with {close[0]!r} reads: {fixed}"
    return None


def _key_hint(
    message: str, columns: Mapping[str, Sequence[str]], source: str | None, line: str | None
) -> str:
    missing = missing_keys(message)
    # a key of a table or dict the code built itself: its name is among the code's strings
    literals = string_literals(source or "")
    known = {name for names in columns.values() for name in names}
    hint = _column_hint(missing, columns, known, literals)
    if hint:
        fixed = _corrected_line(line, missing, known)
        return f"{hint}; {fixed}" if fixed else hint
    guesses = [
        f"{key!r}{_did_you_mean(close)}" for key in missing if (close := closest(key, literals))
    ]
    if guesses:
        return (
            f"no such key: {', '.join(guesses)}; print the keys that exist, e.g. "
            "print(df.columns.tolist())"
        )
    return "check the names that exist first, e.g. print(df.columns.tolist())"


_UNDEFINED = re.compile(r"name '(\w+)' is not defined")
_RESETS = (
    "nothing persists between calls: import modules and define variables "
    "(re-read files) in the same code"
)


def _name_hint(
    message: str, source: str | None, modules: Iterable[str], keeps_state: bool
) -> str | None:
    found = _UNDEFINED.search(message)
    if found is None:
        return None if keeps_state else _RESETS
    name = found.group(1)
    statement = import_for(name, modules)
    if statement:
        hint = f"`{name}` is never imported: add `{statement}` at the top of the code"
    else:
        # a typo of the code's own names first, of a builtin (prnt) only if none is close
        close = closest(name, defined_names(source or "")) or closest(name, builtin_names())
        if close:
            return f"{name!r} is not defined{_did_you_mean(close)}"
        hint = f"define or import {name!r} before using it"
    return hint if keeps_state else f"{hint}; {_RESETS}"


_NO_ATTRIBUTE = re.compile(r"'(DataFrame|Series|DataFrameGroupBy)' object has no attribute '(\w+)'")
#: Series methods that live under an accessor: text under ``.str``, dates under ``.dt``.
_STR_METHODS = frozenset((
    "lower", "upper", "strip", "lstrip", "rstrip", "split", "rsplit", "replace", "contains",
    "startswith", "endswith", "find", "len", "zfill", "title", "capitalize", "isdigit",
    "isnumeric", "isalpha",
))  # fmt: skip
_DT_ATTRIBUTES = frozenset((
    "year", "month", "day", "hour", "minute", "second", "date", "time", "weekday",
    "dayofweek", "day_name", "month_name", "quarter", "strftime", "dayofyear",
))  # fmt: skip


def _series_hint(attribute: str, owner: str) -> str:
    """A Series is one column: what ``attribute`` may have meant on it."""
    if attribute in _STR_METHODS:
        return f"text methods of a Series are under .str: {owner}.str.{attribute}(...)"
    if attribute in _DT_ATTRIBUTES:
        return (
            f"date parts of a Series are under .dt, after converting it with pd.to_datetime: "
            f"pd.to_datetime({owner}).dt.{attribute}"
        )
    if attribute in ("strptime", "to_date", "to_datetime", "parse"):
        return f"convert a Series of dates with pd.to_datetime({owner}, format=...)"
    return (
        f"{attribute!r} is not a Series attribute (a Series is one column); "
        f"print([m for m in dir({owner}) if not m.startswith('_')]) lists what it has"
    )


def _attribute_hint(
    message: str, line: str | None, columns: Mapping[str, Sequence[str]], source: str | None
) -> str | None:
    """For ``df.pric``: the column it may have meant, written as ``df['price']``; for a
    Series (one column, so no column to suggest): the accessor or conversion it needs."""
    found = _NO_ATTRIBUTE.search(message)
    if found is None:
        return None
    kind, attribute = found.groups()
    owner = re.search(rf"([\w\]\[\'\"]+)\.{attribute}\b", line or "")
    frame = owner.group(1) if owner else ("s" if kind == "Series" else "df")
    if kind == "Series":
        return _series_hint(attribute, frame)
    known = {name for names in columns.values() for name in names}
    close = closest(attribute, known | string_literals(source or ""))
    if close:
        return (
            f"{attribute!r} is not a {kind} attribute nor a column: did you mean the column "
            f"{frame}[{close[0]!r}]? Read columns as {frame}['name'], which works for every name"
        )
    return (
        f"{attribute!r} is not a {kind} attribute nor a column: "
        f"print({frame}.columns.tolist()) shows the columns"
    )


_TEXT_REDUCTION = re.compile(
    r"with string dtype|dtype '(?:str|object)' does not support operation|"
    r"Could not convert string|agg function failed \[how->\w+,dtype->object\]"
)


def _type_hint(message: str) -> str | None:
    """Arithmetic on a column of text (numbers read as strings, or a text column)."""
    if _TEXT_REDUCTION.search(message) is None:
        return None
    return (
        "the column holds text, not numbers: convert it first with "
        "pd.to_numeric(df['name'], errors='coerce'), or keep the numeric columns with "
        "df.select_dtypes('number'); print(df.dtypes) shows each column's type"
    )


def exception_hint(
    exception: str,
    message: str,
    *,
    files: Sequence[str] = (),
    keeps_state: bool = False,
    columns: Mapping[str, Sequence[str]] | None = None,
    line: str | None = None,
    source: str | None = None,
    modules: Iterable[str] = (),
) -> str | None:
    """A hint for exceptions with a usual cause, or ``None``.

    ``columns``: the header of each tabular input file, so that a ``KeyError`` for a
    column name that none of them has can name the columns that exist. ``line``: the
    failing line of the code, to quote it in the hint. ``source``: the code that ran,
    whose names and strings are the candidates of a "did you mean". ``modules``: the
    modules the code may import, for a name used without its import.
    """
    if exception == "SyntaxError" and "'return' outside function" in message:
        returned = re.search(r"(?:^|;)\s*return\s+([^;]+?)[\s;]*$", line or "")
        if returned and returned.group(1) == "result":
            return (
                "the code runs as a script, not a function: delete `return result`; the "
                "value of `result` comes back by itself"
            )
        if returned:
            value = returned.group(1)
            return (
                "the code runs as a script, not a function: instead of "
                f"`return {value}`, write `result = {value}`"
            )
        return (
            "the code runs as a script, not a function: instead of `return x`, end with "
            "`x` on its own line or set `result = x`"
        )
    if exception == "SyntaxError" and "after line continuation character" in message:
        return (
            "a backslash outside a string must end its line: if you meant line breaks, put "
            "real line breaks in the code, not the two characters \\n"
        )
    if exception == "SyntaxError" and "'await' outside" in message:
        return "use asyncio.run(main()) to run a coroutine"
    if exception == "NameError":
        return _name_hint(message, source, modules, keeps_state)
    if exception == "AttributeError":
        return _attribute_hint(message, line, columns or {}, source)
    if exception == "TypeError":
        return _type_hint(message)
    if exception == "FileNotFoundError":
        return f"the input files are in the working directory: {_files_text(files)}"
    if exception == "KeyError":
        return _key_hint(message, columns or {}, source, line)
    return None
