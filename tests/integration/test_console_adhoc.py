"""An ad-hoc update from the console on a real daemon: the form asks for each language and
variant the incident's channels post; missing or over-long texts are shown and create
nothing; the proposal waits until a second officer releases it (never its proposer, never
an editor or a viewer); then it goes out on every channel, threaded under the incident's
post, and is retracted like any alert. In a drill it starts with ÜBUNG and reaches only
the channels set up for drills."""

from __future__ import annotations

import aiohttp
import yaml

from tests.fakes import mastodon
from tests.fakes.mastodon import FakeMastodon
from tests.integration.harness import (
    API_TOKEN,
    console_page,
    console_post,
    console_sign_in,
    publish,
    running_daemon,
    signed_trigger,
    webhook,
    write_deployment,
)

CLOSED = "A52 zwischen Kreuz Kaarst und Büttgen in beiden Richtungen gesperrt."
LONG = CLOSED + " Bitte weiträumig über die A57 ausweichen."


def deployment(tmp_path, mosquitto, fake: FakeMastodon, hook_url: str):
    channels = {
        "mastodon_city": {
            "type": "mastodon",
            "base_url": fake.base_url,
            "access_token": mastodon.TOKEN,
        },
        "website": webhook(hook_url),  # long, drill: send
    }
    return write_deployment(
        tmp_path,
        mqtt_url=mosquitto.url,
        channels=channels,
        extra={"confirm": {"undo_window": "0s"}},
    )


def texts(csrf: str, **changes: str) -> dict[str, str]:
    form = {
        "csrf": csrf,
        "text.de.title": "Sperrung der A52",
        "text.de.short": CLOSED,
        "text.de.long": LONG,
        "text.en.title": "A52 closed",
        "text.en.long": "The A52 is closed between Kaarst and Büttgen in both directions.",
    }
    return form | {k.replace("_", "."): v for k, v in changes.items()}


async def test_an_update_goes_out_after_a_second_release_threaded_and_retractable(
    tmp_path, mosquitto, watcher, hooks
):
    hook = hooks[0]
    async with FakeMastodon.start() as fake:
        config = deployment(tmp_path, mosquitto, fake, hook.url)
        root = yaml.safe_load(config.read_text(encoding="utf-8"))["http"]["public_url"]
        jar = aiohttp.CookieJar
        async with (
            aiohttp.ClientSession(cookie_jar=jar(unsafe=True)) as a,
            aiohttp.ClientSession(cookie_jar=jar(unsafe=True)) as b,
            aiohttp.ClientSession(cookie_jar=jar(unsafe=True)) as editor,
            aiohttp.ClientSession(cookie_jar=jar(unsafe=True)) as viewer,
            aiohttp.ClientSession() as api,
            running_daemon(config) as daemon,
        ):
            await console_sign_in(a, root, daemon, "a.meier", "officer")
            await console_sign_in(b, root, daemon, "b.kaya", "officer")
            await console_sign_in(editor, root, daemon, "c.presse", "editor")
            await console_sign_in(viewer, root, daemon, "leitstelle", "viewer")
            await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-AH-1", incident="E-AH"))
            await watcher.alert_in("FW-AH-1", "sent")
            assert len(fake.posts) == 1

            incident = f"{root}/console/incidents/E-AH"
            form_url = f"{incident}/update"
            screen, _ = await console_page(a, f"{incident}?lang=en")
            assert 'data-testid="adhoc-link"' in screen
            html, csrf = await console_page(a, f"{form_url}?lang=en")
            for name in ("de.title", "de.short", "de.long", "en.title", "en.long"):
                assert f'name="text.{name}"' in html
            assert 'name="text.en.short"' not in html  # no English channel posts a short text
            assert "for mastodon_city" in html

            status, fragment, _ = await console_post(
                a, f"{form_url}/preview?lang=en", texts(csrf, text_de_short="")
            )
            assert status == 200
            assert 'data-ready="no"' in fragment
            assert 'data-testid="problem-de.short">German, Short text: Please fill this in.' in (
                fragment
            )
            status, fragment, _ = await console_post(
                a, f"{form_url}/preview?lang=en", texts(csrf, text_de_short="x" * 600)
            )
            assert 'data-ready="no"' in fragment
            assert "too long" in fragment
            status, _, _ = await console_post(
                a, f"{form_url}?lang=en", texts(csrf, text_de_short="x" * 600)
            )
            assert status == 400
            status, _, _ = await console_post(
                a, f"{form_url}?lang=en", texts(csrf, text_de_title="")
            )
            assert status == 400
            _, viewer_csrf = await console_page(viewer, f"{root}/console?lang=en")
            status, _, _ = await console_post(viewer, f"{form_url}?lang=en", texts(viewer_csrf))
            assert status == 403
            assert [x.id for x in await daemon.store.incident_alerts("E-AH")] == ["FW-AH-1"]

            status, fragment, _ = await console_post(a, f"{form_url}/preview?lang=en", texts(csrf))
            assert 'data-ready="yes"' in fragment
            assert CLOSED in fragment
            status, _, where = await console_post(a, f"{form_url}?lang=en", texts(csrf))
            assert status == 303
            assert where == "/console/incidents/E-AH?lang=en"
            [update] = [x for x in await daemon.store.incident_alerts("E-AH") if x.id != "FW-AH-1"]
            assert update.id.startswith("UPDATE-")
            assert (update.stage, update.msg_type, update.mode) == ("_update", "Update", "live")
            assert update.state == "awaiting_confirmation"
            assert update.proposed_by == "a.meier"
            assert len(fake.posts) == 1  # nothing out before the release

            decide = f"{incident}/alerts/{update.id}/decide?lang=en"
            status, text, _ = await console_post(a, decide, {"csrf": csrf, "action": "release"})
            assert status == 409  # the proposer
            assert "Another person must release it" in text
            _, editor_csrf = await console_page(editor, f"{incident}?lang=en")
            status, _, _ = await console_post(
                editor, decide, {"csrf": editor_csrf, "action": "release"}
            )
            assert status == 403
            page, b_csrf = await console_page(b, f"{incident}?lang=en")
            assert CLOSED in page
            assert "Ad-hoc update" in page
            status, _, _ = await console_post(b, decide, {"csrf": b_csrf, "action": "release"})
            assert status in (200, 303)
            await watcher.alert_in(update.id, "sent")

            assert len(fake.posts) == 2
            first, second = fake.posts
            assert second["text"] == CLOSED
            assert second["in_reply_to_id"] == first["id"]  # in the incident's thread
            assert hook.posts[-1].json["text"] == LONG
            trail = await daemon.store.audit_trail(update.id)
            assert [e.actor for e in trail if e.event == "released"] == ["b.kaya"]

            async with api.post(
                f"{root}/api/alerts/{update.id}/retract",
                json={"reason": "Sperrung war ein Irrtum"},
                headers={"Authorization": f"Bearer {API_TOKEN}"},
            ) as answer:
                assert answer.status == 202
            await watcher.alert_in(f"{update.id}:retraction", "sent")
            assert second["id"] not in fake.statuses  # the update's post is gone
            assert first["id"] in fake.statuses  # the warning stays


