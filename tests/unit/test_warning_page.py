"""What the public warning page shows (broadcaster/warnings.py), its answers over HTTP
against a real SQLite store (broadcaster/web/warnings.py), and `page_url` in templates."""

from __future__ import annotations

import asyncio
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from broadcaster.cap import cancel_identifier
from broadcaster.config import Settings
from broadcaster.deployment import Deployment
from broadcaster.messages import AlertContext
from broadcaster.models import Alert, Delivery, Texts
from broadcaster.playbooks import RESERVED_NAMES, Playbook, validate_params
from broadcaster.reload import load_usable
from broadcaster.retraction import correction_id
from broadcaster.store.sqlite import SqliteStore
from broadcaster.warnings import (
    Entry,
    current_entries,
    page_url,
    public_settled,
    snapshot,
    went_public,
)
from broadcaster.web.api import WebState, make_app
from broadcaster.web.warnings import (
    WarningPage,
    add_warning_routes,
    prefers_json,
    render_page,
)
from tests.integration.harness import write_deployment
from tests.store.helpers import make_alert, make_delivery

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
EXPIRES = timedelta(hours=6)
A = "{http://www.w3.org/2005/Atom}"


def playbook() -> Playbook:
    return Playbook.model_validate(
        {
            "id": "major_fire",
            "name": {"de": "Großbrand", "en": "Major fire"},
            "languages": ["de", "en"],
            "params": {"location": {"type": "string", "required": True, "max_length": 60}},
            "cap": {
                "category": "Fire",
                "urgency": "Immediate",
                "severity": "Severe",
                "certainty": "Observed",
            },
            "stages": {
                "warning": {"msg_type": "Alert", "label": {"de": "Warnung", "en": "Warning"}},
                "update": {"msg_type": "Update"},
                "all_clear": {
                    "msg_type": "Update",
                    "severity": "Minor",
                    "response_type": "AllClear",
                    "label": {"de": "Entwarnung", "en": "All clear"},
                },
            },
        }
    )


PLAYBOOKS = {"major_fire": playbook()}


def texts(title: str) -> dict[str, Texts]:
    return {
        "de": Texts(title=title, short=f"{title} kurz", long=f"{title} lang", instruction="Tun."),
        "en": Texts(title=f"{title} (en)", short="short", long="long", instruction="Do."),
    }


def alert(alert_id: str, minutes_ago: float, **fields: Any) -> Alert:
    at = NOW - timedelta(minutes=minutes_ago)
    data: dict[str, Any] = {
        "state": "sent",
        "created_at": at,
        "updated_at": at,
        "released_at": at,
        "texts": texts(alert_id),
    }
    data.update(fields)
    return make_alert(alert_id, **data)


def shown(alerts: list[Alert], mode: str = "live", **windows: timedelta) -> list[Entry]:
    return current_entries(
        alerts,
        PLAYBOOKS,
        mode="drill" if mode == "drill" else "live",
        now=NOW,
        expires_after=windows.get("expires_after", EXPIRES),
        all_clear_for=windows.get("all_clear_for", timedelta(hours=2)),
        correction_for=windows.get("correction_for", timedelta(hours=6)),
    )


# -- which alerts ------------------------------------------------------------------------
def test_every_released_state_is_shown_and_nothing_unreleased() -> None:
    alerts = [
        alert(f"R-{state}", 10, state=state)
        for state in ("sending", "sent", "partially_failed", "failed")
    ]
    alerts += [
        alert(f"U-{state}", 5, state=state, released_at=None)
        for state in ("received", "awaiting_confirmation", "rejected", "expired", "retracted")
    ]
    entries = shown(alerts)
    assert sorted(e.id for e in entries) == [
        "R-failed",
        "R-partially_failed",
        "R-sending",
        "R-sent",
    ]
    assert all(e.kind == "warning" for e in entries)


