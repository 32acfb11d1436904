"""The console's board as rendered from a real store: LIVE and EXERCISE bands, the
deliveries, manual tasks, refused triggers, alerts awaiting confirmation, which incidents
are open, and params shown as text; the SSE stream's framing, bounds and shutdown."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from broadcaster.accounts import add_account, set_disabled
from broadcaster.deployment import Deployment
from broadcaster.events import Events
from broadcaster.models import Alert, AuditEntry, ManualTask
from broadcaster.reload import load_usable
from broadcaster.store import open_store
from broadcaster.store.base import Store
from broadcaster.store.outage import StoreUnavailable
from broadcaster.web.console import board_stream
from broadcaster.web.console.auth import add_console_auth
from broadcaster.web.console.board import read_board, render_board
from broadcaster.web.console.board_routes import BOARD_STREAM, add_board_routes
from broadcaster.web.console.board_stream import QUEUE_SIZE, Client, frame
from tests.integration.harness import write_deployment
from tests.store.helpers import T0, make_alert, make_delivery

NOW = T0 + timedelta(minutes=30)
EXPIRES = T0 + timedelta(minutes=10)


def expiry(alert: Alert) -> datetime:
    return EXPIRES


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    found = open_store("sqlite:///board.db", tmp_path)
    await found.open()
    yield found
    await found.close()


async def board_html(store: Store, lang: str = "de", now: datetime = NOW) -> str:
    return render_board(await read_board(store, expiry, now), lang)


async def test_a_live_incident_has_the_red_live_band_and_a_drill_the_striped_one(store):
    await store.create_alert(
        make_alert("FW-LIVE-1", state="sending"),
        [make_delivery("FW-LIVE-1", "mastodon", state="delivered", attempts=1)],
    )
    await store.create_alert(make_alert("FW-DRILL-1", mode="drill", state="sent"), [])
    de = await board_html(store, "de")
    assert de.count('class="band live"') == 1
    assert de.count('class="band drill"') == 1
    assert "LIVE – echte Warnung" in de
    assert "ÜBUNG – keine echte Warnung" in de
    assert '<html lang="de">' in de
    en = await board_html(store, "en")
    assert "LIVE WARNING" in en
    assert "EXERCISE – not a real warning" in en
    assert '<html lang="en">' in en
    assert 'lang="de" hreflang="de">Deutsch</a>' in en  # the switch, in its own language


async def test_every_delivery_shows_state_attempts_error_and_only_a_web_link(store):
    await store.create_alert(
        make_alert("FW-1", state="partially_failed", confirmed_by="A. Schmidt"),
        [
            make_delivery(
                "FW-1", "mastodon", state="delivered", attempts=2, url="https://m.example/@fw/1"
            ),
            make_delivery(
                "FW-1", "facebook", state="failed", attempts=5, error="code 368: blocked"
            ),
            make_delivery("FW-1", "website", state="delivered", url="javascript:alert(1)"),
        ],
    )
    html = await board_html(store, "en")
    assert html.count('data-testid="delivery-FW-1-') == 3
    assert 'data-state="failed"' in html
    assert "Attempts: 5" in html
    assert "Last error: code 368: blocked" in html
    assert 'href="https://m.example/@fw/1"' in html
    assert "javascript:" not in html
    assert "partially failed" in html
    assert "A. Schmidt" in html


async def test_a_manual_task_is_shown_with_its_post(store):
    task = ManualTask(
        task="delete post https://www.instagram.com/p/abc/ by hand",
        url="https://www.instagram.com/p/abc/",
    )
    await store.create_alert(
        make_alert("FW-2", state="retracted"),
        [make_delivery("FW-2", "instagram", state="retracted", manual_task=task)],
    )
    done = ManualTask(task="delete the old post", done_at=T0, done_by="B. Meier")
    await store.create_alert(
        make_alert("FW-3", state="retracted"),
        [make_delivery("FW-3", "instagram", state="retracted", manual_task=done)],
    )
    board = await read_board(store, expiry, NOW)
    assert [(a.id, d.channel_id) for a, d in board.tasks] == [("FW-2", "instagram")]
    html = render_board(board, "de")
    assert 'data-testid="task-FW-2-instagram"' in html
    assert "delete post https://www.instagram.com/p/abc/ by hand" in html
    assert 'href="https://www.instagram.com/p/abc/"' in html
    assert "delete the old post" not in html


async def test_refused_triggers_are_listed_newest_first(store):
    for n, error in enumerate(("bad_signature", "unknown_scenario")):
        detail = {
            "trigger_id": f"FW-BAD-{n}",
            "error": error,
            "detail": f"refused number {n}",
            "received_at": (T0 + timedelta(seconds=n)).isoformat(),
            "source": "mqtt",
            "mode": "live",
        }
        await store.audit(AuditEntry(event="refused", detail=detail, at=T0 + timedelta(seconds=n)))
    html = await board_html(store, "en")
    assert html.count('class="item refusal"') == 2
    assert html.index("FW-BAD-1") < html.index("FW-BAD-0")
    assert "unknown_scenario" in html
    assert "refused number 0" in html


async def test_an_alert_awaiting_confirmation_shows_when_it_expires(store):
    await store.create_alert(make_alert("FW-4", state="awaiting_confirmation"), [])
    board = await read_board(store, expiry, NOW)
    assert [v.alert.id for v in board.awaiting] == ["FW-4"]
    html = render_board(board, "de")
    assert 'data-testid="awaiting-FW-4"' in html
    # In the trigger's zone (CET): 09:25 UTC is 10:25.
    assert "läuft ab <time" in html
    assert "23.11.2026 10:25:00 Uhr" in html


async def test_a_finished_incident_leaves_the_board_after_twelve_hours_an_open_one_never(store):
    await store.create_alert(make_alert("FW-OLD", state="sent"), [])
    await store.create_alert(make_alert("FW-STUCK", state="sending"), [])
    later = T0 + timedelta(hours=13)
    board = await read_board(store, expiry, later)
    assert [i.id for i in board.incidents] == ["FW-STUCK"]
    board = await read_board(store, expiry, T0 + timedelta(hours=11))
    assert sorted(i.id for i in board.incidents) == ["FW-OLD", "FW-STUCK"]


async def test_an_incident_lists_its_stages_oldest_first(store):
    await store.create_alert(make_alert("FW-5a", incident="FW-5", stage="warning"), [])
    later = T0 + timedelta(minutes=5)
    await store.create_alert(
        make_alert("FW-5b", incident="FW-5", stage="all_clear", created_at=later), []
    )
    board = await read_board(store, expiry, NOW)
    assert len(board.incidents) == 1
    assert [v.alert.stage for v in board.incidents[0].alerts] == ["warning", "all_clear"]


async def test_params_and_refusal_details_are_shown_as_text_never_as_markup(store):
    attack = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    await store.create_alert(
        make_alert("FW-6", params={"location": attack}, state="sending"),
        [make_delivery("FW-6", "mastodon", error=attack)],
    )
    detail = {
        "trigger_id": attack,
        "error": "invalid_params",
        "detail": attack,
        "received_at": T0.isoformat(),
    }
    await store.audit(AuditEntry(event="refused", detail=detail, at=T0))
    html = await board_html(store, "en")
    assert "<script>alert" not in html
    assert "<img src=x" not in html
    escaped = "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"
    assert html.count(escaped) == 4  # param, delivery error, refused id and detail


def test_an_event_carries_every_line_of_the_html_as_data():
    assert (
        frame("board", "<p>a</p>\n<p>b</p>") == "event: board\ndata: <p>a</p>\ndata: <p>b</p>\n\n"
    )
    assert frame("board", "") == "event: board\ndata: \n\n"


PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    folder = tmp_path_factory.mktemp("deployment")
    config = write_deployment(
        folder, mqtt_url="mqtt://127.0.0.1:1", channels={"log": {"type": "log"}}
    )
    return load_usable(config).deployment


async def served(
    store: Store, events: Events, deployment: Deployment, *, sign_in: str | None = "leitstelle"
) -> TestClient[web.Request, web.Application]:
    """The board with the console's sign-in; the client signed in as a viewer."""
    app = web.Application()
    add_console_auth(app, deployment, lambda _: store)
    add_board_routes(app, store, events, expiry)
    client = TestClient(TestServer(app))
    await client.start_server()
    if sign_in is not None:
        await add_account(store, sign_in, "viewer", PASSWORD, officer=None, officers=(), by="test")
        form = await (await client.get("/console/login")).text()
        token = re.search(r'name="csrf" value="([^"]+)"', form)
        assert token is not None
        data = {"csrf": token.group(1), "name": sign_in, "password": PASSWORD, "next": "/console"}
        answer = await client.post("/console/login", data=data, allow_redirects=False)
        assert answer.status == 303, await answer.text()
    return client


