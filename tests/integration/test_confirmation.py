"""The duty officer's confirmation over HTTP: links, escalation, timeouts, undo, PIN."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
import yaml

from broadcaster.models import AuditEntry
from broadcaster.store.base import Store
from tests.fakes.webhook import FakeWebhook
from tests.integration.harness import (
    Watcher,
    publish,
    running_daemon,
    signed_trigger,
    webhook,
    write_deployment,
)


def officers_config(a: FakeWebhook, b: FakeWebhook, **confirm: Any) -> dict[str, Any]:
    return {
        "channels": {
            "public_hook": {"type": "webhook", "url": "", "drill": "send"},  # set per test
            "officer_a": webhook(a.url, audience="internal"),
            "officer_b": webhook(b.url, audience="internal"),
        },
        "extra": {
            "duty_officers": [
                {"name": "A. Schmidt", "notify": ["officer_a"]},
                {"name": "B. Yilmaz", "notify": ["officer_b"], "pin": "4711"},
            ],
            "escalate_after": "300ms",
            "confirm": {"undo_window": "0s", **confirm},
        },
    }


def deploy(tmp_path, mosquitto, public: FakeWebhook, a, b, confirmation, **confirm) -> Any:
    cfg = officers_config(a, b, **confirm)
    cfg["channels"]["public_hook"] = webhook(public.url)
    return write_deployment(
        tmp_path,
        mqtt_url=mosquitto.url,
        channels=cfg["channels"],
        extra=cfg["extra"],
        confirmation=confirmation,
    )


def link_in(fake: FakeWebhook, index: int = 0) -> str:
    body = fake.posts[index].json
    assert body["kind"] == "confirmation_request"
    return str(body["confirm_url"])


async def post(http: aiohttp.ClientSession, url: str, **form: str) -> tuple[int, str]:
    async with http.post(url, data=form, allow_redirects=True) as r:
        return r.status, await r.text()


REQUIRED = {"mode": "required", "timeout": "20s", "on_timeout": "abort"}


async def trail_with(store: Store, alert_id: str, event: str) -> list[AuditEntry]:
    """The alert's audit trail once it holds `event` (polling the store, bounded)."""
    async with asyncio.timeout(20):
        while True:
            trail = await store.audit_trail(alert_id)
            if any(e.event == event for e in trail):
                return trail
            await asyncio.sleep(0.05)


async def test_nobody_answers_so_the_second_officer_is_asked_and_releases(
    tmp_path, mosquitto, watcher: Watcher, hooks
):
    public, a, b = hooks
    config = deploy(tmp_path, mosquitto, public, a, b, REQUIRED)
    async with running_daemon(config) as daemon, aiohttp.ClientSession() as http:
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-ESC"))
        await a.wait_for_requests(1)
        assert (await watcher.alert_in("FW-ESC", "awaiting_confirmation"))["deliveries"]
        await b.wait_for_requests(1)  # A did nothing within escalate_after
        url_b = link_in(b)
        assert url_b.startswith(f"{daemon.settings.http.public_url}/confirm/FW-ESC.")
        assert "Großbrand" in b.posts[0].json["text"]
        assert "Ackerstraße 12" in b.posts[0].json["text"]
        assert b.posts[0].json["expires_at"]
        status, page = await post(http, url_b, action="release", pin="4711")
        assert status == 200, page
        alert = await watcher.alert_in("FW-ESC", "sent")
        trail = await daemon.store.audit_trail("FW-ESC")
    assert alert["confirmed_by"] == "B. Yilmaz"
    asked = [e.detail["officer"] for e in trail if e.event == "officer_asked"]
    assert asked == ["A. Schmidt", "B. Yilmaz"]
    assert [e.actor for e in trail if e.event == "release_requested"] == ["B. Yilmaz"]
    assert len(public.posts) == 1
    assert len(a.posts) == 1
    assert len(b.posts) == 1