def test_drills_only_in_the_drill_view_and_live_never_there() -> None:
    alerts = [alert("LIVE", 10), alert("DRILL", 5, mode="drill")]
    assert [e.id for e in shown(alerts)] == ["LIVE"]
    assert [e.id for e in shown(alerts, "drill")] == ["DRILL"]
    assert [e.mode for e in shown(alerts, "drill")] == ["drill"]


def test_an_update_replaces_the_warning_of_its_incident() -> None:
    alerts = [
        alert("W", 30, incident="INC"),
        alert("U", 10, incident="INC", stage="update"),
        alert("OTHER", 20),
    ]
    entries = shown(alerts)
    assert [e.id for e in entries] == ["U", "OTHER"]  # the same severity: newest first
    update = entries[0]
    assert update.issued == NOW - timedelta(minutes=30)  # the incident's first message
    assert update.updated == NOW - timedelta(minutes=10)
    assert update.labels["de"]["stage"] == "update"  # no label: the stage's id
    assert update.labels["de"]["scenario"] == "Großbrand"


def test_an_all_clear_is_shown_for_a_while_then_drops_off() -> None:
    alerts = [alert("W", 100, incident="INC"), alert("AC", 90, incident="INC", stage="all_clear")]
    entries = shown(alerts)
    assert [(e.id, e.kind, e.severity) for e in entries] == [("AC", "all_clear", "Minor")]
    assert shown(alerts, all_clear_for=timedelta(minutes=89)) == []


def test_a_warning_expires_like_in_the_cap_feed() -> None:
    assert shown([alert("OLD", 6 * 60 + 1)]) == []
    assert [e.id for e in shown([alert("OLD", 6 * 60 - 1)])] == ["OLD"]


def test_a_retraction_shows_its_correction_and_withdraws_the_warning() -> None:
    original = alert("W", 30, state="retracted", retraction_reason="Irrtum")
    stored_correction = alert(
        correction_id("W"),
        20,
        msg_type="Cancel",
        retracts="W",
        texts=texts("Korrektur"),
    )
    for alerts in ([original, stored_correction], [original]):  # stored, or built by cap.py
        entries = shown(alerts)
        assert [e.kind for e in entries] == ["correction"]
        correction = entries[0]
        assert correction.id == cancel_identifier("W")
        assert correction.withdrawn is not None
        assert correction.withdrawn.id == "W"
        assert correction.withdrawn.titles["de"] == "W"
    assert shown([original, stored_correction], correction_for=timedelta(minutes=19)) == []


def test_a_retracted_update_brings_back_the_warning_it_had_replaced() -> None:
    """As the CAP feed: the retracted stage is withdrawn, the incident's earlier warning
    (never retracted) is current again, and the correction says what was withdrawn."""
    alerts = [
        alert("W", 30, incident="INC"),
        alert("U", 20, incident="INC", stage="update", state="retracted"),
    ]
    assert [(e.id, e.kind) for e in shown(alerts)] == [
        ("W", "warning"),
        (cancel_identifier("U"), "correction"),
    ]


def test_a_live_alert_went_public_unless_every_delivery_ended_dry_run() -> None:
    def of(*states: str) -> list[Delivery]:
        return [make_delivery("W", f"c{i}", state=state) for i, state in enumerate(states)]

    assert not went_public(of("dry_run", "dry_run"))  # broadcaster run --dry-run
    assert went_public(of("dry_run", "delivered"))
    assert went_public(of("failed"))  # the city's warning still, though no channel took it
    assert went_public(of("pending", "sending"))  # on its way
    assert went_public([])  # released to no channel: the page is where it is published
    # The answer is kept once it can no longer change.
    assert public_settled(of("dry_run", "dry_run"))
    assert public_settled(of("delivered", "pending"))
    assert public_settled([])
    assert not public_settled(of("dry_run", "pending"))  # pending may end dry_run too


