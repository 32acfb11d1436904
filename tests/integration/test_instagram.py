"""Instagram with the real daemon: the fake Graph API fetches the card from the daemon's own
/media route, as Meta's crawler does; a retraction posts the correction and leaves a
manual task that the API, `broadcaster status` and the duty officers all show."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from io import BytesIO
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image

from broadcaster.sharepic import DRILL_YELLOW, HEIGHT, WIDTH
from tests.fakes.instagram import IG_USER_ID, TOKEN, FakeInstagram
from tests.fakes.webhook import FakeWebhook
from tests.integration.harness import (
    API_TOKEN,
    publish,
    running_daemon,
    signed_trigger,
    write_deployment,
)

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture
async def fake() -> AsyncIterator[FakeInstagram]:
    async with FakeInstagram.start() as server:
        yield server


@pytest.fixture
async def officer() -> AsyncIterator[FakeWebhook]:
    async with FakeWebhook.start() as hook:
        yield hook


def channels(fake: FakeInstagram, officer: FakeWebhook, drill: str = "send") -> dict[str, Any]:
    return {
        "insta": {
            "type": "instagram",
            "base_url": f"{fake.base_url}/v21.0",
            "ig_user_id": IG_USER_ID,
            "access_token": TOKEN,
            "drill": drill,
            "language": "de",
        },
        "officer_hook": {"type": "webhook", "url": officer.url, "audience": "internal"},
    }


def deployment(tmp_path: Path, mosquitto: Any, chans: dict[str, Any], **extra: Any) -> Path:
    settings = {
        "duty_officers": [{"name": "Duty officer", "notify": ["officer_hook"]}],
        "cap": {"sender_name": "Feuerwehr Düsseldorf"},
    }
    return write_deployment(
        tmp_path, mqtt_url=mosquitto.url, channels=chans, extra=settings, **extra
    )


async def api(daemon: Any, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    url = f"http://{daemon.settings.http.listen}{path}"
    async with aiohttp.ClientSession() as http, http.request(method, url, **kwargs) as r:
        body = await r.read()
        return r.status, (await r.json() if r.content_type == "application/json" else body)


async def cli(config: Path, *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "broadcaster",
        *args,
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200", "TZ": "Europe/Berlin"},
    )
    out, _ = await process.communicate()
    assert process.returncode == 0, out.decode()
    return out.decode()


def yellow(image: Image.Image, xy: tuple[int, int]) -> bool:
    pixel = image.convert("RGB").getpixel(xy)
    assert isinstance(pixel, tuple)
    return all(abs(a - b) < 40 for a, b in zip(pixel, DRILL_YELLOW, strict=True))


async def test_a_live_alert_on_instagram_then_its_retraction_and_the_manual_task(
    tmp_path, mosquitto, watcher, fake, officer
):
    config = deployment(tmp_path, mosquitto, channels(fake, officer))
    async with running_daemon(config) as daemon:
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-IG-1"))
        sent = await watcher.alert_in("FW-IG-1", "sent")
        [post] = fake.media
        # Meta fetched the card from the daemon's own /media route.
        [fetch] = fake.fetches
        assert fetch.url == f"{daemon.settings.http.public_url}/media/FW-IG-1/insta.jpg"
        assert fetch.refused is None
        assert fetch.content_type == "image/jpeg"
        card = Image.open(BytesIO(fake.images[post["container"]]))
        assert (card.format, card.size) == ("JPEG", (WIDTH, HEIGHT))
        assert not yellow(card, (540, 12))  # a live warning: no exercise banner
        delivery = sent["deliveries"]["insta"]
        assert delivery["url"] == post["permalink"]
        assert delivery["detail"].startswith("49 of 50 posts left in 24 h")
        assert post["caption"].startswith("Warnung: Rauchentwicklung nach Großbrand")

        status, body = await api(
            daemon,
            "POST",
            "/api/alerts/FW-IG-1/retract",
            json={"reason": "Fehlalarm"},
            headers=AUTH,
        )
        assert status == 202, body
        await watcher.alert_in("FW-IG-1:retraction", "sent")
        retracted = await watcher.wait_for(
            lambda: (
                (a := watcher.alert("FW-IG-1"))
                and a["deliveries"]["insta"].get("manual_task")
                and a
            )
        )
        await officer.wait_for_requests(1)
        status, shown = await api(daemon, "GET", "/api/alerts/FW-IG-1", headers=AUTH)
        trail = await daemon.store.audit_trail("FW-IG-1")

    # The correction is a post of its own, and a comment under the false one points to it.
    assert len(fake.media) == 2
    correction = fake.media[1]
    assert "Fehlalarm" in correction["caption"]
    [comment] = fake.comments
    assert comment["media"] == post["id"]
    assert correction["permalink"] in comment["message"]
    assert fake.requests_to("DELETE", "") == []  # nothing tried what the API cannot do
    # The manual task: in the API, on MQTT, in the audit trail.
    task = f"delete post {post['permalink']} by hand"
    assert status == 200
    insta = shown["deliveries"]["insta"]
    assert insta["state"] == "retracted"
    assert insta["manual_task"]["task"] == task
    assert insta["manual_task"]["url"] == post["permalink"]
    assert insta["manual_task"]["done_at"] is None
    assert retracted["deliveries"]["insta"]["manual_task"]["task"] == task
    assert [e.detail["task"] for e in trail if e.event == "manual_task"] == [task]
    # The duty officer heard of it on their internal channel.
    [told] = [r.json for r in officer.requests]
    assert told["kind"] == "refusal"
    assert told["error"] == "manual_task"
    assert told["detail"] == task
    assert told["alert_id"] == "FW-IG-1"
    assert post["permalink"] in told["text"]
    # `broadcaster status` lists it, in the list and in the alert's detail.
    listing = await cli(config, "status")
    assert f"TO DO BY HAND on insta: {task}" in listing
    detail = await cli(config, "status", "FW-IG-1")
    assert f"TO DO BY HAND: {task}" in detail
    # Done by hand: marked, audited, and no longer open.
    await cli(config, "task", "done", "FW-IG-1", "insta", "--by", "Pressestelle")
    listing = await cli(config, "status")
    assert "TO DO BY HAND" not in listing
    detail = await cli(config, "status", "FW-IG-1")
    assert "done by hand (Pressestelle" in detail


async def test_a_drill_reaches_instagram_only_when_the_channel_is_drill_send(
    tmp_path, mosquitto, watcher, fake, officer
):
    config = deployment(tmp_path, mosquitto, channels(fake, officer, drill="dry_run"))
    async with running_daemon(config) as daemon:
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-IG-DRY", mode="drill"))
        dry = await watcher.alert_in("FW-IG-DRY", "sent")
        status, _ = await api(daemon, "GET", "/media/FW-IG-DRY/insta.jpg")
    assert dry["deliveries"]["insta"]["state"] == "dry_run"
    assert fake.requests == []
    assert status == 404  # a card nobody posted is not served


async def test_a_drill_on_a_drill_send_channel_carries_the_exercise_banner(
    tmp_path, mosquitto, watcher, fake, officer
):
    config = deployment(tmp_path, mosquitto, channels(fake, officer, drill="send"))
    async with running_daemon(config):
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-IG-DRILL", mode="drill"))
        await watcher.alert_in("FW-IG-DRILL", "sent")
    [post] = fake.media
    card = Image.open(BytesIO(fake.images[post["container"]]))
    assert yellow(card, (540, 12))
    assert yellow(card, (540, HEIGHT - 12))
    assert post["caption"].startswith("ÜBUNG: ")


async def test_the_media_route_serves_no_card_before_release(
    tmp_path, mosquitto, watcher, fake, officer
):
    chans = channels(fake, officer) | {"log_de": {"type": "log", "drill": "send"}}
    config = deployment(tmp_path, mosquitto, chans, confirmation="required")
    async with running_daemon(config) as daemon:
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-IG-WAIT"))
        await watcher.alert_in("FW-IG-WAIT", "awaiting_confirmation")
        waiting, body = await api(daemon, "GET", "/media/FW-IG-WAIT/insta.jpg")
        unknown, _ = await api(daemon, "GET", "/media/NO-SUCH-ALERT/insta.jpg")
    assert waiting == 404
    assert body["error"] == "not_found"
    assert unknown == 404
    assert fake.requests == []


async def test_a_released_alert_s_card_is_served_to_card_channels_only(
    tmp_path, mosquitto, watcher, fake, officer
):
    chans = channels(fake, officer) | {"log_de": {"type": "log", "drill": "send"}}
    config = deployment(tmp_path, mosquitto, chans)
    async with running_daemon(config) as daemon:
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-IG-2"))
        await watcher.alert_in("FW-IG-2", "sent")
        base = f"http://{daemon.settings.http.listen}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/media/FW-IG-2/insta.jpg") as r:
                first, headers = await r.read(), r.headers
            async with http.get(
                f"{base}/media/FW-IG-2/insta.jpg", headers={"If-None-Match": headers["ETag"]}
            ) as r:
                unchanged = r.status
        log_card, _ = await api(daemon, "GET", "/media/FW-IG-2/log_de.jpg")
    assert headers["Content-Type"] == "image/jpeg"
    assert "max-age" in headers["Cache-Control"]
    assert first == fake.images[fake.media[0]["container"]]  # the same bytes Meta fetched
    assert unchanged == 304
    assert log_card == 404


async def test_a_live_alert_from_an_unapproved_template_never_reaches_instagram(
    tmp_path, mosquitto, watcher, fake, officer
):
    config = deployment(tmp_path, mosquitto, channels(fake, officer))
    template = tmp_path / "templates/major_fire/warning/long.de.j2"
    template.write_text(template.read_text(encoding="utf-8") + " Neu.\n", encoding="utf-8")
    async with running_daemon(config):
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-IG-UNAPPROVED"))
        await watcher.error_for("FW-IG-UNAPPROVED", "template_not_approved")
    assert fake.requests == []
