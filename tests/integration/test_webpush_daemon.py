"""Web Push through the real daemon: browsers subscribe on the daemon's own endpoints, a
live alert is pushed to them through the fake push service (which checks VAPID and
decrypts), a drill reaches nobody on a `drill: dry_run` channel and only the drill view's
test devices on a `drill: send` one, a retraction replaces the warning (same topic), and
a live alert from an unapproved template pushes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from broadcaster.channels.webpush import subscription_id, topic
from broadcaster.daemon import Daemon
from broadcaster.vapid import new_key_pair
from tests.fakes.webpush import FakePushService, subscribe
from tests.integration.harness import (
    API_TOKEN,
    publish,
    running_daemon,
    signed_trigger,
    write_deployment,
)

PRIVATE, PUBLIC = new_key_pair()


def channel(**extra: Any) -> dict[str, Any]:
    return {
        "type": "webpush",
        "vapid_private_key": "${TEST_VAPID_PRIVATE_KEY}",
        "vapid_subject": "mailto:warnungen@duesseldorf.example",
        "push_services": ["127.0.0.1"],
        **extra,
    }


def deployment(tmp_path: Path, mosquitto: Any, **extra: Any) -> Path:
    return write_deployment(tmp_path, mqtt_url=mosquitto.url, channels={"push": channel(**extra)})


@asynccontextmanager
async def served(
    config: Path,
) -> AsyncIterator[tuple[FakePushService, Daemon, aiohttp.ClientSession, str]]:
    """The fake push service, the daemon, a browser's HTTP client and the daemon's URL."""
    async with (
        FakePushService.start() as push,
        running_daemon(config) as daemon,
        aiohttp.ClientSession() as http,
    ):
        yield push, daemon, http, f"http://{daemon.settings.http.listen}"


async def test_a_live_alert_is_pushed_to_the_pages_subscribers_and_a_dry_run_drill_to_none(
    tmp_path, mosquitto, watcher, monkeypatch
):
    monkeypatch.setenv("TEST_VAPID_PRIVATE_KEY", PRIVATE)
    config = deployment(tmp_path, mosquitto)  # drill unset: dry_run
    async with served(config) as (push, daemon, http, base):
        # The warning page itself offers the subscription (push_subscribe.html).
        async with http.get(f"{base}/warnings") as r:
            page = await r.text()
        assert page.count('id="push-subscribe"') == 1
        assert "Warnungen als Push-Nachricht erhalten" in page
        async with http.get(f"{base}/warnings?drill=1") as r:
            assert "Dieses Gerät erhält nur Übungen" in await r.text()
        citizens = [await subscribe(http, base, push) for _ in range(3)]
        unsubscribed = await subscribe(http, base, push)
        tester = await subscribe(http, base, push, drill=True)
        push.expire(unsubscribed)  # the browser dropped it: the push service says 410
        assert citizens[0].server_key == PUBLIC

        await publish(mosquitto.url, "bc/trigger", signed_trigger("LIVE-1", incident="E-1"))
        alert = await watcher.alert_in("LIVE-1", "sent")
        assert alert["deliveries"]["push"]["recipients"] == {
            "total": 3,
            "delivered": 3,
            "failed": 0,
        }
        assert len(push.pushes) == 3
        for browser in citizens:
            [sent] = push.delivered_to(browser)
            assert sent.urgency == "high"
            assert sent.topic == topic("E-1", "live")
            assert sent.data["alert_id"] == "LIVE-1"
            assert sent.data["url"] == f"{base}/warnings"
        assert push.delivered_to(tester) == []
        kept = {s.id for s in await daemon.store.subscriptions()}
        assert subscription_id(unsubscribed.endpoint) not in kept
        assert len(kept) == 4

        # A drill: the channel is dry_run, so nobody is pushed, test devices neither.
        drill = signed_trigger("DRILL-1", mode="drill", incident="E-2")
        await publish(mosquitto.url, "bc/trigger", drill)
        drilled = await watcher.alert_in("DRILL-1", "sent")
        assert drilled["deliveries"]["push"]["state"] == "dry_run"
        assert len(push.pushes) == 3

        # The retraction replaces the warning: same topic, so the same tag on screen.
        async with http.post(
            f"{base}/api/alerts/LIVE-1/retract",
            json={"reason": "Fehlalarm"},
            headers={"Authorization": f"Bearer {API_TOKEN}"},
        ) as r:
            assert r.status == 202
        await watcher.alert_in("LIVE-1:retraction", "sent")
        for browser in citizens:
            first, correction = push.delivered_to(browser)
            assert correction.data["kind"] == "retraction"
            assert correction.topic == first.topic
        assert push.delivered_to(tester) == []


async def test_a_drill_send_channel_pushes_drills_only_to_the_drill_views_devices(
    tmp_path, mosquitto, watcher, monkeypatch
):
    monkeypatch.setenv("TEST_VAPID_PRIVATE_KEY", PRIVATE)
    config = deployment(tmp_path, mosquitto, drill="send")
    async with served(config) as (push, _daemon, http, base):
        citizens = [await subscribe(http, base, push) for _ in range(2)]
        testers = [await subscribe(http, base, push, drill=True) for _ in range(2)]

        drill = signed_trigger("DRILL-1", mode="drill", incident="E-3")
        await publish(mosquitto.url, "bc/trigger", drill)
        await watcher.alert_in("DRILL-1", "sent")
        assert len(push.pushes) == 2
        for browser in testers:
            [sent] = push.delivered_to(browser)
            assert sent.urgency == "normal"
            assert sent.data["mode"] == "drill"
            assert sent.data["url"] == f"{base}/warnings?drill=1"
        assert all(push.delivered_to(b) == [] for b in citizens)

        await publish(mosquitto.url, "bc/trigger", signed_trigger("LIVE-1", incident="E-4"))
        await watcher.alert_in("LIVE-1", "sent")
        assert len(push.pushes) == 4
        assert all(len(push.delivered_to(b)) == 1 for b in citizens + testers)


async def test_a_live_alert_from_an_unapproved_template_pushes_nothing(
    tmp_path, mosquitto, watcher, monkeypatch
):
    monkeypatch.setenv("TEST_VAPID_PRIVATE_KEY", PRIVATE)
    config = deployment(tmp_path, mosquitto)
    template = tmp_path / "templates/major_fire/warning/short.de.j2"
    template.write_text(template.read_text(encoding="utf-8") + " Neu.\n", encoding="utf-8")
    async with served(config) as (push, daemon, http, base):
        await subscribe(http, base, push)
        await publish(mosquitto.url, "bc/trigger", signed_trigger("UNAPPROVED"))
        await watcher.error_for("UNAPPROVED", "template_not_approved")
        assert await daemon.store.get_alert("UNAPPROVED") is None
    assert push.requests == []
