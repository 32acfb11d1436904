"""The city's public warning page through the real daemon, in headless Chromium at a
phone's size (390×844) and a desktop's (1280×800): live stages appearing without a
reload, an all-clear, a retraction, drills kept off the public views, an alert awaiting
its duty officer never shown; layout, headings, languages and contrast. The screenshots
are kept in docs/images/ (docs/warning-page.md shows them)."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import CONTRAST, DESKTOP, NARROW, PHONE
from tests.browser.images import IMAGES
from tests.fakes.webhook import FakeWebhook
from tests.integration.harness import (
    API_TOKEN,
    Watcher,
    publish,
    running_daemon,
    signed_trigger,
    webhook,
    write_deployment,
)

TITLE = "Warnung: Rauchentwicklung nach Großbrand in Flingern-Nord"
A = "{http://www.w3.org/2005/Atom}"
UPDATE = {"location": "Ackerstraße 12", "district": "Flingern-Nord", "smoke_direction": "Osten"}

TEXT = "h1, h2, h3, h4, p, dt, dd, a, span, strong, del, time, .long"
# Everything but the skip link sits in a landmark (header, main, footer).
OUTSIDE_LANDMARKS = """() => [...document.body.children]
  .filter((el) => !["HEADER", "MAIN", "FOOTER", "SCRIPT"].includes(el.tagName))
  .filter((el) => !el.classList.contains("skip"))
  .map((el) => el.tagName)"""
LEVELS = "() => [...document.querySelectorAll('h1,h2,h3,h4,h5,h6')].map(h => +h.tagName[1])"


def deploy(tmp_path: Path, hooks: list[FakeWebhook], mosquitto: Any, **options: Any) -> Path:
    public, _, officer = hooks
    return write_deployment(
        tmp_path,
        mqtt_url=mosquitto.url,
        channels={
            "website": webhook(public.url, template="long"),
            "cap": {"type": "cap_feed", "drill": "send"},
            "officer": webhook(officer.url, audience="internal"),
        },
        confirmation=options.get("confirmation", "none"),
        extra={
            "warning_page": {"refresh_every": "1s"},
            "cap": {"sender_name": "Feuerwehr Musterstadt"},
            "duty_officers": [{"name": "A. Schmidt", "notify": ["officer"]}],
            "confirm": {"undo_window": "0s"},
        },
    )


@pytest.fixture
async def citizen(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A phone in German at scale 1 (modest screenshots for docs/)."""
    context = await browser.new_context(
        viewport=PHONE,
        is_mobile=True,
        has_touch=True,
        locale="de-DE",
        extra_http_headers={"Accept-Language": "de-DE,de;q=0.9"},
    )
    yield context
    await context.close()


def base(config: Path) -> str:
    settings = yaml.safe_load(config.read_text(encoding="utf-8"))
    return str(settings["http"]["public_url"])


async def open_page(context: BrowserContext, url: str) -> Page:
    page = await context.new_page()
    await page.goto(url)
    await page.evaluate("window.__kept = 'no reload'")  # gone if the page reloads
    return page


async def kept(page: Page) -> None:
    assert await page.evaluate("window.__kept") == "no reload"


async def check_layout(page: Page, width: int, entries: int) -> None:
    """No sideways scrolling, one h1, an h2 per entry, no level skipped, languages named,
    every text at least 4.5:1 against its background."""
    assert await page.evaluate("document.documentElement.scrollWidth") <= width
    levels = await page.evaluate(LEVELS)
    assert levels[0] == 1
    assert levels.count(1) == 1
    assert levels.count(2) == max(entries, 1)
    assert all(b <= a + 1 for a, b in itertools.pairwise(levels))
    assert await page.locator("html").get_attribute("lang") in ("de", "en")
    blocks = page.locator("[data-testid^='text-']")
    for i in range(await blocks.count()):
        code = (await blocks.nth(i).get_attribute("data-testid") or "").removeprefix("text-")
        assert await blocks.nth(i).get_attribute("lang") == code
    await expect(page.locator("main#warnings")).to_have_count(1)
    await expect(page.locator("header")).to_have_count(1)
    await expect(page.locator("footer")).to_have_count(1)
    assert await page.evaluate(OUTSIDE_LANDMARKS) == []
    ratios = await page.evaluate(CONTRAST, TEXT)
    assert len(ratios) > 5
    low = [(what, round(ratio, 2)) for what, ratio in ratios if ratio < 4.5]
    assert low == []


