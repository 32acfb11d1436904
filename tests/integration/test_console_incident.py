"""The console's incident screen on a real daemon: a live alert fans out to a fake
webhook; the screen shows its timeline and the text as sent; only an officer's POST with
the session's CSRF token retracts it (the correction reaches the fake); the report
downloads; params are shown as text."""

from __future__ import annotations

import json
import re

import aiohttp
import yaml
from markupsafe import escape as markup_escape

from tests.integration.harness import (
    FIRE,
    console_sign_in,
    publish,
    running_daemon,
    signed_trigger,
    webhook,
    write_deployment,
)

XSS = '<script>alert("x")</script>'
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
PAGE = "/console/incidents/FW-INC-1"
RETRACT = f"{PAGE}/alerts/FW-INC-1/retract"


async def page(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with http.get(url) as answer:
        return answer.status, await answer.text()


async def test_the_incident_screen_shows_retracts_for_officers_only_and_downloads_its_report(
    tmp_path, mosquitto, watcher, hooks
):
    hook = hooks[0]
    config = write_deployment(tmp_path, mqtt_url=mosquitto.url, channels={"web": webhook(hook.url)})
    root = yaml.safe_load(config.read_text(encoding="utf-8"))["http"]["public_url"]
    trigger = signed_trigger("FW-INC-1", params={**FIRE, "location": f"Ackerstraße 12 {XSS}"})
    viewer_jar, officer_jar = aiohttp.CookieJar(unsafe=True), aiohttp.CookieJar(unsafe=True)
    async with (
        aiohttp.ClientSession(cookie_jar=viewer_jar) as viewer,
        aiohttp.ClientSession(cookie_jar=officer_jar) as officer,
        running_daemon(config) as daemon,
    ):
        status, _ = await page(viewer, f"{root}{PAGE}")
        assert status == 200  # the sign-in page, after the redirect
        await console_sign_in(viewer, root, daemon)
        await console_sign_in(officer, root, daemon, "k.becker", "officer")
        await publish(mosquitto.url, "bc/trigger", trigger)
        await watcher.alert_in("FW-INC-1", "sent")

        _, board = await page(viewer, f"{root}/console?lang=en")
        assert f'href="{PAGE}?lang=en"' in board
        status, html = await page(viewer, f"{root}{PAGE}?lang=en")
        assert status == 200
        assert '<html lang="en">' in html
        assert 'data-testid="band">LIVE WARNING' in html
        assert html.count('data-testid="entry"') >= 3  # trigger, release, delivery, sent
        assert "trigger_received" in html
        assert "web: delivered on attempt 1" in html
        sent = hook.requests[0].json
        assert 'data-testid="text-FW-INC-1-web"' in html
        assert str(markup_escape(sent["text"])) in html
        assert XSS not in html
        assert "&lt;script&gt;" in html
        assert 'data-testid="retract-FW-INC-1"' not in html  # a viewer gets no button
        viewer_csrf = CSRF.search(html)
        assert viewer_csrf is not None

        form = {"csrf": viewer_csrf.group(1), "reason": "Fehlalarm"}
        async with viewer.post(f"{root}{RETRACT}?lang=en", data=form) as answer:
            assert answer.status == 403
            assert "it needs “officer”" in await answer.text()
        _, officer_html = await page(officer, f"{root}{PAGE}?lang=de")
        assert '<html lang="de">' in officer_html
        assert 'data-testid="retract-FW-INC-1"' in officer_html
        token = CSRF.search(officer_html)
        assert token is not None
        no_token = {"reason": "Fehlalarm"}
        async with officer.post(f"{root}{RETRACT}?lang=en", data=no_token) as answer:
            assert answer.status == 403
            assert "did not come from a console page" in await answer.text()
        bad = {"csrf": token.group(1), "reason": "   "}
        async with officer.post(f"{root}{RETRACT}", data=bad) as answer:
            assert answer.status == 400
            assert "must not be blank" in await answer.text()
        assert (await daemon.store.get_alert("FW-INC-1")).state == "sent"  # type: ignore[union-attr]
        assert await daemon.store.get_alert("FW-INC-1:retraction") is None

        good = {"csrf": token.group(1), "reason": "Fehlalarm der Brandmeldeanlage"}
        async with officer.post(f"{root}{RETRACT}?lang=en", data=good) as answer:
            assert answer.status == 200
            done = await answer.text()
        assert "Alert FW-INC-1 is retracted." in done
        assert "FW-INC-1:retraction" in done
        await watcher.alert_in("FW-INC-1:retraction", "sent")
        async with officer.post(f"{root}{RETRACT}?lang=en", data=good) as answer:
            assert answer.status == 409
            assert "Not retracted: alert FW-INC-1 is retracted" in await answer.text()
        entries = await daemon.store.audit_trail("FW-INC-1")
        requested = [e for e in entries if e.event == "retraction_requested"]
        assert [e.actor for e in requested] == ["k.becker"]

        async with viewer.get(f"{root}{PAGE}/report.html") as answer:
            assert answer.status == 200
            assert "attachment" in answer.headers["Content-Disposition"]
            assert "FW-INC-1" in await answer.text()
        async with viewer.get(f"{root}{PAGE}/report.json") as answer:
            assert answer.status == 200
            report = json.loads(await answer.text())
        missing, _ = await page(viewer, f"{root}/console/incidents/NOPE")
    kinds = [r.json["kind"] for r in hook.requests if r.status == 200]
    assert kinds[:2] == ["alert", "retraction"]
    assert report["incident"] == "FW-INC-1"
    assert missing == 404


async def test_a_drill_is_retracted_from_the_incident_screen_the_same_way(
    tmp_path, mosquitto, watcher, hooks
):
    hook = hooks[0]
    config = write_deployment(tmp_path, mqtt_url=mosquitto.url, channels={"web": webhook(hook.url)})
    root = yaml.safe_load(config.read_text(encoding="utf-8"))["http"]["public_url"]
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as officer,
        running_daemon(config) as daemon,
    ):
        await console_sign_in(officer, root, daemon, "k.becker", "officer")
        await publish(mosquitto.url, "bc/trigger", signed_trigger("UEB-INC", mode="drill"))
        await watcher.alert_in("UEB-INC", "sent")
        _, html = await page(officer, f"{root}/console/incidents/UEB-INC?lang=en")
        assert 'data-testid="band">EXERCISE' in html
        token = CSRF.search(html)
        assert token is not None
        form = {"csrf": token.group(1), "reason": "Übung beendet"}
        url = f"{root}/console/incidents/UEB-INC/alerts/UEB-INC/retract?lang=en"
        async with officer.post(url, data=form) as answer:
            assert answer.status == 200
            assert "Alert UEB-INC is retracted." in await answer.text()
        correction = await watcher.alert_in("UEB-INC:retraction", "sent")
    assert correction["mode"] == "drill"
    retractions = [r.json for r in hook.requests if r.json.get("kind") == "retraction"]
    assert len(retractions) == 1
    assert retractions[0]["alert_id"] == "UEB-INC"
    assert (
        "ÜBUNG" in retractions[0]["title"] + retractions[0]["text"]
    )  # marked like every drill text
