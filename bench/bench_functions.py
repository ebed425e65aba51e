"""End-to-end throughput through Azurite and the registered functions, vs the engine alone; and the HTTP
batch endpoint against a tier with injected latency, vs the ideal (concurrency / latency).

The HTTP batch is measured on the async path (the app's `Cascade.process_batch`, whose Azure OpenAI requests go
out through the openai SDK's AsyncOpenAI over its aiohttp transport, the body sent as it is with `post`), on that
path with the requests built by `chat.completions.create` instead (row `create`), and on the thread path (each
item's blocking cascade on a pool thread, as before issue 14), in mirrored order (A-B-C-D-D-C-B-A) in one run so
all see the same machine. The rig's own ceiling is measured in the same run: a bare aiohttp client (no SDK, no
app) sending as many requests at the same concurrency to the same fake endpoint, before and after; the figure that
counts is the async path's throughput as a share of that ceiling.

The local host polls its queues from the functions' own process, where each poll's storage calls take the GIL
from a running batch; in Azure the Functions host polls queues from its process, not the Python worker's. So the
HTTP batch runs with the host's queue polling off, and the async path once more with it on (row `polling`): what
a batch gets from `smallfirst-host` on a developer's machine.

Run from the repository root: python -m bench.bench_functions [--items 200] [--rounds 2] [--http-only].
Prints figures measured in this one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import statistics
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from localdev.azurite import Azurite  # noqa: E402

# The fake Azure OpenAI endpoint runs in its own process, so its CPU and GIL are not the app's.
WIRE_SERVER = """
import sys, time
from tests.azure_wire import AzureWireServer, Scripted, chat_completion
latency = float(sys.argv[1])
body = chat_completion('{"label":"billing"}', tokens=[('{"label":"', -0.01), ("billing", -0.01), ('"}', -0.01)])
def slow(_request):
    time.sleep(latency)
    return Scripted(body=body)
with AzureWireServer() as wire:
    wire.default = slow
    print(wire.url, flush=True)
    sys.stdin.read()
"""


@contextmanager
def wire_server(latency: float):
    process = subprocess.Popen([sys.executable, "-c", WIRE_SERVER, str(latency)], cwd=REPO, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        yield process.stdout.readline().strip()
    finally:
        process.stdin.close()
        process.wait(timeout=10)

DATASET = REPO.parent / "shared" / "datasets" / "banking77" / "dev.jsonl"


def rows(n: int) -> list[dict]:
    lines = DATASET.read_text().splitlines()
    return [{"id": r["id"], "text": r["text"]} for r in map(json.loads, lines[:: max(1, len(lines) // n)][:n])]


def bare_client_rate(url: str, requests: int, concurrency: int) -> float:
    """Requests/s of a bare aiohttp client against the fake endpoint: what this rig allows at best."""
    import aiohttp

    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "charged twice"}]}).encode()
    endpoint = f"{url}/openai/v1/chat/completions"

    async def run() -> float:
        limit = asyncio.Semaphore(concurrency)
        async with aiohttp.ClientSession(headers={"authorization": "Bearer bench",
                                                  "content-type": "application/json"}) as session:
            async def one() -> None:
                async with limit, session.post(endpoint, data=body) as response:
                    await response.read()

            await asyncio.gather(*(one() for _ in range(concurrency)))  # connections opened, as the paths' warm-up
            started = time.perf_counter()
            await asyncio.gather(*(one() for _ in range(requests)))
            return requests / (time.perf_counter() - started)

    return asyncio.run(run())


def deliver_blob_created(port: int, blob_url: str) -> None:
    """What Event Grid's subscription does on a new blob: POST a BlobCreated event to the host's webhook."""
    event = [{"id": "bench", "eventType": "Microsoft.Storage.BlobCreated", "data": {"url": blob_url, "api": "PutBlob"}}]
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/runtime/webhooks/blobs?functionName=Host.Functions.process_incoming_blob",
        data=json.dumps(event).encode(), headers={"aeg-event-type": "Notification"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 202


async def thread_batch(cascade, task, items, concurrency=None, on_record=None):
    """The batch path before issue 14: each item's blocking cascade (sync SDK clients) on a pool thread."""
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=concurrency or cascade.settings.concurrency) as pool:
        return list(await asyncio.gather(*(loop.run_in_executor(pool, cascade.process, task, item) for item in items)))