def test_a_message_that_never_went_public_neither_shows_nor_replaces_a_stage() -> None:
    alerts = [
        alert("W", 30, incident="INC"),
        alert("DRY-U", 10, incident="INC", stage="update"),
        alert("DRY", 20, incident="OTHER", state="retracted"),
    ]
    entries = current_entries(
        alerts,
        PLAYBOOKS,
        mode="live",
        now=NOW,
        expires_after=EXPIRES,
        all_clear_for=timedelta(hours=2),
        correction_for=timedelta(hours=6),
        public=lambda m: (m.retracts or m.id) == "W",
    )
    # The public saw the warning only; the dry run's retraction has nothing to correct.
    assert [(e.id, e.kind) for e in entries] == [("W", "warning")]
    assert [e.id for e in shown(alerts)] == ["DRY-U", cancel_identifier("DRY")]


def test_a_correction_and_an_all_clear_carry_labels_only_never_a_sentence_of_ours() -> None:
    """A warning retracted for naming the wrong district is no false alarm for everyone,
    and an all-clear's own texts say what is over: the page adds no words to either."""
    alerts = [
        alert("W", 30, state="retracted", incident="A"),
        alert(correction_id("W"), 20, msg_type="Cancel", retracts="W", incident="A"),
        alert("AC", 10, incident="B", stage="all_clear"),
    ]
    entries = shown(alerts)
    assert [e.kind for e in entries] == ["correction", "all_clear"]
    de, en = page(entries, "de"), page(entries, "en")
    for fixed in ("Falschmeldung", "nichts tun", "Gefahr ist vorbei", "Fehlalarm"):
        assert fixed not in de
    for fixed in ("false alarm", "need not do", "danger is over"):
        assert fixed not in en.lower()
    assert '<span class="badge kind" data-testid="kind">Korrektur</span>' in de
    assert '<span class="badge kind" data-testid="kind">Entwarnung</span>' in de
    assert "<strong>Zurückgezogen:</strong>" in de
    assert '<span class="badge kind" data-testid="kind">Correction</span>' in en
    assert '<span class="badge kind" data-testid="kind">All clear</span>' in en
    assert "<strong>Withdrawn:</strong>" in en
    # The approved texts speak: the correction's and the all-clear's own.
    assert f"{correction_id('W')} lang" in de
    assert "AC lang" in de


def test_warnings_rank_by_severity_then_corrections_then_all_clears() -> None:
    alerts = [
        alert("AC", 1, incident="A", stage="all_clear"),
        alert("C", 2, incident="B", state="retracted"),
        alert("SEVERE", 30, incident="D"),
        alert("UNKNOWN_PLAYBOOK", 3, incident="E", scenario="gone"),
    ]
    assert [e.id for e in shown(alerts)] == [
        "SEVERE",
        "UNKNOWN_PLAYBOOK",  # a set-aside playbook still shows its warning
        cancel_identifier("C"),
        "AC",
    ]


def test_every_language_comes_with_the_page_language_first() -> None:
    entry = shown([alert("W", 1)])[0]
    assert [b.lang for b in entry.ordered_blocks("de")] == ["de", "en"]
    assert [b.lang for b in entry.ordered_blocks("en")] == ["en", "de"]
    assert entry.block("en").instruction == "Do."
    assert entry.block("de").area == "Flingern-Nord, Ackerstraße"


def test_the_version_changes_with_the_content_only() -> None:
    one = snapshot("live", shown([alert("W", 1)]), NOW)
    again = snapshot("live", shown([alert("W", 1)]), NOW + timedelta(seconds=3))
    other = snapshot("live", shown([alert("W", 1), alert("X", 2)]), NOW)
    assert one.version == again.version
    assert one.version != other.version


# -- page_url ---------------------------------------------------------------------------
def test_page_url_is_a_template_name_and_a_drill_links_its_view() -> None:
    assert "page_url" in RESERVED_NAMES
    assert page_url("https://alerts.example.org/") == "https://alerts.example.org/warnings"
    assert page_url("https://a.example", True) == "https://a.example/warnings?drill=1"


