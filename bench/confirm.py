"""7. Confirmation: a playbook with confirmation required, one duty officer (no PIN), an
undo window of 1 s, 10 public webhook channels. The bench releases on the confirm page
(POST action=release, as the officer's browser does), reads the page's state (its
`release_at`, the end of the undo window on the daemon's clock) and measures from then
to the first request at a provider (the same machine's clock), and the click until the
page's state shows the release.

    uv run python -m bench confirm
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from bench.harness import (
    TOPIC,
    Provider,
    Rows,
    collect,
    daemon,
    deploy,
    env_int,
    publisher,
    repeats,
    run_id,
    selected_stores,
    services,
    serving,
    trigger_bytes,
    watching,
    webhooks,
)
from tests.integration.harness import webhook

CHANNELS = 10
OFFICER = "/officer"
UNDO = "1s"
REQUIRED = {"mode": "required", "timeout": "10m", "on_timeout": "abort"}

RELEASE = "undo window's end -> first provider request"
CLICK = "release click -> the page's state shows it"


async def run(rows: Rows, folder: Path) -> None:
    count = env_int("BENCH_CONFIRM_ROUNDS", 3)
    stores = selected_stores()
    with services(folder, stores) as (broker, redis):
        provider = Provider()
        provider.keep.add(OFFICER)
        async with serving(provider), watching(broker.url) as watcher:
            for store in stores:
                channels = webhooks(provider, CHANNELS)
                channels["officer"] = webhook(provider.base_url + OFFICER, audience="internal")
                deployment = deploy(
                    folder / store,
                    broker,
                    redis,
                    store,
                    channels,
                    confirmation=REQUIRED,
                    extra={
                        "duty_officers": [{"name": "A. Schmidt", "notify": ["officer"]}],
                        "confirm": {"undo_window": UNDO},
                    },
                )
                async with (
                    daemon(deployment),
                    publisher(broker.url) as client,
                    aiohttp.ClientSession() as http,
                ):
                    for _ in range(repeats()):
                        release: list[float] = []
                        click: list[float] = []
                        for _ in range(count):
                            alert_id = f"C-{run_id()}"
                            await client.publish(TOPIC, trigger_bytes(alert_id), qos=1)

                            def asked(a: str = alert_id) -> bool:
                                return any(k.get("alert_id") == a for k in provider.kept)

                            await provider.wait(asked)
                            url = next(
                                str(k["confirm_url"])
                                for k in provider.kept
                                if k.get("alert_id") == alert_id
                            )
                            start = time.perf_counter()
                            async with http.post(url, data={"action": "release"}) as r:
                                await r.read()
                                if r.status != 200:
                                    raise RuntimeError(f"release answered {r.status}")
                            async with http.get(f"{url}/state") as r:
                                shown = await r.json()
                            click.append(time.perf_counter() - start)
                            if not shown.get("release_at"):
                                raise RuntimeError(f"the page does not show the release: {shown}")
                            released = datetime.fromisoformat(shown["release_at"]).timestamp()

                            def public(a: str = alert_id) -> list[float]:
                                return [
                                    h.wall
                                    for h in provider.by_alert.get(a, [])
                                    if h.path != OFFICER
                                ]

                            await provider.wait(lambda: len(public()) >= CHANNELS)
                            await watcher.wait_state(alert_id, "sent")
                            release.append(min(public()) - released)
                        rows.add(RELEASE, store, 1000 * sorted(release)[len(release) // 2])
                        rows.add(CLICK, store, 1000 * sorted(click)[len(click) // 2])
    rows.describe(RELEASE, unit="ms")
    rows.describe(CLICK, unit="ms")
    rows.extra["notes"] = [
        f"{count} releases per repeat (median taken), undo window {UNDO}. Goal: the first "
        "provider request within 50 ms of the undo window's end; the release visible "
        "within 1 s of the click (here: the POST, then the page's state URL)."
    ]


async def measure() -> dict[str, Any]:
    return await collect(run)
