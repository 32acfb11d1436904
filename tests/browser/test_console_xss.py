"""Params that look like markup, in Debian's Chromium on a real daemon: the board, the
incident screen, the New alert form prefilled from the incident and its preview show
them as text; no element is made from them and no script runs."""

from __future__ import annotations

import yaml
from playwright.async_api import Dialog, Page, expect

from broadcaster.accounts import add_account
from tests.browser.console import PASSWORD, signed_in
from tests.integration.harness import (
    FIRE,
    Watcher,
    publish,
    running_daemon,
    signed_trigger,
    webhook,
    write_deployment,
)

IMG = "<img src=x onerror=alert(1)>"
SCRIPT = "<script>alert(2)</script>"


async def no_markup_made(page: Page) -> None:
    assert await page.locator("img[src=x]").count() == 0
    assert await page.evaluate("document.querySelectorAll('main script').length") == 0


async def test_markup_in_params_is_shown_as_text_on_every_console_screen(
    tmp_path,
    mosquitto,
    watcher: Watcher,
    hooks,
    desktop,
):
    config = write_deployment(
        tmp_path, mqtt_url=mosquitto.url, channels={"website": webhook(hooks[0].url)}
    )
    root = yaml.safe_load(config.read_text(encoding="utf-8"))["http"]["public_url"]
    params = {**FIRE, "location": IMG, "district": SCRIPT}
    errors: list[str] = []
    dialogs: list[str] = []
    async with running_daemon(config) as daemon:
        await add_account(
            daemon.store, "c.presse", "editor", PASSWORD, officer=None, officers=(), by="t"
        )
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-XSS-1", params=params))
        await watcher.alert_in("FW-XSS-1", "sent")

        page = await signed_in(desktop, root + "/console", errors, "c.presse")

        async def refuse(d: Dialog) -> None:
            dialogs.append(d.message)
            await d.dismiss()

        page.on("dialog", refuse)
        incident = page.get_by_test_id("incident-FW-XSS-1")
        await expect(incident).to_contain_text(IMG)
        await expect(incident).to_contain_text(SCRIPT)
        await no_markup_made(page)

        await incident.get_by_test_id("incident-link").click()
        await expect(page.get_by_test_id("params")).to_contain_text(IMG)
        await expect(page.get_by_test_id("text-FW-XSS-1-website")).to_contain_text(SCRIPT)
        await no_markup_made(page)

        await page.get_by_test_id("all-clear").click()
        await expect(page.get_by_label("Location")).to_have_value(IMG)
        await expect(page.get_by_label("District")).to_have_value(SCRIPT)
        await page.get_by_label("Location").fill(IMG + " ")  # the preview renders again
        await expect(page.get_by_test_id("preview-website")).to_contain_text(SCRIPT)

        await no_markup_made(page)
    assert dialogs == []
    assert [e for e in errors if "Content Security Policy" in e] == []