async def test_on_timeout_abort_expires_and_sends_nothing(tmp_path, mosquitto, watcher, hooks):
    public, a, b = hooks
    confirmation = {"mode": "required", "timeout": "400ms", "on_timeout": "abort"}
    config = deploy(tmp_path, mosquitto, public, a, b, confirmation)
    async with running_daemon(config) as daemon:
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-ABORT"))
        alert = await watcher.alert_in("FW-ABORT", "expired")
        trail = await daemon.store.audit_trail("FW-ABORT")
    assert public.posts == []
    assert all(d["state"] == "pending" for d in alert["deliveries"].values())
    assert [e.detail["then"] for e in trail if e.event == "confirmation_timeout"] == ["abort"]


async def test_on_timeout_send_releases_when_waiting_costs_more(
    tmp_path, mosquitto, watcher, hooks
):
    public, a, b = hooks
    confirmation = {"mode": "required", "timeout": "400ms", "on_timeout": "send"}
    config = deploy(tmp_path, mosquitto, public, a, b, confirmation)
    async with running_daemon(config):
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-SEND"))
        alert = await watcher.alert_in("FW-SEND", "sent")
    assert alert["confirmed_by"] == "timeout"
    assert len(public.posts) == 1


async def test_auto_releases_after_the_timeout_unless_rejected(tmp_path, mosquitto, watcher, hooks):
    public, a, b = hooks
    confirmation = {"mode": "auto", "timeout": "600ms", "on_timeout": "abort"}
    config = deploy(tmp_path, mosquitto, public, a, b, confirmation)
    async with running_daemon(config), aiohttp.ClientSession() as http:
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-AUTO"))
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-AUTO-NO"))
        await a.wait_for_requests(2)
        url = next(p.json["confirm_url"] for p in a.posts if p.json["alert_id"] == "FW-AUTO-NO")
        status, _ = await post(http, url, action="reject")
        assert status == 200
        await watcher.alert_in("FW-AUTO-NO", "rejected")
        alert = await watcher.alert_in("FW-AUTO", "sent")
    assert alert["confirmed_by"] == "timeout"
    assert [p.json["alert_id"] for p in public.posts] == ["FW-AUTO"]


async def test_release_waits_out_the_undo_window_and_undo_stops_it(
    tmp_path, mosquitto, watcher, hooks
):
    public, a, b = hooks
    config = deploy(tmp_path, mosquitto, public, a, b, REQUIRED, undo_window="30s")
    async with running_daemon(config) as daemon, aiohttp.ClientSession() as http:
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-UNDO"))
        await a.wait_for_requests(1)
        url = link_in(a)
        status, _ = await post(http, url, action="release")
        assert status == 200
        pending = await daemon.store.get_alert("FW-UNDO")
        assert pending
        assert pending.state == "awaiting_confirmation"
        assert pending.release_at
        status, _ = await post(http, url, action="undo")
        assert status == 200
        undone = await daemon.store.get_alert("FW-UNDO")
        assert undone
        assert undone.release_at is None
        assert undone.confirmed_by is None
        await post(http, url, action="reject")
        await watcher.alert_in("FW-UNDO", "rejected")
        trail = [e.event for e in await daemon.store.audit_trail("FW-UNDO")]
    assert public.posts == []  # nothing left the building
    assert (
        trail.index("release_requested") < trail.index("release_undone") < trail.index("rejected")
    )


async def test_forged_reused_and_expired_links_change_nothing(tmp_path, mosquitto, watcher, hooks):
    public, a, b = hooks
    config = deploy(tmp_path, mosquitto, public, a, b, REQUIRED)
    async with running_daemon(config) as daemon, aiohttp.ClientSession() as http:
        base = daemon.settings.http.public_url
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-LINK"))
        await a.wait_for_requests(1)
        url = link_in(a)
        forged = url[:-4] + ("AAAA" if not url.endswith("AAAA") else "BBBB")
        for bad in (forged, f"{base}/confirm/nothing-here", f"{base}/confirm/FW-LINK.x"):
            async with http.get(bad) as r:
                assert r.status == 404
            status, _ = await post(http, bad, action="release")
            assert status == 404
        async with http.get(url, allow_redirects=False) as r:
            assert r.status == 200
        async with http.get(url + "?utm_source=mail") as r:  # a mail client's tracking
            assert r.status == 200
        # The secret opens only its own alert: under another waiting alert's id it is 404.
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-LINK-B"))
        await a.wait_for_requests(2)
        elsewhere = url.replace("/confirm/FW-LINK.", "/confirm/FW-LINK-B.")
        assert elsewhere != url
        async with http.get(elsewhere) as r:
            assert r.status == 404
        async with http.get(url + "x") as r:
            assert r.status == 404
        status, _ = await post(http, url, action="release")
        assert status == 200
        await watcher.alert_in("FW-LINK", "sent")
        status, _ = await post(http, url, action="release")  # the link was used
        assert status == 403
        status, _ = await post(http, url, action="reject")
        assert status == 403
        async with http.get(url, allow_redirects=False) as r:  # still shows the outcome
            assert r.status == 200
        assert (await daemon.store.get_alert("FW-LINK")).state == "sent"  # type: ignore[union-attr]
    assert len(public.posts) == 1


