"""Code escaped twice, or a tool call sent as code: told apart from other syntax errors,
and the code as meant offered only when it is valid Python."""

from __future__ import annotations

import time

import pytest

from sandbox_tool.tool.escaping import meant_code, meant_code_lines, misencoded_hint

CONTINUATION = "unexpected character after line continuation character"


@pytest.mark.parametrize(
    ("source", "meant"),
    [
        pytest.param("import math\\nresult = math.sqrt(4)", "import math\nresult = math.sqrt(4)",
                     id="line-breaks"),
        pytest.param('df = pd.read_csv(\\"sales.csv\\")\\ndf.head()',
                     'df = pd.read_csv("sales.csv")\ndf.head()', id="quotes-and-line-breaks"),
        pytest.param("import pandas as pd\nx = 1\\nprint(x)\\n\"}",
                     "import pandas as pd\nx = 1\nprint(x)", id="real-and-escaped-with-json-tail"),
        pytest.param("for i in range(2):\\n    print(i)", "for i in range(2):\n    print(i)",
                     id="indented-block"),
    ],
)  # fmt: skip
def test_code_escaped_twice_is_given_back_as_meant(source: str, meant: str) -> None:
    with pytest.raises(SyntaxError):
        compile(source, "<code>", "exec")
    assert meant_code(source, CONTINUATION) == ("escaped twice", meant)


def test_escaped_twice_without_a_valid_reading_is_named_without_code() -> None:
    # unescaped it is still broken ('return' outside a function): the mistake is named,
    # and no code is offered that would fail again
    source = "import math\\nreturn math.sqrt(4)"
    assert meant_code(source, CONTINUATION) == ("escaped twice", None)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        pytest.param('print("a\\nb"', "'(' was never closed", id="escape-inside-a-string"),
        pytest.param("total = 0\nif total > 1\n    print(total)", "expected ':'", id="plain"),
        pytest.param("x = 1 \\ y", CONTINUATION, id="continuation-without-backslash-n"),
        pytest.param("", "invalid syntax", id="empty"),
    ],
)  # fmt: skip
def test_other_syntax_errors_are_not_called_escaped(source: str, message: str) -> None:
    assert meant_code(source, message) is None


@pytest.mark.parametrize(
    ("source", "meant"),
    [
        pytest.param('{\\"name\\": \\"run_python\\", \\"arguments\\": {\\"code\\": \\"y = 3\\"}}',
                     "y = 3", id="call-escaped-twice"),
        pytest.param('{\\"arguments\\": {\\"code\\": \\"import math\\\\nmath.pi\\"}}',
                     "import math\nmath.pi", id="call-and-code-escaped-twice"),
        pytest.param('{"name": "run_python", "arguments": {"code": ', None, id="cut-short"),
        pytest.param('{\\"arguments\\": {\\"code\\": \\"return 1\\"}}', None, id="code-not-valid"),
        pytest.param('{"name": "run_python", "arguments": {code: "x = 1"}', None,
                     id="not-quite-json"),
    ],
)  # fmt: skip
def test_tool_call_sent_as_code(source: str, meant: str | None) -> None:
    assert meant_code(source, "invalid syntax") == ("tool call", meant)


@pytest.mark.parametrize("source", ['{"a": 1', '{"name": "Ada", "age": 36', '{"name": "f", '])
def test_a_dict_literal_is_not_a_tool_call(source: str) -> None:
    assert meant_code(source, "'{' was never closed") is None


def test_a_valid_tool_call_is_code_that_runs() -> None:
    # valid JSON is valid Python (a dict): it runs, so there is no syntax error to explain
    assert meant_code('{"name": "run_python", "arguments": {"code": "x = 1"}}') is None


