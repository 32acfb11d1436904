"""The incident screen in Debian's Chromium on a real daemon: a viewer follows the
board's link to it (desktop, English: no Retract button); a duty officer retracts the
alert from it on a phone (German) and the correction reaches the fake provider. Layout,
contrast and CSP as for the board; UPDATE_DOCS_IMAGES=1 keeps the screenshots."""

from __future__ import annotations

import yaml
from playwright.async_api import expect

from broadcaster.accounts import add_account
from tests.browser.conftest import DESKTOP, PHONE
from tests.browser.console import PASSWORD, VIEWER, check_layout, signed_in
from tests.browser.images import images
from tests.integration.harness import (
    Watcher,
    publish,
    running_daemon,
    signed_trigger,
    webhook,
    write_deployment,
)

OFFICER = "k.becker"
REASON = "Fehlalarm der Brandmeldeanlage"


def shot(name: str) -> str:
    return str(images("console") / f"incident-{name}.png")


async def test_an_officer_retracts_from_the_incident_screen(
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
        for name, role in ((VIEWER, "viewer"), (OFFICER, "officer")):
            await add_account(daemon.store, name, role, PASSWORD, officer=None, officers=(), by="t")
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-INC-2", incident="E-2"))
        await watcher.alert_in("FW-INC-2", "sent")

        # The control room follows the board's link; a viewer gets no Retract button.
        board = await signed_in(desktop, root + "/console", errors)
        await board.get_by_test_id("incident-E-2").get_by_test_id("incident-link").click()
        await expect(board).to_have_url(root + "/console/incidents/E-2?lang=en")
        await expect(board.get_by_test_id("band")).to_have_text("LIVE WARNING")
        await expect(board.get_by_test_id("entry").first).to_contain_text("trigger_received")
        await expect(board.get_by_test_id("text-FW-INC-2-website")).to_contain_text(
            hook.requests[0].json["text"][:40]
        )
        await expect(board.get_by_test_id("retract-FW-INC-2")).to_have_count(0)
        await check_layout(board, DESKTOP["width"])
        await board.screenshot(path=shot("desktop"))

        page = await signed_in(phone, root + "/console/incidents/E-2", errors, OFFICER)
        await expect(page.locator("html")).to_have_attribute("lang", "de")
        await expect(page.get_by_test_id("band")).to_have_text("LIVE – echte Warnung")
        await check_layout(page, PHONE["width"])
        await page.screenshot(path=shot("phone"), full_page=True)
        form = page.get_by_test_id("retract-FW-INC-2")
        await form.get_by_label("Grund (wird veröffentlicht)").fill(REASON)
        await form.get_by_role("button", name="Warnung FW-INC-2 zurückziehen").click()
        await expect(page.get_by_test_id("result")).to_contain_text(
            "Warnung FW-INC-2 ist zurückgezogen."
        )
        await expect(page.get_by_test_id("result")).to_contain_text("FW-INC-2:retraction")
        await watcher.alert_in("FW-INC-2:retraction", "sent")
        await page.screenshot(path=shot("retracted-phone"), full_page=True)
    retraction = [
        r.json for r in hook.requests if r.status == 200 and r.json["kind"] == "retraction"
    ]
    assert len(retraction) == 1
    assert REASON in retraction[0]["text"]
    assert [e for e in errors if "Content Security Policy" in e] == []
