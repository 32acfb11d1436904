"""6. E-mail to many recipients: one email channel with BENCH_EMAIL_RECIPIENTS (default
1,000; the issue's size is 10,000) through aiosmtpd (tests/fakes/smtp.py, no TLS, no
AUTH). Recipients per second from the trigger to the alert's final state on MQTT, SMTP
connections opened, recipients per message. The floor: aiosmtplib on one connection,
one message per 100 recipients (BCC).

The channel's settings come from EMAIL_SETTINGS, updated from the JSON object in
BENCH_EMAIL_SETTINGS.

    uv run python -m bench email
"""

from __future__ import annotations

import json
import os
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib

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
from tests.fakes.smtp import FakeSmtp

SENDER = "warnung@stadt.example"
FLOOR_BATCH = 100  # recipients per message in the floor (a common provider limit)
# Only what the current channel schema accepts (broadcaster/channels/settings.py).
EMAIL_SETTINGS: dict[str, Any] = {"drill": "send", "starttls": False}


def addresses(count: int) -> list[str]:
    return [f"buerger{n:05}@example.org" for n in range(count)]


def settings(port: int, to: list[str]) -> dict[str, Any]:
    extra = json.loads(os.environ.get("BENCH_EMAIL_SETTINGS") or "{}")
    if not isinstance(extra, dict):
        raise SystemExit("BENCH_EMAIL_SETTINGS must be a JSON object")
    return {
        "type": "email",
        "host": "127.0.0.1",
        "port": port,
        "from": SENDER,
        "to": to,
        **EMAIL_SETTINGS,
        **extra,
    }


async def floor_rate(fake: FakeSmtp, to: list[str]) -> float:
    start = time.perf_counter()
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=fake.port, start_tls=False) as client:
        for n in range(0, len(to), FLOOR_BATCH):
            message = EmailMessage()
            message["From"] = SENDER
            message["To"] = SENDER
            message["Subject"] = "Warnung"
            message.set_content("Großbrand: Fenster schließen")
            await client.send_message(message, recipients=to[n : n + FLOOR_BATCH])
    return len(to) / (time.perf_counter() - start)


async def run(rows: Rows, folder: Path) -> None:
    count = env_int("BENCH_EMAIL_RECIPIENTS", 1000)
    stores = selected_stores()
    rate = f"{count} recipients: recipients per second"
    took = f"{count} recipients: trigger -> alert final"
    conns = f"{count} recipients: SMTP connections"
    per = f"{count} recipients: recipients per message"
    with services(folder, stores) as (broker, redis):
        # The fake counts the SMTP sessions it accepts (`connections`).
        async with FakeSmtp.start() as fake, watching(broker.url) as watcher:
            to = addresses(count)
            for _ in range(repeats()):
                fake.transactions.clear()
                fake.messages.clear()
                fake.connections = 0
                rows.add(rate, "floor", await floor_rate(fake, to))
                rows.add(conns, "floor", fake.connections)
                rows.add(per, "floor", count / max(1, len(fake.messages)))
                for store in stores:
                    fake.transactions.clear()
                    fake.messages.clear()
                    fake.rcpt_attempts.clear()
                    fake.connections = 0
                    seconds, _ = await one_alert(
                        folder,
                        broker,
                        redis,
                        watcher,
                        store,
                        {"mail": settings(fake.port, to)},
                        timeout=max(120.0, count * 0.1),
                    )
                    reached = sum(len(t.rcpt_tos) for t in fake.messages)
                    rows.add(rate, store, reached / seconds)
                    rows.add(took, store, 1000 * seconds)
                    rows.add(conns, store, fake.connections)
                    rows.add(per, store, reached / max(1, len(fake.messages)))
                    if reached != count:
                        rows.extra.setdefault("notes", []).append(
                            f"{store}: {reached} of {count} recipients reached the fake"
                        )
    rows.describe(rate, unit="rcpt/s", better="higher")
    rows.describe(took, unit="ms")
    rows.describe(conns, unit="count")
    rows.describe(per, unit="count", better="higher")
    rows.extra.setdefault("notes", []).append(
        f"{count} recipients through aiosmtpd; channel settings {EMAIL_SETTINGS} plus "
        f"BENCH_EMAIL_SETTINGS; floor: aiosmtplib, one connection, {FLOOR_BATCH} recipients "
        "per message. Goal: one connection reused, many recipients per message where allowed."
    )


async def measure() -> dict[str, Any]:
    return await collect(run)
