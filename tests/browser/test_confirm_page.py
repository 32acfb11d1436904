"""The duty officer's page in real headless Chromium at a phone's size."""

from __future__ import annotations

from typing import Any

from playwright.async_api import BrowserContext, Dialog, Page, expect

from tests.browser.conftest import screenshot_path
from tests.fakes.webhook import FakeWebhook
from tests.integration.harness import (
    Watcher,
    publish,
    running_daemon,
    signed_trigger,
    webhook,
    write_deployment,
)

REQUIRED = {"mode": "required", "timeout": "10m", "on_timeout": "abort"}
SCRIPT = "<script>window.__pwned = 1; alert(1)</script>"


def deploy(
    tmp_path,
    mosquitto,
    hooks: list[FakeWebhook],
    *,
    pin: str | None = None,
    confirmation: dict[str, Any] = REQUIRED,
    undo: str = "1s",
):
    public_a, public_b, officer = hooks
    duty: dict[str, Any] = {"name": "A. Schmidt", "notify": ["officer_sms"]}
    if pin:
        duty["pin"] = pin
    return write_deployment(
        tmp_path,
        mqtt_url=mosquitto.url,
        channels={
            "mastodon_city": webhook(public_a.url, template="short"),
            "website": webhook(public_b.url, template="long"),
            "website_en": webhook(public_b.url, template="short", language="en"),
            "officer_sms": webhook(officer.url, audience="internal"),
        },
        confirmation=confirmation,
        extra={"duty_officers": [duty], "confirm": {"undo_window": undo}},
    )


async def open_link(phone: BrowserContext, officer: FakeWebhook, index: int = 0) -> Page:
    await officer.wait_for_requests(index + 1)
    page = await phone.new_page()
    dialogs: list[str] = []

    async def record(dialog: Dialog) -> None:  # a script from a trigger would open one
        dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", record)
    page.dialogs = dialogs  # type: ignore[attr-defined]
    await page.goto(officer.posts[index].json["confirm_url"])
    return page


async def test_the_officer_sees_every_text_releases_and_watches_the_deliveries(
    tmp_path, mosquitto, watcher: Watcher, hooks, phone
):
    public_a, public_b, officer = hooks
    config = deploy(tmp_path, mosquitto, hooks)
    async with running_daemon(config):
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-PAGE"))
        page = await open_link(phone, officer)
        await expect(page.get_by_test_id("live-badge")).to_be_visible()
        await expect(page.get_by_test_id("drill-banner")).to_have_count(0)
        for channel in ("mastodon_city", "website", "website_en"):
            card = page.get_by_test_id(f"message-{channel}")
            await expect(card).to_be_visible()
            await expect(page.get_by_test_id(f"length-{channel}")).to_contain_text("Zeichen")
        await expect(page.get_by_test_id("message-mastodon_city")).to_contain_text(
            "Großbrand in Flingern-Nord, Ackerstraße 12"
        )
        await expect(page.get_by_test_id("message-website_en")).to_contain_text("Major fire")
        await expect(page.get_by_test_id("param-location")).to_have_text("Ackerstraße 12")
        # Labels from the playbook, in the page's language (not "Smoke Direction").
        await expect(page.get_by_test_id("param-label-smoke_direction")).to_have_text(
            "Rauch zieht nach"
        )
        await expect(page.get_by_test_id("stage")).to_have_text("Stufe: Warnung")
        await page.screenshot(path=screenshot_path("confirm-live-decide"), full_page=True)
        await page.screenshot(path=screenshot_path("confirm-live-phone"))  # what the eye sees
        await expect(page.get_by_test_id("release-confirm")).to_be_hidden()
        await page.get_by_test_id("release").click()  # the first tap only arms
        await page.get_by_test_id("release-confirm").click()
        await expect(page.get_by_test_id("undo")).to_be_visible()
        await page.screenshot(path=screenshot_path("confirm-live-undo-window"), full_page=True)
        for channel in ("mastodon_city", "website", "website_en"):
            await expect(page.get_by_test_id(f"delivery-{channel}")).to_have_attribute(
                "data-state", "delivered", timeout=20_000
            )
        await page.screenshot(path=screenshot_path("confirm-live-delivered"), full_page=True)
        alert = await watcher.alert_in("FW-PAGE", "sent")
    assert alert["confirmed_by"] == "A. Schmidt"
    assert len(public_a.posts) == 1
    assert len(public_b.posts) == 2


