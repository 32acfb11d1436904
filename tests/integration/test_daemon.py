"""The daemon end to end: real mosquitto, real store, fake providers over real sockets."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from broadcaster.models import utcnow
from tests.fakes.webhook import FakeWebhook
from tests.integration.harness import (
    API_TOKEN,
    Watcher,
    publish,
    running_daemon,
    signed_trigger,
    watching,
    webhook,
    write_deployment,
)
from tests.servers import MosquittoServer, RedisServer, start_mosquitto


def three_hooks(hooks: list[FakeWebhook]) -> dict[str, dict[str, object]]:
    return {
        "hook_a": webhook(hooks[0].url),
        "hook_b": webhook(hooks[1].url),
        "hook_c": webhook(hooks[2].url),
        "log_de": {"type": "log", "drill": "send"},
    }


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request, tmp_path, redis_server: RedisServer) -> str:
    if request.param == "sqlite":
        return "sqlite:///var/broadcaster.db"
    return redis_server.url


async def test_a_valid_trigger_reaches_every_channel_once(
    tmp_path, mosquitto: MosquittoServer, watcher: Watcher, hooks, store_url
):
    config = write_deployment(
        tmp_path, mqtt_url=mosquitto.url, channels=three_hooks(hooks), store_url=store_url
    )
    async with running_daemon(config):
        trigger = signed_trigger(f"FW-{store_url[:5]}-{utcnow().timestamp():.0f}")
        await publish(mosquitto.url, "bc/trigger", trigger)
        alert = await watcher.alert_in(trigger["id"], "sent", "partially_failed", "failed")
    assert alert["state"] == "sent"
    assert alert["scenario"] == "major_fire"
    assert alert["mode"] == "live"
    assert set(alert["deliveries"]) == {"hook_a", "hook_b", "hook_c", "log_de"}
    for cid, delivery in alert["deliveries"].items():
        assert delivery["state"] == "delivered", (cid, delivery)
        assert delivery["attempts"] == 1
        assert delivery["remote_id"]
        assert delivery["delivered_at"]
    for hook in hooks:
        [post] = hook.posts
        assert post.json["alert_id"] == trigger["id"]
        assert post.json["mode"] == "live"
        assert "Ackerstraße 12" in post.json["text"]
        assert not post.json["text"].startswith(("ÜBUNG", "EXERCISE"))
    assert "online" in [p.decode() for t, p, _ in watcher.messages if t == "bc/daemon"]


async def test_the_same_id_twice_sends_once(tmp_path, mosquitto, watcher, hooks):
    config = write_deployment(tmp_path, mqtt_url=mosquitto.url, channels=three_hooks(hooks))
    async with running_daemon(config):
        trigger = signed_trigger("FW-TWICE-1")
        await publish(mosquitto.url, "bc/trigger", trigger)
        await watcher.alert_in("FW-TWICE-1", "sent")
        await publish(mosquitto.url, "bc/trigger", trigger)
        error = await watcher.error_for("FW-TWICE-1", "duplicate")
    assert "exists already" in error["detail"]
    assert [len(h.posts) for h in hooks] == [1, 1, 1]
    assert [len(h.requests) for h in hooks] == [1, 1, 1]


async def test_http_intake_answers_as_the_contract_says(tmp_path, mosquitto, watcher, hooks):
    config = write_deployment(tmp_path, mqtt_url=mosquitto.url, channels=three_hooks(hooks))
    async with running_daemon(config) as daemon, aiohttp.ClientSession() as http:
        base = f"http://{daemon.settings.http.listen}"
        auth = {"Authorization": f"Bearer {API_TOKEN}"}
        trigger = signed_trigger("FW-HTTP-1")
        async with http.post(f"{base}/api/triggers", json=trigger) as r:
            assert r.status == 401
        async with http.post(
            f"{base}/api/triggers", json=trigger, headers={"Authorization": "Bearer wrong"}
        ) as r:
            assert r.status == 401
        async with http.post(f"{base}/api/triggers", json=trigger, headers=auth) as r:
            assert r.status == 202
            body = await r.json()
            assert body["id"] == "FW-HTTP-1"
            assert set(body["deliveries"]) == {"hook_a", "hook_b", "hook_c", "log_de"}
        await watcher.alert_in("FW-HTTP-1", "sent")
        async with http.post(f"{base}/api/triggers", json=trigger, headers=auth) as r:
            assert r.status == 200
            assert (await r.json())["state"] == "sent"
        bad = {**trigger, "mode": "maybe"}
        async with http.post(f"{base}/api/triggers", json=bad, headers=auth) as r:
            assert r.status == 400
            refusal = await r.json()
            assert refusal["error"] == "invalid_trigger"
            assert "mode" in refusal["detail"]
        async with http.get(f"{base}/api/alerts/FW-HTTP-1", headers=auth) as r:
            assert r.status == 200
            assert (await r.json())["state"] == "sent"
        async with http.get(f"{base}/api/alerts", headers=auth) as r:
            assert [a["id"] for a in await r.json()] == ["FW-HTTP-1"]
        async with http.get(f"{base}/api/alerts/nope", headers=auth) as r:
            assert r.status == 404
        async with http.get(f"{base}/healthz") as r:
            assert r.status == 200
            assert await r.json() == {
                "mqtt": True,
                "store": True,
                "intake": True,
                "dispatcher": True,
            }
        async with http.get(f"{base}/metrics") as r:
            text = await r.text()
        assert 'broadcaster_triggers_total{result="accepted"} 1.0' in text
        assert 'broadcaster_triggers_total{result="duplicate"} 1.0' in text
        assert 'broadcaster_deliveries_total{channel="hook_a",state="delivered"} 1.0' in text
        assert "broadcaster_trigger_to_delivered_seconds_bucket" in text
    assert [len(h.posts) for h in hooks] == [1, 1, 1]


async def test_every_error_code_is_published_and_the_daemon_keeps_serving(
    tmp_path, mosquitto, watcher, hooks
):
    config = write_deployment(tmp_path, mqtt_url=mosquitto.url, channels=three_hooks(hooks))
    async with running_daemon(config) as daemon:
        send = lambda payload: publish(mosquitto.url, "bc/trigger", payload)  # noqa: E731
        await send(b"{not json")
        await watcher.error_for(None, "invalid_json")
        await send({**signed_trigger("E-SCHEMA"), "mode": None})
        await watcher.error_for("E-SCHEMA", "invalid_trigger")
        await send({**signed_trigger("E-SIG"), "signature": "00" * 32})
        await watcher.error_for("E-SIG", "bad_signature")
        await send(signed_trigger("E-STALE", issued_at=utcnow().replace(year=2020)))
        await watcher.error_for("E-STALE", "stale")
        await send(signed_trigger("E-SCEN", scenario="flood"))
        await watcher.error_for("E-SCEN", "unknown_scenario")
        await send(signed_trigger("E-STAGE", stage="evacuation"))
        await watcher.error_for("E-STAGE", "unknown_stage")
        await send(signed_trigger("E-PARAM", params={"location": "x" * 61}))
        error = await watcher.error_for("E-PARAM", "invalid_params")
        assert "location" in error["detail"]
        assert "district" in error["detail"]
        # A template changed on disk after start-up is refused for live alerts.
        template = daemon.deployment.templates.path("major_fire/update/short.de.j2")
        template.write_text(template.read_text(encoding="utf-8") + " Neu.\n", encoding="utf-8")
        await send(signed_trigger("E-TPL", stage="update"))
        error = await watcher.error_for("E-TPL", "template_not_approved")
        assert "major_fire/update/short.de.j2" in error["detail"]
        await send(signed_trigger("OK-AFTER"))
        await watcher.alert_in("OK-AFTER", "sent")
    for error in watcher.errors():
        assert set(error) == {"trigger_id", "error", "detail", "received_at"}
    assert [len(h.posts) for h in hooks] == [1, 1, 1]  # only OK-AFTER was sent
    assert {p.json["alert_id"] for h in hooks for p in h.posts} == {"OK-AFTER"}


async def test_a_trigger_published_while_the_daemon_is_stopped_is_processed_after_it_starts(
    tmp_path, mosquitto, watcher, hooks
):
    config = write_deployment(tmp_path, mqtt_url=mosquitto.url, channels=three_hooks(hooks))
    async with running_daemon(config):
        pass  # the first start creates the persistent session at the broker
    offline = [p for t, p, _ in watcher.messages if t == "bc/daemon"]
    assert offline[-1] == b"offline"
    await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-WHILE-AWAY"))
    async with running_daemon(config):
        alert = await watcher.alert_in("FW-WHILE-AWAY", "sent")
    assert all(d["state"] == "delivered" for d in alert["deliveries"].values())
    assert [len(h.posts) for h in hooks] == [1, 1, 1]


async def test_a_channel_failing_twice_is_delivered_on_the_third_attempt_without_delaying_others(
    tmp_path, mosquitto, watcher, hooks
):
    slow = hooks[0]
    config = write_deployment(tmp_path, mqtt_url=mosquitto.url, channels=three_hooks(hooks))
    slow.script(503, 503)
    slow.hold()  # the failing channel's first answer waits until the others are done
    async with running_daemon(config) as daemon:
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-RETRY"))

        def others_delivered() -> bool:
            alert = watcher.alert("FW-RETRY")
            if not alert:
                return False
            states = alert["deliveries"]
            return all(states[c]["state"] == "delivered" for c in ("hook_b", "hook_c", "log_de"))

        await watcher.wait_for(others_delivered)
        assert watcher.alert("FW-RETRY")["deliveries"]["hook_a"]["state"] == "sending"
        assert len(slow.requests) == 1
        slow.release()
        alert = await watcher.alert_in("FW-RETRY", "sent")
        trail = await daemon.store.audit_trail("FW-RETRY")
    assert alert["deliveries"]["hook_a"]["attempts"] == 3
    assert [r.status for r in slow.requests] == [503, 503, 200]
    assert len(slow.posts) == 1
    assert all(alert["deliveries"][c]["attempts"] == 1 for c in ("hook_b", "hook_c"))
    retries = [e for e in trail if e.event == "retry_scheduled"]
    assert [e.detail["attempt"] for e in retries] == [1, 2]


async def test_a_429_with_retry_after_is_honoured(tmp_path, mosquitto, watcher, hooks):
    limited = hooks[0]
    limited.script((429, {"Retry-After": "1"}))
    config = write_deployment(tmp_path, mqtt_url=mosquitto.url, channels=three_hooks(hooks))
    async with running_daemon(config) as daemon:
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-429"))
        alert = await watcher.alert_in("FW-429", "sent")
        trail = await daemon.store.audit_trail("FW-429")
    [retry] = [e for e in trail if e.event == "retry_scheduled"]
    assert retry.detail["retry_after"] == 1
    assert retry.detail["wait_seconds"] == 1  # the provider's wait, not our 20 ms backoff
    assert alert["deliveries"]["hook_a"]["attempts"] == 2
    assert [r.status for r in limited.requests] == [429, 200]


async def test_a_permanent_error_fails_one_channel_only(tmp_path, mosquitto, watcher, hooks):
    hooks[1].fail_permanently(400, "text too long")
    config = write_deployment(tmp_path, mqtt_url=mosquitto.url, channels=three_hooks(hooks))
    async with running_daemon(config):
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-PERM"))
        alert = await watcher.alert_in("FW-PERM", "partially_failed", "sent", "failed")
    assert alert["state"] == "partially_failed"
    failed = alert["deliveries"]["hook_b"]
    assert failed["state"] == "failed"
    assert failed["attempts"] == 1
    assert "400" in failed["error"]
    assert "text too long" in failed["error"]
    assert alert["deliveries"]["hook_a"]["state"] == "delivered"


async def test_the_daemon_reconnects_when_the_broker_comes_back(tmp_path, mosquitto, hooks):
    config = write_deployment(tmp_path, mqtt_url=mosquitto.url, channels=three_hooks(hooks))
    async with running_daemon(config) as daemon:
        mosquitto.stop()
        await asyncio.wait_for(daemon.mqtt.disconnected.wait(), 15)
        revived = start_mosquitto(tmp_path, port=mosquitto.port)
        try:
            await asyncio.wait_for(daemon.mqtt.connected.wait(), 30)
            async with watching(revived.url) as watcher:
                await publish(revived.url, "bc/trigger", signed_trigger("FW-AFTER-OUTAGE"))
                alert = await watcher.alert_in("FW-AFTER-OUTAGE", "sent")
        finally:
            revived.stop()
    assert all(d["state"] == "delivered" for d in alert["deliveries"].values())


async def test_a_wait_beyond_the_delivery_deadline_fails_at_once(
    tmp_path, mosquitto, watcher, hooks
):
    """A provider asking for ten minutes when the deadline is 30 s: fail now, say why."""
    hooks[0].script((503, {"Retry-After": "600"}))
    config = write_deployment(tmp_path, mqtt_url=mosquitto.url, channels=three_hooks(hooks))
    async with running_daemon(config):
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-DEADLINE"))
        alert = await watcher.alert_in("FW-DEADLINE", "partially_failed", "sent", "failed")
    failed = alert["deliveries"]["hook_a"]
    assert alert["state"] == "partially_failed"
    assert failed["state"] == "failed"
    assert failed["attempts"] == 1
    assert "gave up after 1 attempts" in failed["error"]
    assert "503" in failed["error"]