async def next_event(response: aiohttp.ClientResponse) -> str:
    """The next SSE event (a keep-alive comment included) from the response."""
    lines: list[str] = []
    content = response.content
    while True:
        line = (await content.readline()).decode()
        if line in ("\n", ""):
            return "".join(lines)
        lines.append(line)


async def test_the_stream_sends_the_board_then_each_change_and_ends_on_shutdown(store, deployment):
    events = Events()
    client = await served(store, events, deployment)
    try:
        page = await client.get("/console", headers={"Accept-Language": "en"})
        assert page.status == 200
        assert page.headers["Referrer-Policy"] == "no-referrer"
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]
        response = await client.get("/console/events?lang=en")
        assert response.headers["Content-Type"].startswith("text/event-stream")
        first = await next_event(response)
        assert first.startswith("event: board\n")
        assert "No open incidents." in first
        await store.create_alert(make_alert("FW-7", state="sending"), [])
        events.changed("FW-7", store)
        update = await next_event(response)
        assert 'data-testid="incident-FW-7"' in update
        stream = client.app[BOARD_STREAM]
        assert len(stream.clients) == 1
        await client.app.shutdown()
        assert await response.content.read() == b""  # the stream ended
        assert stream.clients == set()
    finally:
        await client.close()


async def test_a_client_that_falls_behind_is_dropped_and_the_others_still_served(store, deployment):
    events = Events()
    client = await served(store, events, deployment)
    try:
        stream = client.app[BOARD_STREAM]
        response = await client.get("/console/events?lang=de")
        await next_event(response)
        slow = next(iter(stream.clients))
        other = await client.get("/console/events?lang=en")
        await next_event(other)
        for _ in range(QUEUE_SIZE):
            assert slow.offer("event: board\ndata: x\n\n")
        assert not slow.offer("one too many")  # its connection is closed under it
        with contextlib.suppress(aiohttp.ClientPayloadError):
            while await response.content.readany():
                pass
        await store.create_alert(make_alert("FW-8", state="sending"), [])
        events.changed("FW-8", store)
        assert 'data-testid="incident-FW-8"' in await next_event(other)
    finally:
        await client.close()


