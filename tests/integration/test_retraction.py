"""Retracting a false alarm: from HTTP and MQTT, during and after the fan-out."""

from __future__ import annotations

import asyncio
from datetime import timedelta, timezone
from typing import Any

import aiohttp

from broadcaster.intake import sign
from broadcaster.models import utcnow
from tests.integration.harness import (
    API_TOKEN,
    SECRET,
    publish,
    running_daemon,
    signed_trigger,
    webhook,
    write_deployment,
)

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def channels(hooks):
    return {f"hook_{n}": webhook(h.url) for n, h in zip("abc", hooks, strict=True)} | {
        "log_de": {"type": "log", "drill": "send"}
    }


async def retract_http(daemon, alert_id: str, reason: str) -> tuple[int, dict[str, Any]]:
    url = f"http://{daemon.settings.http.listen}/api/alerts/{alert_id}/retract"
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, json={"reason": reason}, headers=AUTH) as r,
    ):
        return r.status, await r.json()


def assert_corrected(hook, alert_id: str, reason: str) -> None:
    """The provider got: the alert, the correction as a reply to it, then the deletion."""
    kinds = [r.json["kind"] for r in hook.requests if r.status == 200]
    assert kinds == ["alert", "retraction", "deletion"], kinds
    original, correction, deletion = (r.json for r in hook.requests if r.status == 200)
    assert original["alert_id"] == alert_id
    # The correction names the alert it retracts (a city website keys its banner on it).
    assert correction["alert_id"] == alert_id
    assert correction["correction_id"] == f"{alert_id}:retraction"
    assert reason in correction["text"]
    # The correction replies to the original post, which is then deleted.
    assert hook.post(correction["in_reply_to"]).json["alert_id"] == alert_id
    assert deletion["alert_id"] == alert_id
    assert deletion["remote_id"] == correction["in_reply_to"]
    assert correction["in_reply_to"] in hook.deleted


async def test_retraction_over_http_corrects_and_deletes_everywhere(
    tmp_path, mosquitto, watcher, hooks
):
    config = write_deployment(tmp_path, mqtt_url=mosquitto.url, channels=channels(hooks))
    async with running_daemon(config) as daemon:
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-FALSE"))
        await watcher.alert_in("FW-FALSE", "sent")
        status, body = await retract_http(daemon, "FW-FALSE", "Fehlalarm der Brandmeldeanlage")
        assert status == 202, body
        assert body["state"] == "retracted"
        assert body["correction"] == "FW-FALSE:retraction"
        correction = await watcher.alert_in("FW-FALSE:retraction", "sent")

        def all_retracted() -> bool:
            alert = watcher.alert("FW-FALSE")
            return bool(alert) and all(
                d["state"] == "retracted" for d in alert["deliveries"].values()
            )

        await watcher.wait_for(all_retracted)
        again, _ = await retract_http(daemon, "FW-FALSE", "noch einmal")
        missing, _ = await retract_http(daemon, "NOPE", "x")
    assert again == 409
    assert missing == 404
    assert set(correction["deliveries"]) == {"hook_a", "hook_b", "hook_c", "log_de"}
    for hook in hooks:
        assert_corrected(hook, "FW-FALSE", "Fehlalarm der Brandmeldeanlage")


async def test_retraction_over_mqtt_is_signed_like_a_trigger(tmp_path, mosquitto, watcher, hooks):
    config = write_deployment(tmp_path, mqtt_url=mosquitto.url, channels=channels(hooks))
    async with running_daemon(config):
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-MQ"))
        await watcher.alert_in("FW-MQ", "sent")
        request = {"alert_id": "FW-MQ", "issued_at": utcnow().isoformat(), "reason": "Fehlalarm"}
        await publish(mosquitto.url, "bc/retract", {**request, "signature": "0" * 64})
        await watcher.error_for("FW-MQ", "bad_signature")
        await publish(mosquitto.url, "bc/retract", {**request, "signature": sign(request, SECRET)})
        await watcher.alert_in("FW-MQ", "retracted")
        await watcher.alert_in("FW-MQ:retraction", "sent")
    for hook in hooks:
        assert [r.json["kind"] for r in hook.requests if r.status == 200][:2] == [
            "alert",
            "retraction",
        ]


