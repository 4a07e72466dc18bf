"""The agent tool: run the model's Python and answer with messages it can act on.

One tool spec (:class:`ToolSpec`, from :class:`PythonTool`), rendered for LangChain
(:class:`LangChainPythonTool`, imported lazily: ``pip install 'sandbox-tool[langchain]'``)
and for OpenAI function calling (:class:`OpenAIFunctions`, no ``openai`` import needed).

>>> from sandbox_tool import PythonSandbox
>>> from sandbox_tool.tool import PythonTool, OpenAIFunctions
>>> tool = PythonTool(PythonSandbox("native"))                # doctest: +SKIP
>>> OpenAIFunctions(tool).responses_tools()[0]["name"]         # doctest: +SKIP
'run_python'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sandbox_tool.tool.description import describe_tool
from sandbox_tool.tool.installs import PackageInstaller
from sandbox_tool.tool.interpreter import InterpreterInfo, inspect_interpreter
from sandbox_tool.tool.messages import MessageContext, clip_middle, format_error, format_result
from sandbox_tool.tool.openai_functions import OpenAIFunctions, ToolReply, TurnReply
from sandbox_tool.tool.python_tool import CodeRunner, PythonTool, ToolOutcome
from sandbox_tool.tool.spec import ArgumentsError, ToolSpec, parse_arguments

if TYPE_CHECKING:
    from sandbox_tool.tool.langchain_install import LangChainInstallTool, langchain_tools
    from sandbox_tool.tool.langchain_tool import (
        LangChainPythonTool,
        images_in_tool_results,
        images_message,
    )

__all__ = [
    "ArgumentsError",
    "CodeRunner",
    "InterpreterInfo",
    "LangChainInstallTool",
    "LangChainPythonTool",
    "MessageContext",
    "OpenAIFunctions",
    "PackageInstaller",
    "PythonTool",
    "ToolOutcome",
    "ToolReply",
    "ToolSpec",
    "TurnReply",
    "clip_middle",
    "describe_tool",
    "format_error",
    "format_result",
    "images_in_tool_results",
    "images_message",
    "inspect_interpreter",
    "langchain_tools",
    "parse_arguments",
]

_LAZY = {"LangChainPythonTool", "images_in_tool_results", "images_message"}
_LAZY_INSTALL = {"LangChainInstallTool", "langchain_tools"}


def __getattr__(name: str) -> Any:
    # langchain-core is optional and heavy: import it only when asked for
    if name in _LAZY:
        from sandbox_tool.tool import langchain_tool

        return getattr(langchain_tool, name)
    if name in _LAZY_INSTALL:
        from sandbox_tool.tool import langchain_install

        return getattr(langchain_install, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
