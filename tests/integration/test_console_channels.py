"""The console's Channels screen on a real daemon: each channel's health is read from the
store (a retry and a failed delivery counted in the last hour, the last error, the last
success with its post, the rate limit), and a test message goes to a channel set up for
drills only: marked as an exercise, sent once, kept in the audit trail; a public channel,
a viewer, an editor and a dry-run daemon get none."""

from __future__ import annotations

import aiohttp
import yaml

from tests.integration.harness import (
    console_page,
    console_sign_in,
    publish,
    running_daemon,
    signed_trigger,
    webhook,
    write_deployment,
)

PAGE = "/console/channels"


def deployment(tmp_path, mosquitto, hooks):
    """`web` is a test account (drill: send), `site` a public one (drills never sent)."""
    channels = {
        "web": webhook(hooks[0].url, rate_limit="30/min"),
        "site": webhook(hooks[1].url, drill="dry_run"),
    }
    return write_deployment(
        tmp_path,
        mqtt_url=mosquitto.url,
        channels=channels,
        delivery={"max_attempts": 2},
        extra={"confirm": {"undo_window": "0s"}},
    )


def card(html: str, channel_id: str) -> str:
    start = html.index(f'data-testid="channel-{channel_id}"')
    end = html.find("</li>", start)
    return html[start:end]


async def test_health_and_a_test_message_to_the_test_account_only(
    tmp_path, mosquitto, watcher, hooks
):
    web_hook, site_hook = hooks[0], hooks[1]
    config = deployment(tmp_path, mosquitto, hooks)
    root = yaml.safe_load(config.read_text(encoding="utf-8"))["http"]["public_url"]
    jar = aiohttp.CookieJar
    async with (
        aiohttp.ClientSession(cookie_jar=jar(unsafe=True)) as admin,
        aiohttp.ClientSession(cookie_jar=jar(unsafe=True)) as editor,
        aiohttp.ClientSession(cookie_jar=jar(unsafe=True)) as viewer,
        running_daemon(config) as daemon,
    ):
        await console_sign_in(admin, root, daemon, "d.admin", "admin")
        await console_sign_in(editor, root, daemon, "c.presse", "editor")
        await console_sign_in(viewer, root, daemon, "leitstelle", "viewer")

        html, _ = await console_page(viewer, f"{root}{PAGE}?lang=en")
        assert 'data-testid="success-web">none yet' in html
        assert 'data-testid="failures-web">0<' in html

        # One retry on `web` (a 503, then its post), and `site` failing for good.
        web_hook.script(503)
        site_hook.fail_permanently(400, "the site refuses it")
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-CH-1", incident="E-CH"))
        await watcher.alert_in("FW-CH-1", "partially_failed")
        assert len(web_hook.posts) == 1

        html, _ = await console_page(viewer, f"{root}{PAGE}?lang=en")
        web, site = card(html, "web"), card(html, "site")
        assert 'data-testid="failures-web" class="problem">1<' in web  # the 503, retried
        assert "503" in web
        deliveries = await daemon.store.get_deliveries("FW-CH-1")
        url = next(d.url for d in deliveries if d.channel_id == "web")
        assert url
        assert f'href="{url}"' in web
        assert "30 per minute" in web
        assert 'data-testid="failures-site" class="problem">1<' in site
        assert "the site refuses it" in site
        assert 'data-testid="success-site">none yet' in site
        # Only a channel set up for drills offers the test, and only to an admin.
        assert 'data-testid="send-test-web"' not in html  # the viewer sees no button
        assert "Test messages are sent by an admin." in web
        html, token = await console_page(admin, f"{root}{PAGE}?lang=en")
        assert 'data-testid="send-test-web"' in html
        assert 'data-testid="send-test-site"' not in html

        # The viewer and the editor may not send one, not even by a direct POST.
        for who in (viewer, editor):
            _, theirs = await console_page(who, f"{root}{PAGE}?lang=en")
            async with who.post(f"{root}{PAGE}/web/test", data={"csrf": theirs}) as answer:
                assert answer.status == 403
        # Without the session's CSRF token, the admin's POST does nothing either.
        async with admin.post(f"{root}{PAGE}/web/test", data={"csrf": "forged"}) as answer:
            assert answer.status == 403
        async with admin.post(f"{root}{PAGE}/site/test?lang=en", data={"csrf": token}) as answer:
            assert answer.status == 409
            assert "not set up for drills" in await answer.text()
        async with admin.post(f"{root}{PAGE}/nope/test?lang=en", data={"csrf": token}) as answer:
            assert answer.status == 404
        assert len(web_hook.posts) == 1
        assert len(site_hook.posts) == 0

        async with admin.post(f"{root}{PAGE}/web/test?lang=en", data={"csrf": token}) as answer:
            assert answer.status == 200
            done = await answer.text()
        assert 'data-testid="notice">The test message to web arrived.' in done
        assert len(web_hook.posts) == 2
        assert len(site_hook.posts) == 0
        body = web_hook.posts[1].json
        assert body["mode"] == "drill"
        assert body["text"].startswith("ÜBUNG: ")  # the deployment speaks German
        assert "d.admin" in body["text"]
        tests = [e for e in await daemon.store.audit_tail(50) if e.event == "channel_test"]
        assert [(e.actor, e.detail["channel"], e.detail["ok"]) for e in tests] == [
            ("d.admin", "web", True)
        ]
        assert "arrived" in card(done, "web")

        # A failing test account: told on the page, counted, audited.
        web_hook.fail_permanently(401, "token expired")
        async with admin.post(f"{root}{PAGE}/web/test?lang=de", data={"csrf": token}) as answer:
            assert answer.status == 200
            failed = await answer.text()
        assert "Die Testnachricht an web ist fehlgeschlagen" in failed
        assert "token expired" in failed
        assert 'data-testid="failures-web" class="problem">2<' in card(failed, "web")
        tests = [e for e in await daemon.store.audit_tail(50) if e.event == "channel_test"]
        assert [e.detail["ok"] for e in tests] == [False, True]


async def test_a_dry_run_daemon_sends_no_test_message(tmp_path, mosquitto, hooks):
    config = deployment(tmp_path, mosquitto, hooks)
    root = yaml.safe_load(config.read_text(encoding="utf-8"))["http"]["public_url"]
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as admin,
        running_daemon(config, dry_run=True) as daemon,
    ):
        await console_sign_in(admin, root, daemon, "d.admin", "admin")
        html, token = await console_page(admin, f"{root}{PAGE}?lang=en")
        assert 'data-testid="send-test-web"' not in html
        async with admin.post(f"{root}{PAGE}/web/test?lang=en", data={"csrf": token}) as answer:
            assert answer.status == 409
            assert "dry-run mode" in await answer.text()
    assert len(hooks[0].posts) == 0