async def get(url: str) -> tuple[str, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as r:
        assert r.status == 200
        return r.content_type, await r.text()


async def feed_titles(root: str) -> list[str]:
    content_type, body = await get(f"{root}/warnings/feed.atom?lang=de")
    assert content_type == "application/atom+xml"
    feed = ET.fromstring(body)
    for required in ("id", "title", "updated"):
        assert feed.findtext(f"{A}{required}")
    assert feed.findtext(f"{A}author/{A}name") == "Feuerwehr Musterstadt"
    assert feed.find(f"{A}link[@rel='alternate']") is not None
    titles = []
    for entry in feed.findall(f"{A}entry"):
        for required in ("id", "title", "updated", "summary", "content"):
            assert entry.findtext(f"{A}{required}"), required
        types = {link.get("type") for link in entry.findall(f"{A}link[@rel='alternate']")}
        assert types == {"text/html", "application/cap+xml"}
        titles.append(entry.findtext(f"{A}title") or "")
    return titles


async def banner_text(root: str) -> str:
    _, body = await get(f"{root}/warnings/banner?lang=de")
    return body


def shot(name: str) -> str:
    IMAGES.mkdir(parents=True, exist_ok=True)
    return str(IMAGES / f"warning-page-{name}.png")


async def test_a_warning_its_update_and_its_all_clear_appear_without_a_reload(
    tmp_path, mosquitto, watcher: Watcher, hooks, citizen, desktop, browser: Browser
):
    config = deploy(tmp_path, hooks, mosquitto)
    root = base(config)
    async with running_daemon(config):
        phone = await open_page(citizen, root + "/")
        wide = await open_page(desktop, root + "/warnings")
        await expect(phone.get_by_test_id("no-warnings")).to_contain_text(
            "Keine aktuellen Warnungen"
        )
        await expect(wide.get_by_test_id("no-warnings")).to_contain_text("No current warnings")
        await check_layout(phone, PHONE["width"], 0)
        assert "Keine aktuellen Warnungen" in await banner_text(root)
        assert await feed_titles(root) == []

        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-1", incident="E-1"))
        await watcher.alert_in("FW-1", "sent")
        for page in (phone, wide):
            await expect(page.get_by_test_id("entry")).to_have_count(1, timeout=15_000)
            await kept(page)
        card = phone.get_by_test_id("entry")
        await expect(card.locator("h2")).to_have_text(TITLE)
        await expect(card.locator("h2")).to_have_attribute("lang", "de")
        await expect(card.get_by_test_id("kind")).to_have_text("Warnung")
        await expect(card.get_by_test_id("stage")).to_have_text("Stufe: Warnung")
        await expect(card.get_by_test_id("area")).to_have_text("Ackerstraße 12, Flingern-Nord")
        await expect(card.get_by_test_id("text-de").get_by_test_id("instruction")).to_contain_text(
            "Fenster und Türen"
        )
        await expect(card.get_by_test_id("text-en")).to_have_attribute("lang", "en")
        await expect(card.get_by_test_id("text-en").locator("h3")).to_contain_text(
            "smoke from a major fire"
        )
        await expect(card.get_by_test_id("cap-link")).to_have_attribute(
            "href", root + "/cap/FW-1.xml"
        )
        # The desktop page is in English, the German text follows.
        await expect(wide.get_by_test_id("entry").locator("h2")).to_have_attribute("lang", "en")
        await expect(wide.get_by_test_id("kind")).to_have_text("Warning")
        await check_layout(phone, PHONE["width"], 1)
        await check_layout(wide, DESKTOP["width"], 1)
        await phone.screenshot(path=shot("live-phone"))
        await wide.screenshot(path=shot("live-desktop"))
        narrow = await browser.new_context(viewport=NARROW, locale="de-DE")
        zoomed = await open_page(narrow, root + "/warnings")
        assert await zoomed.evaluate("document.documentElement.scrollWidth") <= NARROW["width"]
        await narrow.close()
        assert await feed_titles(root) == [TITLE]
        assert TITLE in await banner_text(root)

        # The language switch, and the skip link as the first stop of the keyboard.
        await phone.keyboard.press("Tab")
        skip = phone.locator("a.skip")
        await expect(skip).to_be_focused()
        await expect(skip).to_be_in_viewport()

        update = signed_trigger("FW-2", incident="E-1", stage="update", params=UPDATE)
        await publish(mosquitto.url, "bc/trigger", update)
        await watcher.alert_in("FW-2", "sent")
        await expect(card.get_by_test_id("stage")).to_have_text(
            "Stufe: Aktualisierung", timeout=15_000
        )
        await expect(phone.get_by_test_id("entry")).to_have_count(1)  # it replaced the warning
        await expect(phone.get_by_test_id("entry")).to_have_attribute("data-alert", "FW-2")
        await expect(card.get_by_test_id("updated")).to_be_visible()
        await kept(phone)
        assert len(await feed_titles(root)) == 1

        done = signed_trigger("FW-3", incident="E-1", stage="all_clear")
        await publish(mosquitto.url, "bc/trigger", done)
        await watcher.alert_in("FW-3", "sent")
        for page in (phone, wide):
            await expect(page.get_by_test_id("entry")).to_have_attribute(
                "data-kind", "all_clear", timeout=15_000
            )
            await kept(page)
        await expect(card.get_by_test_id("kind")).to_have_text("Entwarnung")
        await expect(wide.get_by_test_id("kind")).to_have_text("All clear")
        # The all-clear's own approved texts, and no sentence of the page's.
        await expect(card.get_by_test_id("text-de").get_by_test_id("long")).not_to_be_empty()
        await expect(card).not_to_contain_text("Gefahr ist vorbei")
        await expect(wide.get_by_test_id("entry")).not_to_contain_text("danger is over")
        await check_layout(phone, PHONE["width"], 1)
        await check_layout(wide, DESKTOP["width"], 1)
        await phone.screenshot(path=shot("all-clear-phone"))
        await wide.screenshot(path=shot("all-clear-desktop"))
        assert "Entwarnung" in await banner_text(root)

        await phone.get_by_test_id("lang-en").click()
        await expect(phone.locator("html")).to_have_attribute("lang", "en")
        await expect(phone.get_by_test_id("kind")).to_have_text("All clear")


async def test_a_retraction_shows_the_correction_and_withdraws_the_warning(
    tmp_path, mosquitto, watcher: Watcher, hooks, citizen, desktop
):
    config = deploy(tmp_path, hooks, mosquitto)
    root = base(config)
    async with running_daemon(config):
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-FALSE"))
        await watcher.alert_in("FW-FALSE", "sent")
        phone = await open_page(citizen, root + "/warnings")
        wide = await open_page(desktop, root + "/warnings")
        await expect(phone.get_by_test_id("entry")).to_have_attribute("data-kind", "warning")
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{root}/api/alerts/FW-FALSE/retract",
                json={"reason": "Fehlalarm der Brandmeldeanlage"},
                headers={"Authorization": f"Bearer {API_TOKEN}"},
            ) as r,
        ):
            assert r.status == 202
        await watcher.alert_in("FW-FALSE", "retracted")
        for page in (phone, wide):
            await expect(page.get_by_test_id("entry")).to_have_attribute(
                "data-kind", "correction", timeout=15_000
            )
            await expect(page.get_by_test_id("entry")).to_have_count(1)  # the warning is gone
            await kept(page)
        withdrawn = phone.get_by_test_id("withdrawn")
        await expect(withdrawn).to_contain_text("Zurückgezogen")
        await expect(withdrawn.locator("del")).to_have_text(TITLE)
        await expect(phone.get_by_test_id("kind")).to_have_text("Korrektur")
        await expect(wide.get_by_test_id("kind")).to_have_text("Correction")
        await expect(wide.get_by_test_id("withdrawn")).to_contain_text("Withdrawn")
        # The approved retraction text speaks (with its reason); the page adds no verdict.
        await expect(phone.get_by_test_id("entry")).to_contain_text("Brandmeldeanlage")
        await expect(phone.get_by_test_id("entry")).not_to_contain_text("Sie müssen nichts tun")
        await expect(wide.get_by_test_id("entry")).not_to_contain_text("You need not do")
        await check_layout(phone, PHONE["width"], 1)
        await check_layout(wide, DESKTOP["width"], 1)
        await phone.screenshot(path=shot("retracted-phone"))
        await wide.screenshot(path=shot("retracted-desktop"))
        titles = await feed_titles(root)
        assert len(titles) == 1
        assert "Fehlalarm" in titles[0]
        assert 'data-kind="correction"' in await banner_text(root)


