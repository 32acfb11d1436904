"""A hanging or failing provider never holds up the others: every channel has its own
connection pool and concurrency, and a circuit breaker that pauses a failing one."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiohttp

from tests.fakes.webhook import FakeWebhook
from tests.integration.harness import (
    Watcher,
    publish_many,
    running_daemon,
    signed_trigger,
    webhook,
    write_deployment,
)
from tests.servers import MosquittoServer

ALERTS = 50


async def status_of(config: Path) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "broadcaster",
        "status",
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"},
    )
    out, _ = await process.communicate()
    return out.decode()


def delivered(watcher: Watcher, ids: list[str], channel: str) -> int:
    return sum(
        (watcher.alert(i) or {}).get("deliveries", {}).get(channel, {}).get("state") == "delivered"
        for i in ids
    )


async def test_hanging_and_slow_providers_do_not_delay_the_fast_ones(
    tmp_path, mosquitto: MosquittoServer, watcher: Watcher
):
    async with (
        FakeWebhook.start() as fast_a,
        FakeWebhook.start() as fast_b,
        FakeWebhook.start() as hanging,
        FakeWebhook.start() as slow,
    ):
        hanging.hold()  # takes every request and never answers
        slow.hold()  # answers only at the end (a 30 s provider, without the 30 s)
        config = write_deployment(
            tmp_path,
            mqtt_url=mosquitto.url,
            channels={
                "fast_a": webhook(fast_a.url),
                "fast_b": webhook(fast_b.url),
                "hanging": webhook(hanging.url),
                "slow": webhook(slow.url),
            },
            delivery={"deadline": "2m"},
        )
        async with running_daemon(config):
            ids = [f"FW-BULK-{n:02d}" for n in range(ALERTS)]
            await publish_many(mosquitto.url, "bc/trigger", [signed_trigger(i) for i in ids])
            await watcher.wait_for(
                lambda: (
                    delivered(watcher, ids, "fast_a") + delivered(watcher, ids, "fast_b")
                    == 2 * ALERTS
                ),
                60,
            )
            # Every fast delivery is done while the slow ones have not answered once.
            assert sum(r.status is not None for r in hanging.requests + slow.requests) == 0
            # Each held channel has only its own pool full: at most max_in_flight (10).
            assert 0 < len(hanging.requests) <= 10
            assert 0 < len(slow.requests) <= 10
            slow.release()
            await watcher.wait_for(lambda: delivered(watcher, ids, "slow") == ALERTS, 60)
    assert len(fast_a.posts) == len(fast_b.posts) == len(slow.posts) == ALERTS


async def test_a_failing_channel_opens_its_circuit_and_stops_hammering(
    tmp_path, mosquitto: MosquittoServer, watcher: Watcher
):
    async with FakeWebhook.start() as down, FakeWebhook.start() as fine:
        down.fail_permanently(503)  # a provider that is down (503 is worth retrying)
        config = write_deployment(
            tmp_path,
            mqtt_url=mosquitto.url,
            channels={"down": webhook(down.url), "fine": webhook(fine.url)},
            delivery={
                "max_attempts": 8,
                "deadline": "3s",
                "breaker_failures": 3,
                "breaker_cooldown": "500ms",
            },
        )
        async with running_daemon(config) as daemon:
            ids = [f"FW-CIRCUIT-{n:02d}" for n in range(20)]
            await publish_many(mosquitto.url, "bc/trigger", [signed_trigger(i) for i in ids])
            metrics_url = f"http://{daemon.settings.http.listen}/metrics"
            async with aiohttp.ClientSession() as http:
                opened = False
                while not opened:
                    async with http.get(metrics_url) as r:
                        opened = 'broadcaster_channel_circuit{channel="down"} 2.0' in await r.text()
                    await asyncio.sleep(0.05)  # polling the daemon's metrics
            shown = ""
            while "down" not in shown:  # `status` shows it, from the store
                shown = await status_of(config)
            assert "paused by their circuit breaker" in shown
            assert "open" in shown
            await watcher.wait_for(
                lambda: all(
                    (watcher.alert(i) or {}).get("state") in ("partially_failed", "failed")
                    for i in ids
                ),
                60,
            )
    assert len(fine.posts) == 20
    # Without the breaker: 20 deliveries x 8 attempts = 160 requests to a dead provider.
    # With it: the first failures (at most 10 at once), then one probe per cooldown.
    assert len(down.requests) < 40, len(down.requests)
    states = {watcher.alert(i)["deliveries"]["down"]["state"] for i in ids}  # type: ignore[index]
    assert states == {"failed"}


def most_in_window(times: list[float], window: float) -> int:
    """The most requests that arrived within any `window` seconds."""
    return max(sum(1 for t in times if start <= t < start + window) for start in times)


async def test_a_rate_limited_channel_spaces_its_requests(
    tmp_path, mosquitto: MosquittoServer, watcher: Watcher
):
    """`rate_limit: 2/s` is aiolimiter's leaky bucket: a burst of 2, then one every half
    second, so no w seconds hold more than 2 + 2w requests. Measured where it counts, at
    the provider, with room for the daemon's own steps between the limiter and the
    request (SLACK), which only ever delay a request."""
    async with FakeWebhook.start() as hook:
        config = write_deployment(
            tmp_path,
            mqtt_url=mosquitto.url,
            channels={"limited": webhook(hook.url, rate_limit="2/s")},
        )
        async with running_daemon(config):
            ids = [f"FW-RATE-{n}" for n in range(6)]
            await publish_many(mosquitto.url, "bc/trigger", [signed_trigger(i) for i in ids])
            await watcher.wait_for(lambda: delivered(watcher, ids, "limited") == len(ids), 60)
    assert len(hook.posts) == len(hook.requests) == 6
    start = min(r.at for r in hook.requests)
    times = sorted((r.at - start).total_seconds() for r in hook.requests)
    slack = 0.4
    for window in (0.25, 0.5, 1.0, 1.5):
        assert most_in_window(times, window) <= int(2 + 2 * (window + slack)), (window, times)
    # The sixth waited for four to drain from the bucket (2 s); unlimited, all 6 are at once.
    assert times[-1] >= 2.0 - slack, times
