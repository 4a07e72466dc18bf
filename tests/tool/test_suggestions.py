"""The hints that say "did you mean": from the code's own names and strings, the builtins,
the input files' columns and the usual import aliases (no engine: they are pure functions)."""

from __future__ import annotations

import pytest

from sandbox_tool.tool.remedies import exception_hint
from sandbox_tool.tool.suggestions import closest, defined_names, import_for, string_literals

COLUMNS = {"sales.csv": ["date", "region", "units", "unit_price"]}
MODULES = ["json", "math", "numpy", "pandas", "statistics"]


def hint(exception: str, message: str, source: str, **kw: object) -> str | None:
    line = source.splitlines()[-1]
    return exception_hint(
        exception, message, columns=COLUMNS, source=source, line=line, modules=MODULES, **kw
    )  # type: ignore[arg-type]


CASES = [
    pytest.param(
        "NameError", "name 'valeus' is not defined", "values = [1]\nprint(sum(valeus))",
        ["did you mean 'values'?"], ["vars", "nothing persists"], id="typo-of-a-defined-name",
    ),
    pytest.param(
        "NameError", "name 'prnt' is not defined", "prnt(1)",
        ["did you mean 'print'?"], [], id="typo-of-a-builtin",
    ),
    pytest.param(
        "NameError", "name 'pd' is not defined", "df = pd.read_csv('sales.csv')",
        ["add `import pandas as pd`", "nothing persists between calls"], [], id="pd-alias",
    ),
    pytest.param(
        "NameError", "name 'plt' is not defined", "plt.plot([1])",
        ["import matplotlib.pyplot as plt"], [], id="plt-alias",
    ),
    pytest.param(
        "NameError", "name 'statistics' is not defined", "statistics.mean([1])",
        ["add `import statistics`"], [], id="module-used-without-import",
    ),
    pytest.param(
        "NameError", "name 'df' is not defined", "print(df.head())",
        ["define or import 'df'", "nothing persists between calls"], [], id="unknown-name",
    ),
    pytest.param(
        "AttributeError", "'DataFrame' object has no attribute 'unitprice'",
        "import pandas as pd\nsales = pd.read_csv('sales.csv')\nsales.unitprice.mean()",
        ["did you mean the column sales['unit_price']?"], [], id="dataframe-attribute-column",
    ),
    pytest.param(
        "AttributeError", "'Series' object has no attribute 'zzz'", "s.zzz()",
        ["print([m for m in dir(s)", "one column"], ["did you mean", "columns"],
        id="series-attribute-nothing-close",
    ),
    pytest.param(
        "AttributeError", "'DataFrame' object has no attribute 'zzz'", "sales.zzz()",
        ["print(sales.columns.tolist())"], ["did you mean"], id="attribute-nothing-close",
    ),
    pytest.param(
        # a Series has no columns: a column name close to the method is no answer
        "AttributeError", "'Series' object has no attribute 'strptime'",
        "import pandas as pd\nd = pd.read_csv('sales.csv')['date']\nd.strptime('%Y')",
        ["pd.to_datetime(d, format=...)"], ["column", "'date'"], id="series-strptime",
    ),
    pytest.param(
        "AttributeError", "'Series' object has no attribute 'lower'", "sales['region'].lower()",
        ["sales['region'].str.lower(...)"], [], id="series-text-method",
    ),
    pytest.param(
        "AttributeError", "'Series' object has no attribute 'year'", "dates.year",
        ["pd.to_datetime(dates).dt.year"], [], id="series-date-part",
    ),
    pytest.param(
        "SyntaxError", "'return' outside function", "df = 1; total = df * 2; return total;",
        ["instead of `return total`, write `result = total`"], [], id="return-with-semicolon",
    ),
    pytest.param(
        "SyntaxError", "'return' outside function", "result = {'a': 1}; return result",
        ["delete `return result`"], ["result = result"], id="return-result",
    ),
    pytest.param(
        "TypeError", "Cannot perform reduction 'mean' with string dtype", "df['units'].mean()",
        ["pd.to_numeric(df['name'], errors='coerce')", "print(df.dtypes)"], [],
        id="mean-of-a-text-column",
    ),
    pytest.param(
        "TypeError", "dtype 'str' does not support operation 'mean'",
        "df.groupby('region')['units'].mean()", ["holds text, not numbers"], [],
        id="groupby-mean-of-a-text-column",
    ),
    pytest.param(
        "TypeError", "unsupported operand type(s) for +: 'int' and 'str'", "1 + 'a'",
        None, [], id="other-type-errors-get-no-hint",
    ),
    pytest.param(
        "AttributeError", "'list' object has no attribute 'mean'", "[1].mean()",
        None, [], id="attribute-of-other-types-gets-no-hint",
    ),
    pytest.param(
        "KeyError", "'prices'",
        "import pandas as pd\nt = pd.DataFrame({'price': [1]})\nt['prices']",
        ["'prices' is not a column of the input files (did you mean 'price'"], [],
        id="key-of-a-frame-built-in-the-code",
    ),
    pytest.param(
        "KeyError", "'unit_prise'", "df['unit_prise']",
        ["did you mean 'unit_price'", "the columns of 'sales.csv' are",
         "tolist()); the failing line with 'unit_price' reads: df['unit_price']"], [],
        id="key-of-an-input-file",
    ),
    pytest.param(
        "KeyError", "'price'",
        "import pandas as pd\ndf = pd.read_csv('sales.csv'); print(df[df[\"price\"] > 1].region)",
        ["the failing line with 'unit_price' reads: df = pd.read_csv('sales.csv'); "
         "print(df[df[\"unit_price\"] > 1].region)"], [],
        id="key-corrected-in-the-failing-line",
    ),
    pytest.param(
        "KeyError", "'zzz'", "df['zzz']", ["'zzz' is not a column"], ["the failing line"],
        id="no-close-column-no-corrected-line",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("exception", "message", "source", "says", "not_says"), CASES)
def test_hint(
    exception: str, message: str, source: str, says: list[str] | None, not_says: list[str]
) -> None:
    text = hint(exception, message, source)
    if says is None:
        assert text is None
        return
    assert text is not None
    for fragment in says:
        assert fragment in text, text
    for fragment in not_says:
        assert fragment not in text, text


def test_in_a_session_a_missing_import_does_not_claim_state_is_lost() -> None:
    text = hint("NameError", "name 'np' is not defined", "np.ones(2)", keeps_state=True)
    assert text == "`np` is never imported: add `import numpy as np` at the top of the code"


def test_candidates_come_from_the_code() -> None:
    source = "import numpy as np\nfrom os import path as p\nclass K: pass\ndef f(a, *b): x = 'k'"
    assert defined_names(source) == {"np", "p", "K", "f", "a", "b", "x"}
    assert string_literals(source) == {"k"}
    assert defined_names("def (") == set() and string_literals("'") == set()
    assert closest("Region", ["region", "regions"]) == ["region", "regions"]
    assert import_for("json", MODULES) == "import json" and import_for("zzz", MODULES) is None
