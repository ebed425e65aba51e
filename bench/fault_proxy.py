"""The soak's model side: a fake OpenAI-compatible tier that counts its answers, and a fault-injecting proxy.

Both are plain HTTP servers on 127.0.0.1 (threads, keep-alive), started in the soak's own process:

    host --> FaultProxy --> FakeTier

`FakeTier` answers every chat completion with a valid label JSON and its token logprobs (one request is one
item), the same answer for the same text, after a latency drawn in a range. The item is named by a marker
`[soak:<key>]` that the soak writes into every item's text; the tier counts its successful answers per key.

`FaultProxy` answers a fraction of the calls itself with a fault: `429` (Retry-After: 0), `500`, a hang past
the client's timeout (then the connection is closed), a truncated body (the connection closes before the
announced length) or a garbled body (complete, not JSON). The rest are forwarded to the tier. It records per
key how many calls were faults (by kind) and how many were forwarded with a 200 back to the client.
Whether a call is a fault depends only on (seed, key, how many calls for that key came before), so a run with
the same call sequence injects the same faults.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import math
import random
import re
import threading
import time
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MARKER = re.compile(rb"\[soak:([A-Za-z0-9_./-]+)\]")
FAULT_KINDS = ("429", "500", "hang", "truncated", "garbled")
UNKNOWN = "?"  # calls whose body names no item


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True


def item_key(body: bytes) -> str:
    match = MARKER.search(body)
    return match.group(1).decode() if match else UNKNOWN


def _unit(*parts: object) -> float:
    """A number in [0, 1) that depends only on the parts."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def chat_completion(content: str, tokens: list[tuple[str, float]], model: str = "soak-fake") -> dict[str, Any]:
    """A chat.completion body with logprobs.content, as the OpenAI REST reference documents it."""
    assert "".join(t for t, _ in tokens) == content
    return {
        "id": "chatcmpl-soak", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{
            "index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": content},
            "logprobs": {"content": [{"token": t, "logprob": lp, "bytes": list(t.encode()), "top_logprobs": []}
                                     for t, lp in tokens]},
        }],
        "usage": {"prompt_tokens": 60, "completion_tokens": 5, "total_tokens": 65},
    }


class _Base:
    def __init__(self) -> None:
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def start(self):
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name=type(self).__name__)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class FakeTier(_Base):
    """An OpenAI-compatible chat-completions endpoint for classification with the task's labels."""

    def __init__(self, labels: list[str], *, latency_ms: tuple[float, float] = (20, 50), low_confidence_rate: float = 0.1,
                 seed: int = 0) -> None:
        super().__init__()
        self.labels = labels
        self.latency_ms = latency_ms
        self.low_confidence_rate = low_confidence_rate
        self.seed = seed
        self.answers: Counter[str] = Counter()  # successful answers sent, per item key
        # when the request of each of those answers arrived (time.monotonic): an answer still on its way when the
        # host was killed arrived before the restart, however late it completed
        self.answer_arrivals: dict[str, list[float]] = defaultdict(list)

    def answer_for(self, key: str) -> tuple[str, float]:
        """The label and its probability for an item: the same for the same key, every time."""
        label = self.labels[int(_unit(self.seed, "label", key) * len(self.labels))]
        low = _unit(self.seed, "confidence", key) < self.low_confidence_rate
        return label, (0.3 if low else 0.98)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        tier = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                arrived = time.monotonic()
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    return self._send(404, {"error": {"code": "NotFound", "message": self.path}})
                key = item_key(body)
                label, p = tier.answer_for(key)
                lo, hi = tier.latency_ms
                tier._stopping.wait(random.uniform(lo, hi) / 1000)
                content = json.dumps({"label": label}, separators=(",", ":"))
                tokens = [('{"label":"', -0.001), (label, math.log(p)), ('"}', -0.001)]
                if self._send(200, chat_completion(content, tokens)):
                    with tier.lock:
                        tier.answers[key] += 1
                        tier.answer_arrivals[key].append(arrived)

            def _send(self, status: int, payload: dict[str, Any]) -> bool:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    self.wfile.flush()
                    return True
                except OSError:  # the client went away: no answer was delivered
                    return False

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