async def test_a_drill_is_never_on_the_public_page_feed_or_banner_only_on_its_view(
    tmp_path, mosquitto, watcher: Watcher, hooks, citizen, desktop
):
    config = deploy(tmp_path, hooks, mosquitto)
    root = base(config)
    async with running_daemon(config):
        phone = await open_page(citizen, root + "/")
        drill_view = await open_page(citizen, root + "/warnings?drill=1")
        wide = await open_page(desktop, root + "/warnings?drill=1")
        await expect(drill_view.get_by_test_id("no-warnings")).to_contain_text(
            "Keine laufende Übung"
        )
        await publish(
            mosquitto.url, "bc/trigger", signed_trigger("UEB-1", mode="drill", incident="UEB")
        )
        await watcher.alert_in("UEB-1", "sent")
        for page in (drill_view, wide):
            await expect(page.get_by_test_id("entry")).to_have_count(1, timeout=15_000)
            await kept(page)
            await expect(page.get_by_test_id("drill-banner")).to_be_visible()
            await expect(page.locator("meta[name=robots]")).to_have_attribute(
                "content", "noindex, nofollow"
            )
            await expect(page.locator("html")).to_have_class("drill")
        await expect(drill_view.get_by_test_id("drill-banner")).to_contain_text(
            "ÜBUNG – keine echte Warnung"
        )
        await expect(wide.get_by_test_id("drill-banner")).to_contain_text(
            "EXERCISE – not a real warning"
        )
        await expect(drill_view.get_by_test_id("entry").locator("h2")).to_contain_text("ÜBUNG")
        await expect(drill_view.get_by_test_id("live-link")).to_be_visible()
        await check_layout(drill_view, PHONE["width"], 1)
        await check_layout(wide, DESKTOP["width"], 1)
        await drill_view.screenshot(path=shot("drill-phone"))
        await wide.screenshot(path=shot("drill-desktop"))

        # The plain page, its feed, its JSON and the banner know nothing of it.
        await phone.reload()
        await expect(phone.get_by_test_id("no-warnings")).to_be_visible()
        await expect(phone.get_by_test_id("drill-banner")).to_have_count(0)
        assert "UEB-1" not in await phone.content()
        assert "ÜBUNG" not in await phone.content()
        assert await feed_titles(root) == []
        banner = await banner_text(root)
        assert "ÜBUNG" not in banner
        assert "Keine aktuellen Warnungen" in banner
        _, data = await get(root + "/warnings.json")
        assert '"warnings": []' in data