class CreateRequests:
    """The tier's async requests built by the SDK's typed `chat.completions.create` (which transforms its params on
    every call) instead of `post` with the body as it is: `OpenAIApiTier.acomplete` while installed."""

    def __init__(self) -> None:
        from shared.core.tiers.openai_api import OpenAIApiTier

        self.app_acomplete = OpenAIApiTier.acomplete

        async def acomplete(tier, request):
            with tier._tier_errors():
                response = await tier.async_client().chat.completions.create(**tier._body(request))
            return tier._replies(response, request)

        self.create_acomplete = acomplete

    def use(self, create: bool) -> None:
        from shared.core.tiers.openai_api import OpenAIApiTier

        OpenAIApiTier.acomplete = self.create_acomplete if create else self.app_acomplete


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--http-items", type=int, default=96)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2, help="A-B-C-D-D-C-B-A rounds of the HTTP batch paths")
    parser.add_argument("--http-only", action="store_true", help="skip the blob end-to-end part (minutes of CPU)")
    args = parser.parse_args()
    items = rows(args.items)
    tasks_dir = Path(tempfile.mkdtemp())
    shutil.copytree(REPO / "tasks", tasks_dir, dirs_exist_ok=True)
    (tasks_dir / "frontier_route.yaml").write_text(
        "kind: classification\ninstruction: route\ntiers: [frontier]\nlabels: [{name: billing}, {name: other}]\n")

    with Azurite() as azurite, wire_server(args.latency) as wire_url:
        os.environ.update({
            "DataStorage": azurite.connection_string, "SMALLFIRST_TASKS_DIR": str(tasks_dir),
            "SMALLFIRST_CHUNK_ITEMS": str(args.items + 1), "SMALLFIRST_CONCURRENCY": str(args.concurrency),
            "SMALLFIRST_FRONTIER_BACKEND": "azure_openai", "SMALLFIRST_FRONTIER_ENDPOINT": wire_url,
            "SMALLFIRST_FRONTIER_MODEL": "gpt-4o", "SMALLFIRST_FRONTIER_API_KEY": "bench",
        })
        from function_app import app
        from functions import services
        from localdev.host import LocalHost, max_polling_interval_s
        from shared.foundation.records import Item
        from shared.pipeline.blob_names import Containers

        engine = services.cascade()
        store = services.blob_store()
        store.ensure_containers(Containers().all())
        # Blobs arrive as in Azure: an Event Grid delivery to the blob extension's webhook (no container polling).
        host = LocalHost(app, port=0, poll_s=0.1, poll_blobs=False, max_poll_s=max_polling_interval_s()).start()
        try:
            if not args.http_only:
                task = engine.tasks.get("support_ticket")
                engine.process(task, Item(id="warm", text="warm up the model and the task prefix"))
                started = time.perf_counter()
                engine.run_batch(task, [Item(**r) for r in items])
                engine_rate = len(items) / (time.perf_counter() - started)
                started = time.perf_counter()
                blob = store.service.get_blob_client("incoming", "support_ticket/bench.jsonl")
                blob.upload_blob("\n".join(json.dumps(r) for r in items).encode(), overwrite=True)
                deliver_blob_created(host.port, blob.url)
                result = store.service.get_blob_client("results", "support_ticket/bench.jsonl.jsonl")
                while not result.exists():
                    time.sleep(0.05)
                e2e_rate = len(items) / (time.perf_counter() - started)

            engine.settings.max_batch_items = max(engine.settings.max_batch_items, args.http_items)
            host.poll_queues = False  # as in Azure (see the module docstring); on for the `polling` path only

            def post_batch(n: int) -> float:
                """Seconds the batch took; its CPU time in this process (the app, not the fake endpoint) is added
                to `cpu_s` of the path in use."""
                batch = {"items": [{"id": str(i), "text": "charged twice"} for i in range(n)]}
                request = urllib.request.Request(f"http://127.0.0.1:{host.port}/api/tasks/frontier_route",
                                                 data=json.dumps(batch).encode(), method="POST")
                started, cpu_started = time.perf_counter(), time.process_time()
                with urllib.request.urlopen(request, timeout=600) as response:
                    results = json.loads(response.read())["results"]
                cpu_s[path] += time.process_time() - cpu_started
                assert [r["id"] for r in results] == [str(i) for i in range(n)]
                assert all(r["status"] == "accepted" for r in results), results[0]
                return time.perf_counter() - started

            app_batch = engine.process_batch
            create = CreateRequests()
            paths = {"async": app_batch,  # the app's own
                     "polling": app_batch,  # the same, the local host polling its queues meanwhile
                     "create": app_batch,  # the same, its requests built by chat.completions.create
                     "thread": lambda *a, **k: thread_batch(engine, *a, **k)}
            rates: dict[str, list[float]] = {name: [] for name in paths}

            def use(path: str) -> None:
                engine.process_batch = paths[path]
                create.use(path == "create")
                host.poll_queues = path == "polling"

            cpu_s = dict.fromkeys(paths, 0.0)
            for path in paths:  # warm-up: each path's client and its connections, created once per worker
                use(path)
                post_batch(args.concurrency)
            cpu_s = dict.fromkeys(paths, 0.0)  # the warm-ups' CPU not counted
            mirrored = ("async", "polling", "create", "thread", "thread", "create", "polling", "async")
            order = [name for _ in range(args.rounds) for name in mirrored]
            load_before = os.getloadavg()[0]
            use("async")
            bare = [bare_client_rate(wire_url, args.http_items, args.concurrency)]
            for path in order:
                use(path)
                rates[path].append(args.http_items / post_batch(args.http_items))
            bare.append(bare_client_rate(wire_url, args.http_items, args.concurrency))
            load_after = os.getloadavg()[0]
        finally:
            host.worker_loop.call(engine.tiers.aclose_async_clients)
            host.stop()
    ideal = args.concurrency / args.latency
    if not args.http_only:
        print(f"blob end to end ({len(items)}-item .jsonl, embedded tier, support_ticket):")
        print(f"  engine alone {engine_rate:7.2f} items/s   through Azurite + functions {e2e_rate:7.2f} items/s"
              f"   = {100 * e2e_rate / engine_rate:5.1f}% of the engine")
    print(f"HTTP batch ({args.http_items} items, tier latency {args.latency * 1000:.0f} ms, concurrency {args.concurrency},"
          f" ideal {ideal:.2f} items/s; order {' '.join(order)}):")
    print(f"  machine load average (1 min) {load_before:.1f} before, {load_after:.1f} after, on {os.cpu_count()} CPUs")
    ceiling = statistics.mean(bare)
    print(f"  rig ceiling: a bare aiohttp client, no SDK and no app: {ceiling:7.2f} requests/s = "
          f"{100 * ceiling / ideal:5.1f}% of ideal   (before, after: {', '.join(f'{100 * r / ideal:.1f}%' for r in bare)})")
    for name, measured in rates.items():
        print(f"  {name:7} path: median {statistics.median(measured):7.2f} items/s"
              f" = {100 * statistics.median(measured) / ideal:5.1f}% of ideal"
              f"   (runs: {', '.join(f'{100 * r / ideal:.1f}%' for r in measured)})"
              f"   app CPU {1000 * cpu_s[name] / (len(measured) * args.http_items):.2f} ms/item")
    median = {name: statistics.median(measured) for name, measured in rates.items()}
    print(f"  async / polling: {median['async'] / median['polling']:.3f}x;"
          f" async / create: {median['async'] / median['create']:.3f}x;"
          f" async / thread: {median['async'] / median['thread']:.3f}x")
    print(f"  the app's async path (openai SDK) / rig ceiling: {100 * median['async'] / ceiling:.1f}%"
          f" (target >= 97%)")

if __name__ == "__main__":
    main()
