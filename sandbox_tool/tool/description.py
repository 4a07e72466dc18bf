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
from sandbox_tool.policies import DATA_SCIENCE_MODULES, ImportPolicy
from sandbox_tool.tool.interpreter import InterpreterInfo

__all__ = ["describe_libraries", "describe_tool"]

#: Libraries named in the description at most; the rest are counted.
MAX_LIBRARIES = 30


def describe_libraries(
    info: InterpreterInfo, policy: ImportPolicy, limit: int = MAX_LIBRARIES
) -> str:
    """Installed libraries the policy lets the code import, the usual data tools first."""
    usable = [name for name in info.libraries if policy.allows(name) and name not in info.stdlib]
    usable.sort(key=lambda n: (n not in DATA_SCIENCE_MODULES and n not in policy.allow, n.lower()))
    shown = [f"{name} {info.libraries[name]}" for name in usable[:limit]]
    if len(usable) > limit:
        shown.append(f"and {len(usable) - limit} more")
    return ", ".join(shown) if shown else "none beyond the standard library"


def _public(names: frozenset[str]) -> list[str]:
    return sorted((n for n in names if not n.startswith("_")), key=str.lower)


def _describe_policy(policy: ImportPolicy, info: InterpreterInfo) -> str:
    if policy.unlisted == "allow" and not policy.deny:
        return "Any installed module may be imported."
    if policy.unlisted == "allow":
        return "Imports refused here: " + ", ".join(_public(policy.deny)) + "."
    stdlib = frozenset(n for n in policy.allow if n.split(".")[0] in info.stdlib)
    text = "Only the libraries above may be imported"
    if stdlib:
        text += ", and from the standard library only: " + ", ".join(_public(stdlib))
    return text + "."


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
    lines.append("Libraries installed: " + describe_libraries(info, options.import_policy) + ".")
    lines.append(_describe_policy(options.import_policy, info))
    lines.append(_describe_limits(options))
    return "\n".join(lines)
