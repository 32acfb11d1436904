"""An ad-hoc update in Debian's Chromium on a real daemon: officer A writes it on a German
phone from the incident screen, the preview follows the typing and marks a text that is
too long, and A finds no Release button for it; officer B releases it on an English
desktop and the fake gets it. Layout, contrast and CSP as for the board;
UPDATE_DOCS_IMAGES=1 keeps the screenshots."""

from __future__ import annotations

import re

import yaml
from playwright.async_api import expect

from broadcaster.accounts import add_account
from tests.browser.conftest import DESKTOP, PHONE
from tests.browser.console import PASSWORD, check_layout, signed_in
from tests.browser.images import images
from tests.integration.harness import (
    Watcher,
    publish,
    running_daemon,
    signed_trigger,
    webhook,
    write_deployment,
)

A, B = "a.meier", "b.kaya"
CLOSED = "A52 zwischen Kreuz Kaarst und Büttgen gesperrt."


def shot(name: str) -> str:
    return str(images("console") / f"adhoc-{name}.png")


async def test_a_writes_an_update_on_a_phone_b_releases_it_on_a_desktop(
    tmp_path, mosquitto, watcher: Watcher, hooks, phone, desktop
):
    short, long, _ = hooks
    config = write_deployment(
        tmp_path,
        mqtt_url=mosquitto.url,
        channels={
            "social": webhook(short.url, template="short"),
            "website": webhook(long.url, template="long"),
        },
        extra={"confirm": {"undo_window": "0s"}},
    )
    root = yaml.safe_load(config.read_text(encoding="utf-8"))["http"]["public_url"]
    errors: list[str] = []
    async with running_daemon(config) as daemon:
        for name in (A, B):
            await add_account(
                daemon.store, name, "officer", PASSWORD, officer=None, officers=(), by="t"
            )
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-AHB-1", incident="E-AHB"))
        await watcher.alert_in("FW-AHB-1", "sent")

        page = await signed_in(phone, root + "/console/incidents/E-AHB", errors, A)
        await page.get_by_test_id("adhoc-link").click()
        await expect(page).to_have_url(re.compile(r"/console/incidents/E-AHB/update\?lang=de"))
        await page.get_by_label("Überschrift (Deutsch)").fill("Sperrung der A52")
        await page.get_by_label("Kurzer Text (Deutsch)").fill(CLOSED)
        await page.get_by_label("Langer Text (Deutsch)").fill(CLOSED + " Bitte ausweichen.")
        await page.get_by_label("Überschrift (Englisch)").fill("A52 closed")
        await page.get_by_label("Langer Text (Englisch)").fill("The A52 is closed.")
        await expect(page.get_by_test_id("preview-social")).to_contain_text(CLOSED)
        await expect(page.get_by_test_id("preview")).to_have_attribute("data-ready", "yes")
        await check_layout(page, PHONE["width"])
        await page.screenshot(path=shot("phone"), full_page=True)
        await page.get_by_test_id("submit").click()
        await expect(page).to_have_url(re.compile(r"/console/incidents/E-AHB\?lang=de"))
        [update] = [a for a in await daemon.store.incident_alerts("E-AHB") if a.id != "FW-AHB-1"]
        await expect(page.get_by_test_id(f"own-{update.id}")).to_be_visible()
        await expect(page.get_by_test_id(f"release-{update.id}")).to_have_count(0)
        assert len(short.posts) == 1

        form = await signed_in(desktop, root + "/console/incidents/E-AHB/update", errors, B)
        await check_layout(form, DESKTOP["width"])
        await form.screenshot(path=shot("form-desktop"), full_page=True)
        other = form
        await other.goto(root + "/console/incidents/E-AHB")
        await expect(other.get_by_test_id("proposed-by")).to_have_text(f"Proposed by {A}")
        await check_layout(other, DESKTOP["width"])
        await other.screenshot(path=shot("desktop"), full_page=True)
        await other.get_by_test_id(f"release-{update.id}").click()
        await expect(other.get_by_test_id("result")).to_contain_text(
            f"Alert {update.id} is released"
        )
        await watcher.alert_in(update.id, "sent")
    assert [p.json["text"] for p in short.posts][1:] == [CLOSED]
    assert long.posts[-1].json["text"] == CLOSED + " Bitte ausweichen."
    assert [e for e in errors if "Content Security Policy" in e] == []
