"""The console's board in Debian's Chromium while a real daemon fans out to fake
providers: the incident, its LIVE band and each delivery's state appear and change
without a reload, at a phone's size (390×844, German) and a desktop's (1280×800,
English), each signed in as a viewer; no sideways scrolling (at 320 px too: 200 % zoom),
AA contrast, the keyboard's skip link and focus, no CSP violation. With
UPDATE_DOCS_IMAGES=1 the screenshots replace those in docs/console/."""

from __future__ import annotations

import re

import yaml
from playwright.async_api import Browser, BrowserContext, Page, expect

from broadcaster.accounts import add_account
from tests.browser.conftest import DESKTOP, NARROW, PHONE
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

LIVE = 15_000  # ms a live update may take here at most (the bench measures the real time)


def shot(name: str) -> str:
    return str(images("console") / f"board-{name}.png")


async def open_board(context: BrowserContext, url: str, violations: list[str]) -> Page:
    """The board, signed in as the control room, its live stream connected."""
    page = await signed_in(context, url, violations)
    # Connected: the stream's first event replaced the section the server rendered.
    await expect(page.get_by_test_id("as-of")).to_have_attribute("data-via", "stream", timeout=LIVE)
    await page.evaluate("window.__kept = 'no reload'")  # gone if the page reloads
    return page


async def kept(page: Page) -> None:
    assert await page.evaluate("window.__kept") == "no reload"


async def test_the_board_shows_a_fan_out_live_on_a_phone_and_a_desktop(
    tmp_path,
    mosquitto,
    watcher: Watcher,
    hooks,
    phone,
    desktop,
    browser: Browser,
):
    held, other, _ = hooks
    config = write_deployment(
        tmp_path,
        mqtt_url=mosquitto.url,
        channels={"website": webhook(held.url), "social": webhook(other.url)},
    )
    root = yaml.safe_load(config.read_text(encoding="utf-8"))["http"]["public_url"]
    violations: list[str] = []
    async with running_daemon(config) as daemon:
        # The control room's account, made as `broadcaster user add` makes it.
        await add_account(
            daemon.store, VIEWER, "viewer", PASSWORD, officer=None, officers=(), by="test"
        )
        small = await open_board(phone, root + "/console", violations)
        wide = await open_board(desktop, root + "/console", violations)
        await expect(small.get_by_test_id("no-incidents")).to_have_text("Keine offenen Einsätze.")
        await expect(wide.get_by_test_id("no-incidents")).to_have_text("No open incidents.")

        held.hold()
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-LIVE-1", incident="E-1"))
        website = "delivery-FW-LIVE-1-website"
        social = "delivery-FW-LIVE-1-social"
        for page in (small, wide):
            await expect(page.get_by_test_id(social)).to_have_attribute(
                "data-state", "delivered", timeout=LIVE
            )
            await expect(page.get_by_test_id(website)).to_have_attribute(
                "data-state", re.compile("pending|sending")
            )
        band = small.get_by_test_id("incident-E-1").get_by_test_id("band")
        await expect(band).to_have_text("LIVE – echte Warnung")
        await expect(wide.get_by_test_id("incident-E-1").get_by_test_id("band")).to_have_text(
            "LIVE WARNING"
        )
        await small.screenshot(path=shot("sending-phone"), full_page=True)

        held.release()
        await watcher.alert_in("FW-LIVE-1", "sent")
        for page in (small, wide):
            await expect(page.get_by_test_id(website)).to_have_attribute(
                "data-state", "delivered", timeout=LIVE
            )
            await expect(page.get_by_test_id(website)).to_contain_text("1")
            await kept(page)
        link = wide.get_by_test_id(website).locator("a")
        await expect(link).to_have_attribute("href", re.compile(r"^https://hooks\.example/"))

        # An update keeps the keyboard's place: the focused link is focused again after.
        await link.focus()
        drill = signed_trigger("UEB-1", incident="E-UEB", mode="drill")
        await publish(mosquitto.url, "bc/trigger", drill)
        await watcher.alert_in("UEB-1", "sent")
        drill_band = small.get_by_test_id("incident-E-UEB").get_by_test_id("band")
        await expect(drill_band).to_have_text("ÜBUNG – keine echte Warnung", timeout=LIVE)
        await expect(wide.get_by_test_id("incident-E-UEB").get_by_test_id("band")).to_have_text(
            "EXERCISE – not a real warning", timeout=LIVE
        )
        await expect(wide.locator("#post-FW-LIVE-1-website")).to_be_focused()
        # A refused trigger is listed at once, too.
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-FORGED", secret="wrong"))
        await watcher.error_for("FW-FORGED", "bad_signature")
        for page in (small, wide):
            refused = page.get_by_test_id("refused")
            await expect(refused.locator("li")).to_have_count(1, timeout=LIVE)
            await expect(refused).to_contain_text("FW-FORGED")
            await expect(refused).to_contain_text("bad_signature")
        await kept(small)
        await kept(wide)
        await check_layout(small, PHONE["width"])
        await check_layout(wide, DESKTOP["width"])
        await small.screenshot(path=shot("phone"), full_page=True)
        await wide.screenshot(path=shot("desktop"))

        # 200 % zoom (WCAG reflow): 640 px at 200 % is 320 px, still no sideways scrolling.
        narrow = await browser.new_context(viewport=NARROW, locale="de-DE")
        zoomed = await open_board(narrow, root + "/console", violations)
        await expect(zoomed.get_by_test_id("incident-E-1")).to_be_visible()
        assert await zoomed.evaluate("document.documentElement.scrollWidth") <= NARROW["width"]
        await narrow.close()

        # The keyboard's first stop is the skip link; the switch changes the language.
        await small.keyboard.press("Tab")
        await expect(small.locator("a.skip")).to_be_focused()
        await small.get_by_role("link", name="English").click()
        await expect(small.locator("html")).to_have_attribute("lang", "en")
        await expect(small.get_by_test_id("incident-E-1").get_by_test_id("band")).to_have_text(
            "LIVE WARNING"
        )
    assert [v for v in violations if "Content Security Policy" in v] == []
