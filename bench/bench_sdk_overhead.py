"""What the openai SDK's request path costs per request, against a bare aiohttp request to the same endpoint.

One request at a time to the benchmark's fake Azure OpenAI endpoint (its own process, see bench_functions.py), at
two injected latencies, in one run: wall time (median) and this process's CPU per request for
  bare   aiohttp posting the same JSON body and reading the reply (no SDK, no parsing into models)
  sdk    AsyncOpenAI at the v1 URL over its aiohttp transport, `client.post(..., cast_to=ChatCompletion)` as the
         tier sends it
  raw    the same SDK request returning the raw reply, parsed with `ChatCompletion.model_validate_json`
  create the same SDK request built by `chat.completions.create`

    python -m bench.bench_sdk_overhead | tee bench/results/sdk_overhead.txt   (from the repository root)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_functions import wire_server  # noqa: E402

BODY = {"model": "gpt-4o", "messages": [{"role": "system", "content": "Route the ticket. " * 20},
                                        {"role": "user", "content": "I was charged twice"}],
        "temperature": 0.0, "max_tokens": 64}


async def measure(url: str, requests: int) -> dict[str, tuple[float, float]]:
    """(median wall ms, CPU ms) per request for each way of sending it."""
    import aiohttp
    import httpx2
    import openai
    from openai.types.chat import ChatCompletion

    client = openai.AsyncOpenAI(base_url=f"{url}/openai/v1/", api_key="bench", max_retries=0,
                                http_client=openai.DefaultAioHttpClient())
    endpoint = f"{url}/openai/v1/chat/completions"
    data = json.dumps(BODY).encode()
    async with aiohttp.ClientSession(headers={"authorization": "Bearer bench",
                                              "content-type": "application/json"}) as session:
        async def bare() -> None:
            async with session.post(endpoint, data=data) as response:
                await response.read()

        async def sdk() -> None:
            await client.post("/chat/completions", body=BODY, cast_to=ChatCompletion)

        async def raw() -> None:
            reply = await client.post("/chat/completions", body=BODY, cast_to=httpx2.Response)
            ChatCompletion.model_validate_json(reply.content)

        async def create() -> None:
            await client.chat.completions.create(**BODY)

        results = {}
        for name, send in (("bare", bare), ("sdk", sdk), ("raw", raw), ("create", create)):
            await send()  # connection opened, first-call work done
            walls, cpu = [], time.process_time()
            for _ in range(requests):
                started = time.perf_counter()
                await send()
                walls.append(1000 * (time.perf_counter() - started))
            results[name] = (statistics.median(walls), 1000 * (time.process_time() - cpu) / requests)
    await client.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--latencies", default="0,0.05", help="seconds the fake endpoint waits, comma-separated")
    args = parser.parse_args()
    print(f"openai SDK request path vs bare aiohttp; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, "
          f"{args.requests} sequential requests each")
    for latency in (float(x) for x in args.latencies.split(",")):
        with wire_server(latency) as url:
            results = asyncio.run(measure(url, args.requests))
        bare_wall, bare_cpu = results["bare"]
        for name, (wall, cpu) in results.items():
            print(f"  latency {1000 * latency:4.0f} ms  {name:6}  wall median {wall:7.2f} ms  CPU {cpu:5.2f} ms/request"
                  f"  (+{wall - bare_wall:5.2f} ms wall, +{cpu - bare_cpu:5.2f} ms CPU over bare)")


if __name__ == "__main__":
    main()