class FaultProxy(_Base):
    """Forwards POSTs to `upstream`, answering `fault_rate` of them with an injected fault instead."""

    def __init__(self, upstream: str, *, fault_rate: float = 0.3, hang_s: float = 3.0, seed: int = 0,
                 kinds: tuple[str, ...] = FAULT_KINDS) -> None:
        super().__init__()
        self.upstream = upstream.removeprefix("http://").rstrip("/")
        self.fault_rate = fault_rate
        self.hang_s = hang_s
        self.seed = seed
        self.kinds = kinds
        self.calls: Counter[str] = Counter()  # every call, per key
        self.faults: dict[str, Counter[str]] = defaultdict(Counter)  # per key: kind -> count
        self.forwarded_ok: Counter[str] = Counter()  # per key: forwarded, 200 delivered to the client
        self.forwarded_failed: Counter[str] = Counter()  # per key: forwarded, but upstream or client failed

    def fault_for(self, key: str, n: int) -> str | None:
        if _unit(self.seed, "fault?", key, n) >= self.fault_rate:
            return None
        return self.kinds[int(_unit(self.seed, "kind", key, n) * len(self.kinds))]

    def totals(self) -> dict[str, Any]:
        with self.lock:
            kinds: Counter[str] = Counter()
            for per_key in self.faults.values():
                kinds.update(per_key)
            return {"calls": sum(self.calls.values()), "forwarded_ok": sum(self.forwarded_ok.values()),
                    "forwarded_failed": sum(self.forwarded_failed.values()), "faults": dict(sorted(kinds.items()))}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True
            upstream_conn: http.client.HTTPConnection | None = None

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                key = item_key(body)
                with proxy.lock:
                    n = proxy.calls[key]
                    proxy.calls[key] += 1
                kind = proxy.fault_for(key, n)
                if kind is not None:
                    with proxy.lock:
                        proxy.faults[key][kind] += 1
                    return self._fault(kind)
                try:
                    status, headers, data = self._forward(body)
                except OSError:
                    with proxy.lock:
                        proxy.forwarded_failed[key] += 1
                    return self._send(502, b'{"error":{"code":"BadGateway","message":"upstream failed"}}')
                delivered = self._send(status, data, headers)
                with proxy.lock:
                    if delivered and status == 200:
                        proxy.forwarded_ok[key] += 1
                    else:
                        proxy.forwarded_failed[key] += 1

            def _forward(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
                for attempt in (0, 1):  # a kept-alive upstream connection may have been closed: one reconnect
                    if self.upstream_conn is None:
                        self.upstream_conn = http.client.HTTPConnection(proxy.upstream, timeout=30)
                    try:
                        self.upstream_conn.request("POST", self.path, body=body,
                                                   headers={"content-type": "application/json"})
                        response = self.upstream_conn.getresponse()
                        data = response.read()
                        return response.status, {"content-type": response.getheader("content-type", "")}, data
                    except (http.client.HTTPException, OSError):
                        self.upstream_conn.close()
                        self.upstream_conn = None
                        if attempt:
                            raise
                raise AssertionError("unreachable")

            def _fault(self, kind: str) -> None:
                if kind == "429":
                    self._send(429, b'{"error":{"code":"429","message":"Rate limit is exceeded."}}', {"retry-after": "0"})
                elif kind == "500":
                    self._send(500, b'{"error":{"code":"InternalServerError","message":"injected"}}')
                elif kind == "hang":  # past the client's timeout, bounded; then the connection is dropped
                    proxy._stopping.wait(proxy.hang_s)
                    self.close_connection = True
                elif kind == "truncated":  # announces the full length, sends a third, closes
                    data = json.dumps(chat_completion('{"label":"other"}', [('{"label":"', 0.0), ("other", 0.0),
                                                                             ('"}', 0.0)])).encode()
                    self._send(200, data[: len(data) // 3], length=len(data))
                    self.close_connection = True
                else:  # garbled: a complete 200 whose body is not JSON (a gateway's page, or bytes cut short)
                    self._send(200, b'{"id":"chatcmpl-soak","choices":[{"index":0,"message":{"role":"assi')

            def _send(self, status: int, data: bytes, headers: dict[str, str] | None = None,
                      length: int | None = None) -> bool:
                try:
                    self.send_response(status)
                    headers = {"content-type": "application/json", **(headers or {})}
                    for name, value in headers.items():
                        if value:
                            self.send_header(name, value)
                    self.send_header("content-length", str(len(data) if length is None else length))
                    self.end_headers()
                    self.wfile.write(data)
                    self.wfile.flush()
                    return True
                except OSError:
                    self.close_connection = True
                    return False

            def finish(self) -> None:
                if self.upstream_conn is not None:
                    self.upstream_conn.close()
                super().finish()

            def log_message(self, *args: Any) -> None:
                pass

        return Handler
