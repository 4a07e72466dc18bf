"""Results built to break the runner's conversion (issue 14, item 9): the worker must
answer with the result (or a text saying why it could not be converted), never crash
and be reported as "os._exit or a crash"; and the next execution works."""

from __future__ import annotations

import pytest

from sandbox_tool import ExecutionOptions

from .harness import ALLOW_ALL, Side

HOSTILE = {
    "int-too-large-for-str": ("result = 10**5000", "integer string conversion"),
    "module-not-a-str": (
        "class M:\n    pass\nM.__module__ = 5\nresult = M()",
        "M object",
    ),
    "class-property-raises": (
        "class C:\n    @property\n    def __class__(self):\n        raise RuntimeError('x')\n"
        "result = C()",
        "C object",
    ),
    "repr-raises": (
        "class R:\n    def __repr__(self):\n        raise ValueError('no repr here')\nresult = R()",
        "no repr here",
    ),
    "repr-exits": (
        "import sys\nclass R:\n    def __repr__(self):\n        sys.exit(3)\nresult = R()",
        "SystemExit",
    ),
    "repr-returns-an-int": (
        "class R:\n    def __repr__(self):\n        return 5\nresult = R()",
        "TypeError",
    ),
    "len-lies": (
        "class L(list):\n    def __len__(self):\n        return -1\nresult = L([1, 2])",
        "[1, 2]",
    ),
    "nested-200000-deep": (
        "result = []\nx = result\nfor _ in range(200000):\n    x.append([])\n    x = x[0]",
        "[[[",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_result_is_answered(side: Side, case: str) -> None:
    code, says = HOSTILE[case]
    opts = ExecutionOptions(**ALLOW_ALL, timeout=30)
    res = side.sandbox.execute_sync(code, None, opts)
    reported = f"{res.result!r} {res.result_repr!r}"
    assert says in reported, reported
    assert side.sandbox.execute_sync("result = 6 * 7", None, opts).result == 42
