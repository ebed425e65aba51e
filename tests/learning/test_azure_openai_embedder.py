"""The Azure OpenAI embedder at the HTTP wire level: the real openai SDK against a local server on 127.0.0.1 that
speaks the documented POST /openai/deployments/{deployment}/embeddings?api-version=... shape."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import numpy as np
import openai
import pytest

from shared.learning.embedders import AzureOpenAIEmbedder, Embedder


class EmbeddingsServer:
    """Answers each input with a vector derived from its text; rows are returned in reverse order (with their
    ``index``), so a client relying on reply order would be caught. ``status`` forces an error reply."""

    def __init__(self, dimension: int = 8) -> None:
        self.dimension = dimension
        self.requests: list[dict] = []
        self.status = 200
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                url = urlparse(self.path)
                server.requests.append({"path": url.path, "query": parse_qs(url.query), "body": body,
                                        "api_key": self.headers.get("api-key")})
                if server.status != 200:
                    payload = {"error": {"code": str(server.status), "message": "try later"}}
                    return self._reply(server.status, payload, {"Retry-After": "0"})
                data = [{"object": "embedding", "index": i, "embedding": server.vector(text)}
                        for i, text in enumerate(body["input"])]
                tokens = sum(len(t.split()) for t in body["input"])
                self._reply(200, {"object": "list", "data": data[::-1], "model": "text-embedding-3-small",
                                  "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

            def _reply(self, status: int, payload: dict, headers: dict | None = None) -> None:
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    def vector(self, text: str) -> list[float]:
        return [float(len(text) + i) for i in range(self.dimension)]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> "EmbeddingsServer":
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    with EmbeddingsServer() as running:
        yield running


def make(server: EmbeddingsServer, **kwargs) -> AzureOpenAIEmbedder:
    options = {"endpoint": server.endpoint, "deployment": "emb-small", "dimension": server.dimension,
               "api_key": "test-key", "batch_size": 2} | kwargs
    return AzureOpenAIEmbedder(**options)


def test_requests_use_the_deployment_path_api_version_key_and_input_list(server):
    make(server, api_version="2024-10-21").embed(["first text", "second"])
    (request,) = server.requests
    assert request["path"] == "/openai/deployments/emb-small/embeddings"
    assert request["query"]["api-version"] == ["2024-10-21"]
    assert request["api_key"] == "test-key"
    assert request["body"]["input"] == ["first text", "second"]
    assert request["body"]["encoding_format"] == "float" and "dimensions" not in request["body"]


def test_texts_are_sent_in_batches_of_batch_size(server):
    make(server, batch_size=2).embed([f"text {i}" for i in range(5)])
    assert [r["body"]["input"] for r in server.requests] == [["text 0", "text 1"], ["text 2", "text 3"], ["text 4"]]


def test_rows_follow_the_reply_index_not_its_order_and_are_normalised(server):
    texts = ["a", "bbbb", "cc"]
    vectors = make(server, batch_size=3).embed(texts)
    expected = np.array([server.vector(t) for t in texts])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert vectors.dtype == np.float32
    assert np.allclose(vectors, expected, atol=1e-6)


def test_dimensions_are_sent_only_when_asked(server):
    make(server, request_dimensions=True).embed(["x"])
    assert server.requests[0]["body"]["dimensions"] == server.dimension


def test_a_reply_of_another_length_is_an_error_not_padded(server):
    with pytest.raises(ValueError, match="expected 16"):
        make(server, dimension=16).embed(["x"])


def test_a_429_is_raised_after_one_request_because_sdk_retries_are_off(server):
    server.status = 429
    with pytest.raises(openai.RateLimitError):
        make(server).embed(["x"])
    assert len(server.requests) == 1


def test_id_names_the_model_and_the_hash_pins_version_and_dimension(server):
    embedder = make(server, model="text-embedding-3-small", model_version="1", dimension=8)
    assert isinstance(embedder, Embedder)
    assert embedder.id == "azure-openai/text-embedding-3-small"
    assert embedder.model_hash == "text-embedding-3-small:1:8"
    assert embedder.dimension == 8


def test_no_request_is_made_for_no_texts(server):
    assert make(server).embed([]).shape == (0, server.dimension)
    assert server.requests == []


def test_metered_embedding_sums_the_tokens_each_reply_bills(server):
    metered = make(server, batch_size=2).embed_metered(["one two", "three", "four five six"])
    assert len(server.requests) == 2
    assert metered.tokens == 6  # the server bills a token per word: 3 in the first reply, 3 in the second
    assert metered.vectors.shape == (3, server.dimension)
