"""Drop a file into incoming/<task>/ of the local Azurite (as `bash scripts/demo.sh --serve` runs it) and print
its result records when they appear: what an upload to the real storage account does, end to end."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from azure.core.exceptions import ServiceRequestError

from shared.foundation.text_files import jsonl_lines
from shared.pipeline.blob_names import DATA_CONNECTION, InputBlob
from shared.pipeline.parsing import SUPPORTED_SUFFIXES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task")
    parser.add_argument("file", type=Path)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    if not args.file.is_file():
        return _fail(f"{args.file}: no such file")
    if args.file.suffix.lower() not in SUPPORTED_SUFFIXES:
        return _fail(f"{args.file.name}: the pipeline takes {', '.join(sorted(SUPPORTED_SUFFIXES))} files")
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(os.environ.get(DATA_CONNECTION, "UseDevelopmentStorage=true"))
    source = InputBlob(args.task, args.file.name)
    try:
        uploaded = service.get_blob_client("incoming", source.path).upload_blob(
            args.file.read_bytes(), overwrite=True)["last_modified"]
    except ServiceRequestError:
        return _fail("no local storage is running: start it with bash scripts/demo.sh --serve (in another terminal)")
    print(f"uploaded incoming/{source.path}; waiting for its result...", file=sys.stderr)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        for container, name in (("results", source.result_single), ("results", source.result_lines),
                                ("deadletter", source.deadletter)):
            blob = service.get_blob_client(container, name)
            if blob.exists() and blob.get_blob_properties().last_modified >= uploaded:  # not an earlier drop's
                text = blob.download_blob().readall().decode()
                for line in [line for _, line in jsonl_lines(text)] if name.endswith(".jsonl") else [text]:
                    print(json.dumps(json.loads(line), indent=2))
                return 0 if container == "results" else 1
        time.sleep(0.5)
    return _fail(f"no result for incoming/{source.path} within {args.timeout:.0f}s")


def _fail(message: str) -> int:
    print(f"drop: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
