"""What the model should do instead: alternatives to refused modules and builtins,
and hints for common exceptions. Domain knowledge, kept apart from formatting.

>>> module_alternative("requests", ["sales.csv"])
"there is no network access here: work from the input files ('sales.csv')"
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["builtin_alternative", "exception_hint", "module_alternative"]

_NETWORK = frozenset(
    {
        "requests",
        "httpx",
        "urllib3",
        "aiohttp",
        "websockets",
        "socket",
        "ssl",
        "socketserver",
        "http",
        "urllib.request",
        "ftplib",
        "smtplib",
        "poplib",
        "imaplib",
        "telnetlib",
        "xmlrpc",
        "webbrowser",
        "paramiko",
        "select",
        "selectors",
    }
)
_PROCESSES = frozenset({"subprocess", "pty", "pexpect", "sh", "plumbum", "asyncio.subprocess"})
_PARALLEL = frozenset({"multiprocessing", "concurrent.futures.process", "threading"})
_NATIVE = frozenset({"ctypes", "cffi", "mmap"})
_SYSTEM = frozenset({"signal", "resource", "fcntl", "termios", "tty"})
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


def exception_hint(
    exception: str, message: str, *, files: Sequence[str] = (), keeps_state: bool = False
) -> str | None:
    """A hint for exceptions with a usual cause, or ``None``."""
    if exception == "SyntaxError" and "'return' outside function" in message:
        return (
            "the code runs as a script, not a function: instead of `return x`, end with "
            "`x` on its own line or set `result = x`"
        )
    if exception == "SyntaxError" and "'await' outside" in message:
        return "use asyncio.run(main()) to run a coroutine"
    if exception == "NameError" and not keeps_state:
        return (
            "nothing persists between calls: import modules and define variables "
            "(re-read files) in the same code"
        )
    if exception == "FileNotFoundError":
        return f"the input files are in the working directory: {_files_text(files)}"
    if exception == "KeyError":
        return "check the names that exist first, e.g. print(df.columns.tolist())"
    return None
