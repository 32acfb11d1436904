"""How soon does the console's board show a delivery's new state?

A real daemon (SQLite store, a local mosquitto) fans each trigger out to fake webhook
providers while one client follows GET /console/events. Every delivery write to the
store (`sending` for the fan-out, then `delivered`) is timestamped when the store has
it; each board event is timestamped when it has arrived whole. The latency of a state
is the time from its write to the first board event that shows it. A state that was
replaced before any event showed it (sending, then delivered within the same burst) is
counted as superseded, not measured. Prints p50, p99 and max in milliseconds.

    uv run python -m bench.console_board [--triggers 30] [--channels 4] [--viewers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from broadcaster.logging import configure_logging
from broadcaster.models import Delivery
from broadcaster.store.base import Store
from tests.fakes.webhook import FakeWebhook
from tests.integration.harness import (
    console_sign_in,
    running_daemon,
    signed_trigger,
    webhook,
    write_deployment,
)
from tests.servers import start_mosquitto

STATE = re.compile(r'data-testid="delivery-([\w-]+?)-(hook\d+)" data-state="(\w+)"')
Key = tuple[str, str, str]  # alert id, channel id, state


def record_writes(store: Store, written: dict[Key, float]) -> None:
    """Timestamp each delivery state the store takes (the first time for each)."""
    save, start = store.save_delivery, store.start_deliveries

    async def save_delivery(delivery: Delivery, **kw: Any) -> bool:
        done = await save(delivery, **kw)
        if done:
            key = (delivery.alert_id, delivery.channel_id, delivery.state)
            written.setdefault(key, time.perf_counter())
        return done

    async def start_deliveries(alert_id: str, *args: Any, **kw: Any) -> list[Delivery]:
        taken = await start(alert_id, *args, **kw)
        at = time.perf_counter()
        for d in taken:
            written.setdefault((alert_id, d.channel_id, d.state), at)
        return taken

    store.save_delivery = save_delivery  # type: ignore[method-assign]
    store.start_deliveries = start_deliveries  # type: ignore[method-assign]


async def follow(
    response: aiohttp.ClientResponse, shown: dict[Key, float], arrived: asyncio.Event
) -> None:
    """Read board events; the arrival of the first one that shows each state."""
    data: list[str] = []
    while line := (await response.content.readline()).decode():
        if line.startswith("data: "):
            data.append(line[6:])
        elif line == "\n" and data:
            at = time.perf_counter()
            for alert_id, channel_id, state in STATE.findall("".join(data)):
                shown.setdefault((alert_id, channel_id, state), at)
            data = []
            arrived.set()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def bench(triggers: int, channels: int, viewers: int, folder: Path) -> dict[str, Any]:
    mosquitto = start_mosquitto(folder)
    written: dict[Key, float] = {}
    shown: dict[Key, float] = {}
    try:
        async with AsyncExitStack() as stack:
            fakes = [await stack.enter_async_context(FakeWebhook.start()) for _ in range(channels)]
            config = write_deployment(
                folder / "deployment",
                mqtt_url=mosquitto.url,
                channels={f"hook{i}": webhook(f.url) for i, f in enumerate(fakes)},
            )
            root = yaml.safe_load(config.read_text(encoding="utf-8"))["http"]["public_url"]
            daemon = await stack.enter_async_context(running_daemon(config))
            record_writes(daemon.store, written)
            jar = aiohttp.CookieJar(unsafe=True)  # the daemon listens on 127.0.0.1
            http = await stack.enter_async_context(aiohttp.ClientSession(cookie_jar=jar))
            await console_sign_in(http, root, daemon)  # a viewer account, through the sign-in form
            sse = {"Accept": "text/event-stream"}
            streams = [
                await http.get(f"{root}/console/events?lang=en", headers=sse)
                for _ in range(viewers)
            ]
            assert all(s.status == 200 for s in streams)
            arrived = asyncio.Event()
            readers = [asyncio.create_task(follow(s, shown, arrived)) for s in streams]
            headers = {"Authorization": f"Bearer {daemon.settings.http.api_token}"}
            for n in range(triggers):
                alert_id = f"FW-BENCH-{n:04d}"
                body = signed_trigger(alert_id)
                async with http.post(f"{root}/api/triggers", json=body, headers=headers) as r:
                    assert r.status == 202, await r.text()
                wanted = {(alert_id, f"hook{i}", "delivered") for i in range(channels)}
                async with asyncio.timeout(30):
                    while not wanted <= shown.keys():
                        arrived.clear()
                        await arrived.wait()
            for s in streams:
                s.close()
            for task in readers:
                task.cancel()
    finally:
        mosquitto.stop()
    latencies = {
        state: [(shown[k] - at) * 1000 for k, at in written.items() if k[2] == state and k in shown]
        for state in ("sending", "delivered")
    }
    superseded = sum(1 for k in written if k not in shown)
    every = latencies["sending"] + latencies["delivered"]
    summary = {
        state: {
            "count": len(values),
            "p50_ms": round(statistics.median(values), 1),
            "p99_ms": round(percentile(values, 99), 1),
            "max_ms": round(max(values), 1),
        }
        for state, values in {**latencies, "all": every}.items()
        if values
    }
    return {
        "triggers": triggers,
        "channels": channels,
        "viewers": viewers,
        "superseded": superseded,
        **summary,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--triggers", type=int, default=30)
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--viewers", type=int, default=1)
    args = parser.parse_args()
    configure_logging(json=True, level="WARNING")
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(bench(args.triggers, args.channels, args.viewers, Path(tmp)))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
