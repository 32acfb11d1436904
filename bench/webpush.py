"""8. Web Push fan-out: one webpush channel and BENCH_WEBPUSH_SUBSCRIPTIONS (default
10,000, the issue's size) browser subscriptions in the store, pushed through the fake push
service (tests/fakes/webpush.py) answering in 20 ms. Messages per second and the time
from the trigger to the alert's final state on MQTT, the most pushes in flight at the
fake, the daemon's peak RSS. The floor: plain aiohttp with 100 requests in flight to the
same fake, each push encrypted with pywebpush and the one VAPID header, as the least a
correct sender must do.

The fake checks every push's headers and VAPID JWT (each distinct header's signature
once) and counts every push, but decrypts only every BENCH_WEBPUSH_CHECK_EVERY-th
(default 100): decrypting all 10,000 would make the fake the bottleneck on 2 cores.

The subscriptions are written to the store before the daemon starts (the page's rate
limit would make subscribing 10,000 over HTTP take minutes). The channel's settings come
from WEBPUSH_SETTINGS, updated from the JSON object in BENCH_WEBPUSH_SETTINGS (e.g.
'{"max_in_flight": 100}').

    uv run python -m bench webpush
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bench.harness import (
    Deployment,
    Rows,
    collect,
    env_int,
    one_alert,
    repeats,
    selected_stores,
    services,
    watching,
)
from broadcaster.channels.webpush import encrypt, subscription_id
from broadcaster.models import PushSubscription
from broadcaster.store import open_store
from broadcaster.vapid import VapidSigner, new_key_pair
from broadcaster.web.guard import origin_of
from tests.fakes.webpush import BrowserSubscription, FakePushService

ANSWER = 0.02  # seconds the fake push service takes per push
FLOOR_IN_FLIGHT = 100
SUBJECT = "mailto:bench@broadcaster.example"
# Only what the current channel schema accepts (broadcaster/channels/settings.py).
WEBPUSH_SETTINGS: dict[str, Any] = {"max_in_flight": 50}


def settings(private_key: str) -> dict[str, Any]:
    extra = json.loads(os.environ.get("BENCH_WEBPUSH_SETTINGS") or "{}")
    if not isinstance(extra, dict):
        raise SystemExit(
            "BENCH_WEBPUSH_SETTINGS must be a JSON object, e.g. '{\"max_in_flight\": 100}'"
        )
    return {
        "type": "webpush",
        "vapid_private_key": private_key,  # a key of this run only, so written out here
        "vapid_subject": SUBJECT,
        "push_services": ["127.0.0.1"],
        **WEBPUSH_SETTINGS,
        **extra,
    }


def records(browsers: list[BrowserSubscription]) -> list[PushSubscription]:
    return [
        PushSubscription(
            id=subscription_id(b.endpoint), endpoint=b.endpoint, p256dh=b.p256dh, auth=b.auth
        )
        for b in browsers
    ]


async def put(deployment: Deployment, subscriptions: list[PushSubscription]) -> None:
    """The subscriptions into the deployment's store, before its daemon starts."""
    url = yaml.safe_load(deployment.config.read_text(encoding="utf-8"))["store"]["url"]
    store = open_store(url, deployment.folder)
    await store.open()
    try:
        # 50 at once: within the Redis client's pool, and SQLite commits them together.
        for start in range(0, len(subscriptions), 50):
            batch = subscriptions[start : start + 50]
            await asyncio.gather(*(store.save_subscription(s) for s in batch))
    finally:
        await store.close()


async def floor_rate(
    fake: FakePushService, subscriptions: list[PushSubscription], key: str
) -> float:
    signer = VapidSigner(key, SUBJECT)
    gate = asyncio.Semaphore(FLOOR_IN_FLIGHT)
    headers = {"TTL": "86400", "Urgency": "high", "Content-Encoding": "aes128gcm"}
    plaintext = json.dumps({"title": "Warnung", "text": "Großbrand"}).encode()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

        async def send(subscription: PushSubscription) -> None:
            body = encrypt(subscription, plaintext)
            authorization = signer.header(origin_of(subscription.endpoint))
            async with (
                gate,
                http.post(
                    subscription.endpoint,
                    data=body,
                    headers={**headers, "Authorization": authorization},
                ) as r,
            ):
                await r.read()

        start = time.perf_counter()
        await asyncio.gather(*(send(s) for s in subscriptions))
        return len(subscriptions) / (time.perf_counter() - start)


async def run(rows: Rows, folder: Path) -> None:
    count = env_int("BENCH_WEBPUSH_SUBSCRIPTIONS", 10_000)
    check_every = max(1, env_int("BENCH_WEBPUSH_CHECK_EVERY", 100))
    stores = selected_stores()
    rate = f"{count} subscriptions: messages per second"
    took = f"{count} subscriptions: trigger -> alert final"
    flight = f"{count} subscriptions: most pushes in flight"
    rss = f"{count} subscriptions: peak RSS"
    private, public = new_key_pair()
    with services(folder, stores) as (broker, redis):
        async with FakePushService.start() as fake, watching(broker.url) as watcher:
            fake.delay(ANSWER)
            fake.check_every = check_every
            subscriptions = records([fake.subscribe(key=public) for _ in range(count)])

            async def prepare(deployment: Deployment) -> None:
                await put(deployment, subscriptions)

            for _ in range(repeats()):
                fake.pushes.clear()
                fake.requests.clear()
                rows.add(rate, "floor", await floor_rate(fake, subscriptions, private))
                for store in stores:
                    fake.pushes.clear()
                    fake.requests.clear()
                    fake.max_in_flight = 0
                    seconds, peak = await one_alert(
                        folder,
                        broker,
                        redis,
                        watcher,
                        store,
                        {"push": settings(private)},
                        timeout=max(120.0, count * 0.1),
                        prepare=prepare,
                    )
                    pushed = len(fake.pushes)
                    rows.add(rate, store, pushed / seconds)
                    rows.add(took, store, 1000 * seconds)
                    rows.add(flight, store, fake.max_in_flight)
                    rows.add(rss, store, peak)
                    refused = sum(1 for r in fake.requests if r.status != 201)
                    if pushed != count or refused:
                        rows.extra.setdefault("notes", []).append(
                            f"{store}: {pushed} of {count} pushes accepted by the fake, "
                            f"{refused} refused"
                        )
    rows.describe(rate, unit="msg/s", better="higher")
    rows.describe(took, unit="ms")
    rows.describe(flight, unit="count")
    rows.describe(rss, unit="MB")
    rows.extra.setdefault("notes", []).append(
        f"{count} subscriptions, fake push service at 20 ms, decrypting every "
        f"{check_every}th push and checking every push's headers and VAPID; channel settings "
        f"{WEBPUSH_SETTINGS} plus BENCH_WEBPUSH_SETTINGS; floor: plain aiohttp, "
        f"{FLOOR_IN_FLIGHT} in flight, each push encrypted (pywebpush)."
    )


async def measure() -> dict[str, Any]:
    return await collect(run)
