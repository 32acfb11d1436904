"""Two officers approve a changed template in the console, in real headless Chromium
through the real daemon: one on a phone in German, one on a desktop in English."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.browser.images import images
from tests.integration.harness import running_daemon, webhook, write_deployment
from tests.integration.test_console_approvals import KEY, PASSWORD, add_accounts, approvers, trigger


def shot(name: str) -> str:
    return str(images("console") / f"{name}.png")


@pytest.fixture
async def desktop(browser: Browser) -> AsyncIterator[BrowserContext]:
    context = await browser.new_context(
        viewport={"width": 1280, "height": 800},
        locale="en-GB",
        extra_http_headers={"Accept-Language": "en-GB,en;q=0.9"},
    )
    yield context
    await context.close()


async def sign_in(page: Page, base: str, name: str, labels: tuple[str, str, str]) -> None:
    user, password, submit = labels
    await page.goto(f"{base}/console/templates")  # not signed in: to the sign-in page
    await page.get_by_label(user).fill(name)
    await page.get_by_label(password).fill(PASSWORD)
    await page.get_by_role("button", name=submit).click()
    await expect(page).to_have_url(f"{base}/console/templates")


def watch_errors(page: Page) -> list[str]:
    """Content Security Policy violations (an inline script or style) the page reports."""
    errors: list[str] = []
    page.on(
        "console",
        lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None,
    )
    return errors


async def test_two_officers_approve_a_changed_template_in_the_console(
    tmp_path: Path, mosquitto: Any, hooks: Any, phone: BrowserContext, desktop: BrowserContext
) -> None:
    config = write_deployment(
        tmp_path, mqtt_url=mosquitto.url, channels={"public": webhook(hooks[0].url)}
    )
    template = tmp_path / "templates" / KEY
    template.write_text("NEU: " + template.read_text(encoding="utf-8"), encoding="utf-8")
    await add_accounts(config)
    async with running_daemon(config) as daemon:
        base = daemon.settings.http.public_url
        first = await phone.new_page()
        first_errors = watch_errors(first)
        await sign_in(first, base, "k.becker", ("Benutzername", "Passwort", "Anmelden"))
        assert await first.get_attribute("html", "lang") == "de"
        await expect(first.locator("[data-pending]")).to_have_count(1)
        row = first.locator(f'[data-pending="{KEY}"]')
        await expect(row).to_have_attribute("data-state", "changed")
        await expect(row).to_contain_text("Geändert seit der Freigabe")
        await expect(row).to_contain_text("Frühere Fassung freigegeben von A. Schmidt, B. Yilmaz")
        await first.screenshot(path=shot("templates-phone"))  # the top: what waits

        await row.get_by_role("link").click()
        await expect(first.get_by_test_id("text")).to_contain_text("NEU: ")
        diff = first.get_by_test_id("diff")
        await expect(diff.locator('[data-kind="added"]')).to_have_count(1)
        await expect(diff.locator('[data-kind="added"]')).to_contain_text("NEU: ")
        await expect(diff.locator('[data-kind="removed"]')).to_have_count(1)
        await first.screenshot(path=shot("template-diff-phone"), full_page=True)
        await first.get_by_role("button", name="Diese Fassung freigeben (als k.becker)").click()
        await expect(first.get_by_test_id("notice")).to_contain_text(
            "Ihre Freigabe ist gespeichert"
        )
        await expect(first.get_by_test_id("state")).to_have_text("Wartet auf zweite Freigabe")
        await expect(first.get_by_test_id("yours")).to_be_visible()
        await expect(first.get_by_role("button", name="Diese Fassung freigeben")).to_have_count(0)
        await first.screenshot(path=shot("template-awaiting-phone"), full_page=True)
        assert approvers(config) == ["k.becker"]
        status, refused = await trigger(daemon, "FW-ONE-OFFICER")
        assert (status, refused["error"]) == (400, "template_not_approved")

        second = await desktop.new_page()
        second_errors = watch_errors(second)
        await sign_in(second, base, "m.weber", ("User name", "Password", "Sign in"))
        row = second.locator(f'[data-pending="{KEY}"]')
        await expect(row).to_have_attribute("data-state", "awaiting")
        await expect(row).to_contain_text("Approved by k.becker on")
        await second.screenshot(path=shot("templates-desktop"))
        await row.get_by_role("link").click()
        await second.get_by_role("button", name="Approve this version (as m.weber)").click()
        await expect(second.get_by_test_id("notice")).to_contain_text("may now be used live")
        await expect(second.get_by_test_id("state")).to_have_text("Approved")
        await expect(second.get_by_test_id("approvers")).to_contain_text("k.becker, m.weber")
        await second.screenshot(path=shot("template-approved-desktop"))
        assert approvers(config) == ["k.becker", "m.weber"]

        # The first officer's list now shows it approved, and a live alert may use it.
        await first.goto(f"{base}/console/templates")
        await expect(first.locator(f'[data-key="{KEY}"]')).to_have_attribute(
            "data-state", "approved"
        )
        await expect(first.get_by_test_id("none-pending")).to_be_visible()
        status, accepted = await trigger(daemon, "FW-TWO-OFFICERS")
        assert status == 202, accepted
    assert first_errors == []
    assert second_errors == []