def test_page_url_in_a_rendered_alert(deployment_copy: Path) -> None:
    deployment = load_usable(deployment_copy).deployment
    folder = deployment.templates.root / "major_fire" / "warning"
    (folder / "long.de.j2").write_text("Mehr: {{ page_url }}\n", encoding="utf-8")
    context = AlertContext(
        deployment.playbooks["major_fire"],
        "warning",
        validate_params(
            deployment.playbooks["major_fire"], {"location": "Ackerstraße", "district": "F"}
        ),
        "drill",
        "INC",
        NOW,
    )
    rendered = deployment.renderer().render(context)
    url = page_url(deployment.settings.http.public_url, drill=True)
    assert rendered.texts["de"].long.endswith(f"Mehr: {url}")


# -- the page ---------------------------------------------------------------------------
def page(entries: list[Entry], lang: str = "de", **options: Any) -> str:
    snap = snapshot(entries[0].mode if entries else "live", entries, NOW)
    return render_page(
        snap,
        lang,
        public_url="https://alerts.example.org",
        refresh_every=15,
        push=options.get("push", False),
        cap_feed=False,
        **({"environment": options["environment"]} if "environment" in options else {}),
    )


def test_the_push_offer_is_left_out_while_its_fragment_is_missing() -> None:
    html = page(shown([alert("W", 1)]), push=True)
    assert 'data-testid="entry"' in html


def test_the_push_offer_is_in_the_pages_language_and_says_so_on_the_drill_view() -> None:
    drill = shown([alert("D", 1, mode="drill")], "drill")
    html = page(drill, "en", push=True)
    assert html.count('id="push-subscribe"') == 1
    assert "Get warnings as push notifications" in html
    assert "this device gets drills only" in html
    live = page(shown([alert("W", 1)]), "de", push=True)
    assert "Warnungen als Push-Nachricht erhalten" in live
    assert "nur Übungen" not in live
    assert 'id="push-subscribe"' not in page(drill, "en", push=False)


def test_text_from_a_trigger_is_never_markup() -> None:
    html = page(shown([alert("W", 1, texts=texts("<script>alert(1)</script>"))]))
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


@pytest.mark.parametrize(
    ("accept", "json_wanted"),
    [
        ("application/json", True),
        ("application/json, text/html;q=0.5", True),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", False),
        ("*/*", False),
        ("", False),
        ("text/html;q=0.1, application/*", True),
    ],
)
def test_the_root_answers_json_to_who_asks_for_it(accept: str, json_wanted: bool) -> None:
    assert prefers_json(accept) is json_wanted


def test_banner_sources_must_be_origins() -> None:
    Settings.model_validate(
        {"warning_page": {"banner_frame_ancestors": ["https://www.example.org", "*"]}}
    )
    for bad in ("https://a.example; script-src *", "'self'", "javascript:x", ""):
        with pytest.raises(ValueError, match="frame-ancestors source"):
            Settings.model_validate({"warning_page": {"banner_frame_ancestors": [bad]}})


# -- over HTTP, against a real store -----------------------------------------------------
@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[TestClient[Any, Any], SqliteStore]]:
    config = write_deployment(
        tmp_path,
        mqtt_url="mqtt://127.0.0.1:1",
        channels={
            "cap": {"type": "cap_feed"},
            "log": {"type": "log"},
        },
        extra={
            "warning_page": {"banner_frame_ancestors": ["https://www.example.org"]},
            "cap": {"sender_name": "Feuerwehr Musterstadt"},
        },
    )
    deployment: Deployment = load_usable(config).deployment
    store = SqliteStore(tmp_path / "page.db")
    await store.open()
    state = WebState(
        receiver=None,  # type: ignore[arg-type]
        store=store,
        metrics=None,  # type: ignore[arg-type]
        api_token=None,
        healthy=None,  # type: ignore[arg-type]
        retractor=None,  # type: ignore[arg-type]
    )
    app: web.Application = make_app(state)
    add_warning_routes(app, deployment)
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client, store
    finally:
        await client.close()
        await store.close()