async def test_a_link_expires_with_the_confirmation_timeout(tmp_path, mosquitto, watcher, hooks):
    public, a, b = hooks
    confirmation = {"mode": "required", "timeout": "300ms", "on_timeout": "abort"}
    config = deploy(tmp_path, mosquitto, public, a, b, confirmation)
    async with running_daemon(config), aiohttp.ClientSession() as http:
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-EXP"))
        await a.wait_for_requests(1)
        await watcher.alert_in("FW-EXP", "expired")
        url = link_in(a)
        async with http.get(url) as r:
            assert r.status == 410
        status, _ = await post(http, url, action="release")
        assert status == 410
    assert public.posts == []


async def test_wrong_pins_lock_the_link_after_five(tmp_path, mosquitto, watcher, hooks):
    public, a, b = hooks
    config = deploy(tmp_path, mosquitto, public, a, b, REQUIRED)
    async with running_daemon(config) as daemon, aiohttp.ClientSession() as http:
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-PIN"))
        await b.wait_for_requests(1)  # B (with a PIN) is asked after the escalation
        url = link_in(b)
        for attempt in range(1, 5):
            status, page = await post(http, url, action="release", pin="0000")
            assert status == 403
            assert re.search(rf"\b{5 - attempt}\b", page), page
        status, _ = await post(http, url, action="release", pin="0000")
        assert status == 403
        status, _ = await post(http, url, action="release", pin="4711")  # right, too late
        assert status == 403
        alert = await daemon.store.get_alert("FW-PIN")
        trail = [e.event for e in await daemon.store.audit_trail("FW-PIN")]
    assert alert is not None
    assert alert.state == "awaiting_confirmation"
    assert trail.count("wrong_pin") == 5
    assert "link_locked" in trail
    assert public.posts == []


@pytest.mark.parametrize("mode", ["live", "drill"])
async def test_the_officer_hears_of_drills_too_marked_as_exercise(
    tmp_path, mosquitto, watcher, hooks, mode
):
    public, a, b = hooks
    config = deploy(tmp_path, mosquitto, public, a, b, REQUIRED)
    async with running_daemon(config):
        await publish(mosquitto.url, "bc/trigger", signed_trigger(f"FW-{mode}", mode=mode))
        await a.wait_for_requests(1)
    text = a.posts[0].json["text"]
    assert text.startswith("ÜBUNG: ") == (mode == "drill")
    assert a.posts[0].json["mode"] == mode


async def test_the_officer_retracts_a_false_alarm_from_the_page(
    tmp_path, mosquitto, watcher, hooks
):
    public, a, b = hooks
    config = deploy(tmp_path, mosquitto, public, a, b, REQUIRED)
    async with running_daemon(config) as daemon, aiohttp.ClientSession() as http:
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-OOPS"))
        await a.wait_for_requests(1)
        url = link_in(a)
        await post(http, url, action="release")
        await watcher.alert_in("FW-OOPS", "sent")
        status, _ = await post(http, url, action="retract", reason="")
        assert status == 400  # a reason is required
        status, _ = await post(http, url, action="retract", reason="Fehlalarm\u202e")
        assert status == 400  # and must not hide a bidi override
        status, page = await post(http, url, action="retract", reason="Fehlalarm Rauchmelder")
        assert status == 200, page
        await watcher.alert_in("FW-OOPS", "retracted")
        await watcher.alert_in("FW-OOPS:retraction", "sent")
        trail = await daemon.store.audit_trail("FW-OOPS")
    assert [e.actor for e in trail if e.event == "retraction_requested"] == ["A. Schmidt"]
    assert [p.json["kind"] for p in public.posts] == ["alert", "retraction", "deletion"]
    assert "Fehlalarm Rauchmelder" in public.posts[1].json["text"]


