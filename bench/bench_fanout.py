"""A fanned-out .jsonl's parts on Azurite, two steps of each part timed (not the model calls):

- reading the input: each part reading and parsing the whole input (as before), against the worker's
  `ParsedInputs` (one read and parse per worker, then a HEAD per part); the baseline is the same code with the
  cache sized to nothing;
- checking whether the manifest is complete, after each part is published: listing every part with its metadata
  (as before), against counting the parts' names first; the baseline is the same code with the count skipped.

Run from the repository root:
python -m bench.bench_fanout [--items 20000] [--chunk 100]. Prints figures measured in this one run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from localdev.azurite import Azurite  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--chunk", type=int, default=100)
    args = parser.parse_args()
    from azure.storage.blob import BlobServiceClient

    from shared.core.cascade import Cascade
    from shared.core.config import Settings
    from shared.pipeline.blob_names import Containers, InputBlob
    from shared.pipeline.blob_names import HASH_KEY
    from shared.pipeline.ingest import IngestLimits, Ingestor, ParsedInputs
    from shared.pipeline.outputs import COMPLETE_KEY
    from shared.pipeline.work import WorkMessage
    from shared.pipeline.storage import BlobStore

    lines = [json.dumps({"id": f"t{i}", "text": f"I was charged twice for order {i}, please refund the duplicate"})
             for i in range(args.items)]
    data = "\n".join(lines).encode()
    sha = hashlib.sha256(data).hexdigest()
    with Azurite() as azurite:
        store = BlobStore(BlobServiceClient.from_connection_string(azurite.connection_string))
        store.ensure_containers(Containers().all())
        blob = store.service.get_blob_client("incoming", "support_ticket/big.jsonl")
        blob.upload_blob(data, overwrite=True)
        etag = blob.get_blob_properties().etag
        source = InputBlob("support_ticket", "big.jsonl")
        parts = -(-args.items // args.chunk)
        messages = [WorkMessage(task=source.task, name=source.name, sha256=sha, etag=etag, part=n,
                                start=n * args.chunk, end=min(args.items, (n + 1) * args.chunk), parts=parts)
                    for n in range(parts)]
        ingestor = Ingestor(Cascade(Settings.from_env({})), store,
                            IngestLimits(max_blob_bytes=len(data) + 1, chunk_items=args.chunk))
        seconds = {}
        for name, cache in (("every part reads and parses the input", ParsedInputs(max_inputs=0)),
                            ("once per worker (ParsedInputs)", ParsedInputs())):
            ingestor.parsed = cache
            started = time.perf_counter()
            for message in messages:
                items = ingestor._current_items(source, message)[message.start:message.end]
                assert [i.id for i in items] == [f"t{i}" for i in range(message.start, message.end)]
            seconds[name] = time.perf_counter() - started

        checks = {}
        count = store.count
        for name, counting in (("every check lists parts with metadata", False), ("names counted first", True)):
            source = InputBlob("support_ticket", f"{'counted' if counting else 'listed'}.jsonl")
            store.count = count if counting else (lambda container, prefix: parts)  # the count skipped
            store.write("results", source.manifest, json.dumps({"complete": False}), content_type="application/json",
                        metadata={HASH_KEY: sha, COMPLETE_KEY: "false"})
            took = 0.0
            for message in messages:
                store.write("results", source.part(message.part), "{}\n", content_type="application/x-ndjson",
                            metadata={HASH_KEY: sha})
                started = time.perf_counter()
                ingestor.outputs.complete_manifest_if_done(source, sha, parts)
                took += time.perf_counter() - started
            assert store.state("results", source.manifest).metadata[COMPLETE_KEY] == "true"
            checks[name] = took
        store.count = count
    print(f"input step of {parts} parts of a {len(data) / 1e6:.1f} MB .jsonl ({args.items} items, {args.chunk} a part):")
    for name, took in seconds.items():
        print(f"  {name:40} {took:8.2f} s   {1000 * took / parts:7.1f} ms a part")
    before, after = seconds.values()
    print(f"  ratio: {before / after:.1f}x less time on the input step")
    print(f"manifest checks after each of the {parts} parts is published:")
    for name, took in checks.items():
        print(f"  {name:40} {took:8.2f} s   {1000 * took / parts:7.1f} ms a part")
    before, after = checks.values()
    print(f"  ratio: {before / after:.1f}x less time on the manifest checks")


if __name__ == "__main__":
    main()