async def test_an_alert_awaiting_its_duty_officer_is_never_shown_until_released(
    tmp_path, mosquitto, watcher: Watcher, hooks, citizen
):
    _, _, officer = hooks
    required = {"mode": "required", "timeout": "10m", "on_timeout": "abort"}
    config = deploy(tmp_path, hooks, mosquitto, confirmation=required)
    root = base(config)
    async with running_daemon(config):
        page = await open_page(citizen, root + "/warnings")
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-WAIT"))
        await watcher.alert_in("FW-WAIT", "awaiting_confirmation")
        await officer.wait_for_requests(1)
        _, html = await get(root + "/warnings")
        assert 'data-testid="no-warnings"' in html
        assert "FW-WAIT" not in html
        assert await feed_titles(root) == []
        assert "Keine aktuellen Warnungen" in await banner_text(root)
        await expect(page.get_by_test_id("no-warnings")).to_be_visible()

        confirm = await citizen.new_page()
        await confirm.goto(officer.posts[0].json["confirm_url"])
        await confirm.get_by_test_id("release").click()
        await confirm.get_by_test_id("release-confirm").click()
        await watcher.alert_in("FW-WAIT", "sent")
        await expect(page.get_by_test_id("entry")).to_have_attribute(
            "data-alert", "FW-WAIT", timeout=15_000
        )
        await kept(page)


