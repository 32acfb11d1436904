"""The public CAP feed through the real daemon: it exists only with a cap_feed channel and
serves only what that channel carried, so a drill reaches it only when the channel is
`drill: send`, and an alert of a playbook that does not post to it never does."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.integration.harness import (
    API_TOKEN,
    publish,
    running_daemon,
    signed_trigger,
    write_deployment,
)

NS = {"cap": "urn:oasis:names:tc:emergency:cap:1.2", "atom": "http://www.w3.org/2005/Atom"}
LIVE = ["LIVE-1", "LIVE-2", "LIVE-3"]
DRILLS = ["DRILL-1", "DRILL-2", "DRILL-3"]
STORM = {"from_time": "14:00", "until_time": "18:00", "wind_kmh": 110}
LOG = {"type": "log", "drill": "send"}


def deployment(tmp_path: Path, mosquitto: Any, channels: dict[str, dict[str, Any]]) -> Path:
    """`channels` plus severe_storm posting to log_de only (never to the CAP feed)."""
    config = write_deployment(tmp_path, mqtt_url=mosquitto.url, channels=channels)
    path = tmp_path / "playbooks" / "severe_storm.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["channels"] = ["log_de"]
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return config


async def trigger_all(mosquitto: Any, watcher: Any) -> None:
    """Three live alerts and three drills, each its own incident, all finished."""
    for alert_id in LIVE:
        await publish(
            mosquitto.url, "bc/trigger", signed_trigger(alert_id, incident=f"E-{alert_id}")
        )
    for alert_id in DRILLS:
        trigger = signed_trigger(alert_id, mode="drill", incident=f"E-{alert_id}")
        await publish(mosquitto.url, "bc/trigger", trigger)
    for alert_id in LIVE + DRILLS:
        await watcher.alert_in(alert_id, "sent")


async def storm(mosquitto: Any, watcher: Any) -> dict[str, Any]:
    trigger = signed_trigger("STORM-1", scenario="severe_storm", incident="E-STORM", params=STORM)
    await publish(mosquitto.url, "bc/trigger", trigger)
    alert: dict[str, Any] = await watcher.alert_in("STORM-1", "sent")
    return alert


async def feed(http: aiohttp.ClientSession, base: str) -> dict[str, str]:
    """The feed's entries: identifier -> CAP status."""
    async with http.get(f"{base}/cap/feed.atom") as r:
        assert r.status == 200
        root = ET.fromstring(await r.read())
    return {
        str(e.findtext("cap:identifier", namespaces=NS)): str(
            e.findtext("cap:status", namespaces=NS)
        )
        for e in root.findall("atom:entry", NS)
    }


async def document(http: aiohttp.ClientSession, base: str, message_id: str) -> ET.Element | None:
    async with http.get(f"{base}/cap/{message_id}.xml") as r:
        if r.status == 404:
            return None
        assert r.status == 200, message_id
        return ET.fromstring(await r.read())


async def retract(http: aiohttp.ClientSession, base: str, alert_id: str) -> None:
    async with http.post(
        f"{base}/api/alerts/{alert_id}/retract",
        json={"reason": "Fehlalarm"},
        headers={"Authorization": f"Bearer {API_TOKEN}"},
    ) as r:
        assert r.status == 202


async def test_drills_never_reach_a_dry_run_cap_feed(tmp_path, mosquitto, watcher):
    channels = {"cap": {"type": "cap_feed"}, "log_de": LOG}  # drill unset: dry_run
    config = deployment(tmp_path, mosquitto, channels)
    async with running_daemon(config) as daemon, aiohttp.ClientSession() as http:
        base = f"http://{daemon.settings.http.listen}"
        await trigger_all(mosquitto, watcher)
        listed = await feed(http, base)
        assert listed == dict.fromkeys(LIVE, "Actual")
        for alert_id in LIVE:
            assert await document(http, base, alert_id) is not None, alert_id
        for alert_id in DRILLS:
            assert await document(http, base, alert_id) is None, alert_id
        # The drill's correction went to log_de (drill: send), never to the feed.
        await retract(http, base, "DRILL-1")
        await watcher.alert_in("DRILL-1:retraction", "sent")
        assert await document(http, base, "DRILL-1:retraction") is None
        assert await feed(http, base) == listed
        deliveries = await daemon.store.get_deliveries("DRILL-2")
    assert {d.channel_id: d.state for d in deliveries} == {"cap": "dry_run", "log_de": "delivered"}