async def test_the_first_tap_alone_sends_nothing(tmp_path, mosquitto, watcher, hooks, phone):
    """Without an undo window a release goes out at once: only the page's second step
    stands between the first tap and the public."""
    public_a, public_b, officer = hooks
    config = deploy(tmp_path, mosquitto, hooks, undo="0s")
    async with running_daemon(config) as daemon:
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-TAP"))
        page = await open_link(phone, officer)
        posted: list[str] = []
        page.on("request", lambda r: posted.append(r.url) if r.method == "POST" else None)
        await page.get_by_test_id("release").click()
        await expect(page.get_by_test_id("release-confirm")).to_be_visible()
        waiting = await daemon.store.get_alert("FW-TAP")
        trail = [e.event for e in await daemon.store.audit_trail("FW-TAP")]
        assert posted == []
        assert waiting is not None
        assert waiting.state == "awaiting_confirmation"
        assert waiting.release_at is None
        assert "release_requested" not in trail
        await page.get_by_test_id("release-confirm").click()  # the second tap sends at once
        alert = await watcher.alert_in("FW-TAP", "sent")
    assert len(posted) == 1
    assert alert["confirmed_by"] == "A. Schmidt"
    assert len(public_a.posts) == 1
    assert len(public_b.posts) == 2


async def test_reject_sends_nothing(tmp_path, mosquitto, watcher, hooks, phone):
    public_a, public_b, officer = hooks
    config = deploy(tmp_path, mosquitto, hooks)
    async with running_daemon(config):
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-REJECT"))
        page = await open_link(phone, officer)
        await page.get_by_test_id("reject").click()
        await page.get_by_test_id("reject-confirm").click()
        await expect(page.get_by_test_id("notice")).to_be_visible()
        await expect(page.get_by_test_id("release")).to_have_count(0)
        await watcher.alert_in("FW-REJECT", "rejected")
    assert public_a.requests == []
    assert public_b.requests == []


async def test_an_expired_link_gets_a_clear_page(tmp_path, mosquitto, watcher, hooks, phone):
    public_a, _, officer = hooks
    short = {"mode": "required", "timeout": "300ms", "on_timeout": "abort"}
    config = deploy(tmp_path, mosquitto, hooks, confirmation=short)
    async with running_daemon(config):
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-OLD"))
        await watcher.alert_in("FW-OLD", "expired")
        page = await open_link(phone, officer)
        await expect(page.get_by_test_id("message")).to_contain_text("abgelaufen")
        await expect(page.get_by_test_id("release")).to_have_count(0)
        await page.screenshot(path=screenshot_path("confirm-expired"))
    assert public_a.requests == []


async def test_a_reused_link_changes_nothing(tmp_path, mosquitto, watcher, hooks, phone, browser):
    public_a, _, officer = hooks
    config = deploy(tmp_path, mosquitto, hooks, undo="0s")
    async with running_daemon(config):
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-TWICE"))
        page = await open_link(phone, officer)
        # A second phone opened the same link before the first one released.
        other = await (await browser.new_context(locale="de-DE")).new_page()
        await other.goto(page.url)
        await page.get_by_test_id("release").click()
        await page.get_by_test_id("release-confirm").click()
        await watcher.alert_in("FW-TWICE", "sent")
        await other.get_by_test_id("reject").click()
        await other.get_by_test_id("reject-confirm").click()
        await expect(other.get_by_test_id("error")).to_contain_text("Bereits entschieden")
        await other.context.close()
        alert = watcher.alert("FW-TWICE")
    assert alert
    assert alert["state"] == "sent"
    assert len(public_a.posts) == 1


async def test_wrong_pins_are_counted_and_lock_the_link(tmp_path, mosquitto, watcher, hooks, phone):
    public_a, _, officer = hooks
    config = deploy(tmp_path, mosquitto, hooks, pin="4711", confirmation=REQUIRED)
    async with running_daemon(config):
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-PIN", mode="drill"))
        page = await open_link(phone, officer)
        await expect(page.get_by_test_id("drill-banner")).to_contain_text("ÜBUNG")
        await expect(page.get_by_test_id("release")).to_contain_text("ÜBUNG")
        for left in (4, 3, 2, 1):
            await page.get_by_test_id("pin").fill("0000")
            await page.get_by_test_id("release").click()
            await page.get_by_test_id("release-confirm").click()
            await expect(page.get_by_test_id("error")).to_contain_text(
                f"Verbleibende Versuche: {left}"
            )
            if left == 3:
                await page.screenshot(
                    path=screenshot_path("confirm-drill-wrong-pin"), full_page=True
                )
        await page.get_by_test_id("pin").fill("0000")
        await page.get_by_test_id("release").click()
        await page.get_by_test_id("release-confirm").click()
        await expect(page.get_by_test_id("locked")).to_be_visible()
        await expect(page.get_by_test_id("release")).to_have_count(0)
        alert = watcher.alert("FW-PIN")
    assert alert
    assert alert["state"] == "awaiting_confirmation"
    assert public_a.requests == []