def test_offer_on_a_closed_connection_does_not_raise():
    request = type("R", (), {"transport": None})()
    client = Client("de", request)
    for _ in range(QUEUE_SIZE):
        client.offer("x")
    assert client.offer("y") is False
    assert client.queue.qsize() == 1
    assert client.queue.get_nowait() is None


async def test_scenarios_stages_and_params_are_named_by_the_playbook_in_the_boards_language(
    store, deployment
):
    books = deployment.playbooks
    await store.create_alert(make_alert("FW-9", stage="all_clear", state="sending"), [])
    board = await read_board(store, expiry, NOW, playbooks=books)
    de, en = render_board(board, "de"), render_board(board, "en")
    assert '<span class="scenario">Großbrand</span>' in de
    assert "Stufe: Entwarnung" in de
    assert "Einsatzort: Flingern-Nord, Ackerstraße" in de
    assert '<span class="scenario">Major fire</span>' in en
    assert "Stage: All clear" in en
    assert "Location: Flingern-Nord, Ackerstraße" in en


async def test_a_quiet_stream_gets_keep_alive_comments(store, deployment, monkeypatch):
    monkeypatch.setattr(board_stream, "KEEPALIVE", 0.01)
    client = await served(store, Events(), deployment)
    try:
        response = await client.get("/console/events")
        assert (await next_event(response)).startswith("event: board\n")
        assert await next_event(response) == ": keep-alive\n"
        assert await next_event(response) == ": keep-alive\n"
    finally:
        await client.close()


async def test_without_a_session_the_page_goes_to_sign_in_and_the_stream_answers_401(
    store, deployment
):
    client = await served(store, Events(), deployment, sign_in=None)
    try:
        page = await client.get("/console?lang=en", allow_redirects=False)
        assert page.status == 303
        assert page.headers["Location"].startswith("/console/login?next=")
        stream = await client.get("/console/events", headers={"Accept": "text/event-stream"})
        assert stream.status == 401
        assert client.app[BOARD_STREAM].clients == set()
    finally:
        await client.close()


async def test_a_signed_in_viewer_sees_who_they_are_and_a_sign_out_form(store, deployment):
    client = await served(store, Events(), deployment)
    try:
        html = await (await client.get("/console", headers={"Accept-Language": "de"})).text()
        assert '<span class="who" data-testid="account">leitstelle</span>' in html
        assert '<form class="signout" method="post" action="/console/logout">' in html
        assert re.search(r'name="csrf" value="[^"]+"', html)
    finally:
        await client.close()


async def test_a_stream_ends_at_its_next_keep_alive_once_the_account_is_disabled(
    store, deployment, monkeypatch
):
    monkeypatch.setattr(board_stream, "KEEPALIVE", 0.01)
    client = await served(store, Events(), deployment)
    try:
        response = await client.get("/console/events")
        assert (await next_event(response)).startswith("event: board\n")
        assert await next_event(response) == ": keep-alive\n"
        await set_disabled(store, "leitstelle", True, by="test")
        rest = await response.content.read()
        assert rest.count(b"keep-alive") <= 1  # one may have been on its way
        assert client.app[BOARD_STREAM].clients == set()
        again = await client.get("/console/events", headers={"Accept": "text/event-stream"})
        assert again.status == 401
    finally:
        await client.close()


async def test_a_store_outage_ends_a_stream_cleanly(store, deployment, monkeypatch):
    client = await served(store, Events(), deployment)

    async def gone(limit: int = 50) -> list[Alert]:
        raise StoreUnavailable("the store is unreachable")

    monkeypatch.setattr(store, "list_alerts", gone)
    try:
        response = await client.get("/console/events")
        assert response.status == 200
        assert await response.content.read() == b""  # ended; the browser reconnects
        assert client.app[BOARD_STREAM].clients == set()
    finally:
        await client.close()
