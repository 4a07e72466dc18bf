"""``install_packages`` as a LangChain ``BaseTool`` (needs ``pip install
'sandbox-tool[langchain]'``), for a :class:`PythonTool` made with ``installs=True``.

>>> tools = langchain_tools(PythonTool(sandbox, installs=True))   # doctest: +SKIP
>>> model = chat_model.bind_tools(tools)                          # run_python, install_packages
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

try:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForToolRun,
        CallbackManagerForToolRun,
    )
    from langchain_core.tools import ArgsSchema, BaseTool
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise ImportError(
        "the LangChain tool needs langchain-core: pip install 'sandbox-tool[langchain]'"
    ) from exc

from sandbox_tool.errors import UsageError
from sandbox_tool.sandbox import run_sync
from sandbox_tool.tool.langchain_tool import LangChainPythonTool
from sandbox_tool.tool.python_tool import PythonTool, ToolOutcome

__all__ = ["InstallPackagesArgs", "LangChainInstallTool", "langchain_tools"]


class InstallPackagesArgs(BaseModel):
    """Arguments of ``install_packages``."""

    packages: list[str] = Field(
        description='Package names as on the package index, e.g. ["statsmodels"].'
    )


class LangChainInstallTool(BaseTool):
    """``install_packages`` for LangChain chat models, sync and async."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str = "install_packages"
    description: str = ""
    args_schema: ArgsSchema | None = InstallPackagesArgs
    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"
    python_tool: PythonTool

    @classmethod
    def from_tool(cls, tool: PythonTool) -> LangChainInstallTool:
        if tool.installer is None:
            raise UsageError(
                "the tool has no installs: make it with PythonTool(..., installs=True)"
            )
        spec = tool.installer.spec
        return cls(name=spec.name, description=spec.description, python_tool=tool)

    async def _arun(
        self, packages: list[str], run_manager: AsyncCallbackManagerForToolRun | None = None
    ) -> tuple[str, ToolOutcome]:
        outcome = await self.python_tool.call(self.name, {"packages": packages})
        return outcome.text, outcome

    def _run(
        self, packages: list[str], run_manager: CallbackManagerForToolRun | None = None
    ) -> tuple[str, ToolOutcome]:
        return run_sync(self._arun(packages))


def langchain_tools(tool: PythonTool) -> list[BaseTool]:
    """The LangChain tools of ``tool``: ``run_python``, and ``install_packages`` when its
    installs are on."""
    tools: list[BaseTool] = [LangChainPythonTool.from_tool(tool)]
    if tool.installer is not None:
        tools.append(LangChainInstallTool.from_tool(tool))
    return tools