def cap_delivery(alert_id: str) -> Delivery:
    return Delivery(
        alert_id=alert_id,
        channel_id="cap",
        channel_type="cap_feed",
        language="de",
        variant="long",
        title="t",
        text="t",
        state="delivered",
        delivered_at=datetime.now(UTC),
    )


def recent(alert_id: str, **fields: Any) -> Alert:
    at = datetime.now(UTC) - timedelta(minutes=5)
    data: dict[str, Any] = {
        "state": "sent",
        "created_at": at,
        "updated_at": at,
        "released_at": at,
        "texts": texts(alert_id),
    }
    return make_alert(alert_id, **{**data, **fields})


async def test_routes_show_live_warnings_and_drills_only_on_the_drill_view(
    served: tuple[TestClient[Any, Any], SqliteStore],
) -> None:
    http, store = served
    assert await store.create_alert(recent("FW-LIVE"), [cap_delivery("FW-LIVE")])
    assert await store.create_alert(recent("FW-DRILL", mode="drill"), [cap_delivery("FW-DRILL")])
    waiting = recent("FW-WAIT", state="awaiting_confirmation", released_at=None)
    assert await store.create_alert(waiting, [])

    for path in ("/", "/warnings"):
        r = await http.get(path, headers={"Accept": "text/html", "Accept-Language": "en"})
        assert r.status == 200
        html = await r.text()
        assert '<html lang="en"' in html
        assert html.count('data-testid="entry"') == 1
        assert "FW-LIVE" in html
        assert "FW-DRILL" not in html
        assert "FW-WAIT" not in html
        assert "/cap/FW-LIVE.xml" in html  # the cap_feed channel carried it
        assert r.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
        assert "script-src 'self'" in r.headers["Content-Security-Policy"]
        etag = r.headers["ETag"]
    again = await http.get("/warnings", headers={"If-None-Match": etag, "Accept-Language": "en"})
    assert again.status == 304

    drill = await http.get("/warnings?drill=1&lang=de")
    html = await drill.text()
    assert 'data-testid="drill-banner"' in html
    assert "ÜBUNG – keine echte Warnung" in html
    assert '<meta name="robots" content="noindex, nofollow">' in html
    assert drill.headers["X-Robots-Tag"] == "noindex, nofollow"
    assert "FW-DRILL" in html
    assert "FW-LIVE" not in html

    index = await http.get("/", headers={"Accept": "application/json"})
    assert (await index.json())["warnings"] == "/warnings"

    data = await (await http.get("/warnings.json")).json()
    assert [w["id"] for w in data["warnings"]] == ["FW-LIVE"]
    assert data["exercise"] is False
    drills = await (await http.get("/warnings.json?drill=1")).json()
    assert [w["id"] for w in drills["warnings"]] == ["FW-DRILL"]
    assert drills["warnings"][0]["url"].endswith("/warnings?drill=1#w-FW-DRILL")

    feed = await http.get("/warnings/feed.atom?drill=1")  # the feed has no drill view
    root = ET.fromstring(await feed.read())
    assert feed.content_type == "application/atom+xml"
    entries = root.findall(f"{A}entry")
    assert [e.findtext(f"{A}title") for e in entries] == ["FW-LIVE"]
    for required in ("id", "title", "updated", "author/" + A + "name"):
        assert root.find(A + required) is not None, required
    assert root.findtext(f"{A}author/{A}name") == "Feuerwehr Musterstadt"
    links = {
        (x.get("rel"), x.get("type")): x.get("href", "") for x in entries[0].findall(f"{A}link")
    }
    assert links[("alternate", "application/cap+xml")].endswith("/cap/FW-LIVE.xml")
    assert links[("alternate", "text/html")].endswith("/warnings#w-FW-LIVE")

    banner = await http.get("/warnings/banner?drill=1&lang=de")  # no drill view either
    html = await banner.text()
    assert "FW-LIVE" in html
    assert "FW-DRILL" not in html
    assert "X-Frame-Options" not in banner.headers
    policy = banner.headers["Content-Security-Policy"]
    assert policy.endswith("frame-ancestors https://www.example.org")
    assert "script-src" not in policy
    assert "default-src 'none'" in policy


