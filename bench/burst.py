"""4. Burst: BENCH_BURST (default 200) different triggers published at once over one
connection, 10 webhook channels each, providers answering at random in 0-50 ms. Time
from the first publish to the last delivery answered and to the last alert `sent` on
MQTT; order of arrival (inversions of the alerts' first requests against the publish
order; 0 = kept); the daemon's peak RSS (VmHWM) and CPU. Then BENCH_BURST_LARGE (default
1,000) once per store, to show how the time grows. A fresh daemon for every burst.

    uv run python -m bench burst
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from bench.harness import (
    TOPIC,
    Broker,
    Provider,
    Rows,
    StateWatcher,
    collect,
    cpu_seconds,
    daemon,
    deploy,
    env_int,
    floor,
    inversions,
    publisher,
    repeats,
    run_id,
    selected_stores,
    services,
    serving,
    trigger_bytes,
    uniform,
    watching,
    webhooks,
)
from tests.servers import RedisServer

CHANNELS = 10


async def burst(
    broker: Broker, provider: Provider, count: int, watcher: StateWatcher | None
) -> dict[str, float]:
    prefix = f"B{run_id()}"
    ids = [f"{prefix}-{n:05}" for n in range(count)]
    payloads = [trigger_bytes(i) for i in ids]  # signed before the clock starts
    async with publisher(broker.url) as client:
        start = time.perf_counter()
        await asyncio.gather(*(client.publish(TOPIC, p, qos=1) for p in payloads))

        def delivered() -> bool:
            return all(
                sum(h.answered > 0 for h in provider.by_alert.get(i, [])) >= CHANNELS for i in ids
            )

        await provider.wait(delivered, timeout=max(120.0, count * 0.5))
        last = max(h.answered for i in ids for h in provider.by_alert[i]) - start
        sent = 0.0
        if watcher is not None:
            await watcher.wait(
                lambda: all((i, "sent") in watcher.seen for i in ids), timeout=max(120.0, count)
            )
            sent = max(watcher.seen[(i, "sent")] for i in ids) - start
    arrival = sorted(range(count), key=lambda n: min(h.received for h in provider.by_alert[ids[n]]))
    return {"last": last, "sent": sent, "inversions": float(inversions(arrival))}


async def one(
    rows: Rows,
    folder: Path,
    broker: Broker,
    redis: RedisServer | None,
    provider: Provider,
    watcher: StateWatcher,
    store: str,
    count: int,
    suffix: str,
) -> None:
    deployment = deploy(
        folder / f"{store}-{run_id()}", broker, redis, store, webhooks(provider, CHANNELS)
    )
    async with daemon(deployment) as process:
        cpu = process.cpu()
        found = await burst(broker, provider, count, watcher)
        cpu = process.cpu() - cpu
        rows.add(f"{count}{suffix}: first publish -> last delivery", store, 1000 * found["last"])
        rows.add(
            f"{count}{suffix}: first publish -> last `sent` on MQTT", store, 1000 * found["sent"]
        )
        rows.add(f"{count}{suffix}: order inversions", store, found["inversions"])
        rows.add(f"{count}{suffix}: peak RSS", store, process.peak_rss_mb())
        rows.add(f"{count}{suffix}: daemon CPU", store, 1000 * cpu)
        rows.add(f"{count}{suffix}: CPU per delivery", store, 1000 * cpu / (count * CHANNELS))


async def run(rows: Rows, folder: Path) -> None:
    count = env_int("BENCH_BURST", 200)
    large = env_int("BENCH_BURST_LARGE", 1000)
    stores = selected_stores()
    with services(folder, stores) as (broker, redis):
        provider = Provider(uniform(0.0, 0.05))
        async with serving(provider), watching(broker.url) as watcher:
            sizes = [(count, "", repeats())] + ([(large, " (once)", 1)] if large else [])
            for size, suffix, times in sizes:
                for _ in range(times):
                    targets = [provider.url(i) for i in range(CHANNELS)]
                    async with floor(broker, targets) as subscriber:
                        cpu = cpu_seconds(subscriber.pid)
                        found = await burst(broker, provider, size, None)
                        cpu = cpu_seconds(subscriber.pid) - cpu
                    rows.add(
                        f"{size}{suffix}: first publish -> last delivery",
                        "floor",
                        1000 * found["last"],
                    )
                    rows.add(f"{size}{suffix}: order inversions", "floor", found["inversions"])
                    rows.add(
                        f"{size}{suffix}: CPU per delivery", "floor", 1000 * cpu / (size * CHANNELS)
                    )
                    provider.reset()
                    for store in stores:
                        await one(
                            rows, folder, broker, redis, provider, watcher, store, size, suffix
                        )
                        provider.reset()
    for name in rows.values:
        unit = "count" if "inversions" in name else "MB" if "RSS" in name else "ms"
        rows.describe(name, unit=unit)
        if "(once)" in name:
            rows.meta[name]["repeats"] = 1
    rows.extra["notes"] = [
        f"{count} triggers x {CHANNELS} channels at once, providers at random 0-50 ms; "
        f"{large} once per store (0 = skipped). Goal: all delivered within 2 s on Redis, "
        "4 s on SQLite, order kept; CPU per delivery at most 1 ms."
    ]


async def measure() -> dict[str, Any]:
    return await collect(run)
