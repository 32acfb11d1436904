"""2. Trigger published -> first request at the provider: 10 webhook channels answering at
once, confirmation none, sequential triggers (BENCH_TRIGGERS, default 200), on SQLite and
on Redis, with the floor (bench/floor_subscriber.py) measured in the same run. Also the
daemon's CPU (utime + stime from /proc) per trigger and per delivery.

    uv run python -m bench latency
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.harness import (
    DaemonProcess,
    Provider,
    Rows,
    cpu_seconds,
    daemon,
    deploy,
    env_int,
    floor,
    percentile,
    repeats,
    run_id,
    scratch,
    selected_stores,
    sequential,
    services,
    serving,
    watching,
    webhooks,
)

CHANNELS = 10
WARM_UP = 5

P50 = "p50, trigger -> first request"
P99 = "p99, trigger -> first request"
LAST = "p50, trigger -> last of 10 answers"
CPU_TRIGGER = "CPU per trigger"
CPU_DELIVERY = "CPU per delivery"


def record(rows: Rows, column: str, first: list[float], last: list[float], cpu: float) -> None:
    count = len(first)
    rows.add(P50, column, 1000 * percentile(first, 50))
    rows.add(P99, column, 1000 * percentile(first, 99))
    rows.add(LAST, column, 1000 * percentile(last, 50))
    rows.add(CPU_TRIGGER, column, 1000 * cpu / count)
    rows.add(CPU_DELIVERY, column, 1000 * cpu / (count * CHANNELS))


async def run(
    rows: Rows,
    folder: Path,
    count: int,
    during: Callable[[str, DaemonProcess], Awaitable[Callable[[], Awaitable[None]]]] | None = None,
    with_floor: bool = True,
) -> None:
    """The floor, then each store's daemon; `during(store, daemon)` (the profiler) is
    started before the timed triggers and its result awaited after them."""
    stores = selected_stores()
    with services(folder, stores) as (broker, redis):
        async with serving(Provider()) as provider, watching(broker.url) as watcher:
            if with_floor:
                targets = [provider.url(i) for i in range(CHANNELS)]
                async with floor(broker, targets) as subscriber:
                    await sequential(broker.url, provider, CHANNELS, WARM_UP, f"W-{run_id()}")
                    for _ in range(repeats()):
                        cpu = cpu_seconds(subscriber.pid)
                        first, last = await sequential(
                            broker.url, provider, CHANNELS, count, f"F-{run_id()}"
                        )
                        record(rows, "floor", first, last, cpu_seconds(subscriber.pid) - cpu)
            for store in stores:
                deployment = deploy(
                    folder / store, broker, redis, store, webhooks(provider, CHANNELS)
                )
                async with daemon(deployment) as process:
                    await sequential(
                        broker.url, provider, CHANNELS, WARM_UP, f"W-{run_id()}", watcher
                    )
                    for _ in range(1 if during else repeats()):
                        finish = await during(store, process) if during else None
                        cpu = process.cpu()
                        first, last = await sequential(
                            broker.url, provider, CHANNELS, count, f"L-{run_id()}", watcher
                        )
                        record(rows, store, first, last, process.cpu() - cpu)
                        if finish is not None:
                            await finish()
    for name in (P50, P99, LAST, CPU_TRIGGER, CPU_DELIVERY):
        rows.describe(name, unit="ms")


async def measure() -> dict[str, Any]:
    rows = Rows()
    count = env_int("BENCH_TRIGGERS", 200)
    with scratch() as folder:
        await run(rows, folder, count)
    rows.extra["notes"] = [
        f"{count} sequential triggers per repeat (each waited out: 10 answers and `sent` on "
        f"MQTT) after {WARM_UP} to warm up; 10 webhook channels answering at once; "
        "confirmation none; goal: p99 at most 2x the floor."
    ]
    return rows.to_json()
