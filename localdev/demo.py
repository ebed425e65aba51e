"""The README's first command: run samples/ through the Functions app on the local tiers and print the results.

Starts Azurite and the local host (which calls the functions registered in function_app.py), uploads every
file under samples/<task>/ to incoming/<task>/, waits for the result blobs with a progress bar of items
done, prints them as a table, says what to try next, and stops what it started (or, with --serve, keeps
both running for those next steps).

The local profile is the trained tier alone unless --embedded asks for the SmolLM2 tier behind it (installed
by `bash scripts/demo.sh --embedded`); items the trained tier is unsure of escalate, and with no further
tier end in review with its draft.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from localdev.azurite import Azurite, AzuriteError, PortInUseError, ensure_port_free
from shared.foundation.text_files import jsonl_lines
from shared.errors import SmallfirstError
from shared.pipeline.blob_names import InputBlob

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
SERVE_HOST_PORT = 7071  # what `func start` uses, so the printed commands match the Core Tools setup too


def sample_files(samples: Path) -> list[Path]:
    return sorted(path for path in samples.glob("*/*") if path.is_file())


def expected_outcomes(samples: Path) -> dict[InputBlob, int]:
    """Each sample as an input blob, with the number of items it holds."""
    from shared.pipeline.parsing import parse_input

    return {InputBlob(path.parent.name, path.name): len(parse_input(path.name, path.read_bytes()).items)
            for path in sample_files(samples)}


def read_outcome(store, source: InputBlob) -> list[dict[str, Any]] | None:
    """The input's result records, or one row saying why it was dead-lettered; None while it is in progress."""
    for name in (source.result_lines, source.result_single):
        client = store.service.get_blob_client("results", name)
        if client.exists():
            text = client.download_blob().readall().decode()
            return [json.loads(line) for _, line in jsonl_lines(text)] if name.endswith(".jsonl") \
                else [json.loads(text)]
    client = store.service.get_blob_client("deadletter", source.deadletter)
    if client.exists():
        letter = json.loads(client.download_blob().readall())
        return [{"id": source.name, "task": source.task, "answer": None, "confidence": None, "tier": None,
                 "status": "dead-lettered", "attempts": [], "cost_usd": 0.0,
                 "error": f"{letter.get('reason')}: {letter.get('error', '')}"}]
    return None


def why_escalated(record: dict[str, Any]) -> str:
    """The reason of each attempt that was not accepted, e.g. `trained: confidence 0.71 < 0.94`."""
    if record["status"] == "dead-lettered":
        return record["error"]
    return "; ".join(f"{a['tier']}: {a.get('reason') or a['outcome']}"
                     for a in record["attempts"] if a["outcome"] != "accepted")


def results_table(records: list[dict[str, Any]]) -> Table:
    table = Table("item", "task", "answer", "confidence", "tier", "status", "why it escalated", "cost (USD)",
                  title="smallfirst results")
    table.columns[2].max_width = 40
    table.columns[6].min_width = 30
    for r in records:
        answer = r["answer"] if not isinstance(r["answer"], dict) else "; ".join(
            f"{key}={str(value)[:24]}" for key, value in r["answer"].items())
        table.add_row(r["id"], r["task"], str(answer) if answer is not None else "-",
                      f"{r['confidence']:.2f}" if r["confidence"] is not None else "-",
                      r["tier"] or "-", r["status"], why_escalated(r) or "-", f"{r['cost_usd']:.6f}")
    return table


def next_steps(host_url: str, serving: bool) -> list[str]:
    start = "" if serving else "bash scripts/demo.sh --serve   # keeps Azurite and the host running, then:\n  "
    return [
        f"Drop a file into incoming/: {start}.venv/bin/python -m localdev.drop support_ticket my-ticket.txt",
        f"Call the HTTP API:  curl -s -X POST {host_url}/api/tasks/support_ticket -H 'content-type: application/json' "
        "-d '{\"id\": \"t1\", \"text\": \"I was charged twice this month\"}'",
        "Measure it on labelled data:  .venv/bin/smallfirst eval support_ticket "
        "--data tasks/data/support_ticket/dev.jsonl --tiers trained --out run.jsonl && "
        ".venv/bin/smallfirst report run.jsonl --out report/",
    ]


