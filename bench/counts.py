"""Work per alert, counted rather than timed (so a loaded machine gives the same figures):
Redis commands the daemon sends (from INFO commandstats) and MQTT state messages it
publishes, per alert of 10 webhook deliveries, over BENCH_COUNT_TRIGGERS (default 50)
sequential triggers.

    uv run python -m bench counts
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import redis as redis_client

from bench.harness import (
    Provider,
    Rows,
    daemon,
    deploy,
    env_int,
    nodelay,
    run_id,
    scratch,
    sequential,
    services,
    serving,
    watching,
    webhooks,
)
from bench.latency import CHANNELS, WARM_UP

WRITES = {"evalsha", "eval"}  # every store write is one Lua script


@contextlib.asynccontextmanager
async def counting(url: str) -> AsyncIterator[Counter[str]]:
    """State messages per alert id on bc/alerts/+, while inside."""
    published: Counter[str] = Counter()
    ready = asyncio.Event()

    async def run() -> None:
        host, port = url.removeprefix("mqtt://").split(":")
        async with aiomqtt.Client(host, int(port), max_queued_incoming_messages=0) as client:
            nodelay(client)
            await client.subscribe("bc/alerts/+", qos=1)
            ready.set()
            async for message in client.messages:
                if isinstance(message.payload, bytes) and message.payload:
                    published.update([str(json.loads(message.payload).get("id"))])

    task = asyncio.create_task(run())
    await asyncio.wait_for(ready.wait(), 15)
    try:
        yield published
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def commandstats(url: str) -> Counter[str]:
    with redis_client.Redis.from_url(url) as connection:
        stats = connection.info("commandstats")
    return Counter({name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()})


async def measure() -> dict[str, Any]:
    rows = Rows()
    count = env_int("BENCH_COUNT_TRIGGERS", 50)
    with scratch() as folder, services(folder, ("redis",)) as (broker, redis):
        assert redis is not None
        async with (
            serving(Provider()) as provider,
            watching(broker.url) as watcher,
            counting(broker.url) as published,
        ):
            deployment = deploy(
                folder / "redis", broker, redis, "redis", webhooks(provider, CHANNELS)
            )
            async with daemon(deployment):
                await sequential(broker.url, provider, CHANNELS, WARM_UP, f"W-{run_id()}", watcher)
                prefix = f"C-{run_id()}"
                before = commandstats(redis.url)
                await sequential(broker.url, provider, CHANNELS, count, prefix, watcher)
                after = commandstats(redis.url)
    calls = after - before
    calls.pop("info", None)
    writes = sum(n for name, n in calls.items() if name in WRITES)
    reads = sum(n for name, n in calls.items() if name not in WRITES)
    ours = {k: v for k, v in published.items() if k.startswith(prefix)}
    rows.add("store writes per alert (Redis scripts)", "redis", writes / count)
    rows.add("other Redis commands per alert (reads, and the scripts' own)", "redis", reads / count)
    rows.add("MQTT state publishes per alert", "redis", sum(ours.values()) / max(len(ours), 1))
    for name in list(rows.values):
        rows.describe(name, unit="")
    rows.extra["commands"] = {name: round(n / count, 2) for name, n in sorted(calls.items())}
    return rows.to_json()
