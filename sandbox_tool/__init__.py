"""sandbox_tool: run the Python an LLM agent writes, isolated, with results it can act on.

>>> from sandbox_tool import create_default_sandbox, ExecutionOptions
>>> sandbox = await create_default_sandbox()                  # doctest: +SKIP
>>> res = await sandbox.execute("result = sum(inputs)", inputs=[1, 2, 3])  # doctest: +SKIP
>>> res.result                                                # doctest: +SKIP
6

Nothing heavy is imported here: no numpy, langchain, openai or microsandbox.
"""

from sandbox_tool.engines import ENGINES, Engine, EngineInfo, probe_all
from sandbox_tool.errors import (
    BuiltinNotAllowed,
    CpuLimitExceeded,
    EngineError,
    EngineUnavailable,
    ExecutionError,
    ExecutionFailed,
    ImportNotAllowed,
    MemoryLimitExceeded,
    OutputLimitExceeded,
    PackageError,
    PackageInstallFailed,
    PackageNotAllowed,
    PackageNotFound,
    SandboxError,
    SessionsNotSupported,
    Timeout,
    UsageError,
    error_from_dict,
)
from sandbox_tool.options import ExecutionOptions
from sandbox_tool.policies import BuiltinsPolicy, ImportPolicy
from sandbox_tool.result import Artifact, ExecutionResult
from sandbox_tool.sandbox import PythonSandbox, create_default_sandbox
from sandbox_tool.session import Session
from sandbox_tool.streaming import OnOutput, Output

__version__ = "0.1.0"

__all__ = [
    "ENGINES",
    "Artifact",
    "BuiltinNotAllowed",
    "BuiltinsPolicy",
    "CpuLimitExceeded",
    "Engine",
    "EngineError",
    "EngineInfo",
    "EngineUnavailable",
    "ExecutionError",
    "ExecutionFailed",
    "ExecutionOptions",
    "ExecutionResult",
    "ImportNotAllowed",
    "ImportPolicy",
    "MemoryLimitExceeded",
    "OnOutput",
    "Output",
    "OutputLimitExceeded",
    "PackageError",
    "PackageInstallFailed",
    "PackageNotAllowed",
    "PackageNotFound",
    "PythonSandbox",
    "SandboxError",
    "Session",
    "SessionsNotSupported",
    "Timeout",
    "UsageError",
    "__version__",
    "create_default_sandbox",
    "error_from_dict",
    "probe_all",
]