async def test_another_site_may_frame_the_banner_but_not_the_page(
    tmp_path, mosquitto, watcher: Watcher, hooks, desktop
):
    """The city's website (another origin) embeds the banner as docs/warning-page.md
    says; the same site cannot frame the page itself."""
    config = deploy(tmp_path, hooks, mosquitto)
    root = base(config)
    city = web.Application()

    async def home(request: web.Request) -> web.Response:
        return web.Response(
            text=CITY_SITE.replace("ROOT", root), content_type="text/html", charset="utf-8"
        )

    city.router.add_get("/", home)
    server = TestServer(city, host="127.0.0.1")
    await server.start_server()
    try:
        async with running_daemon(config):
            storm = signed_trigger("FW-STORM", scenario="severe_storm", params=STORM)
            await publish(mosquitto.url, "bc/trigger", storm)
            await watcher.alert_in("FW-STORM", "sent")
            await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-BANNER"))
            await watcher.alert_in("FW-BANNER", "sent")  # as severe, and newer
            page = await desktop.new_page()
            await page.goto(str(server.make_url("/")))
            banner = page.frame_locator("#banner")
            await expect(banner.get_by_test_id("banner-title")).to_have_text(TITLE)
            await expect(banner.get_by_test_id("banner-more")).to_have_text("+1 weitere")
            link = banner.get_by_test_id("banner")
            await expect(link).to_have_attribute("target", "_top")
            assert (await link.get_attribute("href") or "").startswith(root + "/warnings?lang=de#")
            framed = next(f for f in page.frames if f.name == "page")
            assert not framed.url.startswith(root)  # refused: Chromium shows its error page
            await page.locator("#banner").screenshot(path=str(IMAGES / "warning-banner.png"))
    finally:
        await server.close()


STORM = {"wind_kmh": 100, "from_time": "14:00", "until_time": "20:00"}
CITY_SITE = """<!doctype html><html lang="de"><head><meta charset="utf-8">
<title>Stadt Musterstadt</title></head>
<body style="font-family:sans-serif;margin:0;padding:1rem;background:#eef">
<h1>Stadt Musterstadt</h1>
<iframe id="banner" name="banner" src="ROOT/warnings/banner?lang=de"
        title="Aktuelle Warnungen der Stadt" style="width:100%;height:3.5rem;border:0"></iframe>
<iframe id="page" name="page" src="ROOT/warnings" title="framed page"
        style="width:100%;height:5rem"></iframe>
</body></html>"""
