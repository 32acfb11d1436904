"""The whole daemon with every channel type configured at once: one alert reaches all of
them, a follow-up stage is threaded under the first posts, and a retraction corrects and
deletes everywhere the provider allows (and leaves a manual task where only a person can)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from contextlib import AsyncExitStack
from email.message import EmailMessage
from typing import Any

import aiohttp

from broadcaster.channels.kinds import KINDS
from broadcaster.vapid import new_key_pair
from tests.fakes import bluesky, facebook, instagram, mastodon, sms, telegram, whatsapp, x
from tests.fakes.bluesky import FakePds
from tests.fakes.facebook import FakeGraph
from tests.fakes.instagram import FakeInstagram
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.sms import FakeTwilio
from tests.fakes.smtp import FakeSmtp
from tests.fakes.telegram import FakeTelegram
from tests.fakes.webhook import FakeWebhook
from tests.fakes.webpush import FakePushService, subscribe
from tests.fakes.whatsapp import FakeWhatsapp
from tests.fakes.x import FakeX
from tests.integration.harness import (
    API_TOKEN,
    FIRE,
    publish,
    running_daemon,
    signed_trigger,
    write_deployment,
)

CAP = "{urn:oasis:names:tc:emergency:cap:1.2}"
NUMBERS = ["+4915111111111", "+4915122222222"]
MAILBOXES = ["presse@duesseldorf.example", "lagedienst@duesseldorf.example"]


def body(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


class Fakes:
    async def start(self, stack: AsyncExitStack) -> None:
        self.telegram: FakeTelegram = await stack.enter_async_context(FakeTelegram.start())
        self.facebook: FakeGraph = await stack.enter_async_context(FakeGraph.start())
        self.x: FakeX = await stack.enter_async_context(FakeX.start())
        self.sms: FakeTwilio = await stack.enter_async_context(FakeTwilio.start())
        self.smtp: FakeSmtp = await stack.enter_async_context(FakeSmtp.start())
        self.webhook: FakeWebhook = await stack.enter_async_context(FakeWebhook.start())
        self.mastodon: FakeMastodon = await stack.enter_async_context(FakeMastodon.start())
        self.bluesky: FakePds = await stack.enter_async_context(FakePds.start())
        self.instagram: FakeInstagram = await stack.enter_async_context(FakeInstagram.start())
        self.whatsapp: FakeWhatsapp = await stack.enter_async_context(
            FakeWhatsapp.start(templates=whatsapp.APPROVED)
        )
        self.push: FakePushService = await stack.enter_async_context(FakePushService.start())

    def channels(self) -> dict[str, dict[str, Any]]:
        send = {"drill": "send"}
        return {
            "mastodon_city": {
                "type": "mastodon",
                "base_url": self.mastodon.base_url,
                "access_token": mastodon.TOKEN,
                **send,
            },
            "bluesky_city": {
                "type": "bluesky",
                "base_url": self.bluesky.base_url,
                "identifier": bluesky.IDENTIFIER,
                "app_password": bluesky.APP_PASSWORD,
                **send,
            },
            "telegram_city": {
                "type": "telegram",
                "base_url": self.telegram.base_url,
                "bot_token": telegram.TOKEN,
                "chat_id": telegram.CHANNEL.username_ref,
                **send,
            },
            "facebook_city": {
                "type": "facebook",
                "base_url": f"{self.facebook.base_url}/v21.0",
                "page_id": facebook.PAGE_ID,
                "page_access_token": facebook.PAGE_TOKEN,
                **send,
            },
            "x_city": {
                "type": "x",
                "base_url": self.x.base_url,
                "api_key": x.API_KEY,
                "api_secret": x.API_SECRET,
                "access_token": x.ACCESS_TOKEN,
                "access_secret": x.ACCESS_SECRET,
                **send,
            },
            "sms_residents": {
                "type": "sms",
                "base_url": self.sms.base_url,
                "account_sid": sms.ACCOUNT_SID,
                "auth_token": sms.AUTH_TOKEN,
                "from": "+4915100000000",
                "to": NUMBERS,
                **send,
            },
            "email_press": {
                "type": "email",
                "host": "127.0.0.1",
                "port": self.smtp.port,
                "starttls": False,
                "from": "Stadt <warnung@duesseldorf.example>",
                "to": MAILBOXES,
                **send,
            },
            "instagram_city": {
                "type": "instagram",
                "base_url": f"{self.instagram.base_url}/v21.0",
                "ig_user_id": instagram.IG_USER_ID,
                "access_token": instagram.TOKEN,
                **send,
            },
            "whatsapp_residents": {
                "type": "whatsapp",
                "base_url": self.whatsapp.graph_url,
                "phone_number_id": whatsapp.PHONE_NUMBER_ID,
                "access_token": whatsapp.ACCESS_TOKEN,
                "app_secret": whatsapp.APP_SECRET,
                "templates": whatsapp.TEMPLATES,
                "to": NUMBERS,
                **send,
            },
            "push_page": {
                "type": "webpush",
                "vapid_private_key": "${TEST_VAPID_PRIVATE_KEY}",
                "vapid_subject": "mailto:warnungen@duesseldorf.example",
                "push_services": ["127.0.0.1"],
                **send,
            },
            "website_hook": {"type": "webhook", "url": self.webhook.url, **send},
            "cap": {"type": "cap_feed", **send},
            "log_de": {"type": "log", **send},
        }


async def test_every_type_at_once_then_a_threaded_follow_up_then_a_retraction(
    tmp_path, mosquitto, watcher, monkeypatch
):
    monkeypatch.setenv("TEST_VAPID_PRIVATE_KEY", new_key_pair()[0])
    async with AsyncExitStack() as stack:
        fakes = Fakes()
        await fakes.start(stack)
        # Every kind in the table, so a kind added without its fake here fails.
        assert sorted(c["type"] for c in fakes.channels().values()) == sorted(KINDS)
        config = write_deployment(tmp_path, mqtt_url=mosquitto.url, channels=fakes.channels())
        async with running_daemon(config) as daemon, aiohttp.ClientSession() as http:
            base = f"http://{daemon.settings.http.listen}"
            browsers = [await subscribe(http, base, fakes.push) for _ in range(2)]
            first = signed_trigger("FW-ALL-1", incident="E-ALL")
            await publish(mosquitto.url, "bc/trigger", first)
            alert = await watcher.alert_in("FW-ALL-1", "sent", "partially_failed", "failed")
            assert alert["state"] == "sent", alert
            assert len(alert["deliveries"]) == len(KINDS)
            assert alert["deliveries"]["sms_residents"]["recipients"] == {
                "total": 2,
                "delivered": 2,
                "failed": 0,
            }
            assert alert["deliveries"]["email_press"]["recipients"]["delivered"] == 2
            for per_recipient in ("whatsapp_residents", "push_page"):
                assert alert["deliveries"][per_recipient]["recipients"]["delivered"] == 2

            update = signed_trigger(
                "FW-ALL-2",
                incident="E-ALL",
                stage="update",
                params={**FIRE, "smoke_direction": "Süd"},
            )
            await publish(mosquitto.url, "bc/trigger", update)
            await watcher.alert_in("FW-ALL-2", "sent")

            async with http.get(f"{base}/cap/FW-ALL-2.xml") as r:
                assert r.status == 200
                cap = ET.fromstring(await r.read())
            async with http.post(
                f"{base}/api/alerts/FW-ALL-1/retract",
                json={"reason": "Fehlalarm der Brandmeldeanlage"},
                headers={"Authorization": f"Bearer {API_TOKEN}"},
            ) as r:
                assert r.status == 202
            await watcher.alert_in("FW-ALL-1:retraction", "sent")
            async with http.get(
                f"{base}/api/alerts/FW-ALL-1", headers={"Authorization": f"Bearer {API_TOKEN}"}
            ) as r:
                retracted = await r.json()

    # One post each for the first alert, in the channel's own form.
    first_tg, second_tg, *corrections_tg = fakes.telegram.sent
    assert "<b>" not in first_tg["text"]
    assert "Großbrand" in first_tg["text"]
    # The update is threaded under the first post wherever the provider allows.
    assert second_tg["reply_to_message"]["message_id"] == first_tg["message_id"]
    first_fb = fakes.facebook.posts[0]
    assert fakes.facebook.comments[0]["parent"] == first_fb["id"]
    first_x, second_x = fakes.x.posts[:2]
    assert second_x["reply_to"] == first_x["id"]
    mails = fakes.smtp.messages
    first_mail = next(m.message for m in mails if "Süd" not in body(m.message))
    update_mail = next(m.message for m in mails if "Süd" in body(m.message))
    assert update_mail["In-Reply-To"] == first_mail["Message-ID"]
    assert first_mail["Subject"].startswith("Warnung")
    hook_update = next(p.json for p in fakes.webhook.posts if p.json["alert_id"] == "FW-ALL-2")
    assert fakes.webhook.post(hook_update["in_reply_to"]).json["alert_id"] == "FW-ALL-1"
    first_toot, second_toot = fakes.mastodon.posts[:2]
    assert second_toot["in_reply_to_id"] == first_toot["id"]
    first_sky, second_sky = fakes.bluesky.created[:2]
    assert second_sky["value"]["reply"]["root"]["uri"] == first_sky["uri"]
    assert second_sky["value"]["reply"]["parent"]["cid"] == first_sky["cid"]
    # SMS cannot thread: standalone texts, each number reached once per alert.
    assert sorted(m["to"] for m in fakes.sms.messages[:4]) == sorted(NUMBERS * 2)
    # The CAP update names the incident's first message.
    references = cap.find(f"{CAP}references")
    assert references is not None
    assert "FW-ALL-1" in (references.text or "")
    assert cap.findtext(f"{CAP}msgType") == "Update"
    # The retraction: a correction on every channel, the original deleted where possible.
    assert corrections_tg
    assert "Fehlalarm der Brandmeldeanlage" in corrections_tg[0]["text"]
    assert (telegram.CHANNEL.id, first_tg["message_id"]) in fakes.telegram.deleted
    assert first_fb["id"] in fakes.facebook.deleted
    assert first_x["id"] in fakes.x.deleted
    assert first_toot["id"] in fakes.mastodon.deleted
    assert first_sky["uri"].rsplit("/", 1)[1] in fakes.bluesky.deleted
    assert any("Fehlalarm" in p["text"] for p in fakes.mastodon.posts[2:])
    assert any("Fehlalarm" in m["body"] for m in fakes.sms.messages[4:])
    assert len(mails) == 6  # two recipients x (alert, update, correction): mail is not recalled
    # Instagram: three posts (alert, update, correction), each with the card Meta fetched
    # from the daemon; the false alarm stays up with a manual task, as the API cannot delete.
    assert len(fakes.instagram.media) == 3
    assert len(fakes.instagram.fetches) >= 3
    first_insta = retracted["deliveries"]["instagram_city"]
    assert first_insta["state"] == "retracted"
    assert first_insta["manual_task"]["url"] == fakes.instagram.media[0]["permalink"]
    # WhatsApp: each number gets the alert, the update quoting it, and the correction.
    by_number: dict[str, list[dict[str, Any]]] = {}
    for message in fakes.whatsapp.messages:
        by_number.setdefault(message["to"], []).append(message)
    assert sorted(by_number) == sorted(n[1:] for n in NUMBERS)
    for messages in by_number.values():
        names = [m["template"]["name"] for m in messages]
        assert names == ["warnung_warning", "warnung_update", "warnung_korrektur"]
    # Web Push: each browser gets the three under the incident's one topic.
    for browser in browsers:
        pushes = fakes.push.delivered_to(browser)
        assert [p.data["alert_id"] for p in pushes] == [
            "FW-ALL-1",
            "FW-ALL-2",
            "FW-ALL-1:retraction",
        ]
        assert len({p.topic for p in pushes}) == 1