def test_hints_name_the_mistake_and_offer_code_only_when_there_is_some() -> None:
    assert "escaped twice" in misencoded_hint("escaped twice", None)
    assert "valid Python" not in misencoded_hint("escaped twice", None)
    short = misencoded_hint("escaped twice", "x = 1")
    assert short.endswith(
        "the valid Python below (indented here by 4 spaces: send it without them)"
    )
    clipped = misencoded_hint("escaped twice", "\n".join(f"x{i} = {i}" for i in range(20)))
    assert clipped.endswith("valid Python that begins as below (indented here)")
    assert "only the Python source" in misencoded_hint("tool call", None)


def test_code_block_is_indented_and_clipped() -> None:
    long_line = "y = '" + "z" * 300 + "'"
    rows = meant_code_lines("\n".join(f"x{i} = {i}" for i in range(20)) + "\n" + long_line)
    assert rows[0] == "    x0 = 0"
    assert rows[-1] == "    [... 9 more lines]"
    assert len(rows) == 13
    assert all(len(row) <= 4 + 160 for row in rows)


@pytest.mark.parametrize(
    ("source", "meant"),
    [
        pytest.param("import pandas as pd\nm = pd.Series([1.5]).mean().round(2)}",
                     "import pandas as pd\nm = pd.Series([1.5]).mean().round(2)", id="brace"),
        pytest.param('x = 1\nprint(x)"}', "x = 1\nprint(x)", id="quote-and-brace"),
        pytest.param('import math; print(math.pi)}, {" }', "import math; print(math.pi)",
                     id="recorded-brace-comma-brace"),
        pytest.param('print(max([1, 2]))}, {\\" }"}', "print(max([1, 2]))",
                     id="recorded-with-an-escaped-quote"),
        pytest.param('d = {"a": {"b": 1}}}', 'd = {"a": {"b": 1}}', id="one-brace-too-many"),
    ],
)  # fmt: skip
def test_code_with_the_json_end_left_on(source: str, meant: str) -> None:
    assert meant_code(source, "unmatched '}'") == ("json tail", meant)
    assert "left over from the tool call's JSON" in misencoded_hint("json tail", meant)


def test_punctuation_whose_cut_leaves_broken_code_is_not_a_json_tail() -> None:
    assert meant_code('d = {"a": [1, 2}', "closing parenthesis '}' does not match '['") is None
    assert meant_code("x = f(1, 2}", "closing parenthesis '}' does not match '('") is None


@pytest.mark.parametrize(
    "source",
    [
        pytest.param("import pandas as pd\nx = 1\n", id="valid-ending-in-a-newline"),
        pytest.param('s = """a\\nb"""\nprint(s)', id="valid-with-an-escape-in-a-string"),
    ],
)  # fmt: skip
def test_code_that_compiles_raised_its_syntax_error_at_run_time(source: str) -> None:
    # e.g. from eval() or df.query(): nothing about how the code was sent
    assert meant_code(source, "invalid syntax") is None


def test_a_backslash_n_only_inside_a_string_is_not_called_escaped_twice() -> None:
    line = 'print("a\\nb") \\ x'
    assert meant_code(line, CONTINUATION, line) is None
    assert meant_code("y = 1\\n\\nz", CONTINUATION, "y = 1\\n\\nz") is not None


@pytest.mark.parametrize(
    "source",
    [
        pytest.param("x = (" + " " * 30_000 + "1", id="long-run-of-spaces"),
        pytest.param('"' * 20_000 + "(", id="long-run-of-quotes"),
        pytest.param("x = " + "+1" * 5_000 + ")", id="deep-expression"),
        pytest.param("-" * 50_000 + "1)", id="long-unary-chain"),
        pytest.param("[" * 5_000 + "\\n", id="deep-nesting"),
        pytest.param("x = (\n" + "y = 1\n" * 20_000, id="larger-than-examined"),
    ],
)  # fmt: skip
def test_odd_or_huge_code_gets_an_answer_quickly(source: str) -> None:
    start = time.perf_counter()
    meant_code(source, CONTINUATION)  # no exception, whatever the answer
    assert time.perf_counter() - start < 2.0
