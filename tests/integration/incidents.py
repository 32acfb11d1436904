"""Whole incidents of the three sample playbooks, run through a real daemon (real
mosquitto, fake providers of every kind), ending in the after-action report's record.

Used by tests/integration/test_report_examples.py, which checks the reports and, with
BROADCASTER_WRITE_EXAMPLES=1, writes them to docs/reports/ as the committed examples.

- major_fire, live: warning -> update -> all clear; the duty officer opens each link
  and releases it; the website's webhook fails once (503) and is retried.
- bomb_defusal, live: the announcement is first refused (radius below the minimum) and
  sent again right; announcement -> evacuation, each released by the officer; the
  evacuation is then retracted from the confirm page (wrong area), so a correction goes
  out and the originals are deleted where the channel allows.
- severe_storm, a drill: warning (nobody acts: released by the auto timeout) -> update
  -> all clear (released by the officer); two channels take drills, the rest dry-run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp

from broadcaster.deployment import load_deployment
from broadcaster.report import IncidentRecord, read_incident
from tests.fakes.webhook import FakeWebhook
from tests.integration.harness import (
    Watcher,
    publish,
    running_daemon,
    signed_trigger,
    webhook,
    write_deployment,
)
from tests.integration.test_all_channels import Fakes
from tests.servers import MosquittoServer

BERLIN = ZoneInfo("Europe/Berlin")  # the fire brigade's zone: the report shows it
OFFICER = "A. Schmidt"
# The public channels of the examples (Fakes.channels() offers every type).
PUBLIC = (
    "mastodon_city",
    "telegram_city",
    "x_city",
    "sms_residents",
    "email_press",
    "website_hook",
    "cap",
)
DRILL_CHANNELS = ("website_hook", "mastodon_city")  # drill: send; the rest dry-run

FIRE = {"location": "Ackerstraße 12", "district": "Flingern-Nord", "smoke_direction": "Nordost"}
BOMB = {
    "evacuation_time": "09:00",
    "radius_m": 500,
    "area": "Derendorf zwischen Münsterstraße und Ulmenstraße",
    "shelter": "Turnhalle, Golzheimer Str. 10",
    "hotline": "0211 89-12345",
    "location": "Münsterstraße 120",
}
STORM = {"from_time": "16:00", "until_time": "22:00", "wind_kmh": 110, "area": "den Süden"}
RETRACTION_REASON = "Falscher Evakuierungsbereich angegeben"

CONFIRMATION = {
    "major_fire": {"mode": "required", "timeout": "10m", "on_timeout": "send"},
    "bomb_defusal": {"mode": "required", "timeout": "15m", "on_timeout": "abort"},
    # auto: released when nobody stops it; 3 s instead of 5 min, so the run is short
    "severe_storm": {"mode": "auto", "timeout": "3s", "on_timeout": "send"},
}
INCIDENTS = {
    "major_fire": "E-2026-4711",
    "bomb_defusal": "E-2026-5102",
    "severe_storm": "U-2026-0815",
}


@dataclass
class IncidentRun:
    playbook: str
    incident: str
    config: Path
    record: IncidentRecord
    fakes: Fakes
    officer: FakeWebhook
    scenario_names: dict[str, str]


class Officer:
    """The duty officer with a phone: finds each alert's link among the notices."""

    def __init__(self, hook: FakeWebhook, http: aiohttp.ClientSession) -> None:
        self.hook = hook
        self.http = http

    async def link(self, alert_id: str) -> str:
        seen = 0
        while True:
            for r in self.hook.requests[seen:]:
                body = r.json if isinstance(r.json, dict) else {}
                if body.get("kind") == "confirmation_request" and body["alert_id"] == alert_id:
                    return str(body["confirm_url"])
            seen = len(self.hook.requests)
            await self.hook.wait_for_requests(seen + 1)

    async def open(self, url: str) -> None:
        async with self.http.get(url, headers={"Accept-Language": "de-DE"}) as r:
            assert r.status == 200, await r.text()

    async def act(self, url: str, **form: str) -> None:
        async with self.http.post(url, data=form, allow_redirects=True) as r:
            assert r.status == 200, await r.text()

    async def release(self, alert_id: str) -> None:
        url = await self.link(alert_id)
        await self.open(url)
        await self.act(url, action="release")


def trigger(playbook: str, alert_id: str, stage: str, params: dict[str, Any], mode: str):
    return signed_trigger(
        alert_id,
        scenario=playbook,
        stage=stage,
        incident=INCIDENTS[playbook],
        mode=mode,
        params=params,
        issued_at=datetime.now(BERLIN).replace(microsecond=0),
    )


