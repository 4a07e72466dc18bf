"""The tool description: what the model has, told before it writes any code.

Generated from the real configuration (options, import policy, interpreter,
files), so what the model reads is what the sandbox enforces.

>>> from sandbox_tool import ExecutionOptions
>>> text = describe_tool(ExecutionOptions(timeout=10), InterpreterInfo("3.11.7", {}))
>>> "Python 3.11.7" in text and "10 s wall clock" in text
True
"""

from __future__ import annotations

from sandbox_tool.options import ExecutionOptions
from sandbox_tool.policies import DATA_SCIENCE_MODULES, DEFAULT_DENIED_MODULES, ImportPolicy
from sandbox_tool.tool.interpreter import InterpreterInfo

__all__ = ["WORK_LIBRARIES", "describe_libraries", "describe_tool", "usable_libraries"]

#: Libraries named in the description at most; the rest are counted.
MAX_LIBRARIES = 30

#: Libraries a model's code does its work with (data, science, plots, file formats).
#: With a policy that lets every installed module in (the default one), only these are
#: named: the rest of an environment is the host's own tooling (the agent framework,
#: HTTP clients, test runners), which costs the model tokens every turn and helps no
#: analysis. An allow-list policy names exactly what it allows instead.
WORK_LIBRARIES: frozenset[str] = frozenset(
    {
        *(n for n in DATA_SCIENCE_MODULES if "." not in n and n != "typing_extensions"),
        "polars",
        "duckdb",
        "plotly",
        "altair",
        "bokeh",
        "skimage",
        "cv2",
        "shapely",
        "geopandas",
        "xarray",
        "numba",
        "dateutil",
        "pytz",
        "tabulate",
        "openpyxl",
        "xlrd",
        "odf",
        "tables",
        "h5py",
        "yaml",
        "toml",
        "bs4",
        "lxml",
        "markdown",
        "jinja2",
        "sqlalchemy",
    }
)


def usable_libraries(info: InterpreterInfo, policy: ImportPolicy) -> list[str]:
    """Installed libraries worth telling the model about, the usual data tools first:
    those an allow-list policy allows, or else those of :data:`WORK_LIBRARIES` that the
    policy does not refuse."""
    usable = [name for name in info.libraries if policy.allows(name) and name not in info.stdlib]
    if policy.unlisted == "allow":
        usable = [name for name in usable if name in WORK_LIBRARIES or name in policy.allow]
    usable.sort(key=lambda n: (n not in DATA_SCIENCE_MODULES and n not in policy.allow, n.lower()))
    return usable


def describe_libraries(
    info: InterpreterInfo, policy: ImportPolicy, limit: int = MAX_LIBRARIES
) -> str:
    """:func:`usable_libraries` with their versions, at most ``limit`` of them named."""
    usable = usable_libraries(info, policy)
    shown = [f"{name} {info.libraries[name]}" for name in usable[:limit]]
    if len(usable) > limit:
        shown.append(f"and {len(usable) - limit} more")
    return ", ".join(shown) if shown else "none beyond the standard library"


def _public(names: frozenset[str]) -> list[str]:
    return sorted((n for n in names if not n.startswith("_")), key=str.lower)


def _describe_policy(policy: ImportPolicy, info: InterpreterInfo) -> str:
    if policy.unlisted == "allow":
        return "Other installed modules may be imported too" + _refused(policy, info) + "."
    stdlib = frozenset(n for n in policy.allow if n.split(".")[0] in info.stdlib)
    text = "Only the libraries above may be imported"
    if stdlib:
        text += ", and from the standard library only: " + ", ".join(_public(stdlib))
    return text + "."


def _refused(policy: ImportPolicy, info: InterpreterInfo) -> str:
    if not policy.deny:
        return ""
    if policy.deny == DEFAULT_DENIED_MODULES:  # its kinds say it in fewer tokens
        return (
            ", except those that start processes, reach the network, load native code or "
            "handle signals (subprocess, multiprocessing, socket, urllib.request, ctypes, "
            "signal...)"
        )
    # the refused modules that exist here: the others cannot be imported anyway
    present = frozenset(
        n for n in policy.deny if n.split(".")[0] in info.stdlib | set(info.libraries)
    )
    return f", except: {', '.join(_public(present))}" if present else ""


def _describe_limits(options: ExecutionOptions) -> str:
    parts = [
        f"{options.timeout:g} s wall clock",
        f"{options.cpu_seconds:g} s CPU",
        f"{options.memory_mb} MB memory",
        f"{options.max_output_bytes // 1024} KB of printed output",
    ]
    if not options.network:
        parts.append("no network access")
    return (
        "Limits per call: " + ", ".join(parts) + ". The CPU and memory limits are for all "
        "the processes the code starts together (checked every 0.1 s, and per process)."
    )


def describe_tool(
    options: ExecutionOptions, info: InterpreterInfo, *, keeps_state: bool = False
) -> str:
    """The description the model reads for ``run_python``."""
    lines = [
        f"Run Python {info.python_version} code in a sandbox and get back its printed "
        "output, its result, and any plots.",
        "The value of a variable named `result`, or else of the last expression, is "
        "returned (a DataFrame as a table). Matplotlib figures left open are captured "
        "and shown to you automatically: do not call plt.show() or save them.",
    ]
    if keeps_state:
        lines.append("Variables, imports and files persist between calls in this conversation.")
    else:
        lines.append(
            "Each call starts in a fresh interpreter: nothing persists between calls, so "
            "import and load what you need every time."
        )
    if options.files:
        names = ", ".join(repr(name) for name in sorted(options.files))
        lines.append(
            f"Input files, read-only in the working directory (open them by these names): {names}."
        )
    else:
        lines.append("There are no input files.")
    lines.append(
        "Libraries you can import: " + describe_libraries(info, options.import_policy) + "."
    )
    lines.append(_describe_policy(options.import_policy, info))
    lines.append(_describe_limits(options))
    return "\n".join(lines)
