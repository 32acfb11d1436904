"""The confirm page under attack: PIN guessing (in parallel, across daemons), actions
without the PIN, forged cross-site posts, security headers, and link guessing."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from redis.asyncio import Redis

from broadcaster.daemon import Daemon
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
from tests.servers import MosquittoServer, RedisServer

PIN = "4711"
OFFICER = "B. Yilmaz"
REQUIRED = {"mode": "required", "timeout": "10m", "on_timeout": "abort"}
GERMAN = {"Accept-Language": "de"}
LOCKED = "Zu viele falsche PINs"  # TEXTS["de"]["error_locked"]
WRONG = "Falsche PIN. Verbleibende Versuche"  # TEXTS["de"]["error_wrong_pin"]
FOREIGN = "Von einer fremden Seite abgeschickt"  # TEXTS["de"]["foreign_title"]


def deploy(
    folder: Path,
    mosquitto: MosquittoServer,
    public: FakeWebhook,
    officer: FakeWebhook,
    *,
    undo: str = "30s",
    store_url: str = "sqlite:///var/broadcaster.db",
    client_id: str | None = None,
) -> Path:
    """One duty officer, with a PIN; a long timeout, so nothing expires during a test."""
    folder.mkdir(parents=True, exist_ok=True)
    return write_deployment(
        folder,
        mqtt_url=mosquitto.url,
        channels={
            "public_hook": webhook(public.url),
            "officer_sms": webhook(officer.url, audience="internal"),
        },
        confirmation=REQUIRED,
        store_url=store_url,
        client_id=client_id,
        extra={
            "duty_officers": [{"name": OFFICER, "notify": ["officer_sms"], "pin": PIN}],
            "confirm": {"undo_window": undo},
        },
    )


async def link_for(officer: FakeWebhook, alert_id: str) -> str:
    """The confirm link the officer was sent for this alert."""

    def sent() -> list[str]:
        return [
            p.json["confirm_url"]
            for p in officer.posts
            if p.json.get("kind") == "confirmation_request" and p.json["alert_id"] == alert_id
        ]

    count = 1
    while not sent():
        await officer.wait_for_requests(count)
        count = len(officer.requests) + 1
    [url] = sent()
    return url


async def trigger_and_link(
    mosquitto: MosquittoServer, watcher: Watcher, officer: FakeWebhook, alert_id: str
) -> str:
    await publish(mosquitto.url, "bc/trigger", signed_trigger(alert_id))
    await watcher.alert_in(alert_id, "awaiting_confirmation")
    return await link_for(officer, alert_id)


async def post(
    http: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str] | None = None,
    /,
    **form: str,
) -> tuple[int, str, aiohttp.ClientResponse]:
    """One form POST, without following the 303 (its headers and cookie are checked)."""
    async with http.post(
        url, data=form, headers={**GERMAN, **(headers or {})}, allow_redirects=False
    ) as r:
        return r.status, await r.text(), r


def shown(page: str) -> str:
    """The error box of a page (the page also carries every text for its script)."""
    found = re.search(r'data-testid="error">([^<]*)</p>', page)
    return found.group(1) if found else ""


def foreign(page: str) -> bool:
    return f"<h1>{FOREIGN}</h1>" in page


def events(trail: list[Any], name: str) -> int:
    return sum(1 for e in trail if e.event == name)


def undo_grant(response: aiohttp.ClientResponse) -> str:
    """The `undo` cookie a PIN-checked release sets, with the attributes it must have."""
    cookie = response.cookies["undo"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == response.url.path  # only this link's page gets it back
    return cookie.value


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # No cookie jar: every cookie a request carries is one the test put there itself.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session


# -- PIN guessing -------------------------------------------------------------------------


async def guess_at_once(http: aiohttp.ClientSession, urls: list[str]) -> list[tuple[int, str]]:
    """One wrong PIN per URL, every request in flight at the same time."""

    async def guess(url: str) -> tuple[int, str]:
        status, page, _ = await post(http, url, action="release", pin="0000")
        return status, page

    return await asyncio.gather(*(guess(url) for url in urls))


def assert_five_evaluated(answers: list[tuple[int, str]], trail: list[Any]) -> None:
    assert [status for status, _ in answers] == [403] * 50
    # The first five reservations are evaluated (all wrong); the fifth locks the link.
    assert events(trail, "wrong_pin") == 5
    assert events(trail, "link_locked") == 1
    assert sum(LOCKED in shown(page) for _, page in answers) >= 46  # 45 refused unseen + the 5th
    assert sum(WRONG in shown(page) for _, page in answers) <= 4


async def test_fifty_wrong_pins_at_once_get_five_evaluated(
    tmp_path, mosquitto, watcher: Watcher, hooks, http
):
    public, officer, _ = hooks
    config = deploy(tmp_path, mosquitto, public, officer)
    async with running_daemon(config) as daemon:
        url = await trigger_and_link(mosquitto, watcher, officer, "FW-GUESS")
        answers = await guess_at_once(http, [url] * 50)
        status, page, _ = await post(http, url, action="release", pin=PIN)  # right, too late
        alert = await daemon.store.get_alert("FW-GUESS")
        trail = await daemon.store.audit_trail("FW-GUESS")
    assert_five_evaluated(answers, trail)
    assert status == 403
    assert LOCKED in shown(page)
    assert alert is not None
    assert alert.state == "awaiting_confirmation"
    assert alert.release_at is None
    assert alert.confirmed_by is None
    assert public.requests == []


@pytest.fixture
async def flushed(redis_server: RedisServer) -> AsyncIterator[str]:
    """The session's Redis, emptied before and after: the test's daemons share it alone."""
    raw = Redis.from_url(redis_server.url)
    await raw.flushdb()
    yield redis_server.url
    await raw.flushdb()
    await raw.aclose()


async def test_fifty_wrong_pins_split_across_two_daemons_get_five_evaluated(
    tmp_path, mosquitto, watcher: Watcher, hooks, http, flushed
):
    public, officer, _ = hooks
    configs = [
        deploy(
            tmp_path / name,
            mosquitto,
            public,
            officer,
            store_url=flushed,
            client_id=f"broadcaster-{name}-{uuid.uuid4().hex[:8]}",
        )
        for name in ("one", "two")
    ]
    async with AsyncExitStack() as stack:
        daemons: list[Daemon] = [
            await stack.enter_async_context(running_daemon(c)) for c in configs
        ]
        url = await trigger_and_link(mosquitto, watcher, officer, "FW-GUESS-2")
        path = url[url.index("/confirm/") :]
        bases = [f"http://{d.settings.http.listen}" for d in daemons]
        assert bases[0] != bases[1]
        answers = await guess_at_once(http, [bases[n % 2] + path for n in range(50)])
        late = [await post(http, base + path, action="release", pin=PIN) for base in bases]
        alert = await daemons[1].store.get_alert("FW-GUESS-2")
        trail = await daemons[0].store.audit_trail("FW-GUESS-2")
    assert_five_evaluated(answers, trail)
    assert [(status, LOCKED in shown(page)) for status, page, _ in late] == [(403, True)] * 2
    assert alert is not None
    assert alert.state == "awaiting_confirmation"
    assert alert.release_at is None
    assert public.requests == []
    assert events(trail, "officer_asked") == 1  # one link, whichever daemon asked


# -- every action needs the PIN -----------------------------------------------------------


async def test_reject_and_undo_need_the_pin_and_a_right_pin_gives_its_attempt_back(
    tmp_path, mosquitto, watcher: Watcher, hooks, http
):
    public, officer, _ = hooks
    config = deploy(tmp_path, mosquitto, public, officer)
    async with running_daemon(config) as daemon:
        url = await trigger_and_link(mosquitto, watcher, officer, "FW-NEED")

        async def alert() -> Any:
            current = await daemon.store.get_alert("FW-NEED")
            assert current is not None
            return current

        for pin in ({}, {"pin": "0000"}):  # missing, then wrong: attempts 1 and 2
            status, page, _ = await post(http, url, action="reject", **pin)
            assert status == 403, page
            assert WRONG in shown(page), page
            assert (await alert()).state == "awaiting_confirmation"
        status, _, response = await post(http, url, action="release", pin=PIN)
        assert status == 303
        grant = undo_grant(response)
        assert (await alert()).release_at is not None
        for pin in ({}, {"pin": "0000"}):  # no cookie either: attempts 3 and 4
            status, page, _ = await post(http, url, action="undo", **pin)
            assert status == 403, page
            assert WRONG in shown(page), page
            assert (await alert()).release_at is not None  # still on its way
        status, _, _ = await post(http, url, {"Cookie": f"undo={grant}"}, action="undo")
        assert status == 303  # the release proved the PIN: STOP needs none
        assert (await alert()).release_at is None
        # Two more right PINs on a link with one attempt left: each gives its attempt back.
        status, _, _ = await post(http, url, action="release", pin=PIN)
        assert status == 303
        status, _, _ = await post(http, url, action="undo", pin=PIN)
        assert status == 303
        final = await alert()
        trail = await daemon.store.audit_trail("FW-NEED")
    assert final.state == "awaiting_confirmation"
    assert final.release_at is None
    [token] = final.confirm_tokens
    assert token.pin_failures == 4
    assert events(trail, "wrong_pin") == 4
    assert events(trail, "link_locked") == 0
    assert events(trail, "release_requested") == 2
    assert events(trail, "release_undone") == 2
    assert events(trail, "rejected") == 0
    assert public.requests == []


async def test_an_undo_grant_works_only_for_the_link_it_was_given_to(
    tmp_path, mosquitto, watcher: Watcher, hooks, http
):
    public, officer, _ = hooks
    config = deploy(tmp_path, mosquitto, public, officer)
    async with running_daemon(config) as daemon:
        first = await trigger_and_link(mosquitto, watcher, officer, "FW-G1")
        second = await trigger_and_link(mosquitto, watcher, officer, "FW-G2")
        grants = []
        for url in (first, second):
            status, _, response = await post(http, url, action="release", pin=PIN)
            assert status == 303
            grants.append(undo_grant(response))
        assert grants[0] != grants[1]
        status, page, _ = await post(http, second, {"Cookie": f"undo={grants[0]}"}, action="undo")
        assert status == 403
        assert WRONG in shown(page)
        still = await daemon.store.get_alert("FW-G2")
        status, _, _ = await post(http, first, {"Cookie": f"undo={grants[0]}"}, action="undo")
        undone = await daemon.store.get_alert("FW-G1")
        trail = await daemon.store.audit_trail("FW-G2")
    assert still is not None
    assert still.release_at is not None
    assert still.confirmed_by == OFFICER
    assert status == 303
    assert undone is not None
    assert undone.release_at is None
    assert events(trail, "release_undone") == 0
    assert events(trail, "wrong_pin") == 1
    assert public.requests == []


async def test_retract_from_the_page_needs_the_pin(
    tmp_path, mosquitto, watcher: Watcher, hooks, http
):
    public, officer, _ = hooks
    config = deploy(tmp_path, mosquitto, public, officer, undo="0s")
    async with running_daemon(config) as daemon:
        url = await trigger_and_link(mosquitto, watcher, officer, "FW-RETRACT")
        status, _, _ = await post(http, url, action="release", pin=PIN)
        assert status == 303
        await watcher.alert_in("FW-RETRACT", "sent")
        for pin in ({}, {"pin": "0000"}):
            status, page, _ = await post(http, url, action="retract", reason="Fehlalarm", **pin)
            assert status == 403, page
            assert WRONG in shown(page), page
        unchanged = await daemon.store.get_alert("FW-RETRACT")
        kept = await daemon.store.get_alert("FW-RETRACT:retraction")
        status, _, response = await post(http, url, action="retract", reason="Fehlalarm", pin=PIN)
        assert status == 303
        assert response.headers["Location"].endswith("?done=retracted")
        await watcher.alert_in("FW-RETRACT:retraction", "sent")
        retracted = await daemon.store.get_alert("FW-RETRACT")
        trail = await daemon.store.audit_trail("FW-RETRACT")
    assert unchanged is not None
    assert unchanged.state == "sent"
    assert kept is None
    assert retracted is not None
    assert retracted.state == "retracted"
    assert [e.actor for e in trail if e.event == "retraction_requested"] == [OFFICER]
    assert events(trail, "wrong_pin") == 2
    assert [p.json["kind"] for p in public.posts] == ["alert", "retraction", "deletion"]


# -- forged posts from another site -------------------------------------------------------


async def test_a_post_from_another_site_is_refused_and_the_page_itself_works(
    tmp_path, mosquitto, watcher: Watcher, hooks, http
):
    public, officer, _ = hooks
    config = deploy(tmp_path, mosquitto, public, officer)
    async with running_daemon(config) as daemon:
        own = daemon.settings.http.public_url
        url = await trigger_and_link(mosquitto, watcher, officer, "FW-CSRF")
        # The right PIN, even: a forged form must not get it evaluated.
        forged = [
            ({"Sec-Fetch-Site": "cross-site"}, "release"),
            ({"Sec-Fetch-Site": "same-site", "Origin": own}, "reject"),  # a sibling host
            ({"Origin": "https://evil.example"}, "release"),
            ({"Origin": "null"}, "reject"),  # a sandboxed frame or a data: page
        ]
        answers = [await post(http, url, h, action=a, pin=PIN) for h, a in forged]
        before = await daemon.store.get_alert("FW-CSRF")
        trail_before = await daemon.store.audit_trail("FW-CSRF")
        # What Chromium sends from the page itself.
        status, _, _ = await post(
            http, url, {"Sec-Fetch-Site": "same-origin", "Origin": own}, action="release", pin=PIN
        )
        after = await daemon.store.get_alert("FW-CSRF")
    assert [(s, foreign(page)) for s, page, _ in answers] == [(403, True)] * 4
    assert before is not None
    assert before.state == "awaiting_confirmation"
    assert before.release_at is None
    assert events(trail_before, "wrong_pin") == 0
    assert events(trail_before, "release_requested") + events(trail_before, "rejected") == 0
    assert status == 303
    assert after is not None
    assert after.release_at is not None
    assert after.confirmed_by == OFFICER
    assert public.requests == []


async def test_a_post_with_our_own_origin_but_no_fetch_metadata_works(
    tmp_path, mosquitto, watcher: Watcher, hooks, http
):
    """An older browser sends Origin only: ours is accepted, by public_url or by Host."""
    public, officer, _ = hooks
    config = deploy(tmp_path, mosquitto, public, officer)
    async with running_daemon(config) as daemon:
        own = daemon.settings.http.public_url
        url = await trigger_and_link(mosquitto, watcher, officer, "FW-ORIGIN")
        status, _, _ = await post(http, url, {"Origin": own.upper()}, action="reject", pin=PIN)
        alert = await daemon.store.get_alert("FW-ORIGIN")
    assert status == 303
    assert alert is not None
    assert alert.state == "rejected"


# -- headers on every answer --------------------------------------------------------------


def assert_guarded(response: aiohttp.ClientResponse, *, no_store: bool) -> None:
    h = response.headers
    where = f"{response.method} {response.url.path} -> {response.status}"
    assert h.get("X-Content-Type-Options") == "nosniff", where
    assert h.get("Referrer-Policy") == "same-origin", where
    assert h.get("X-Frame-Options") == "DENY", where
    assert "frame-ancestors 'none'" in h.get("Content-Security-Policy", ""), where
    assert h.getall("Server") == ["broadcaster"], where  # no aiohttp, no Python version
    if no_store:
        assert h.get("Cache-Control") == "no-store", where


async def test_every_answer_carries_the_security_headers(
    tmp_path, mosquitto, watcher: Watcher, hooks, http
):
    public, officer, _ = hooks
    config = deploy(tmp_path, mosquitto, public, officer)
    async with running_daemon(config) as daemon:
        base = f"http://{daemon.settings.http.listen}"
        url = await trigger_and_link(mosquitto, watcher, officer, "FW-HEADERS")
        status, _, redirect = await post(http, url, action="release", pin=PIN)
        assert status == 303
        assert_guarded(redirect, no_store=True)
        async with http.get(base + redirect.headers["Location"], headers=GERMAN) as page:
            assert page.status == 200
            assert_guarded(page, no_store=True)
            csp = page.headers["Content-Security-Policy"]
        async with http.get(f"{url}/state") as state:
            assert state.status == 200
            assert_guarded(state, no_store=True)
        async with http.get(f"{base}/confirm/FW-HEADERS.forged") as forged:
            assert forged.status == 404
            assert_guarded(forged, no_store=True)
        async with http.get(f"{base}/healthz") as health:
            assert health.status == 200
            assert_guarded(health, no_store=False)
        async with http.get(f"{base}/no/such/page") as missing:
            assert missing.status == 404
            assert_guarded(missing, no_store=False)
        async with http.get(f"{base}/api/alerts") as refused:
            assert refused.status == 401
            assert_guarded(refused, no_store=False)
        auth = {"Authorization": f"Bearer {API_TOKEN}"}
        async with http.delete(f"{base}/api/alerts", headers=auth) as wrong_method:
            assert wrong_method.status == 405
            assert_guarded(wrong_method, no_store=False)
        async with http.get(f"{base}/static/confirm.js") as script:
            assert script.status == 200
            assert_guarded(script, no_store=False)
    assert "script-src 'self'" in csp
    assert "form-action 'self'" in csp
    assert "unsafe-inline" not in csp


# -- guessing links -----------------------------------------------------------------------


async def test_guessing_links_is_slowed_to_a_stop_per_client_address(
    tmp_path, mosquitto, watcher: Watcher, hooks, http
):
    """More than 20 unknown links in 10 minutes from one address: 429 with Retry-After.

    The throttle is per client address, and every request of this test comes from
    127.0.0.1: so once the guesser is stopped, even the valid link answers 429 here (an
    officer on another address would still get the page; that part is not reachable from
    one loopback client)."""
    public, officer, _ = hooks
    config = deploy(tmp_path, mosquitto, public, officer)
    async with running_daemon(config) as daemon:
        base = f"http://{daemon.settings.http.listen}"
        url = await trigger_and_link(mosquitto, watcher, officer, "FW-THROTTLE")
        async with http.get(url) as r:
            assert r.status == 200  # opening a link that exists is no guess
        statuses = []
        for n in range(20):
            method = http.get if n % 2 else http.post
            async with method(f"{base}/confirm/FW-THROTTLE.guess{n}") as r:
                statuses.append(r.status)
        async with http.get(f"{base}/confirm/FW-THROTTLE.guess20") as r:
            over = r.status, r.headers.get("Retry-After"), await r.json()
        blocked = []
        for method, target in (
            (http.get, url),
            (http.get, f"{url}/state"),
            (http.post, url),
            (http.get, f"{base}/confirm/FW-THROTTLE.guess21/state"),
        ):
            async with method(target, data={"action": "release", "pin": PIN}) as r:
                blocked.append((r.status, r.headers.get("Retry-After")))
        async with http.get(f"{base}/healthz") as r:
            health = r.status  # only the confirm links are throttled
        alert = await daemon.store.get_alert("FW-THROTTLE")
    assert statuses == [404] * 20
    status, retry_after, body = over
    assert status == 429
    assert body["error"] == "too_many_requests"
    assert retry_after is not None
    assert int(retry_after) > 0
    assert [s for s, _ in blocked] == [429] * 4
    assert all(r is not None and int(r) > 0 for _, r in blocked)
    assert health == 200
    assert alert is not None
    assert alert.release_at is None


def behind_proxy(config: Path) -> None:
    """The daemon behind a reverse proxy on 127.0.0.1 (http.trusted_proxies)."""
    settings = yaml.safe_load(config.read_text(encoding="utf-8"))
    settings["http"]["trusted_proxies"] = ["127.0.0.1"]
    config.write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")


async def test_behind_a_trusted_proxy_the_guesser_is_stopped_and_the_officer_is_not(
    tmp_path, mosquitto, watcher: Watcher, hooks, http
):
    """All requests reach the daemon from the proxy's address; the throttle counts each
    client from X-Forwarded-For, so 21 guesses from one client stop that client only."""
    public, officer, _ = hooks
    config = deploy(tmp_path, mosquitto, public, officer)
    behind_proxy(config)
    guesser = {"X-Forwarded-For": "203.0.113.5", "X-Forwarded-Proto": "https"}
    # What the client wrote itself (left) proves nothing: the proxy's entry (right) counts.
    person = {"X-Forwarded-For": "203.0.113.5, 198.51.100.7", "X-Forwarded-Proto": "https"}
    async with running_daemon(config):
        url = await trigger_and_link(mosquitto, watcher, officer, "FW-PROXY")
        base = url.split("/confirm/")[0]
        statuses = []
        for n in range(21):
            async with http.get(f"{base}/confirm/FW-PROXY.guess{n}", headers=guesser) as r:
                statuses.append(r.status)
        async with http.get(url, headers=guesser) as r:
            guesser_now = r.status
        async with http.get(url, headers=person) as r:
            officer_now = r.status
    assert statuses == [404] * 20 + [429]
    assert guesser_now == 429
    assert officer_now == 200


async def test_without_a_trusted_proxy_forwarded_headers_change_nothing(
    tmp_path, mosquitto, watcher: Watcher, hooks, http
):
    """A guesser who writes a new X-Forwarded-For each time is still one address."""
    public, officer, _ = hooks
    config = deploy(tmp_path, mosquitto, public, officer)
    async with running_daemon(config):
        url = await trigger_and_link(mosquitto, watcher, officer, "FW-NOPROXY")
        base = url.split("/confirm/")[0]
        statuses = []
        for n in range(21):
            forged = {"X-Forwarded-For": f"203.0.113.{n + 1}"}
            async with http.get(f"{base}/confirm/FW-NOPROXY.guess{n}", headers=forged) as r:
                statuses.append(r.status)
    assert statuses == [404] * 20 + [429]