async def test_a_drill_update_is_marked_and_reaches_only_drill_channels(
    tmp_path, mosquitto, watcher, hooks
):
    hook = hooks[0]
    async with FakeMastodon.start() as fake:
        config = deployment(tmp_path, mosquitto, fake, hook.url)
        root = yaml.safe_load(config.read_text(encoding="utf-8"))["http"]["public_url"]
        jar = aiohttp.CookieJar
        async with (
            aiohttp.ClientSession(cookie_jar=jar(unsafe=True)) as a,
            aiohttp.ClientSession(cookie_jar=jar(unsafe=True)) as b,
            running_daemon(config) as daemon,
        ):
            await console_sign_in(a, root, daemon, "a.meier", "officer")
            await console_sign_in(b, root, daemon, "b.kaya", "officer")
            trigger = signed_trigger("FW-AH-D", incident="E-AHD", mode="drill")
            await publish(mosquitto.url, "bc/trigger", trigger)
            await watcher.alert_in("FW-AH-D", "sent")
            incident = f"{root}/console/incidents/E-AHD"
            _, csrf = await console_page(a, f"{incident}/update?lang=de")
            status, fragment, _ = await console_post(
                a, f"{incident}/update/preview?lang=de", texts(csrf)
            )
            assert f"ÜBUNG: {CLOSED}" in fragment
            status, _, _ = await console_post(a, f"{incident}/update?lang=de", texts(csrf))
            assert status == 303
            [update] = [x for x in await daemon.store.incident_alerts("E-AHD") if x.id != "FW-AH-D"]
            assert update.mode == "drill"
            assert update.id.startswith("DRILL-")
            assert update.state == "awaiting_confirmation"  # a second person, in a drill too
            _, b_csrf = await console_page(b, f"{incident}?lang=de")
            decide = f"{incident}/alerts/{update.id}/decide?lang=de"
            status, _, _ = await console_post(b, decide, {"csrf": b_csrf, "action": "release"})
            assert status in (200, 303)
            await watcher.alert_in(update.id, "sent")
        assert fake.posts == []  # mastodon_city is not set up for drills
        assert hook.posts[-1].json["text"] == f"ÜBUNG: {LONG}"
        assert hook.posts[-1].json["mode"] == "drill"
