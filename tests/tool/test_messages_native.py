"""Every outcome's message, checked against errors from the REAL native engine."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox_tool import ExecutionOptions, ImportPolicy, PythonSandbox
from sandbox_tool.tool import PythonTool

CSV = Path(__file__).with_name("sales.csv")

# Words meant for the developer, never for the model.
DEVELOPER_WORDS = ("ExecutionOptions", "/tmp/", "sandbox-tool-")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[PythonSandbox]:
    sandbox = PythonSandbox("native")
    yield sandbox
    asyncio.run(sandbox.aclose())


CASES = [
    pytest.param(
        "import pandas as pd\nprint('rows:', 3)\npd.DataFrame({'a': [1, 2], 'b': [3.5, 4.0]})",
        {},
        True,
        ["The code ran successfully.", "Printed output:\nrows: 3", "Result (pandas.DataFrame):",
         "   a    b\n0  1  3.5\n1  2  4.0"],
        id="success-dataframe-and-stdout",
    ),
    pytest.param(
        "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nresult = 'drawn'",
        {},
        True,
        ["Result (str):\n'drawn'", "- figure-1.png (image/png,", "a plot, shown to you as an image"],  # noqa: E501
        id="success-plot-attachment-line",
    ),
    pytest.param(
        "for i in range(3000):\n    print('line', i)",
        {},
        True,
        ["line 0\n", "characters cut ...]", "line 2999"],
        id="success-long-stdout-cut-in-the-middle",
    ),
    pytest.param(
        "x = 1",
        {},
        True,
        ["printed nothing and returned no value"],
        id="success-nothing-to-show",
    ),
    pytest.param(
        "import json\nprint('before')\nimport requests",
        {},
        False,
        ["ImportNotAllowed: module 'requests' is not available here (line 3).",
         "no network access here: work from the input files ('sales.csv')",
         "Installed libraries you can import: ", "Output printed before the error:\nbefore"],
        id="import-refused-network-alternative",
    ),
    pytest.param(
        "import os\nos.listdir('.')",
        {"import_policy": ImportPolicy.data_science_whitelist()},
        False,
        ["module 'os' is not available here (line 1)", "Instead: use pathlib or os.path",
         "Modules you can import: ", "pandas", "from the standard library: ", "statistics"],
        id="import-refused-by-whitelist-lists-allowed",
    ),
    pytest.param(
        "x = eval('1 + 1')",
        {},
        False,
        ["BuiltinNotAllowed: eval() is not allowed here (line 1).",
         "Instead: write the expression directly"],
        id="builtin-refused",
    ),
    pytest.param(
        "open('/etc/hostname').read()",
        {},
        False,
        ["open() was refused that path (line 1)", "the input files ('sales.csv')"],
        id="open-outside-working-directory",
    ),
    pytest.param(
        "import time\nprint('started', flush=True)\nwhile True:\n    time.sleep(0.05)",
        {"timeout": 1},
        False,
        ["Timeout: the code ran longer than the 1 s time limit and was stopped.",
         "Output printed before it was stopped:\nstarted", "vectorised", "every loop ends"],
        id="timeout-keeps-prior-output",
    ),
    pytest.param(
        "print('spinning', flush=True)\nwhile True:\n    pass",
        {"cpu_seconds": 1, "timeout": 20},
        False,
        ["CpuLimitExceeded: the code used more than 1 s of CPU time and was stopped.",
         "spinning", "What to try: work on a sample first"],
        id="cpu-limit",
    ),
    pytest.param(
        "chunks = []\nwhile True:\n    chunks.append(bytearray(20_000_000))",
        {"memory_mb": 400},
        False,
        ["MemoryLimitExceeded: the code needed more than the 400 MB memory limit (peak seen: ",
         "chunksize", "smaller dtypes", "sample"],
        id="memory-limit-with-peak",
    ),
    pytest.param(
        "def ratio(a, b):\n    return a / b\n\nprint('computing')\nratio(1, 0)",
        {},
        False,
        ["ZeroDivisionError: division by zero", "At line 2:\n    return a / b\n",
         "Traceback (your code's frames only, most recent call last):",
         'File "<code>", line 5, in <module>', "Output printed before the error:\ncomputing"],
        id="exception-caret-and-user-traceback",
    ),
    pytest.param(
        "import pandas as pd\ndf = pd.read_csv('sales.csv')\ndf['revenue']",
        {},
        False,
        ["KeyError: 'revenue'", "At line 3:\n    df['revenue']\n", "~^^^^", "df.columns"],
        id="keyerror-in-library-trimmed-to-user-frame",
    ),
    pytest.param(
        "import pandas as pd\ndf = pd.read_csv('sales.csv')\ndf.groupby('region')['unit'].sum()",
        {},
        False,
        ["KeyError: 'Column not found: unit'",
         "Hint: 'unit' is not a column of the input files (did you mean 'units'?); the "
         "columns of 'sales.csv' are: 'region', 'units', 'price'", "df.columns.tolist()"],
        id="keyerror-column-names-the-file-columns-and-closest",
    ),
    pytest.param(
        "import pandas as pd\ndf = pd.read_csv('sales.csv')\ndf[['Region', 'price']]",
        {},
        False,
        ["'Region' is not a column of the input files (did you mean 'region'?)",
         "the columns of 'sales.csv' are: 'region', 'units', 'price'"],
        id="keyerror-column-list-names-only-the-missing-one",
    ),
    pytest.param(
        "totals = {'north': 1}\ntotals['region']",
        {},
        False,
        ["KeyError: 'region'", "Hint: check the names that exist first"],
        id="keyerror-for-an-existing-column-name-gets-no-column-list",
    ),
    pytest.param(
        "import pandas as pd\\ndf = pd.read_csv('sales.csv')\\ndf.head()",
        {},
        False,
        ["SyntaxError: unexpected character after line continuation character",
         "Hint: the code arrived escaped twice: it holds the two characters \\n where a "
         "line break belongs",
         "it is the valid Python below (indented here by 4 spaces: send it without them):\n"
         "    import pandas as pd\n    df = pd.read_csv('sales.csv')\n    df.head()"],
        id="syntax-error-escaped-twice-shows-the-code-as-meant",
    ),
    pytest.param(
        "import math\\nreturn math.sqrt(4)",
        {},
        False,
        ["SyntaxError: unexpected character after line continuation character",
         "Hint: the code arrived escaped twice",
         "so that it arrives with real line breaks."],
        id="syntax-error-escaped-twice-without-a-valid-reading",
    ),
    pytest.param(
        '{\\"name\\": \\"run_python\\", \\"arguments\\": {\\"code\\": '
        '\\"import pandas as pd\\\\nlen(pd.read_csv(\'sales.csv\'))\\"}}',
        {},
        False,
        ["Hint: the code is a whole tool call written as JSON: the `code` argument must hold "
         "only the Python source. Sent correctly, it is the valid Python below",
         "    import pandas as pd\n    len(pd.read_csv('sales.csv'))"],
        id="syntax-error-tool-call-sent-as-code",
    ),
    pytest.param(
        "import pandas as pd; df = pd.read_csv('sales.csv'); top = df['units'].max(); return top",
        {},
        False,
        ["SyntaxError: 'return' outside function",
         "Hint: the code runs as a script, not a function: instead of `return top`, write "
         "`result = top`."],
        id="syntax-error-return-outside-function-quotes-the-fix",
    ),
    pytest.param(
        "total = 0\nif total > 1\n    print(total)",
        {},
        False,
        ["SyntaxError: expected ':'", "At line 2:\n    if total > 1\n                ^"],
        id="syntax-error-with-caret",
    ),
    pytest.param(
        "print(df.head())",
        {},
        False,
        ["NameError: name 'df' is not defined", "nothing persists between calls"],
        id="name-error-explains-fresh-interpreter",
    ),
    pytest.param(
        "import seaborn_not_here",
        {},
        False,
        ["ModuleNotFoundError: No module named 'seaborn_not_here'", "installed: ", "pandas"],
        id="module-not-installed-lists-installed",
    ),
    pytest.param(
        "while True:\n    print('x' * 100)",
        {"max_output_bytes": 4096},
        False,
        ["OutputLimitExceeded: the code printed more than 4 KB, the limit, and was stopped.",
         "xxxxxxxx", "print a summary"],
        id="output-flood",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("code", "opts", "ok", "expected"), CASES)
def test_message_for_real_outcome(
    sandbox: PythonSandbox, code: str, opts: dict[str, object], ok: bool, expected: list[str]
) -> None:
    options = ExecutionOptions(files={"sales.csv": CSV}, **opts)  # type: ignore[arg-type]
    outcome = PythonTool(sandbox, options=options).run_sync(code)
    assert outcome.ok is ok, outcome.text
    assert outcome.text.startswith("The code ran successfully." if ok else "The code failed.")
    for fragment in expected:
        assert fragment in outcome.text, f"{fragment!r} missing from:\n{outcome.text}"
    for word in DEVELOPER_WORDS:
        assert word not in outcome.text
    assert (outcome.result is not None) is ok
    assert (outcome.error is not None) is not ok