async def test_the_page_names_params_and_stage_in_its_own_language(
    tmp_path, mosquitto, watcher, hooks
):
    public, a, b = hooks
    config = deploy(tmp_path, mosquitto, public, a, b, REQUIRED)
    # One param without a label (the id shows), one labelled in German only (the
    # playbook's primary language shows on the English page too).
    path = tmp_path / "playbooks/major_fire.yaml"
    playbook = yaml.safe_load(path.read_text(encoding="utf-8"))
    del playbook["params"]["district"]["label"]
    playbook["params"]["smoke_direction"]["label"] = {"de": "Rauch zieht nach"}
    path.write_text(yaml.safe_dump(playbook, allow_unicode=True), encoding="utf-8")
    async with running_daemon(config), aiohttp.ClientSession() as http:
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-LABELS", stage="update"))
        await a.wait_for_requests(1)
        pages = {}
        for lang in ("de", "en"):
            async with http.get(link_in(a), headers={"Accept-Language": lang}) as r:
                assert r.status == 200
                pages[lang] = await r.text()

    def label(page: str, name: str) -> str:
        found = re.search(rf'data-testid="param-label-{name}">([^<]*)</dt>', page)
        assert found, page
        return found.group(1)

    def stage(page: str) -> str:
        found = re.search(r'data-testid="stage">([^<]*)</span>', page)
        assert found, page
        return found.group(1)

    de, en = pages["de"], pages["en"]
    assert stage(de) == "Stufe: Aktualisierung"
    assert stage(en) == "Stage: Update"
    assert label(de, "location") == "Einsatzort"
    assert label(en, "location") == "Location"
    assert label(de, "district") == label(en, "district") == "district"
    assert label(en, "smoke_direction") == "Rauch zieht nach"


async def test_an_officer_notification_that_fails_is_retried_noted_and_escalated(
    tmp_path, mosquitto, watcher, hooks
):
    """A. Schmidt's internal channel answers 500 every time: it is retried as a delivery
    is, the failure is in the audit trail, and the alert waits on for B. Yilmaz, who is
    asked after escalate_after."""
    public, a, b = hooks
    a.fail_permanently(500)
    attempts = 3
    cfg = officers_config(a, b)
    cfg["channels"]["public_hook"] = webhook(public.url)
    cfg["extra"]["escalate_after"] = "1s"
    config = write_deployment(
        tmp_path,
        mqtt_url=mosquitto.url,
        channels=cfg["channels"],
        extra=cfg["extra"],
        confirmation=REQUIRED,
        # The circuit stays closed, so that every attempt is a request to count.
        delivery={"max_attempts": attempts, "breaker_failures": attempts + 1},
    )
    async with running_daemon(config) as daemon:
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-NOTIFY"))
        await trail_with(daemon.store, "FW-NOTIFY", "officer_notification_failed")
        assert len(a.requests) == attempts  # and no more once it gave up
        await b.wait_for_requests(1)
        trail = await daemon.store.audit_trail("FW-NOTIFY")
        waiting = await daemon.store.get_alert("FW-NOTIFY")
    assert [r.status for r in a.requests] == [500] * attempts
    assert len({r.headers["Idempotency-Key"] for r in a.requests}) == 1  # one message, retried
    failed = [e.detail for e in trail if e.event == "officer_notification_failed"]
    assert failed == [{"officer": "A. Schmidt", "channel": "officer_a"}]
    asked = [e for e in trail if e.event == "officer_asked"]
    assert [e.detail["officer"] for e in asked] == ["A. Schmidt", "B. Yilmaz"]
    assert asked[1].at - asked[0].at >= timedelta(seconds=1)  # not before escalate_after
    assert b.posts[0].json["kind"] == "confirmation_request"
    assert waiting is not None
    assert waiting.state == "awaiting_confirmation"
    assert public.requests == []
