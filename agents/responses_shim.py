"""A local Responses API over a Chat Completions server, for recording cassettes only.

llama-cpp-python serves ``/v1/chat/completions`` but not ``/v1/responses``. This shim
listens on 127.0.0.1, turns each ``POST /v1/responses`` into a chat completion on the
upstream server and the answer back into a Responses object, so the Responses loop
can be recorded against a real local model. Only what the agent loop uses is mapped:
text, images, function calls and their outputs, ``tool_choice``.

    python -m agents.responses_shim --upstream http://127.0.0.1:8080/v1 --port 8081
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.error import HTTPError
from urllib.request import Request, urlopen

__all__ = ["chat_request", "responses_answer", "serve"]


def _text_and_images(content: Any) -> tuple[str, list[str]]:
    if isinstance(content, str):
        return content, []
    texts, images = [], []
    for part in content or []:
        if part.get("type") in {"input_text", "output_text", "text"}:
            texts.append(part.get("text", ""))
        elif part.get("type") == "input_image" and part.get("image_url"):
            images.append(part["image_url"])
    return "\n".join(texts), images


def _user(text: str, images: list[str]) -> dict[str, Any]:
    if not images:
        return {"role": "user", "content": text}
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
    parts += [{"type": "image_url", "image_url": {"url": url}} for url in images]
    return {"role": "user", "content": parts}


def chat_request(body: dict[str, Any]) -> dict[str, Any]:
    """The chat-completions request for a Responses request."""
    messages: list[dict[str, Any]] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": body["instructions"]})
    items = body.get("input") or []
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    for item in items:
        kind = item.get("type", "message")
        if kind == "function_call":
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]},
            }
            last = messages[-1] if messages else {}
            if last.get("role") == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": "", "tool_calls": [call]})
        elif kind == "function_call_output":
            text, images = _text_and_images(item["output"])
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": text})
            if images:
                messages.append(_user("The images from the tool call.", images))
        else:
            text, images = _text_and_images(item.get("content"))
            role = item.get("role", "user")
            messages.append(
                _user(text, images) if role == "user" else {"role": role, "content": text}
            )
    request: dict[str, Any] = {"model": body.get("model", "local"), "messages": messages}
    tools = [
        {
            "type": "function",
            "function": {k: t[k] for k in ("name", "description", "parameters") if k in t},
        }
        for t in body.get("tools") or []
        if t.get("type") == "function"
    ]
    if tools:
        request["tools"] = tools
        choice = body.get("tool_choice", "auto")
        if isinstance(choice, dict) and choice.get("type") == "function":
            choice = {"type": "function", "function": {"name": choice["name"]}}
        request["tool_choice"] = choice
    for key in ("temperature", "top_p", "max_output_tokens"):
        if key in body:
            request["max_tokens" if key == "max_output_tokens" else key] = body[key]
    return request


def responses_answer(body: dict[str, Any], completion: dict[str, Any]) -> dict[str, Any]:
    """The Responses object for a chat completion."""
    message = completion["choices"][0]["message"]
    output: list[dict[str, Any]] = []
    if message.get("content") and not message.get("tool_calls"):
        output.append(
            {
                "type": "message",
                "id": f"msg_{uuid.uuid4().hex[:24]}",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": message["content"], "annotations": []}],
            }
        )
    for call in message.get("tool_calls") or []:
        output.append(
            {
                "type": "function_call",
                "id": f"fc_{uuid.uuid4().hex[:24]}",
                "call_id": call["id"],
                "name": call["function"]["name"],
                "arguments": call["function"]["arguments"],
                "status": "completed",
            }
        )
    usage = completion.get("usage") or {}
    return {
        "id": f"resp_{uuid.uuid4().hex[:24]}",
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "model": completion.get("model", body.get("model")),
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "usage": {
            "input_tokens": usage.get("prompt_tokens", 0),
            "output_tokens": usage.get("completion_tokens", 0),
            "total_tokens": usage.get("total_tokens", 0),
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
    }


def serve(upstream: str, port: int) -> ThreadingHTTPServer:
    """A started-on-demand server (call ``serve_forever``) on 127.0.0.1:``port``."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            if not self.path.rstrip("/").endswith("/responses"):
                self.send_error(404, "only /v1/responses is served")
                return
            data = json.dumps(chat_request(body)).encode()
            req = Request(
                upstream.rstrip("/") + "/chat/completions",
                data=data,
                headers={"Content-Type": "application/json"},
            )
            try:
                with urlopen(req, timeout=600) as resp:
                    completion = json.loads(resp.read())
            except HTTPError as exc:  # pass the upstream's refusal on, as it said it
                detail = exc.read()
                self.send_response(exc.code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(detail)))
                self.end_headers()
                self.wfile.write(detail)
                return
            answer = json.dumps(responses_answer(body, completion)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--upstream", required=True, help="the chat-completions base URL")
    parser.add_argument("--port", type=int, default=8081)
    args = parser.parse_args()
    serve(args.upstream, args.port).serve_forever()


if __name__ == "__main__":
    main()
