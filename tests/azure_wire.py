"""A local HTTP server speaking the documented shapes of the OpenAI v1 API on Azure (`/openai/v1/chat/completions`,
`/openai/v1/models`), of the Azure AI Model Inference API (managed compute, and the legacy azure-ai-inference
backend: `/chat/completions`, `/info`) and of OpenAI-compatible servers.

Tests script its responses and read back the exact requests the SDK clients sent. It also serves as an HTTP proxy
(a request line with an absolute URL is recorded by its path), so a client can be pointed at an Azure host name
through HTTP_PROXY and still reach it.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable
from urllib.parse import parse_qs, urlparse

from localdev.host import LocalHTTPServer


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class Scripted:
    status: int = 200
    body: Any = None  # dict -> JSON; bytes/str sent as-is
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


def chat_completion(content: str, *, tokens: list[tuple[str, float]] | None = None, prompt_tokens: int = 42,
                    completion_tokens: int = 7, model: str = "gpt-4o-2024-08-06",
                    finish_reason: str = "stop") -> dict[str, Any]:
    """A chat.completion body as the REST references document it (logprobs.content when tokens are given)."""
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": "assistant", "content": content},
        "finish_reason": finish_reason,
    }
    if tokens is not None:
        assert "".join(t for t, _ in tokens) == content, "token pieces must spell the content"
        choice["logprobs"] = {
            "content": [
                {"token": t, "logprob": lp, "bytes": list(t.encode("utf-8")), "top_logprobs": []} for t, lp in tokens
            ]
        }
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_732_000_000,
        "model": model,
        "choices": [choice],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


class AzureWireServer:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.script: list[Scripted | Callable[[Recorded], Scripted]] = []
        self.default: Scripted | Callable[[Recorded], Scripted] | None = None
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Azure's endpoints: clients reuse their connections
            disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall

            def do_GET(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                parsed = urlparse(self.path)
                try:
                    body = json.loads(raw) if raw else None
                except json.JSONDecodeError:
                    body = raw
                recorded = Recorded(self.command, parsed.path, parse_qs(parsed.query),
                                    {k.lower(): v for k, v in self.headers.items()}, body)
                with server._lock:
                    server.requests.append(recorded)
                    step = server.script.pop(0) if server.script else server.default
                if step is None:
                    step = Scripted(500, {"error": {"code": "NoScript", "message": "nothing scripted"}})
                if callable(step):
                    step = step(recorded)
                if step.delay_s:
                    time.sleep(step.delay_s)
                payload = step.body
                data = json.dumps(payload).encode() if isinstance(payload, (dict, list)) else (
                    payload.encode() if isinstance(payload, str) else (payload or b""))
                try:
                    self.send_response(step.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for key, value in step.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = LocalHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "AzureWireServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()


def models_list(*ids: str) -> dict[str, Any]:
    """A GET /models reply (OpenAI's list of models)."""
    return {"object": "list", "data": [{"id": i, "object": "model", "created": 1_732_000_000, "owned_by": "system"}
                                       for i in ids]}


def model_info(name: str = "Phi-4") -> dict[str, Any]:
    """A GET /info reply of the Azure AI Model Inference API."""
    return {"model_name": name, "model_type": "chat-completion", "model_provider_name": "Microsoft"}


def chat_completion_choices(contents: list[str], *, prompt_tokens: int = 42, completion_tokens_each: int = 7) -> dict[str, Any]:
    """A chat.completion body with one choice per content, as an endpoint answers a request with `n`."""
    body = chat_completion(contents[0], prompt_tokens=prompt_tokens,
                           completion_tokens=completion_tokens_each * len(contents))
    body["choices"] = [{"index": i, "message": {"role": "assistant", "content": c}, "finish_reason": "stop"}
                       for i, c in enumerate(contents)]
    return body
