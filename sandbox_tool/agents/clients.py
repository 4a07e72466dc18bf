"""The model clients an agent run talks to: an ``openai.AsyncOpenAI`` or a LangChain chat
model, the caller's or one made for a base URL, with the key from the environment.

``openai``, ``langchain-core`` and ``langchain-openai`` are imported only here, and only
when a client is made: a missing one is a ``UsageError`` naming what to install.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

from sandbox_tool.errors import UsageError

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from openai import AsyncOpenAI

__all__ = ["NO_MODEL", "api_key", "langchain_model", "openai_client"]

NO_MODEL = (
    "no model is configured: set OPENAI_API_KEY (to use OpenAI), or pass base_url= (any "
    "OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1) or client="
)


def api_key(base_url: str | None) -> str | None:
    """The key to use: OPENAI_API_KEY, or a placeholder for a local server that needs none."""
    key = os.environ.get("OPENAI_API_KEY")
    if key:
        return key
    return "not-needed" if base_url else None


def openai_client(
    client: AsyncOpenAI | BaseChatModel | None, base_url: str | None
) -> contextlib.AbstractAsyncContextManager[AsyncOpenAI]:
    """The caller's client (left open), or a new one for ``base_url`` (closed after)."""
    try:
        import openai
    except ImportError:
        raise UsageError(
            "the OpenAI loops need openai: pip install 'sandbox-tool[openai]'"
        ) from None
    if client is not None:
        if not isinstance(client, openai.AsyncOpenAI):
            raise UsageError(
                f"client= must be an openai.AsyncOpenAI for these APIs, not "
                f"{type(client).__name__} (a LangChain chat model goes with api='langchain')"
            )
        return contextlib.nullcontext(client)
    key = api_key(base_url)
    if key is None:
        raise UsageError(NO_MODEL)
    return openai.AsyncOpenAI(api_key=key, base_url=base_url)


def langchain_model(
    client: AsyncOpenAI | BaseChatModel | None,
    base_url: str | None,
    model: str | None,
    temperature: float | None,
) -> BaseChatModel:
    """The caller's chat model, or a ``ChatOpenAI`` for ``base_url``."""
    if client is not None:
        from langchain_core.language_models import BaseChatModel

        if not isinstance(client, BaseChatModel):
            raise UsageError(
                f"client= must be a LangChain chat model for api='langchain', not "
                f"{type(client).__name__} (an openai.AsyncOpenAI goes with 'chat' or 'responses')"
            )
        return client
    try:
        from langchain_openai import ChatOpenAI
    except ImportError:
        raise UsageError(
            "api='langchain' without client= uses ChatOpenAI: pip install "
            "'sandbox-tool[langchain]' langchain-openai (or pass any chat model as client=)"
        ) from None
    from pydantic import SecretStr

    key = api_key(base_url)
    if key is None:
        raise UsageError(NO_MODEL)
    if model is None:
        raise UsageError("api='langchain' without client= needs model= (e.g. 'gpt-4o-mini')")
    return ChatOpenAI(
        model=model, base_url=base_url, api_key=SecretStr(key), temperature=temperature
    )