def wait_for_outcomes(store, expected: dict[InputBlob, int], console: Console,
                      timeout_s: float) -> tuple[list[dict[str, Any]], bool]:
    """Rows of every input that finished, in sample order, and whether all did; a progress bar counts items
    done over items uploaded."""
    outcomes: dict[InputBlob, list[dict[str, Any]]] = {}
    deadline = time.monotonic() + timeout_s
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("items done", total=sum(expected.values()))
        while len(outcomes) < len(expected) and time.monotonic() < deadline:
            for source in expected.keys() - outcomes.keys():
                rows = read_outcome(store, source)
                if rows is not None:
                    outcomes[source] = rows
                    progress.advance(bar, expected[source])
            time.sleep(0.3)
    for source in expected.keys() - outcomes.keys():
        console.print(f"[red]no outcome within {timeout_s:.0f}s for incoming/{source.path}[/]")
    return [row for source in expected if source in outcomes for row in outcomes[source]], \
        len(outcomes) == len(expected)


def run(serve: bool, host_port: int, timeout_s: float, console: Console, records_out: Path | None) -> int:
    if serve:
        ensure_port_free(host_port, "the local Functions host", "--port")
    azurite = Azurite(fixed_ports=serve)
    with azurite:
        os.environ["DataStorage"] = azurite.connection_string
        sys.path.insert(0, str(REPO))
        from function_app import app
        from functions import services
        from localdev.host import LocalHost

        tiers = ", ".join(services.cascade().settings.tiers)
        store = services.blob_store()
        host = LocalHost(app, port=host_port if serve else 0).start()  # it creates the containers and queues
        url = f"http://127.0.0.1:{host.port}"
        console.print(f"Azurite on :{azurite.blob_port}, local Functions host on {url}/api/ (local tiers: {tiers})")
        try:
            expected = expected_outcomes(SAMPLES)
            for path in sample_files(SAMPLES):
                store.service.get_blob_client("incoming", f"{path.parent.name}/{path.name}").upload_blob(
                    path.read_bytes(), overwrite=True)
            console.print(f"uploaded {len(expected)} files ({sum(expected.values())} items) to incoming/")
            records, complete = wait_for_outcomes(store, expected, console, timeout_s)
            console.print(results_table(records))
            if records_out is not None:
                records_out.write_text("".join(json.dumps(record) + "\n" for record in records))
            console.print("Results are in the results/ container; items that need a person also in review/.")
            console.print("Try next:")
            for n, line in enumerate(next_steps(url, serve), 1):
                console.print(f"  {n}. {line}", soft_wrap=True, highlight=False)
            if serve and complete:
                console.print(f"Serving: Azurite (UseDevelopmentStorage=true) and {url}/api/. Ctrl-C stops both.")
                while True:
                    time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            host.stop()
    return 0 if complete else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedded", action="store_true", help="the embedded SmolLM2 tier behind the trained one")
    parser.add_argument("--serve", action="store_true", help="keep Azurite and the host running afterwards")
    parser.add_argument("--port", type=int, default=SERVE_HOST_PORT, help="the host's port with --serve")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for all results")
    parser.add_argument("--records", type=Path, help="also write the rows shown, as JSON lines, to this file")
    args = parser.parse_args(argv)
    # Wide enough for the table when the output is a file or a pipe (rich would assume 80 columns).
    console = Console() if sys.stdout.isatty() else Console(width=170)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("SMALLFIRST_LOCAL_PROFILE", "embedded" if args.embedded else "trained")
    try:
        return run(args.serve, args.port, args.timeout, console, args.records)
    except (AzuriteError, PortInUseError, SmallfirstError) as exc:
        console.print(f"[red]demo: {exc}[/]", soft_wrap=True, highlight=False)
        return 1


if __name__ == "__main__":
    sys.exit(main())
