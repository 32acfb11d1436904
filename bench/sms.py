"""5. SMS to many recipients: one sms channel with BENCH_SMS_RECIPIENTS (default 1,000;
the issue's size is 10,000) through the Twilio-style fake (tests/fakes/sms.py) answering
in 20 ms. Messages per second from the trigger to the alert's final state on MQTT, the
most requests in flight at the fake, the daemon's peak RSS. The floor: plain aiohttp with
100 requests in flight to the same fake.

The channel's settings come from SMS_SETTINGS, updated from the JSON object in
BENCH_SMS_SETTINGS (e.g. '{"max_in_flight": 50}'), so new settings can be tried without
editing this file.

    uv run python -m bench sms
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.harness import (
    Rows,
    collect,
    env_int,
    one_alert,
    repeats,
    selected_stores,
    services,
    watching,
)
from tests.fakes.sms import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio

SENDER = "+4921155550000"
ANSWER = 0.02  # seconds the fake gateway takes per message
FLOOR_IN_FLIGHT = 100
# Only what the current channel schema accepts (broadcaster/channels/settings.py).
SMS_SETTINGS: dict[str, Any] = {"drill": "send"}


def numbers(count: int) -> list[str]:
    return [f"+49151{n:08}" for n in range(count)]


def settings(base_url: str, to: list[str]) -> dict[str, Any]:
    extra = json.loads(os.environ.get("BENCH_SMS_SETTINGS") or "{}")
    if not isinstance(extra, dict):
        raise SystemExit("BENCH_SMS_SETTINGS must be a JSON object, e.g. '{\"max_in_flight\": 50}'")
    return {
        "type": "sms",
        "base_url": base_url,
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "from": SENDER,
        "to": to,
        **SMS_SETTINGS,
        **extra,
    }


async def floor_rate(fake: FakeTwilio, to: list[str]) -> float:
    url = fake.base_url + fake.messages_path
    auth = aiohttp.BasicAuth(ACCOUNT_SID, AUTH_TOKEN)
    gate = asyncio.Semaphore(FLOOR_IN_FLIGHT)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

        async def send(number: str) -> None:
            async with (
                gate,
                http.post(
                    url, data={"To": number, "From": SENDER, "Body": "Warnung"}, auth=auth
                ) as r,
            ):
                await r.read()

        start = time.perf_counter()
        await asyncio.gather(*(send(n) for n in to))
        return len(to) / (time.perf_counter() - start)


async def run(rows: Rows, folder: Path) -> None:
    count = env_int("BENCH_SMS_RECIPIENTS", 1000)
    stores = selected_stores()
    rate = f"{count} recipients: messages per second"
    took = f"{count} recipients: trigger -> alert final"
    flight = f"{count} recipients: most requests in flight"
    rss = f"{count} recipients: peak RSS"
    with services(folder, stores) as (broker, redis):
        # The fake counts the POSTs it answers at once (`max_in_flight`).
        async with FakeTwilio.start() as fake, watching(broker.url) as watcher:
            fake.delay(ANSWER)
            to = numbers(count)
            for _ in range(repeats()):
                fake.messages.clear()
                fake.requests.clear()
                rows.add(rate, "floor", await floor_rate(fake, to))
                for store in stores:
                    fake.messages.clear()
                    fake.requests.clear()
                    fake.max_in_flight = 0
                    seconds, peak = await one_alert(
                        folder,
                        broker,
                        redis,
                        watcher,
                        store,
                        {"sms": settings(fake.base_url, to)},
                        timeout=max(120.0, count * 0.1),
                    )
                    sent = len(fake.messages)
                    rows.add(rate, store, sent / seconds)
                    rows.add(took, store, 1000 * seconds)
                    rows.add(flight, store, fake.max_in_flight)
                    rows.add(rss, store, peak)
                    if sent != count:
                        rows.extra.setdefault("notes", []).append(
                            f"{store}: {sent} of {count} messages reached the fake"
                        )
    rows.describe(rate, unit="msg/s", better="higher")
    rows.describe(took, unit="ms")
    rows.describe(flight, unit="count")
    rows.describe(rss, unit="MB")
    rows.extra.setdefault("notes", []).append(
        f"{count} recipients, fake gateway at 20 ms; channel settings {SMS_SETTINGS} plus "
        f"BENCH_SMS_SETTINGS; floor: plain aiohttp, {FLOOR_IN_FLIGHT} in flight. Goal: at "
        "least 1,000 messages per second at 10,000 recipients, memory flat."
    )


async def measure() -> dict[str, Any]:
    return await collect(run)
