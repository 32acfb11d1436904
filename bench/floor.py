"""1. The floor: trigger published -> first request at the provider, with nothing between
but a bare subscriber (bench/floor_subscriber.py) on the same mosquitto, which POSTs to 10
endpoints at once. TCP_NODELAY everywhere. Also its CPU per trigger.

    uv run python -m bench floor
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.harness import (
    Provider,
    Rows,
    collect,
    cpu_seconds,
    env_int,
    floor,
    percentile,
    repeats,
    run_id,
    sequential,
    services,
    serving,
)

CHANNELS = 10


async def run(rows: Rows, folder: Path) -> None:
    count = env_int("BENCH_TRIGGERS", 200)
    with services(folder, ()) as (broker, _):
        async with serving(Provider()) as provider:
            targets = [provider.url(i) for i in range(CHANNELS)]
            async with floor(broker, targets) as subscriber:
                await sequential(broker.url, provider, CHANNELS, 5, f"WARM-{run_id()}")
                for _ in range(repeats()):
                    cpu = cpu_seconds(subscriber.pid)
                    first, last = await sequential(
                        broker.url, provider, CHANNELS, count, f"F-{run_id()}"
                    )
                    cpu = cpu_seconds(subscriber.pid) - cpu
                    rows.add("p50, trigger -> first request", "floor", 1000 * percentile(first, 50))
                    rows.add("p99, trigger -> first request", "floor", 1000 * percentile(first, 99))
                    rows.add(
                        "p50, trigger -> last of 10 answers",
                        "floor",
                        1000 * percentile(last, 50),
                    )
                    rows.add(
                        "p99, trigger -> last of 10 answers",
                        "floor",
                        1000 * percentile(last, 99),
                    )
                    rows.add("CPU per trigger", "floor", 1000 * cpu / count)
    for name in list(rows.values):
        rows.describe(name, unit="ms")
    rows.extra["triggers"] = count


async def measure() -> dict[str, Any]:
    return await collect(run)
