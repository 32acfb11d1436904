"""Two brokers (mqtt.url and mqtt.fallback_urls): the first is SIGKILLed right after a
burst of triggers, the daemon moves on to the second, and the fire brigade resends there
every trigger it has no verdict for (a broker that dies can take QoS 1 messages it
acknowledged but had not delivered yet). Counted: every trigger ends sent, each posted
exactly once; resent ones already handled are answered as duplicates."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import aiomqtt
import yaml

from broadcaster.models import utcnow
from tests.integration.harness import running_daemon, signed_trigger, webhook, write_deployment
from tests.servers import MosquittoServer, start_mosquitto

BURST = 20


def client(broker: MosquittoServer) -> aiomqtt.Client:
    return aiomqtt.Client("127.0.0.1", broker.port, timeout=10)


async def test_the_daemon_moves_to_the_second_broker_and_nothing_is_lost(
    tmp_path: Path, mosquitto: MosquittoServer, hooks
):
    (tmp_path / "second").mkdir()
    second = start_mosquitto(tmp_path / "second")
    hook = hooks[0]
    config = write_deployment(tmp_path, mqtt_url=mosquitto.url, channels={"web": webhook(hook.url)})
    settings = yaml.safe_load(config.read_text(encoding="utf-8"))
    settings["mqtt"]["fallback_urls"] = [second.url]
    config.write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    ids = [f"FW-FO-{n:02d}" for n in range(BURST)]
    triggers = {i: json.dumps(signed_trigger(i, incident=f"E-{i}")) for i in ids}
    try:
        async with running_daemon(config) as daemon:
            async with client(mosquitto) as first:  # the first half, acknowledged by broker 1
                for i in ids[: BURST // 2]:
                    await first.publish("bc/trigger", triggers[i], qos=1)
            mosquitto.process.kill()
            mosquitto.process.wait()
            killed_at = utcnow()
            async with asyncio.timeout(30):  # a safety net, not synchronisation
                await daemon.mqtt.disconnected.wait()
                await daemon.mqtt.connected.wait()  # on the second broker now
            verdicts: dict[str, str] = {}
            async with client(second) as fire:
                await fire.subscribe("bc/alerts/+", qos=1)
                await fire.subscribe("bc/errors", qos=1)
                for i in ids:  # no verdict seen for any of them on the broker in use
                    await fire.publish("bc/trigger", triggers[i], qos=1)
                async with asyncio.timeout(30):
                    async for message in fire.messages:
                        body = json.loads(bytes(message.payload))
                        if str(message.topic) == "bc/errors":
                            verdicts.setdefault(str(body.get("trigger_id")), body["error"])
                        elif body.get("state") == "sent":
                            verdicts[str(body["id"])] = "sent"
                        if set(verdicts) >= set(ids):
                            break
            alerts = {a.id: a.state for a in await daemon.store.list_alerts(100)}
            received = {
                i: [
                    e.at for e in await daemon.store.audit_trail(i) if e.event == "trigger_received"
                ]
                for i in ids
            }
    finally:
        second.stop()
    assert {i: alerts.get(i) for i in ids} == {i: "sent" for i in ids}
    posts = Counter(p.json["alert_id"] for p in hook.posts)
    assert posts == Counter(ids)  # each exactly once
    # Each trigger taken in once, whether from the first broker before it died or from
    # the second when resent; a resent one already taken is a duplicate, never a post.
    assert all(len(times) == 1 for times in received.values()), received
    before = [i for i in ids if received[i][0] < killed_at]
    assert set(before) <= set(ids[: BURST // 2])
    assert set(verdicts.values()) <= {"sent", "duplicate"}
    print(f"of {BURST // 2} acknowledged by the first broker, {len(before)} reached the daemon")


async def test_a_trigger_published_to_the_standby_broker_waits_there(
    tmp_path: Path, mosquitto: MosquittoServer, hooks
):
    """The daemon opened its session at the second broker at start: a trigger the fire
    brigade publishes there while the daemon is on the first is kept, and sent when the
    daemon comes over."""
    (tmp_path / "second").mkdir()
    second = start_mosquitto(tmp_path / "second")
    hook = hooks[0]
    config = write_deployment(tmp_path, mqtt_url=mosquitto.url, channels={"web": webhook(hook.url)})
    settings = yaml.safe_load(config.read_text(encoding="utf-8"))
    settings["mqtt"]["fallback_urls"] = [second.url]
    config.write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    try:
        async with running_daemon(config) as daemon:
            async with client(second) as fire:  # the daemon is on the first broker
                trigger = json.dumps(signed_trigger("FW-SB-1", incident="E-SB"))
                await fire.publish("bc/trigger", trigger, qos=1)
            assert await daemon.store.get_alert("FW-SB-1") is None  # waiting at broker 2
            async with client(second) as watch:
                await watch.subscribe("bc/alerts/FW-SB-1", qos=1)
                mosquitto.process.kill()
                mosquitto.process.wait()
                async with asyncio.timeout(30):  # a safety net, not synchronisation
                    async for message in watch.messages:
                        if json.loads(bytes(message.payload)).get("state") == "sent":
                            break
    finally:
        second.stop()
    assert [p.json["alert_id"] for p in hook.posts] == ["FW-SB-1"]
