"""llama-cpp-python's own OpenAI-compatible server (`python -m llama_cpp.server`, its `server` extra)
serving the embedded tier's GGUF on loopback: a real implementation of the OpenAI API nobody here wrote.

Settings are llama_cpp/server/settings.py's (0.3.36), given as its command-line options."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from localdev.azurite import free_port
from shared.core.tiers.embedded import default_model_path

MODEL_ALIAS = "smollm2"  # the id /v1/models lists; the server answers any other name with this model too
N_CTX = 384  # room for the tests' short prompts and replies; a longer prompt is refused (400)


class LlamaServerError(RuntimeError):
    """The server exited or did not answer in time; the message carries the end of its log."""


class LlamaServer:
    """One server process on 127.0.0.1 and a free port, serving SmolLM2-135M-Instruct; a context manager."""

    def __init__(self, model_path: Path | None = None) -> None:
        self.model_path = model_path or default_model_path()
        self.port = free_port()
        self.log_path = Path(tempfile.mkstemp(prefix="llama-server-", suffix=".log")[1])
        self._process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI base URL (what an openai_compatible tier's endpoint is)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout_s: float = 60.0) -> "LlamaServer":
        options = {
            "model": self.model_path, "model_alias": MODEL_ALIAS, "host": "127.0.0.1", "port": self.port,
            "n_ctx": N_CTX,
            "n_threads": 1, "n_threads_batch": 2,  # its defaults are half and all of the machine's cores
            # SmolLM2-Instruct's chat template (in its GGUF) is ChatML: named, not read from the GGUF
            "chat_format": "chatml",
            "logits_all": True,  # its default, and what logprobs need (llama.py refuses them without)
            "verbose": False,
        }
        command = [sys.executable, "-m", "llama_cpp.server"]
        for name, value in options.items():
            command += [f"--{name}", str(value)]
        with self.log_path.open("wb") as log:
            # unbuffered: uvicorn's access line for a request is in the log before its reply is read
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise LlamaServerError(f"llama_cpp.server exited at start (code {self._process.returncode}):"
                                       f"\n{self.log_tail()}")
            if self._models_listed():
                return self
            time.sleep(0.2)
        problem = f"llama_cpp.server did not answer /v1/models within {timeout_s:.0f}s:\n{self.log_tail()}"
        self.stop()
        raise LlamaServerError(problem)

    def _models_listed(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as response:
                return any(model["id"] == MODEL_ALIAS for model in json.load(response)["data"])
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False  # not listening yet

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log().splitlines()[-lines:]) or "(no output)"

    def chat_completions_served(self) -> int:
        """Chat-completion requests the server has answered so far (uvicorn's access log, one line each)."""
        return self.log().count('"POST /v1/chat/completions HTTP/1.1"')

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> "LlamaServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
