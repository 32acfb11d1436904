"""What the console's Chromium tests share: signing in through the sign-in page, and the
layout checks every console page passes (no sideways scrolling, one h1, a lang, AA
contrast)."""

from __future__ import annotations

import re

from playwright.async_api import BrowserContext, Page, expect

from tests.browser.conftest import CONTRAST

TEXT = "h1, h2, h3, h4, p, dt, dd, a, span, strong, time"
VIEWER = "leitstelle"
PASSWORD = "correct horse battery"


async def signed_in(
    context: BrowserContext, url: str, violations: list[str], name: str = VIEWER
) -> Page:
    """`url` (a console page), signed in as `name` through the sign-in page it sends a
    stranger to; errors on the browser's console go to `violations`."""
    page = await context.new_page()
    page.on("console", lambda m: violations.append(m.text) if m.type == "error" else None)
    await page.goto(url)
    await expect(page).to_have_url(re.compile(r"/console/login\?next="))
    await page.locator("#name").fill(name)
    await page.locator("#password").fill(PASSWORD)
    await page.locator("button[type=submit]").click()
    await expect(page).to_have_url(url)
    await expect(page.get_by_test_id("account")).to_have_text(name)
    return page


async def check_layout(page: Page, width: int) -> None:
    assert await page.evaluate("document.documentElement.scrollWidth") <= width
    assert await page.locator("html").get_attribute("lang") in ("de", "en")
    await expect(page.locator("h1")).to_have_count(1)
    ratios = await page.evaluate(CONTRAST, TEXT)
    assert len(ratios) > 10
    low = [(what, round(ratio, 2)) for what, ratio in ratios if ratio < 4.5]
    assert low == []
