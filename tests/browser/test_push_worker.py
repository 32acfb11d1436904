"""The Web Push offer and service worker in Chromium: push.js shows the button under the
page's strict CSP and registers /warnings/sw.js for the /warnings scope; a push (delivered
through the DevTools protocol, as a push service would) shows a notification whose tag is
the incident's topic, so the retraction replaces it rather than adding a second; a click
opens the warning page."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import BrowserContext, Page

from broadcaster.channels.settings import parse_channel
from broadcaster.channels.webpush import topic
from broadcaster.vapid import new_key_pair
from broadcaster.web.api import STATE, WebState
from broadcaster.web.confirm import STATIC
from broadcaster.web.guard import PAGE_CSP, secure_headers
from broadcaster.web.push import add_push_routes
from broadcaster.web.warnings import PAGES

PAGE = """<!doctype html><html lang="{{ language }}"><head><meta charset="utf-8">
<title>Warnungen</title></head><body><h1>Warnungen</h1>
{% include "push_subscribe.html" %}</body></html>"""


@pytest.fixture
async def site() -> AsyncIterator[str]:
    """The push routes and a bare page that includes the fragment, as the warning page does."""

    async def warnings(request: web.Request) -> web.Response:
        drill = request.query.get("drill") == "1"
        html = PAGES.from_string(PAGE).render(language="de", drill=drill)
        return web.Response(
            text=html,
            content_type="text/html",
            headers={"Content-Security-Policy": PAGE_CSP},
        )

    app = web.Application()
    app.on_response_prepare.append(secure_headers)
    app[STATE] = cast(WebState, SimpleNamespace(store=None))
    channel = parse_channel(
        {
            "type": "webpush",
            "vapid_private_key": new_key_pair()[0],
            "vapid_subject": "mailto:warnungen@duesseldorf.example",
        }
    )
    server = TestServer(app, host="127.0.0.1")
    app.router.add_get("/warnings", warnings)
    app.router.add_static("/static", STATIC)
    add_push_routes(app, {"push": channel}, "http://127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def opened(phone: BrowserContext, base: str) -> tuple[Page, list[str]]:
    page = await phone.new_page()
    problems: list[str] = []
    # Errors and refused requests; the browser's own /favicon.ico guess does not count.
    page.on(
        "console",
        lambda m: (
            problems.append(m.text) if m.type == "error" and "status of 404" not in m.text else None
        ),
    )
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on(
        "response",
        lambda r: (
            problems.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico")
            else None
        ),
    )
    await phone.grant_permissions(["notifications"], origin=base)
    await page.goto(f"{base}/warnings")
    # What the worker tells open pages after showing a push (warnings.js listens too).
    await page.evaluate(
        """() => {
            window.__pushed = [];
            navigator.serviceWorker.addEventListener('message', e => window.__pushed.push(e.data));
            navigator.serviceWorker.startMessages();
        }"""
    )
    # The worker has claimed the page: activated, not only registered.
    await page.wait_for_function("() => navigator.serviceWorker.controller !== null")
    return page, problems


async def deliver(page: Page, data: dict[str, Any]) -> list[dict[str, Any]]:
    """A push to the page's service worker, as from a push service (DevTools protocol),
    and the notifications shown once the worker says it has shown this one.

    Chromium drops a push sent before DevTools reports the version activated (the page
    may see `registration.active` earlier), so the push waits for that. The notifications
    are read only after the worker's message: a look-up while Chromium is still displaying
    one can lose it from the list."""
    cdp = await page.context.new_cdp_session(page)
    loop = asyncio.get_running_loop()
    found: asyncio.Future[dict[str, Any]] = loop.create_future()
    activated: set[str] = set()
    ready: asyncio.Future[None] = loop.create_future()

    def check() -> None:
        if found.done() and found.result()["registrationId"] in activated and not ready.done():
            ready.set_result(None)

    def registrations(event: dict[str, Any]) -> None:
        for registration in event["registrations"]:
            live = registration["scopeURL"].endswith("/warnings") and not registration["isDeleted"]
            if live and not found.done():
                found.set_result(registration)
        check()

    def versions(event: dict[str, Any]) -> None:
        for version in event["versions"]:
            if version["status"] == "activated":
                activated.add(version["registrationId"])
        check()

    cdp.on("ServiceWorker.workerRegistrationUpdated", registrations)
    cdp.on("ServiceWorker.workerVersionUpdated", versions)
    await cdp.send("ServiceWorker.enable")  # reports the registrations and versions there are
    async with asyncio.timeout(20):  # a safety net, not synchronisation
        await ready
    registration = found.result()
    before = await page.evaluate("() => window.__pushed.length")
    await cdp.send(
        "ServiceWorker.deliverPushMessage",
        {
            "origin": registration["scopeURL"].rsplit("/warnings", 1)[0],
            "registrationId": registration["registrationId"],
            "data": json.dumps(data),
        },
    )
    await page.wait_for_function("n => window.__pushed.length > n", arg=before)
    shown: list[dict[str, Any]] = await page.evaluate(
        """() => navigator.serviceWorker.getRegistration('/warnings')
            .then(r => r.getNotifications())
            .then(list => list.map(n => ({
                title: n.title, body: n.body, tag: n.tag, url: n.data && n.data.url})))"""
    )
    return shown


async def test_the_offer_shows_and_the_worker_takes_the_warnings_scope(
    phone: BrowserContext, site: str
) -> None:
    page, problems = await opened(phone, site)
    button = page.get_by_role("button", name="Warnungen als Push-Nachricht erhalten")
    assert await button.is_visible()
    assert await page.locator("#push-unsubscribe").is_hidden()
    scope = await page.evaluate(
        "navigator.serviceWorker.getRegistration('/warnings').then(r => r.scope)"
    )
    assert scope == f"{site}/warnings"
    assert problems == []  # no CSP violation, no script error


async def test_a_push_shows_a_notification_and_its_retraction_replaces_it(
    phone: BrowserContext, site: str
) -> None:
    page, problems = await opened(phone, site)
    tag = topic("E-2026-4711", "live")
    warning = {
        "title": "Großbrand in Flingern-Nord",
        "text": "Fenster und Türen schließen.",
        "tag": tag,
        "mode": "live",
        "kind": "alert",
        "url": f"{site}/warnings",
    }
    [shown] = await deliver(page, warning)
    assert shown == {
        "title": "Großbrand in Flingern-Nord",
        "body": "Fenster und Türen schließen.",
        "tag": tag,
        "url": f"{site}/warnings",
    }
    retraction = {**warning, "title": "Entwarnung", "kind": "retraction"}
    [replaced] = await deliver(page, retraction)  # one, not two: the same tag
    assert replaced["title"] == "Entwarnung"
    other = {**warning, "tag": topic("E-2026-4712", "live"), "url": "https://evil.example/"}
    shown_now = await deliver(page, other)
    assert len(shown_now) == 2
    # A URL elsewhere is never opened from a notification: the warning page instead.
    assert {n["url"] for n in shown_now} == {f"{site}/warnings"}
    assert await page.evaluate("() => window.__pushed.map(m => m.tag)") == [tag, tag, other["tag"]]
    assert problems == []