async def major_fire(mqtt: str, watcher: Watcher, officer: Officer, fakes: Fakes) -> None:
    fakes.webhook.script(503)  # the city website's first answer: down for a moment
    stages: list[tuple[str, str, dict[str, Any]]] = [
        ("FW-DUS-2026-000123", "warning", FIRE),
        ("FW-DUS-2026-000131", "update", {**FIRE, "smoke_direction": "Süd", "radius_m": 1500}),
        ("FW-DUS-2026-000147", "all_clear", FIRE),
    ]
    for alert_id, stage, params in stages:
        await publish(mqtt, "bc/trigger", trigger("major_fire", alert_id, stage, params, "live"))
        await officer.release(alert_id)
        await watcher.alert_in(alert_id, "sent")


async def bomb_defusal(mqtt: str, watcher: Watcher, officer: Officer, fakes: Fakes) -> None:
    first, second = "FW-DUS-2026-000201", "FW-DUS-2026-000215"
    too_small = {**BOMB, "radius_m": 50}
    await publish(
        mqtt, "bc/trigger", trigger("bomb_defusal", first, "announcement", too_small, "live")
    )
    await watcher.error_for(first, "invalid_params")
    await publish(mqtt, "bc/trigger", trigger("bomb_defusal", first, "announcement", BOMB, "live"))
    await officer.release(first)
    await watcher.alert_in(first, "sent")
    await publish(mqtt, "bc/trigger", trigger("bomb_defusal", second, "evacuation", BOMB, "live"))
    await officer.release(second)
    await watcher.alert_in(second, "sent")
    url = await officer.link(second)
    await officer.act(url, action="retract", reason=RETRACTION_REASON)
    await watcher.alert_in(f"{second}:retraction", "sent")
    await watcher.alert_in(second, "retracted")


async def severe_storm(mqtt: str, watcher: Watcher, officer: Officer, fakes: Fakes) -> None:
    warning, update, all_clear = "DWD-DUS-2026-0815-1", "DWD-DUS-2026-0815-2", "DWD-DUS-2026-0815-3"
    await publish(mqtt, "bc/trigger", trigger("severe_storm", warning, "warning", STORM, "drill"))
    await officer.open(await officer.link(warning))  # seen, left alone: the timeout sends it
    await watcher.alert_in(warning, "sent")
    for alert_id, stage in ((update, "update"), (all_clear, "all_clear")):
        params = {**STORM, "wind_kmh": 130} if stage == "update" else STORM
        await publish(mqtt, "bc/trigger", trigger("severe_storm", alert_id, stage, params, "drill"))
        await officer.release(alert_id)
        await watcher.alert_in(alert_id, "sent")


FLOWS: dict[str, Callable[[str, Watcher, Officer, Fakes], Awaitable[None]]] = {
    "major_fire": major_fire,
    "bomb_defusal": bomb_defusal,
    "severe_storm": severe_storm,
}


async def run_incident(
    playbook: str, folder: Path, mosquitto: MosquittoServer, watcher: Watcher
) -> IncidentRun:
    async with AsyncExitStack() as stack:
        fakes = Fakes()
        await fakes.start(stack)
        officer_hook = await stack.enter_async_context(FakeWebhook.start())
        every = fakes.channels()
        channels = {cid: every[cid] for cid in PUBLIC}
        for cid, channel in channels.items():
            drill_ok = playbook != "severe_storm" or cid in DRILL_CHANNELS
            channel["drill"] = "send" if drill_ok else "dry_run"
        channels["officer_phone"] = webhook(officer_hook.url, audience="internal")
        config = write_deployment(
            folder,
            mqtt_url=mosquitto.url,
            channels=channels,
            confirmation=CONFIRMATION[playbook],
            extra={
                "duty_officers": [{"name": OFFICER, "notify": ["officer_phone"]}],
                "confirm": {"undo_window": "1s"},
            },
        )
        deployment = load_deployment(config)
        names = {pid: p.name["en"] for pid, p in deployment.playbooks.items()}
        async with running_daemon(config) as daemon, aiohttp.ClientSession() as http:
            await FLOWS[playbook](mosquitto.url, watcher, Officer(officer_hook, http), fakes)
            url = daemon.settings.store.url
        record = await read_incident(url, config.parent, INCIDENTS[playbook])
        assert record is not None
        return IncidentRun(
            playbook, INCIDENTS[playbook], config, record, fakes, officer_hook, names
        )
