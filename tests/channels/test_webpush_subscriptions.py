"""The warning page's Web Push routes (web/push.py): the key, subscribing with what a
browser sends, refusing bad keys, foreign hosts and plain http, one subscription per
endpoint, unsubscribing, the cap, and the service worker; the page fragment renders."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from broadcaster.channels.settings import ChannelConfig, parse_channel
from broadcaster.channels.webpush import subscription_id
from broadcaster.models import PushSubscription
from broadcaster.store.sqlite import SqliteStore
from broadcaster.vapid import new_key_pair
from broadcaster.web.api import STATE, WebState
from broadcaster.web.push import COUNT_FOR, PUSH, add_push_routes
from broadcaster.web.warnings import PAGES
from tests.fakes.webpush import FakePushService

PRIVATE, PUBLIC = new_key_pair()
URL = "https://warnung.duesseldorf.example"
Client = TestClient[Any, Any]


def webpush(**changes: Any) -> ChannelConfig:
    return parse_channel(
        {
            "type": "webpush",
            "vapid_private_key": PRIVATE,
            "vapid_subject": "mailto:warnungen@duesseldorf.example",
            "push_services": ["fcm.googleapis.com", "*.notify.windows.com", "127.0.0.1"],
            **changes,
        }
    )


@pytest.fixture
def channels() -> dict[str, ChannelConfig]:
    return {"push": webpush()}


@pytest.fixture
async def client(store: SqliteStore, channels: dict[str, ChannelConfig]) -> AsyncIterator[Client]:
    app = web.Application()
    app[STATE] = cast(WebState, SimpleNamespace(store=store))
    add_push_routes(app, channels, URL)
    test_client: Client = TestClient(TestServer(app))
    await test_client.start_server()
    try:
        yield test_client
    finally:
        await test_client.close()


@pytest.fixture
async def push() -> AsyncIterator[FakePushService]:
    async with FakePushService.start() as server:
        yield server


def fcm(token: str = "dQw4w9WgXcQ:APA91bH") -> str:
    return f"https://fcm.googleapis.com/fcm/send/{token}"


async def test_the_key_is_the_channels_application_server_key(client: Client) -> None:
    answer = await client.get("/warnings/push/key")
    assert answer.status == 200
    assert await answer.json() == {"key": PUBLIC}


async def test_without_a_webpush_channel_there_is_no_key_and_no_subscribing(
    client: Client, channels: dict[str, ChannelConfig], push: FakePushService
) -> None:
    channels.clear()  # a reload took the channel away
    assert (await client.get("/warnings/push/key")).status == 404
    answer = await client.post("/warnings/subscriptions", json=push.subscribe().json())
    assert answer.status == 404
    assert (await answer.json())["error"] == "no_push"


async def test_a_browsers_subscription_is_kept_once_per_endpoint(
    client: Client, store: SqliteStore, push: FakePushService
) -> None:
    browser = push.subscribe()
    body = {**browser.json(), "language": "en", "drill": True}
    first = await client.post("/warnings/subscriptions", json=body)
    again = await client.post("/warnings/subscriptions", json=body)
    assert (first.status, again.status) == (201, 201)
    [kept] = await store.subscriptions()
    assert kept.id == subscription_id(browser.endpoint) == (await first.json())["id"]
    assert (kept.endpoint, kept.p256dh, kept.auth) == (
        browser.endpoint,
        browser.p256dh,
        browser.auth,
    )
    assert (kept.language, kept.drill) == ("en", True)


async def test_a_subscription_without_language_or_drill_is_a_live_one(
    client: Client, store: SqliteStore, push: FakePushService
) -> None:
    answer = await client.post("/warnings/subscriptions", json=push.subscribe().json())
    assert answer.status == 201
    [kept] = await store.subscriptions()
    assert (kept.language, kept.drill) == (None, False)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"endpoint": "http://fcm.googleapis.com/fcm/send/x"}, "https://"),
        ({"endpoint": "https://evil.example/push/x"}, "not a push service"),
        ({"endpoint": "https://user:pw@fcm.googleapis.com/x"}, "with a host"),
        ({"endpoint": "https://fcm.googleapis.com/" + "x" * 1100}, "at most 1024"),
        ({"endpoint": None}, "endpoint is missing"),
        ({"keys": {"p256dh": None}}, "p256dh"),
        ({"keys": {"p256dh": _b64(b"\x04" + b"\x01" * 64), "auth": _b64(b"a" * 16)}}, "p256dh"),
        ({"keys": {"p256dh": "BAAA", "auth": _b64(b"a" * 16)}}, "p256dh"),
        ({"keys": {"auth": _b64(b"a" * 15)}}, "keys.auth"),
        ({"keys": {"auth": "not base64!"}}, "keys.auth"),
        ({"drill": "yes"}, "drill"),
        ({"language": "<script>"}, "language"),
    ],
)
async def test_a_bad_subscription_is_refused_with_what_is_wrong(
    client: Client,
    store: SqliteStore,
    push: FakePushService,
    change: dict[str, Any],
    detail: str,
) -> None:
    body = {**push.subscribe().json(), "endpoint": fcm()}
    if "keys" in change:
        body["keys"] = {**body["keys"], **change.pop("keys")}
    body.update(change)
    answer = await client.post("/warnings/subscriptions", json=body)
    assert answer.status == 400
    assert detail in (await answer.json())["detail"]
    assert await store.subscriptions() == []


async def test_http_only_to_a_loopback_push_service(
    client: Client, store: SqliteStore, push: FakePushService
) -> None:
    # The fake listens on http://127.0.0.1, which this channel lists: for trials and tests.
    assert (
        await client.post("/warnings/subscriptions", json=push.subscribe().json())
    ).status == 201
    answer = await client.post(
        "/warnings/subscriptions",
        json={**push.subscribe().json(), "endpoint": "http://10.0.0.1/push/x"},
    )
    assert answer.status == 400


async def test_a_wildcard_push_service_takes_its_subdomains(
    client: Client, push: FakePushService
) -> None:
    endpoint = "https://wns2-par02p.notify.windows.com/w/?token=BQYAAA"
    answer = await client.post(
        "/warnings/subscriptions", json={**push.subscribe().json(), "endpoint": endpoint}
    )
    assert answer.status == 201


async def test_not_json_too_large_or_from_another_site_is_refused(
    client: Client, store: SqliteStore, push: FakePushService
) -> None:
    body = push.subscribe().json()
    assert (await client.post("/warnings/subscriptions", data="endpoint=x")).status == 415
    bad = await client.post(
        "/warnings/subscriptions", data=b"{", headers={"Content-Type": "application/json"}
    )
    assert bad.status == 400
    big = {**body, "padding": "x" * 5000}
    assert (await client.post("/warnings/subscriptions", json=big)).status == 413
    foreign = await client.post(
        "/warnings/subscriptions", json=body, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status == 403
    own = await client.post("/warnings/subscriptions", json=body, headers={"Origin": URL})
    assert own.status == 201
    assert len(await store.subscriptions()) == 1


async def test_unsubscribing_by_endpoint(
    client: Client, store: SqliteStore, push: FakePushService
) -> None:
    browser = push.subscribe()
    await client.post("/warnings/subscriptions", json=browser.json())
    gone = await client.delete("/warnings/subscriptions", json={"endpoint": browser.endpoint})
    assert gone.status == 204
    assert await store.subscriptions() == []
    again = await client.delete("/warnings/subscriptions", json={"endpoint": browser.endpoint})
    assert again.status == 404


async def test_the_cap_on_subscriptions_refuses_new_ones_but_not_a_renewal(
    client: Client,
    store: SqliteStore,
    channels: dict[str, ChannelConfig],
    push: FakePushService,
) -> None:
    channels["push"] = webpush(max_subscriptions=3)
    browsers = [push.subscribe() for _ in range(4)]
    for browser in browsers[:3]:
        assert (await client.post("/warnings/subscriptions", json=browser.json())).status == 201
    full = await client.post("/warnings/subscriptions", json=browsers[3].json())
    assert full.status == 503
    assert "3 reached" in (await full.json())["detail"]
    renewal = await client.post("/warnings/subscriptions", json=browsers[0].json())
    assert renewal.status == 201
    assert len(await store.subscriptions()) == 3


async def test_at_the_cap_the_store_is_read_once_per_count_for(
    client: Client,
    store: SqliteStore,
    channels: dict[str, ChannelConfig],
    push: FakePushService,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    channels["push"] = webpush(max_subscriptions=3)
    routes = client.app[PUSH]
    routes.changes.clock = lambda: 1000.0  # no refill: 50 attempts in all
    reads = 0
    whole_table = store.subscriptions

    async def counted() -> list[PushSubscription]:
        nonlocal reads
        reads += 1
        return await whole_table()

    monkeypatch.setattr(store, "subscriptions", counted)
    browsers = [push.subscribe() for _ in range(3)]
    for browser in browsers:
        assert (await client.post("/warnings/subscriptions", json=browser.json())).status == 201
    assert reads == 1  # the first count; then kept in step
    flood = [
        (await client.post("/warnings/subscriptions", json=push.subscribe().json())).status
        for _ in range(30)
    ]
    assert flood == [503] * 30
    renewal = await client.post("/warnings/subscriptions", json=browsers[1].json())
    assert renewal.status == 201
    assert reads == 2  # once on reaching the cap, not per attempt
    routes.counted_at -= COUNT_FOR + 1  # COUNT_FOR has passed
    for _ in range(5):
        answer = await client.post("/warnings/subscriptions", json=push.subscribe().json())
        assert answer.status == 503
    assert reads == 3
    assert len(await whole_table()) == 3


async def test_subscribing_is_rate_limited_for_everyone_together(
    client: Client, push: FakePushService
) -> None:
    client.app[PUSH].changes.clock = lambda: 1000.0  # no refill while the test runs
    statuses = []
    for _ in range(60):
        answer = await client.post("/warnings/subscriptions", json=push.subscribe().json())
        statuses.append(answer.status)
    assert statuses == [201] * 50 + [429] * 10


async def test_the_service_worker_is_served_for_the_warnings_scope(client: Client) -> None:
    answer = await client.get("/warnings/sw.js")
    assert answer.status == 200
    assert answer.content_type == "text/javascript"
    assert answer.headers["Service-Worker-Allowed"] == "/warnings"
    script = await answer.text()
    assert "showNotification" in script
    assert "tag: data.tag" in script
    assert "openWindow" in script


@pytest.mark.parametrize(
    ("language", "drill", "button"),
    [
        ("de", False, "Warnungen als Push-Nachricht erhalten"),
        ("en", True, "Get warnings as push notifications"),
        ("fr", False, "Warnungen als Push-Nachricht erhalten"),
    ],
)
def test_the_page_fragment_renders_in_each_language(
    language: str, drill: bool, button: str
) -> None:
    html = PAGES.from_string('{% include "push_subscribe.html" %}').render(
        language=language, drill=drill
    )
    assert button in html
    assert f'data-drill="{"true" if drill else "false"}"' in html
    assert '<script src="/static/push.js" defer></script>' in html
    assert "<script>" not in html  # no inline script (the page's CSP)
