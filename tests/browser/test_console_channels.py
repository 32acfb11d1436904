"""The Channels screen in Debian's Chromium on a real daemon: the control room sees each
channel's health on an English desktop (a failed delivery counted, its error shown, no
test button); an admin on a German phone sends a test message to the test account and
the fake gets exactly that one. Layout, contrast and CSP as for the board;
UPDATE_DOCS_IMAGES=1 keeps the screenshots."""

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

ADMIN = "d.admin"


def shot(name: str) -> str:
    return str(images("console") / f"channels-{name}.png")


async def test_the_control_room_sees_the_health_and_an_admin_sends_a_test(
    tmp_path, mosquitto, watcher: Watcher, hooks, phone, desktop
):
    test_account, site, _ = hooks
    config = write_deployment(
        tmp_path,
        mqtt_url=mosquitto.url,
        channels={
            "test_account": webhook(test_account.url),
            "website": webhook(site.url, drill="dry_run", template="long"),
        },
        delivery={"max_attempts": 1},
    )
    root = yaml.safe_load(config.read_text(encoding="utf-8"))["http"]["public_url"]
    errors: list[str] = []
    async with running_daemon(config) as daemon:
        for name, role in ((VIEWER, "viewer"), (ADMIN, "admin")):
            await add_account(daemon.store, name, role, PASSWORD, officer=None, officers=(), by="t")
        site.fail_permanently(503, "Service Unavailable")
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-CHB-1", incident="E-CHB"))
        await watcher.alert_in("FW-CHB-1", "partially_failed")

        wide = await signed_in(desktop, root + "/console/channels", errors, VIEWER)
        await expect(wide.get_by_test_id("failures-website")).to_have_text("1")
        await expect(wide.get_by_test_id("error-website")).to_contain_text("Service Unavailable")
        await expect(wide.get_by_test_id("success-test_account")).to_contain_text(":")
        await expect(wide.get_by_test_id("send-test-test_account")).to_have_count(0)
        await check_layout(wide, DESKTOP["width"])
        await wide.screenshot(path=shot("desktop"), full_page=True)

        small = await signed_in(phone, root + "/console/channels", errors, ADMIN)
        await expect(small.locator("html")).to_have_attribute("lang", "de")
        await expect(small.get_by_test_id("send-test-website")).to_have_count(0)
        await small.get_by_test_id("send-test-test_account").click()
        await expect(small.get_by_test_id("notice")).to_have_text(
            "Die Testnachricht an test_account ist angekommen."
        )
        await expect(small.get_by_test_id("test-test_account")).to_contain_text(ADMIN)
        await check_layout(small, PHONE["width"])
        await small.screenshot(path=shot("phone"), full_page=True)
    assert len(test_account.posts) == 2  # the alert and the one test message
    assert test_account.posts[1].json["mode"] == "drill"
    assert site.posts == []
    assert [e for e in errors if "Content Security Policy" in e] == []