async def test_the_page_says_clearly_when_nothing_is_current(
    served: tuple[TestClient[Any, Any], SqliteStore],
) -> None:
    http, store = served
    assert await store.create_alert(recent("FW-DRILL", mode="drill"), [])
    html = await (await http.get("/warnings?lang=de")).text()
    assert 'data-testid="no-warnings"' in html
    assert "Keine aktuellen Warnungen" in html
    banner = await (await http.get("/warnings/banner?lang=en")).text()
    assert "No current warnings" in banner
    assert "FW-DRILL" not in banner
    feed = ET.fromstring(await (await http.get("/warnings/feed.atom")).read())
    assert feed.findall(f"{A}entry") == []
    data = json.loads(await (await http.get("/warnings.json")).text())
    assert data["warnings"] == []


def delivered(alert_id: str, channel: str, state: str) -> Delivery:
    return make_delivery(
        alert_id,
        channel,
        state=state,
        delivered_at=datetime.now(UTC) if state == "delivered" else None,
    )


async def test_a_live_alert_that_reached_no_one_is_on_no_public_view(
    served: tuple[TestClient[Any, Any], SqliteStore],
) -> None:
    """`broadcaster run --dry-run` calls it sent, but no channel was contacted: it is no
    warning of the city's. A drill's dry runs are its design: its view shows it."""
    http, store = served
    dry = [delivered("FW-DRY", "log", "dry_run"), delivered("FW-DRY", "cap", "dry_run")]
    assert await store.create_alert(recent("FW-DRY", incident="DRY"), dry)
    mixed = [delivered("FW-MIXED", "log", "dry_run"), cap_delivery("FW-MIXED")]
    assert await store.create_alert(recent("FW-MIXED", incident="MIXED"), mixed)
    assert await store.create_alert(recent("FW-NONE", incident="NONE"), [])
    drill = [delivered("FW-DRILL", "log", "dry_run")]
    assert await store.create_alert(recent("FW-DRILL", mode="drill"), drill)

    data = await (await http.get("/warnings.json")).json()
    assert sorted(w["id"] for w in data["warnings"]) == ["FW-MIXED", "FW-NONE"]
    html = await (await http.get("/warnings?lang=de")).text()
    assert html.count('data-testid="entry"') == 2
    assert "FW-DRY" not in html
    feed = ET.fromstring(await (await http.get("/warnings/feed.atom")).read())
    assert sorted(e.findtext(f"{A}title") or "" for e in feed.findall(f"{A}entry")) == [
        "FW-MIXED",
        "FW-NONE",
    ]
    banner = await (await http.get("/warnings/banner")).text()
    assert "FW-DRY" not in banner
    drills = await (await http.get("/warnings.json?drill=1")).json()
    assert [w["id"] for w in drills["warnings"]] == ["FW-DRILL"]