async def test_a_param_holding_a_script_is_shown_as_text(
    tmp_path, mosquitto, watcher, hooks, phone
):
    _, _, officer = hooks
    config = deploy(tmp_path, mosquitto, hooks)
    params = {"location": SCRIPT[:60], "district": "Flingern-Nord"}
    async with running_daemon(config):
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-XSS", params=params))
        page = await open_link(phone, officer)
        await expect(page.get_by_test_id("param-location")).to_have_text(SCRIPT[:60])
        await expect(page.get_by_test_id("message-mastodon_city")).to_contain_text("<script>")
        assert await page.evaluate("window.__pwned") is None
        assert page.dialogs == []  # type: ignore[attr-defined]
        assert await page.locator("main script").count() == 0


async def test_the_page_speaks_english_to_an_english_browser(tmp_path, mosquitto, hooks, browser):
    _, _, officer = hooks
    config = deploy(tmp_path, mosquitto, hooks)
    async with running_daemon(config):
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-EN"))
        await officer.wait_for_requests(1)
        context = await browser.new_context(
            viewport={"width": 390, "height": 844},
            locale="en-GB",
            extra_http_headers={"Accept-Language": "en-GB,en;q=0.9"},
        )
        page = await context.new_page()
        await page.goto(officer.posts[0].json["confirm_url"])
        await expect(page.get_by_test_id("release")).to_have_text("Release and send")
        await expect(page.get_by_test_id("live-badge")).to_have_text("LIVE WARNING")
        await context.close()


async def release_with_pin(page: Page, pin: str) -> None:
    await page.get_by_test_id("pin").fill(pin)
    await page.get_by_test_id("release").click()
    await page.get_by_test_id("release-confirm").click()


async def test_stop_after_a_pin_checked_release_needs_no_second_pin(
    tmp_path, mosquitto, watcher, hooks, phone
):
    public_a, public_b, officer = hooks
    config = deploy(tmp_path, mosquitto, hooks, pin="4711", undo="30s")
    async with running_daemon(config) as daemon:
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-STOP"))
        page = await open_link(phone, officer)
        await release_with_pin(page, "4711")
        await expect(page.get_by_test_id("undo")).to_be_visible()
        # The STOP form has no PIN field: the release left a cookie the script cannot read.
        assert await page.get_by_test_id("pin").count() == 0
        [grant] = [c for c in await phone.cookies() if c["name"] == "undo"]
        assert grant["httpOnly"]
        assert grant["sameSite"] == "Strict"
        assert await page.evaluate("document.cookie") == ""
        await page.get_by_test_id("undo").click()
        await expect(page.get_by_test_id("notice")).to_contain_text("Freigabe zurückgenommen")
        await expect(page.get_by_test_id("release")).to_be_visible()  # back to deciding
        alert = await daemon.store.get_alert("FW-STOP")
        trail = [e.event for e in await daemon.store.audit_trail("FW-STOP")]
    assert alert is not None
    assert alert.state == "awaiting_confirmation"
    assert alert.release_at is None
    assert alert.confirmed_by is None
    assert trail.count("release_undone") == 1
    assert trail.count("wrong_pin") == 0
    assert public_a.requests == []
    assert public_b.requests == []


async def test_the_retract_form_asks_for_the_pin_and_refuses_a_wrong_one(
    tmp_path, mosquitto, watcher, hooks, phone
):
    public_a, _, officer = hooks
    config = deploy(tmp_path, mosquitto, hooks, pin="4711", undo="0s")
    async with running_daemon(config) as daemon:
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-RETRACT-PIN"))
        page = await open_link(phone, officer)
        await release_with_pin(page, "4711")
        # The answer to the release has loaded (its form is gone) before the page reloads.
        await expect(page.get_by_test_id("release")).to_have_count(0)
        await watcher.alert_in("FW-RETRACT-PIN", "sent")
        await page.reload()
        await expect(page.get_by_test_id("retract-pin")).to_be_visible()

        async def retract(pin: str) -> None:
            await page.get_by_test_id("reason").fill("Fehlalarm der Brandmeldeanlage")
            await page.get_by_test_id("retract-pin").fill(pin)
            await page.get_by_test_id("retract").click()
            await page.get_by_test_id("retract-confirm").click()

        await retract("0000")
        await expect(page.get_by_test_id("error")).to_contain_text("Verbleibende Versuche: 4")
        await page.screenshot(path=screenshot_path("confirm-retract-wrong-pin"), full_page=True)
        refused = await daemon.store.get_alert("FW-RETRACT-PIN")
        assert await daemon.store.get_alert("FW-RETRACT-PIN:retraction") is None
        await retract("4711")
        await expect(page.get_by_test_id("notice")).to_contain_text("Zurückgezogen")
        await watcher.alert_in("FW-RETRACT-PIN:retraction", "sent")
        trail = [e.event for e in await daemon.store.audit_trail("FW-RETRACT-PIN")]
    assert refused is not None
    assert refused.state == "sent"
    assert trail.count("wrong_pin") == 1
    assert trail.count("retraction_requested") == 1
    assert [p.json["kind"] for p in public_a.posts][:2] == ["alert", "retraction"]
