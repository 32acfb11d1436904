"""The real daemon with whatsapp and sms channels against their fakes: a live alert reaches
every subscriber, the fakes send their signed receipts to the daemon's own hook URLs, and
`GET /api/alerts/{id}` counts them; the pair rate limit is waited out; drills and
unapproved templates reach nobody."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from broadcaster.receipts import hook_url
from tests.fakes.sms import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.fakes.whatsapp import (
    ACCESS_TOKEN,
    APP_SECRET,
    APPROVED,
    PHONE_NUMBER_ID,
    TEMPLATES,
    FakeWhatsapp,
)
from tests.integration.harness import (
    API_TOKEN,
    publish,
    running_daemon,
    signed_trigger,
    write_deployment,
)

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
SENDER = "+4921155550000"
N1, N2, N3 = "+4915100000001", "+4915100000002", "+4915100000003"


def whatsapp(meta: FakeWhatsapp, **extra: Any) -> dict[str, Any]:
    return {
        "type": "whatsapp",
        "base_url": meta.graph_url,
        "phone_number_id": PHONE_NUMBER_ID,
        "access_token": ACCESS_TOKEN,
        "app_secret": APP_SECRET,
        "templates": TEMPLATES,
        "to": [N1, N2, N3],
        **extra,
    }


def sms(twilio: FakeTwilio, **extra: Any) -> dict[str, Any]:
    return {
        "type": "sms",
        "base_url": twilio.base_url,
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "from": SENDER,
        "to": [N1, N2],
        # The tests' public URL is loopback, where receipts are off unless asked for.
        "status_callback": True,
        **extra,
    }


@pytest.fixture
async def meta() -> AsyncIterator[FakeWhatsapp]:
    async with FakeWhatsapp.start(templates=APPROVED) as server:
        yield server


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio.start(senders={SENDER}) as server:
        yield server


async def get_alert(http: aiohttp.ClientSession, base: str, alert_id: str) -> Any:
    async with http.get(f"{base}/api/alerts/{alert_id}", headers=AUTH) as r:
        assert r.status == 200
        return await r.json()


async def test_receipts_of_a_live_alert_come_back_to_the_hooks_and_are_counted(
    tmp_path: Path, mosquitto: Any, watcher: Any, meta: FakeWhatsapp, twilio: FakeTwilio
) -> None:
    config = write_deployment(
        tmp_path,
        mqtt_url=mosquitto.url,
        channels={"wa": whatsapp(meta), "sms": sms(twilio)},
    )
    # Read before delivered, every status twice; one number turns out undeliverable.
    meta.webhook_order = "reversed"
    meta.webhook_repeat = True
    meta.fate(N3, ["sent", "failed"], error=131026)
    twilio.callback_statuses(N2, ["sent", "undelivered"], error_code=30003)
    async with running_daemon(config) as daemon, aiohttp.ClientSession() as http:
        public = daemon.settings.http.public_url
        meta.webhook_url = hook_url(public, "whatsapp", "wa")
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-RECEIPTS-1"))
        alert = await watcher.alert_in("FW-RECEIPTS-1", "sent", "partially_failed", "failed")
        # N1: sent, delivered, read; N2: the same; N3: sent, failed; each twice.
        await meta.wait_for_webhooks(2 * (3 + 3 + 2))
        await twilio.wait_for_callbacks(2 + 2)
        shown = await get_alert(http, f"http://{daemon.settings.http.listen}", "FW-RECEIPTS-1")
        async with http.get(
            f"http://{daemon.settings.http.listen}/api/alerts/FW-RECEIPTS-1/deliveries/wa",
            headers=AUTH,
        ) as r:
            detail = await r.json()

    assert alert["state"] == "sent"
    assert {status for _, _, status in meta.webhook_answers} == {200}
    assert {status for _, _, status in twilio.callbacks} == {200}
    assert Counter(m["to"] for m in meta.messages) == Counter(n[1:] for n in (N1, N2, N3))
    wa, text = shown["deliveries"]["wa"], shown["deliveries"]["sms"]
    # The contract's state: accepted by the provider, for every recipient.
    assert wa["state"] == text["state"] == "delivered"
    assert wa["recipients"] == {
        "total": 3,
        "delivered": 3,
        "failed": 0,
        "receipts": {
            "pending": 0,
            "sent": 0,
            "delivered": 0,
            "read": 2,
            "undelivered": 0,
            "failed": 1,
        },
    }
    assert text["recipients"]["receipts"] == {
        "pending": 0,
        "sent": 0,
        "delivered": 1,
        "read": 0,
        "undelivered": 1,
        "failed": 0,
    }
    listed = {e["recipient"]: e for e in detail["recipient_list"]}
    assert listed[N3]["receipt"] == "failed"
    assert listed[N3]["status_error"] == "131026: Message undeliverable"
    assert listed[N1]["receipt"] == "read"


async def test_an_update_within_the_pair_window_waits_and_reaches_everyone_once(
    tmp_path: Path, mosquitto: Any, watcher: Any, meta: FakeWhatsapp
) -> None:
    meta.pair_window = 3600.0  # on the fake's clock: every update is refused until it moves
    config = write_deployment(
        tmp_path,
        mqtt_url=mosquitto.url,
        channels={"wa": whatsapp(meta, pair_wait=0.2)},
    )
    async with running_daemon(config):
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-PAIR-1", incident="E-PAIR"))
        await watcher.alert_in("FW-PAIR-1", "sent")
        await publish(
            mosquitto.url,
            "bc/trigger",
            signed_trigger("FW-PAIR-2", incident="E-PAIR", stage="update"),
        )
        await meta.wait_for_refusals(131056, 3)  # each subscriber refused once at least
        meta.advance(3600.0)  # the window has passed: the daemon's next attempt goes through
        update = await watcher.alert_in("FW-PAIR-2", "sent", "partially_failed", "failed")

    assert update["state"] == "sent"
    assert update["deliveries"]["wa"]["recipients"] == {"total": 3, "delivered": 3, "failed": 0}
    assert set(meta.refusals) == {131056}
    names = Counter((m["to"], m["template"]["name"]) for m in meta.messages)
    for number in (N1, N2, N3):
        assert names[(number[1:], "warnung_warning")] == 1
        assert names[(number[1:], "warnung_update")] == 1
    # The update quotes each subscriber's own warning.
    warnings = {m["to"]: m["id"] for m in meta.messages if m["template"]["name"].endswith("ing")}
    updates = [m for m in meta.messages if m["template"]["name"] == "warnung_update"]
    assert all(m["context"] == warnings[m["to"]] for m in updates)


async def test_a_drill_reaches_no_dry_run_whatsapp_channel(
    tmp_path: Path, mosquitto: Any, watcher: Any, meta: FakeWhatsapp
) -> None:
    config = write_deployment(
        tmp_path,
        mqtt_url=mosquitto.url,
        channels={"wa": whatsapp(meta, drill="dry_run"), "wa_default": whatsapp(meta)},
    )
    async with running_daemon(config):
        await publish(mosquitto.url, "bc/trigger", signed_trigger("DR-WA-1", mode="drill"))
        alert = await watcher.alert_in("DR-WA-1", "sent")
    assert {cid: d["state"] for cid, d in alert["deliveries"].items()} == {
        "wa": "dry_run",
        "wa_default": "dry_run",
    }
    assert meta.requests == []
    assert meta.messages == []


async def test_a_drill_reaches_a_whatsapp_test_number_marked_as_an_exercise(
    tmp_path: Path, mosquitto: Any, watcher: Any, meta: FakeWhatsapp
) -> None:
    config = write_deployment(
        tmp_path, mqtt_url=mosquitto.url, channels={"wa": whatsapp(meta, drill="send", to=[N1])}
    )
    async with running_daemon(config):
        await publish(mosquitto.url, "bc/trigger", signed_trigger("DR-WA-2", mode="drill"))
        await watcher.alert_in("DR-WA-2", "sent")
    [sent] = meta.messages
    title, text = (p["text"] for p in sent["template"]["components"][0]["parameters"])
    assert title.startswith("ÜBUNG")
    assert text.startswith("ÜBUNG")


async def test_a_live_alert_from_an_unapproved_template_reaches_no_subscriber(
    tmp_path: Path, mosquitto: Any, watcher: Any, meta: FakeWhatsapp
) -> None:
    config = write_deployment(tmp_path, mqtt_url=mosquitto.url, channels={"wa": whatsapp(meta)})
    template = tmp_path / "templates/major_fire/warning/short.de.j2"
    template.write_text(template.read_text(encoding="utf-8") + " Neu.\n", encoding="utf-8")
    async with running_daemon(config):
        await publish(mosquitto.url, "bc/trigger", signed_trigger("WA-UNAPPROVED"))
        await watcher.error_for("WA-UNAPPROVED", "template_not_approved")
    assert meta.requests == []


async def test_a_retraction_sends_the_correction_template_to_those_the_alarm_reached(
    tmp_path: Path, mosquitto: Any, watcher: Any, meta: FakeWhatsapp
) -> None:
    meta.pair_window = 0.0
    meta.undeliverable(N2)
    config = write_deployment(tmp_path, mqtt_url=mosquitto.url, channels={"wa": whatsapp(meta)})
    async with running_daemon(config) as daemon, aiohttp.ClientSession() as http:
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-WA-FALSE"))
        original = await watcher.alert_in("FW-WA-FALSE", "partially_failed", "failed")
        base = f"http://{daemon.settings.http.listen}"
        async with http.post(
            f"{base}/api/alerts/FW-WA-FALSE/retract",
            json={"reason": "Fehlalarm der Brandmeldeanlage"},
            headers=AUTH,
        ) as r:
            assert r.status == 202
        correction = await watcher.alert_in("FW-WA-FALSE:retraction", "sent", "failed")

    assert original["deliveries"]["wa"]["recipients"] == {"total": 3, "delivered": 2, "failed": 1}
    assert correction["state"] == "sent"
    assert correction["deliveries"]["wa"]["recipients"] == {
        "total": 2,
        "delivered": 2,
        "failed": 0,
    }
    warnings = {
        m["to"]: m["id"] for m in meta.messages if m["template"]["name"] == "warnung_warning"
    }
    corrections = [m for m in meta.messages if m["template"]["name"] == "warnung_korrektur"]
    assert sorted(m["to"] for m in corrections) == sorted(warnings) == [N1[1:], N3[1:]]
    assert all(m["context"] == warnings[m["to"]] for m in corrections)
