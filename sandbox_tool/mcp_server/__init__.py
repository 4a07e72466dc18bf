"""``sandbox-tool mcp``: the ``run_python`` tool served over the Model Context Protocol.

Needs the official MCP SDK: ``pip install 'sandbox-tool[mcp]'`` (``mcp`` 2.x, which
speaks both the 2025 handshake revisions that desktop clients use and 2026-07-28).

- :mod:`.results`: the tool's MCP definition (the one :class:`~sandbox_tool.tool.ToolSpec`,
  whose description and schema every rendering shares) and its results (the model's
  message, an image per figure, the JSON result as structured content).
- :mod:`.conversations`: one sandbox session per MCP client, so state lasts across calls.
- :mod:`.progress`: progress notifications and log messages while the code runs.
- :mod:`.server`: the MCP server itself, on stdio; :mod:`.http`: on streamable HTTP.

``import sandbox_tool`` never imports this package (nor the SDK).
"""

from __future__ import annotations

try:
    import mcp  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise ImportError("the MCP server needs the MCP SDK: pip install 'sandbox-tool[mcp]'") from exc