async def test_a_reason_with_a_hidden_character_is_refused_over_http_and_mqtt(
    tmp_path, mosquitto, watcher, hooks
):
    config = write_deployment(tmp_path, mqtt_url=mosquitto.url, channels=channels(hooks))
    hint = "remove it (invisible or control characters are not allowed in public text)"
    async with running_daemon(config) as daemon:
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-BIDI"))
        await watcher.alert_in("FW-BIDI", "sent")
        status, body = await retract_http(daemon, "FW-BIDI", "Fehlalarm\u202e kein Brand")
        assert (status, body) == (
            400,
            {
                "error": "invalid_request",
                "detail": f"reason: contains U+202E RIGHT-TO-LEFT OVERRIDE at position 10, {hint}",
            },
        )
        request = {
            "alert_id": "FW-BIDI",
            "issued_at": utcnow().isoformat(),
            "reason": "Fehl\u200balarm",
        }
        await publish(mosquitto.url, "bc/retract", {**request, "signature": sign(request, SECRET)})
        error = await watcher.error_for("FW-BIDI", "invalid_trigger")
        assert error["detail"] == f"reason: contains U+200B ZERO WIDTH SPACE at position 5, {hint}"
        alert = await daemon.store.get_alert("FW-BIDI")
        status, _ = await retract_http(daemon, "FW-BIDI", "Fehlalarm – kein Brand")
        assert status == 202
    assert alert is not None
    assert alert.state == "sent"
    for hook in hooks:
        answered = [r.json for r in hook.requests if r.status == 200]
        assert [r["kind"] for r in answered][:2] == ["alert", "retraction"]
        assert "Fehlalarm – kein Brand" in answered[1]["text"]


async def test_retraction_during_a_slow_fan_out_stops_what_was_not_sent(
    tmp_path, mosquitto, watcher, hooks
):
    waiting, held, _ = hooks
    waiting.script((503, {"Retry-After": "20"}))  # its retry would come 20 s later
    held.hold()  # a request on its way, answered only after the retraction began
    config = write_deployment(tmp_path, mqtt_url=mosquitto.url, channels=channels(hooks))
    async with running_daemon(config) as daemon:
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-SLOW"))
        await held.wait_for_requests(1)
        await waiting.wait_for_requests(1)
        await watcher.wait_for(
            lambda: (
                (watcher.alert("FW-SLOW") or {})
                .get("deliveries", {})
                .get("hook_c", {})
                .get("state")
                == "delivered"
            )
        )
        retraction = asyncio.create_task(retract_http(daemon, "FW-SLOW", "Fehlalarm"))
        await watcher.alert_in("FW-SLOW", "retracted")
        held.release()
        status, _ = await retraction
        assert status == 202
        await watcher.alert_in("FW-SLOW:retraction", "sent")
        final = await daemon.store.get_deliveries("FW-SLOW")
    states = {d.channel_id: (d.state, d.error) for d in final}
    assert states["hook_a"] == ("retracted", "retracted before sending")
    assert len(waiting.requests) == 1  # the retry never happened
    assert [r.json["kind"] for r in held.requests if r.status == 200] == [
        "alert",
        "retraction",
        "deletion",
    ]
    assert states["hook_b"][0] == states["hook_c"][0] == "retracted"


async def test_retracting_an_alert_awaiting_confirmation_cancels_it(
    tmp_path, mosquitto, watcher, hooks
):
    config = write_deployment(
        tmp_path,
        mqtt_url=mosquitto.url,
        channels=channels(hooks),
        confirmation="required",
        extra={"duty_officers": [{"name": "A", "notify": ["officer"]}]},
    )
    (tmp_path / "channels" / "officer.yaml").write_text("type: log\naudience: internal\n")
    async with running_daemon(config) as daemon:
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-WAIT"))
        await watcher.alert_in("FW-WAIT", "awaiting_confirmation")
        status, body = await retract_http(daemon, "FW-WAIT", "Fehlalarm")
        assert status == 202
        assert body["state"] == "retracted"
        assert "correction" not in body
    assert all(h.requests == [] for h in hooks)


async def test_the_correction_states_its_own_time_not_the_alerts(
    tmp_path, mosquitto, watcher, hooks
):
    """ "Stand:" in a correction is when it was issued, in the fire brigade's zone."""
    zone = timezone(timedelta(hours=1))
    issued = (utcnow() - timedelta(minutes=12)).astimezone(zone)
    config = write_deployment(tmp_path, mqtt_url=mosquitto.url, channels=channels(hooks))
    async with running_daemon(config) as daemon:
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-STAND", issued_at=issued))
        await watcher.alert_in("FW-STAND", "sent")
        asked = utcnow()
        request = {"alert_id": "FW-STAND", "issued_at": asked.isoformat(), "reason": "Fehlalarm"}
        await publish(mosquitto.url, "bc/retract", {**request, "signature": sign(request, SECRET)})
        await watcher.alert_in("FW-STAND:retraction", "sent")
        original = await daemon.store.get_alert("FW-STAND")
        correction = await daemon.store.get_alert("FW-STAND:retraction")
    assert original is not None
    assert correction is not None
    at = correction.issued_at
    assert at.utcoffset() == timedelta(hours=1)  # the trigger's zone, not the server's
    assert asked - timedelta(seconds=1) <= at <= utcnow()
    stand = f"Stand: {at:%d.%m.%Y}, {at:%H:%M} Uhr"
    then = f"Stand: {original.issued_at:%d.%m.%Y}, {original.issued_at:%H:%M} Uhr"
    assert then in original.texts["de"].long
    assert then != stand
    assert stand in correction.texts["de"].long
    assert then not in correction.texts["de"].long
