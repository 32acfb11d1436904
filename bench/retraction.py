"""How fast does a false alarm get corrected, and how fast does an alert fan out?

Ten channels on local fake providers (webhooks answering like a provider), a real
mosquitto, the SQLite store, the daemon in this process. For each round: one trigger
(released at once), timed from publishing to the last delivery confirmed; then one
retraction over HTTP, timed from the request to the last correction confirmed and every
original marked retracted. Prints a Markdown table for docs/benchmarks.md.

    uv run python -m bench.retraction [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp

from broadcaster.logging import configure_logging
from tests.fakes.webhook import FakeWebhook
from tests.integration.harness import (
    API_TOKEN,
    publish,
    running_daemon,
    signed_trigger,
    watching,
    webhook,
    write_deployment,
)
from tests.servers import start_mosquitto

CHANNELS = 10


async def bench(rounds: int, folder: Path) -> tuple[list[float], list[float]]:
    broker = start_mosquitto(folder)
    fan_out: list[float] = []
    retraction: list[float] = []
    try:
        fakes = [FakeWebhook.start() for _ in range(CHANNELS)]
        hooks = [await f.__aenter__() for f in fakes]
        config = write_deployment(
            folder,
            mqtt_url=broker.url,
            channels={f"hook_{i:02}": webhook(h.url) for i, h in enumerate(hooks)},
        )
        async with running_daemon(config) as daemon, watching(broker.url) as watcher:
            url = f"http://{daemon.settings.http.listen}/api/alerts"
            async with aiohttp.ClientSession(
                headers={"Authorization": f"Bearer {API_TOKEN}"}
            ) as http:
                for n in range(rounds):
                    alert_id = f"BENCH-{n}"
                    start = time.perf_counter()
                    await publish(broker.url, "bc/trigger", signed_trigger(alert_id))
                    await watcher.alert_in(alert_id, "sent")
                    fan_out.append(time.perf_counter() - start)

                    start = time.perf_counter()
                    async with http.post(
                        f"{url}/{alert_id}/retract", json={"reason": "Fehlalarm"}
                    ) as r:
                        assert r.status == 202, await r.text()
                    await watcher.alert_in(f"{alert_id}:retraction", "sent")

                    def done(alert_id: str = alert_id) -> bool:
                        alert = watcher.alert(alert_id) or {}
                        return all(
                            d["state"] == "retracted" for d in alert.get("deliveries", {}).values()
                        )

                    await watcher.wait_for(done)
                    retraction.append(time.perf_counter() - start)
        for fake in fakes:
            await fake.__aexit__(None, None, None)
    finally:
        broker.stop()
    return fan_out, retraction


def row(name: str, samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return (
        f"| {name} | {len(ms)} | {statistics.median(ms):.0f} ms | {p95:.0f} ms | {ms[-1]:.0f} ms |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    configure_logging(json=False, level="WARNING")
    with tempfile.TemporaryDirectory() as folder:
        fan_out, retraction = asyncio.run(bench(args.rounds, Path(folder)))
    print(f"| measure ({CHANNELS} channels, local fakes) | rounds | median | p95 | max |")
    print("|---|---|---|---|---|")
    print(row("trigger published -> last delivery confirmed", fan_out))
    print(row("retraction requested -> last correction confirmed, originals retracted", retraction))


if __name__ == "__main__":
    main()
