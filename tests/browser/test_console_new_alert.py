"""The New alert form and the Drills screen in Debian's Chromium on a real daemon:
officer A proposes a live alert on a German phone, typing updates the preview, and A
finds no Release button; officer B releases it on an English desktop and the fake gets
it. An editor starts a drill from the Drills screen, follows it, and the report opens
at its end. Layout, contrast and CSP as for the board; UPDATE_DOCS_IMAGES=1 keeps the
screenshots."""

from __future__ import annotations

import re

import yaml
from playwright.async_api import expect

from broadcaster.accounts import add_account
from tests.browser.conftest import DESKTOP, PHONE
from tests.browser.console import PASSWORD, check_layout, signed_in
from tests.browser.images import images
from tests.integration.harness import Watcher, running_daemon, webhook, write_deployment

A, B, EDITOR = "a.meier", "b.kaya", "c.presse"


def shot(name: str) -> str:
    return str(images("console") / f"{name}.png")


async def test_a_proposes_on_a_phone_b_releases_on_a_desktop(
    tmp_path,
    mosquitto,
    watcher: Watcher,
    hooks,
    phone,
    desktop,
):
    hook = hooks[0]
    config = write_deployment(
        tmp_path,
        mqtt_url=mosquitto.url,
        channels={"website": webhook(hook.url)},
        extra={"confirm": {"undo_window": "0s"}},
    )
    root = yaml.safe_load(config.read_text(encoding="utf-8"))["http"]["public_url"]
    errors: list[str] = []
    async with running_daemon(config) as daemon:
        for name in (A, B):
            await add_account(
                daemon.store, name, "officer", PASSWORD, officer=None, officers=(), by="t"
            )

        page = await signed_in(phone, root + "/console/alerts/new", errors, A)
        await expect(page.locator("html")).to_have_attribute("lang", "de")
        await check_layout(page, PHONE["width"])
        await page.screenshot(path=shot("new-alert-choose-phone"), full_page=True)
        await page.get_by_test_id("choose-major_fire").click()
        await expect(page.get_by_test_id("band")).to_have_text("LIVE – echte Warnung")
        await page.get_by_label("Einsatzort").fill("Ackerstraße 12")
        await page.get_by_label("Stadtteil").fill("Flingern-Nord")
        preview = page.get_by_test_id("preview-website")
        await expect(preview).to_contain_text("Ackerstraße 12")  # the preview followed the typing
        await expect(page.get_by_test_id("preview")).to_have_attribute("data-ready", "yes")
        await page.get_by_label("Radius (m)").fill("50")
        problem = page.get_by_test_id("problem-radius_m")
        await expect(problem).to_contain_text("ist 50, mindestens 100")  # in German
        await page.get_by_label("Radius (m)").fill("800")
        await expect(page.get_by_test_id("preview")).to_have_attribute("data-ready", "yes")
        await check_layout(page, PHONE["width"])
        await page.screenshot(path=shot("new-alert-phone"), full_page=True)
        await page.get_by_test_id("submit").click()
        await expect(page).to_have_url(re.compile(r"/console/incidents/CONSOLE-[0-9a-f]+\?lang=de"))
        incident = page.url.split("/console/incidents/")[1].split("?")[0]
        await expect(page.get_by_test_id(f"own-{incident}")).to_be_visible()
        await expect(page.get_by_test_id(f"release-{incident}")).to_have_count(0)
        await page.screenshot(path=shot("proposal-phone"), full_page=True)
        assert hook.requests == []

        other = await signed_in(desktop, f"{root}/console/incidents/{incident}", errors, B)
        await expect(other.get_by_test_id("proposed-by")).to_have_text(f"Proposed by {A}")
        await check_layout(other, DESKTOP["width"])
        await other.screenshot(path=shot("proposal-desktop"))
        await other.get_by_test_id(f"release-{incident}").click()
        await expect(other.get_by_test_id("result")).to_contain_text(
            f"Alert {incident} is released"
        )
        await watcher.alert_in(incident, "sent")
    assert len(hook.requests) == 1
    assert "Ackerstraße 12" in hook.requests[0].json["text"]
    assert [e for e in errors if "Content Security Policy" in e] == []


async def test_an_editor_starts_a_drill_and_its_report_opens_at_the_end(
    tmp_path,
    mosquitto,
    watcher: Watcher,
    hooks,
    phone,
    desktop,
):
    hook = hooks[0]
    config = write_deployment(
        tmp_path, mqtt_url=mosquitto.url, channels={"website": webhook(hook.url)}
    )
    root = yaml.safe_load(config.read_text(encoding="utf-8"))["http"]["public_url"]
    errors: list[str] = []
    async with running_daemon(config) as daemon:
        await add_account(
            daemon.store, EDITOR, "editor", PASSWORD, officer=None, officers=(), by="t"
        )
        page = await signed_in(desktop, root + "/console/drills", errors, EDITOR)
        await expect(page.get_by_test_id("band")).to_have_text("EXERCISE – not a real warning")
        await check_layout(page, DESKTOP["width"])
        await page.screenshot(path=shot("drills-desktop"), full_page=True)
        await page.get_by_test_id("drill-major_fire-warning").click()
        await page.get_by_label("Location").fill("Übungsplatz Nord")
        await page.get_by_label("District").fill("Rath")
        await expect(page.get_by_test_id("preview-website")).to_contain_text("ÜBUNG")
        await check_layout(page, DESKTOP["width"])
        await page.screenshot(path=shot("drill-form-desktop"), full_page=True)
        await page.get_by_role("button", name="Start the drill").click()
        # The drill page follows it, then the browser opens the report by itself.
        await expect(page).to_have_url(re.compile(r"/console/incidents/DRILL-[0-9a-f]+/report"))
        await expect(page.locator("body")).to_contain_text("Übungsplatz Nord")

        phone_page = await signed_in(phone, root + "/console/drills", errors, EDITOR)
        await check_layout(phone_page, PHONE["width"])
        await phone_page.screenshot(path=shot("drills-phone"), full_page=True)
    assert len(hook.requests) == 1
    assert hook.requests[0].json["text"].startswith("ÜBUNG")
    assert [e for e in errors if "Content Security Policy" in e] == []
