""" "Did you mean": the closest names to a misspelt one, from what the host can see.

The sandbox's namespace is gone once the code failed, so the candidates come from the
code itself (the names it defines, the strings it writes), the builtins, the input
files' columns and the usual import aliases.

>>> closest("valeus", ["values", "total"])
['values']
>>> import_for("np")
'import numpy as np'
>>> sorted(defined_names("import pandas as pd\\ndf = pd.read_csv('x.csv')\\ndef f(a): pass"))
['a', 'df', 'f', 'pd']
"""

from __future__ import annotations

import ast
import builtins
import difflib
from collections.abc import Iterable

__all__ = ["IMPORT_ALIASES", "closest", "defined_names", "import_for", "string_literals"]

#: The aliases models use without importing them, and the import that defines each.
IMPORT_ALIASES = {
    "pd": "import pandas as pd",
    "np": "import numpy as np",
    "plt": "import matplotlib.pyplot as plt",
    "mpl": "import matplotlib as mpl",
    "sns": "import seaborn as sns",
    "dt": "import datetime as dt",
    "datetime": "from datetime import datetime",
    "Path": "from pathlib import Path",
    "Counter": "from collections import Counter",
    "defaultdict": "from collections import defaultdict",
}


def import_for(name: str, modules: Iterable[str] = ()) -> str | None:
    """The import statement that defines ``name``: a usual alias, or a module of that
    name among ``modules`` (the importable ones)."""
    if name in IMPORT_ALIASES:
        return IMPORT_ALIASES[name]
    return f"import {name}" if name in set(modules) else None


def _parse(source: str) -> ast.Module | None:
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError):
        return None


def defined_names(source: str) -> set[str]:
    """Every name the code binds: assignments, imports, functions, classes, arguments."""
    tree = _parse(source)
    if tree is None:
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                names.add(alias.asname or alias.name.split(".")[0])
    return names


def string_literals(source: str, max_length: int = 80) -> set[str]:
    """The short string constants in the code (column and key names are among them)."""
    tree = _parse(source)
    if tree is None:
        return set()
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and 0 < len(node.value) <= max_length
        and "\n" not in node.value
    }


def closest(name: str, candidates: Iterable[str], n: int = 2) -> list[str]:
    """Up to ``n`` candidates close to ``name``: same spelling in another case first,
    then difflib's closest (ratio 0.6 or more)."""
    pool = sorted({c for c in candidates if c != name})
    same_case = [c for c in pool if c.lower() == name.lower()]
    close = difflib.get_close_matches(name, pool, n=n, cutoff=0.6)
    return (same_case + [c for c in close if c not in same_case])[:n]


def builtin_names() -> set[str]:
    """The builtins a misspelt call may have meant (``prnt`` -> ``print``)."""
    return {name for name in dir(builtins) if not name.startswith("_")}