async def test_drills_are_served_by_a_drill_send_cap_feed(tmp_path, mosquitto, watcher):
    channels = {"cap": {"type": "cap_feed", "drill": "send"}, "log_de": LOG}
    config = deployment(tmp_path, mosquitto, channels)
    async with running_daemon(config) as daemon, aiohttp.ClientSession() as http:
        base = f"http://{daemon.settings.http.listen}"
        await trigger_all(mosquitto, watcher)
        await storm(mosquitto, watcher)  # a playbook that does not post to the feed
        assert await feed(http, base) == dict.fromkeys(LIVE, "Actual") | dict.fromkeys(
            DRILLS, "Exercise"
        )
        for alert_id in DRILLS:
            root = await document(http, base, alert_id)
            assert root is not None, alert_id
            assert root.findtext("cap:status", namespaces=NS) == "Exercise"
        assert await document(http, base, "STORM-1") is None


async def test_no_cap_feed_channel_no_cap_feed(tmp_path, mosquitto, watcher):
    config = deployment(tmp_path, mosquitto, {"log_de": LOG})
    async with running_daemon(config) as daemon, aiohttp.ClientSession() as http:
        base = f"http://{daemon.settings.http.listen}"
        await publish(mosquitto.url, "bc/trigger", signed_trigger("LIVE-1"))
        await watcher.alert_in("LIVE-1", "sent")
        for path in ("/cap/feed.atom", "/cap/LIVE-1.xml"):
            async with http.get(f"{base}{path}") as r:
                assert r.status == 404, path
                assert r.content_type == "text/plain"
                assert "no enabled public cap_feed channel" in await r.text()


async def test_only_alerts_posted_to_the_cap_feed_are_listed_and_a_retraction_follows(
    tmp_path, mosquitto, watcher
):
    config = deployment(tmp_path, mosquitto, {"cap": {"type": "cap_feed"}, "log_de": LOG})
    async with running_daemon(config) as daemon, aiohttp.ClientSession() as http:
        base = f"http://{daemon.settings.http.listen}"
        for alert_id in LIVE:
            trigger = signed_trigger(alert_id, incident=f"E-{alert_id}")
            await publish(mosquitto.url, "bc/trigger", trigger)
            await watcher.alert_in(alert_id, "sent")
        stormy = await storm(mosquitto, watcher)
        assert list(stormy["deliveries"]) == ["log_de"]
        assert await feed(http, base) == dict.fromkeys(LIVE, "Actual")
        assert await document(http, base, "STORM-1") is None
        assert await document(http, base, "STORM-1:retraction") is None

        # A listed alert, retracted: its Cancel replaces it, and it stays reachable.
        await retract(http, base, "LIVE-2")
        await watcher.alert_in("LIVE-2:retraction", "sent")
        original = {d.channel_id: d.state for d in await daemon.store.get_deliveries("LIVE-2")}
        assert original == {"cap": "retracted", "log_de": "retracted"}
        assert await feed(http, base) == dict.fromkeys(
            ["LIVE-1", "LIVE-2:retraction", "LIVE-3"], "Actual"
        )
        assert await document(http, base, "LIVE-2") is not None
        cancel = await document(http, base, "LIVE-2:retraction")
        assert cancel is not None
        assert cancel.findtext("cap:msgType", namespaces=NS) == "Cancel"
        assert "LIVE-2" in (cancel.findtext("cap:references", namespaces=NS) or "")
