"""Signing in to the newsroom console in real headless Chromium, through the real daemon."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Browser, BrowserContext, expect

from broadcaster.accounts import add_account
from broadcaster.daemon import Daemon
from broadcaster.store import open_store
from tests.browser.conftest import screenshot_path
from tests.integration.harness import running_daemon, webhook, write_deployment
from tests.servers import free_port

PASSWORD = "correct horse battery"
WRONG = "not the password at all"


async def add_accounts(config: Path) -> None:
    store = open_store("sqlite:///var/broadcaster.db", config.parent)
    await store.open()
    try:
        for name, role in (("k.becker", "officer"), ("leitstelle", "viewer")):
            await add_account(store, name, role, PASSWORD, officer=None, officers=(), by="test")
    finally:
        await store.close()


@asynccontextmanager
async def console_daemon(tmp_path: Path, mosquitto, hooks) -> AsyncIterator[tuple[Daemon, str]]:
    """A running daemon with two accounts, and its base URL."""
    config = write_deployment(
        tmp_path,
        mqtt_url=mosquitto.url,
        channels={"website": webhook(hooks[0].url, template="long")},
    )
    await add_accounts(config)
    async with running_daemon(config) as daemon:
        yield daemon, daemon.settings.http.public_url


@pytest.fixture
async def desktop(browser: Browser) -> AsyncIterator[BrowserContext]:
    context = await browser.new_context(
        viewport={"width": 1280, "height": 800},
        locale="en-GB",
        extra_http_headers={"Accept-Language": "en-GB,en;q=0.9"},
    )
    yield context
    await context.close()


async def test_sign_in_wrong_password_and_lock_out_on_a_phone(
    tmp_path, mosquitto, hooks, phone: BrowserContext, capfd
) -> None:
    async with console_daemon(tmp_path, mosquitto, hooks) as (daemon, base):
        page = await phone.new_page()
        # Where a guarded console page sends a browser that is not signed in.
        await page.goto(f"{base}/console/login?next=%2Fconsole%2Fincidents%3Fnext%3Dx")
        assert await page.get_attribute("html", "lang") == "de"
        await expect(page.get_by_label("Benutzername")).to_be_focused()
        await page.screenshot(path=screenshot_path("console-signin-phone"), full_page=True)

        await page.get_by_label("Benutzername").fill("k.becker")
        await page.get_by_label("Passwort").fill(WRONG)
        await page.get_by_role("button", name="Anmelden").click()
        error = page.get_by_test_id("signin-error")
        await expect(error).to_have_text("Benutzername oder Passwort ist falsch.")
        await expect(page.get_by_label("Benutzername")).to_have_value("k.becker")
        await expect(page.get_by_label("Passwort")).to_be_focused()
        await page.screenshot(path=screenshot_path("console-signin-wrong-phone"), full_page=True)

        await page.get_by_label("Passwort").fill(PASSWORD)
        await page.get_by_role("button", name="Anmelden").click()
        await expect(page).to_have_url(f"{base}/console/incidents?next=x")
        cookies = {c["name"]: c for c in await phone.cookies()}
        session = cookies["broadcaster_console"]
        assert (session["httpOnly"], session["sameSite"], session["path"]) == (
            True,
            "Strict",
            "/console",
        )
        cookie_value = session["value"]

        # The control room's account: five wrong passwords lock it, the right one then too.
        other = await phone.new_page()
        await phone.clear_cookies()
        for _ in range(4):
            await other.goto(f"{base}/console/login")
            await other.get_by_label("Benutzername").fill("leitstelle")
            await other.get_by_label("Passwort").fill(WRONG)
            await other.get_by_role("button", name="Anmelden").click()
            await expect(other.get_by_test_id("signin-error")).to_contain_text("falsch")
        await other.get_by_label("Passwort").fill(WRONG)
        await other.get_by_role("button", name="Anmelden").click()
        locked = other.get_by_test_id("signin-error")
        await expect(locked).to_contain_text("Das Konto ist gesperrt")
        await expect(locked).to_contain_text("15 Min.")
        await other.get_by_label("Passwort").fill(PASSWORD)
        await other.get_by_role("button", name="Anmelden").click()
        await expect(other.get_by_test_id("signin-error")).to_contain_text("gesperrt")
        assert "broadcaster_console" not in {c["name"] for c in await phone.cookies()}
        await other.screenshot(path=screenshot_path("console-signin-locked-phone"), full_page=True)

        trail = await daemon.store.audit_trail(None)
        events = [(e.event, e.actor) for e in trail if e.event.startswith("login")]
        assert events == [
            ("login_failed", "k.becker"),
            ("login", "k.becker"),
            *[("login_failed", "leitstelle")] * 5,
            ("login_locked", "leitstelle"),
            ("login_refused", "leitstelle"),
        ]
    logs = "".join(capfd.readouterr())
    assert "console_login_failed" in logs  # the log was captured
    for secret in (PASSWORD, WRONG, cookie_value):
        assert secret not in logs
        assert all(secret not in repr(e.detail) for e in trail)


async def test_sign_in_in_english_on_a_desktop_never_goes_to_another_site(
    tmp_path, mosquitto, hooks, desktop: BrowserContext
) -> None:
    async with console_daemon(tmp_path, mosquitto, hooks) as (_, base):
        page = await desktop.new_page()
        await page.goto(f"{base}/console/login?next=https://evil.example/")
        assert await page.get_attribute("html", "lang") == "en"
        await page.get_by_role("link", name="Deutsch").click()
        assert await page.get_attribute("html", "lang") == "de"
        await page.get_by_role("link", name="English").click()
        await page.screenshot(path=screenshot_path("console-signin-desktop"))
        await page.get_by_label("User name").fill("k.becker")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.keyboard.press("Enter")
        await expect(page).to_have_url(f"{base}/console")  # never to another site
        assert "broadcaster_console" in {c["name"] for c in await desktop.cookies()}


async def test_a_form_posted_from_another_origin_is_refused(
    tmp_path, mosquitto, hooks, phone: BrowserContext
) -> None:
    async with console_daemon(tmp_path, mosquitto, hooks) as (daemon, base):
        page = await phone.new_page()
        await page.goto(f"{base}/console/login")
        await page.get_by_label("Benutzername").fill("k.becker")
        await page.get_by_label("Passwort").fill(PASSWORD)
        await page.get_by_role("button", name="Anmelden").click()
        await expect(page).to_have_url(f"{base}/console")

        # Another site (another port: same site, another origin) posts to the console.
        evil = web.Application()
        attack = (
            f'<!doctype html><html lang="en"><body>'
            f'<form method="post" action="{base}/console/logout">'
            '<input type="hidden" name="csrf" value="guessed">'
            '<button type="submit">win a prize</button></form></body></html>'
        )

        async def serve(request: web.Request) -> web.Response:
            return web.Response(text=attack, content_type="text/html")

        evil.router.add_get("/", serve)
        runner = web.AppRunner(evil)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            await page.goto(f"http://127.0.0.1:{port}/")
            async with page.expect_response(f"{base}/console/logout") as answer:
                await page.get_by_role("button", name="win a prize").click()
            assert (await answer.value).status == 403
            await expect(page.get_by_test_id("forbidden")).to_contain_text("abgelehnt")
        finally:
            await runner.cleanup()
        assert "broadcaster_console" in {c["name"] for c in await phone.cookies()}
        trail = await daemon.store.audit_trail(None)
        assert [e.event for e in trail if e.event.startswith("log")] == ["login"]
