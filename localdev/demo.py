"""The README's first command: run samples/ through the Functions app on the embedded model, locally.

Starts Azurite and the local host (which calls the functions registered in function_app.py), uploads
every file under samples/<task>/ to incoming/<task>/, waits for the result blobs, prints them as a table,
and stops what it started.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from localdev.azurite import Azurite

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"


def expected_results(samples: Path) -> list[str]:
    """The result blob of each sample (the samples' .json files each hold one item)."""
    from shared.pipeline.blob_names import InputBlob

    names = []
    for path in sorted(samples.glob("*/*")):
        source = InputBlob(path.parent.name, path.name)
        names.append(source.result_lines if path.suffix == ".jsonl" else source.result_single)
    return names


def main(timeout_s: float = 600.0) -> int:
    console = Console(width=max(120, Console().width))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with Azurite() as azurite:
        os.environ["DataStorage"] = azurite.connection_string
        sys.path.insert(0, str(REPO))
        from function_app import app
        from functions import services
        from localdev.host import LocalHost
        from shared.pipeline.blob_names import Containers

        store = services.blob_store()
        store.ensure_containers(Containers().all())
        host = LocalHost(app, port=0).start()
        console.print(f"Azurite on :{azurite.blob_port}, local Functions host on http://127.0.0.1:{host.port}/api/")
        try:
            for path in sorted(SAMPLES.glob("*/*")):
                store.service.get_blob_client("incoming", f"{path.parent.name}/{path.name}").upload_blob(
                    path.read_bytes(), overwrite=True)
                console.print(f"uploaded incoming/{path.parent.name}/{path.name}")
            pending, records = expected_results(SAMPLES), []
            deadline = time.monotonic() + timeout_s
            with console.status("waiting for results (the first item loads the model)..."):
                while pending and time.monotonic() < deadline:
                    for name in list(pending):
                        client = store.service.get_blob_client("results", name)
                        if client.exists():
                            text = client.download_blob().readall().decode()
                            records += [json.loads(line) for line in text.splitlines()] if name.endswith(".jsonl") \
                                else [json.loads(text)]
                            pending.remove(name)
                    time.sleep(0.5)
        finally:
            host.stop()
    table = Table("item", "task", "answer", "confidence", "tier", "status", "cost (USD)", title="smallfirst results")
    table.columns[2].max_width = 60
    for r in records:
        answer = r["answer"] if not isinstance(r["answer"], dict) else "; ".join(
            f"{key}={str(value)[:24]}" for key, value in r["answer"].items())
        table.add_row(r["id"], r["task"], answer, f"{r['confidence']:.2f}" if r["confidence"] is not None else "-",
                      r["tier"] or "-", r["status"], f"{r['cost_usd']:.6f}")
    console.print(table)
    if pending:
        console.print(f"[red]no result within {timeout_s:.0f}s for: {', '.join(pending)}[/]")
        return 1
    console.print("Results are in the results/ container (needs_review items also in review/). "
                  "Configure a frontier tier to escalate low-confidence items: see README.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
