"""The machinery every runner-based engine shares: workspaces, the warm pool, the one
channel driver, the options-to-protocol translation and the answer-to-result mapping.
Private to :mod:`sandbox_tool.engines`; nothing here is public API."""