async def test_the_page_reads_deliveries_until_their_answer_is_settled(tmp_path: Path) -> None:
    config = write_deployment(tmp_path, mqtt_url="mqtt://127.0.0.1:1", channels={})
    store = SqliteStore(tmp_path / "settled.db")
    await store.open()
    reads: list[str] = []
    real = store.get_deliveries

    async def counted(alert_id: str) -> list[Delivery]:
        reads.append(alert_id)
        return await real(alert_id)

    store.get_deliveries = counted  # type: ignore[method-assign]
    try:
        page = WarningPage(load_usable(config).deployment, store)
        on_its_way = [delivered("FW-RUN", "log", "pending")]
        assert await store.create_alert(recent("FW-RUN", incident="RUN"), on_its_way)
        done = [delivered("FW-DRY", "log", "dry_run")]
        assert await store.create_alert(recent("FW-DRY", incident="DRY"), done)
        assert [e.id for e in (await page.current("live")).entries] == ["FW-RUN"]
        assert sorted(reads) == ["FW-DRY", "FW-RUN"]

        # It ends dry_run too (the dry-run daemon got to it): now settled, and hidden.
        await store.save_delivery(on_its_way[0].model_copy(update={"state": "dry_run"}))
        page.invalidate()
        assert (await page.current("live")).entries == ()
        assert sorted(reads) == ["FW-DRY", "FW-RUN", "FW-RUN"]  # FW-DRY was settled
        page.invalidate()
        assert (await page.current("live")).entries == ()
        assert len(reads) == 3  # both settled: no delivery read at all
    finally:
        await store.close()


async def test_the_cache_serves_many_from_one_read_and_an_alert_change_drops_it(
    tmp_path: Path,
) -> None:
    config = write_deployment(tmp_path, mqtt_url="mqtt://127.0.0.1:1", channels={})
    store = SqliteStore(tmp_path / "cache.db")
    await store.open()
    reads = 0
    real = store.list_alerts

    async def counted(limit: int) -> list[Alert]:
        nonlocal reads
        reads += 1
        return await real(limit)

    store.list_alerts = counted  # type: ignore[method-assign, assignment]
    try:
        page = WarningPage(load_usable(config).deployment, store)
        first = await asyncio.gather(*(page.current("live") for _ in range(50)))
        assert reads == 1
        assert all(s.entries == () for s in first)
        assert await store.create_alert(recent("FW-NEW"), [])
        assert (await page.current("live")).entries == ()  # cached: not read again yet
        assert reads == 1
        await page.alert_changed(await store.get_alert("FW-NEW"), [])  # type: ignore[arg-type]
        fresh = await page.current("live")
        assert reads == 2
        assert [e.id for e in fresh.entries] == ["FW-NEW"]
        assert fresh.version != first[0].version
    finally:
        await store.close()


# -- contrast of the stylesheet's colour pairs (WCAG 2.1 AA: 4.5:1 for text) -------------
CSS = Path(__file__).resolve().parents[2] / "broadcaster" / "web" / "static" / "warnings.css"


def luminance(hex_colour: str) -> float:
    value = hex_colour.lstrip("#")
    if len(value) == 3:
        value = "".join(c * 2 for c in value)
    channels = [int(value[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def ratio(a: str, b: str) -> float:
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


@pytest.mark.parametrize(
    ("text", "background"),
    [
        ("--ink", "--bg"),
        ("--ink", "--card"),
        ("--muted", "--bg"),
        ("--muted", "--card"),
        ("--link", "--card"),
        ("--link", "--bg"),
        ("#fff", "--warning"),  # the kind badge and the banner
        ("#fff", "--all-clear"),
        ("#fff", "--correction"),
        ("#fff", "--drill"),
        ("--ink", "--warning-soft"),  # what to do
        ("--ink", "--all-clear-soft"),
        ("--ink", "--correction-soft"),
        ("--ink", "--drill-soft"),
        ("#ffd400", "#111"),  # the exercise banner
        ("#111", "#ffd400"),  # the exercise badge
    ],
)
def test_the_stylesheets_text_colours_read_at_4_5_to_1(text: str, background: str) -> None:
    css = CSS.read_text(encoding="utf-8")
    colours = dict(re.findall(r"(--[a-z-]+):\s*(#[0-9a-fA-F]{3,6});", css))

    def colour(name: str) -> str:
        return colours[name] if name.startswith("--") else name

    assert ratio(colour(text), colour(background)) >= 4.5
    assert ratio("#767676", "#fff") >= 4.5 > ratio("#777777", "#fff")  # the formula itself
