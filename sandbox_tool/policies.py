"""Import and builtins policies for the user's code.

These are **policy and good error messages, not a security boundary**: code
running in the interpreter can get around any Python-level guard in a few
lines (``object.__subclasses__()``, frame walks, modules already loaded by a
library). What contains the code is the engine's operating-system boundary.
A policy's job is to tell the model early and clearly what it may use.

A policy judges the imports that the user's own code makes (``import``
statements, ``__import__`` and ``importlib.import_module`` called from the
user's code, and from functions it defines). Imports made inside an allowed
library (pandas importing its own dependencies) are not judged.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sandbox_tool.runner.guards import module_allowed

__all__ = [
    "DATA_SCIENCE_MODULES",
    "DEFAULT_DENIED_BUILTINS",
    "DEFAULT_DENIED_MODULES",
    "NATIVE_CODE_MODULES",
    "NETWORK_MODULES",
    "PARALLEL_MODULES",
    "PROCESS_MODULES",
    "SYSTEM_MODULES",
    "BuiltinsPolicy",
    "ImportPolicy",
]

#: Modules that start or control processes.
PROCESS_MODULES: frozenset[str] = frozenset(
    {"subprocess", "_posixsubprocess", "asyncio.subprocess", "pty", "pexpect", "sh", "plumbum"}
)
#: Modules that run code in other processes.
PARALLEL_MODULES: frozenset[str] = frozenset(
    {"multiprocessing", "_multiprocessing", "concurrent.futures.process"}
)
#: Modules that reach the network.
NETWORK_MODULES: frozenset[str] = frozenset(
    {
        "socket", "_socket", "ssl", "_ssl", "socketserver", "select", "selectors",
        "http.client", "http.server", "urllib.request", "ftplib", "smtplib", "poplib",
        "imaplib", "telnetlib", "xmlrpc", "webbrowser", "requests", "httpx", "urllib3",
        "aiohttp", "websockets", "paramiko",
    }
)  # fmt: skip
#: Modules that load foreign code or reach the interpreter's internals.
NATIVE_CODE_MODULES: frozenset[str] = frozenset(
    {"ctypes", "_ctypes", "cffi", "_ffi", "mmap", "_xxsubinterpreters"}
)
#: Modules for signals, the terminal and the process's own limits.
SYSTEM_MODULES: frozenset[str] = frozenset(
    {"signal", "_signal", "termios", "tty", "fcntl", "resource"}
)
#: The default deny-list: every module above. A name covers its submodules
#: (``multiprocessing`` covers ``multiprocessing.pool``).
DEFAULT_DENIED_MODULES: frozenset[str] = (
    PROCESS_MODULES | PARALLEL_MODULES | NETWORK_MODULES | NATIVE_CODE_MODULES | SYSTEM_MODULES
)

#: What a data-analysis snippet needs, and nothing that reaches the OS beyond files.
DATA_SCIENCE_MODULES: frozenset[str] = frozenset(
    {
        # the data-science stack
        "numpy",
        "pandas",
        "matplotlib",
        "scipy",
        "sklearn",
        "statsmodels",
        "seaborn",
        "sympy",
        "PIL",
        "networkx",
        "pyarrow",
        # standard library: numbers, text, data structures
        "math",
        "cmath",
        "statistics",
        "random",
        "decimal",
        "fractions",
        "numbers",
        "datetime",
        "time",
        "calendar",
        "zoneinfo",
        "json",
        "csv",
        "re",
        "string",
        "textwrap",
        "unicodedata",
        "difflib",
        "collections",
        "itertools",
        "functools",
        "operator",
        "heapq",
        "bisect",
        "array",
        "copy",
        "pprint",
        "reprlib",
        "enum",
        "dataclasses",
        "typing",
        "typing_extensions",
        "abc",
        "contextlib",
        "warnings",
        "io",
        "base64",
        "hashlib",
        "hmac",
        "uuid",
        "struct",
        "zlib",
        "gzip",
        "bz2",
        "lzma",
        "zipfile",
        "pathlib",
        "os.path",
        "glob",
        "fnmatch",
        "locale",
        "__future__",
    }
)

#: Builtins the user's code may not call by default.
DEFAULT_DENIED_BUILTINS: frozenset[str] = frozenset(
    {"eval", "exec", "compile", "input", "breakpoint", "help"}
)


def _module_names(names: Iterable[str]) -> frozenset[str]:
    out = set()
    for name in names:
        name = name.strip()
        parts = name.split(".")
        if not name or not all(p.isidentifier() for p in parts):
            raise ValueError(f"{name!r} is not a module name (expected e.g. 'numpy' or 'os.path')")
        out.add(name)
    return frozenset(out)


class ImportPolicy(BaseModel):
    """Which modules the user's code may import.

    A module is judged by the most specific rule that names it or one of its
    parents: ``deny={"os"}, allow={"os.path"}`` allows ``os.path`` and refuses
    ``os``. When no rule names it, ``unlisted`` decides. A name in both sets is
    denied.

    >>> ImportPolicy.default().allows("subprocess")
    False
    >>> ImportPolicy.data_science_whitelist().allows("pandas.io.json")
    True
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    unlisted: Literal["allow", "deny"] = "allow"
    """What happens to a module that no rule names."""
    allow: frozenset[str] = frozenset()
    """Modules (with their submodules) explicitly allowed."""
    deny: frozenset[str] = frozenset()
    """Modules (with their submodules) explicitly denied."""

    @field_validator("allow", "deny", mode="before")
    @classmethod
    def _check_names(cls, value: Any) -> frozenset[str]:
        if isinstance(value, str):
            raise ValueError("give a set of module names, not a single string")
        return _module_names(value)

    @classmethod
    def default(cls) -> ImportPolicy:
        """Everything but :data:`DEFAULT_DENIED_MODULES` (processes, network, ctypes...)."""
        return cls(unlisted="allow", deny=DEFAULT_DENIED_MODULES)

    @classmethod
    def data_science_whitelist(cls) -> ImportPolicy:
        """Only :data:`DATA_SCIENCE_MODULES`: numpy, pandas, matplotlib, scipy, safe stdlib."""
        return cls(unlisted="deny", allow=DATA_SCIENCE_MODULES)

    @classmethod
    def whitelist(cls, modules: Iterable[str]) -> ImportPolicy:
        """Only ``modules`` (and their submodules)."""
        return cls(unlisted="deny", allow=frozenset(modules))

    @classmethod
    def blacklist(cls, modules: Iterable[str]) -> ImportPolicy:
        """Everything but ``modules`` (and their submodules)."""
        return cls(unlisted="allow", deny=frozenset(modules))

    @classmethod
    def allow_all(cls) -> ImportPolicy:
        """No import is refused."""
        return cls(unlisted="allow")

    def with_allowed(self, modules: Iterable[str]) -> ImportPolicy:
        """A copy that also allows ``modules``."""
        extra = _module_names(modules)
        return ImportPolicy(
            unlisted=self.unlisted, allow=self.allow | extra, deny=self.deny - extra
        )

    def with_denied(self, modules: Iterable[str]) -> ImportPolicy:
        """A copy that also denies ``modules``."""
        extra = _module_names(modules)
        return ImportPolicy(
            unlisted=self.unlisted, allow=self.allow - extra, deny=self.deny | extra
        )

    def allows(self, module: str) -> bool:
        """Whether the user's code may import ``module`` (the runner applies the same rule)."""
        return module_allowed(module, self.allow, self.deny, self.unlisted == "allow")

    def describe(self) -> str:
        """One sentence for humans and models."""
        if self.unlisted == "allow" and not self.deny:
            return "every installed module may be imported"
        if self.unlisted == "allow":
            return "every installed module may be imported except: " + ", ".join(sorted(self.deny))
        text = "only these modules may be imported: " + ", ".join(sorted(self.allow))
        if self.deny:
            text += "; and never: " + ", ".join(sorted(self.deny))
        return text


class BuiltinsPolicy(BaseModel):
    """Which builtins the user's code may call (libraries keep the real builtins).

    ``deny`` names builtins that raise ``PermissionError`` when the user's code
    calls them. With ``restrict_open``, the user's ``open()`` accepts only paths
    inside the execution's working and temp directories.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    deny: frozenset[str] = Field(default=DEFAULT_DENIED_BUILTINS)
    """Builtins the user's code may not call."""
    restrict_open: bool = True
    """Limit the user's ``open()`` to the working and temp directories."""

    @field_validator("deny", mode="before")
    @classmethod
    def _check_builtins(cls, value: Any) -> frozenset[str]:
        import builtins

        if isinstance(value, str):
            raise ValueError("give a set of builtin names, not a single string")
        names = frozenset(value)
        unknown = sorted(n for n in names if not hasattr(builtins, n))
        if unknown:
            raise ValueError(f"not builtins: {', '.join(unknown)}")
        if "__import__" in names:
            raise ValueError("deny imports with ImportPolicy, not by removing __import__")
        return names

    @classmethod
    def allow_all(cls) -> BuiltinsPolicy:
        """Every builtin, and ``open()`` anywhere the engine lets the process reach."""
        return cls(deny=frozenset(), restrict_open=False)
