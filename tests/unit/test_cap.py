"""CAP 1.2 documents and the Atom feed, validated against the official OASIS schema."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import xmlschema
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from broadcaster.cap import (
    CANCEL_SUFFIX,
    active_messages,
    atom_feed,
    cancel_identifier,
    cap_alert_xml,
    cap_cancel_xml,
    cap_messages,
    cap_time,
    circle,
    default_sender,
    earlier_messages,
)
from broadcaster.channels.settings import CapFeedChannel, ChannelConfig, LogChannel
from broadcaster.models import Alert, Delivery, Texts
from broadcaster.playbooks import Playbook
from broadcaster.retraction import correction_id
from broadcaster.store.sqlite import SqliteStore
from broadcaster.web.api import STATE, WebState
from broadcaster.web.cap import add_cap_routes

XSD = Path(__file__).resolve().parent.parent / "data" / "CAP-v1.2.xsd"
NS = {"cap": "urn:oasis:names:tc:emergency:cap:1.2", "atom": "http://www.w3.org/2005/Atom"}
C = "{urn:oasis:names:tc:emergency:cap:1.2}"
A = "{http://www.w3.org/2005/Atom}"
TIME = re.compile(r"^\d\d\d\d-\d\d-\d\dT\d\d:\d\d:\d\d[-,+]\d\d:\d\d$")  # the XSD's pattern
URL = "https://alerts.example.org"
SENDER = "alerts.example.org"
EXPIRES = timedelta(hours=6)
T0 = datetime(2026, 11, 23, 9, 15, 0, 123456, tzinfo=UTC)

ALERT_ORDER = [
    "identifier", "sender", "sent", "status", "msgType", "source", "scope", "restriction",
    "addresses", "code", "note", "references", "incidents", "info",
]  # fmt: skip
INFO_ORDER = [
    "language", "category", "event", "responseType", "urgency", "severity", "certainty",
    "audience", "eventCode", "effective", "onset", "expires", "senderName", "headline",
    "description", "instruction", "web", "contact", "parameter", "resource", "area",
]  # fmt: skip
AREA_ORDER = ["areaDesc", "polygon", "circle", "geocode", "altitude", "ceiling"]


@pytest.fixture(scope="module")
def schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(XSD))


def playbook() -> Playbook:
    return Playbook.model_validate(
        {
            "id": "major_fire",
            "name": {"de": "Großbrand", "en": "Major fire"},
            "languages": ["de", "en"],
            "params": {
                "location": {"type": "string", "required": True, "max_length": 60},
                "district": {"type": "string", "required": True, "max_length": 40},
                "radius_m": {"type": "integer", "min": 100, "max": 5000},
                "latitude": {"type": "number", "min": -90, "max": 90},
                "longitude": {"type": "number", "min": -180, "max": 180},
            },
            "cap": {
                "category": "Fire",
                "urgency": "Immediate",
                "severity": "Severe",
                "certainty": "Observed",
                "event": {"de": "Großbrand", "en": "Major fire"},
            },
            "stages": {
                "warning": {"msg_type": "Alert", "response_type": "Shelter"},
                "update": {"msg_type": "Update", "response_type": "Shelter"},
                "all_clear": {
                    "msg_type": "Update",
                    "severity": "Minor",
                    "urgency": "Past",
                    "response_type": "AllClear",
                },
            },
        }
    )


PLAYBOOK = playbook()
TEXTS = {
    "de": Texts(
        title="Rauchentwicklung nach Großbrand in Flingern-Nord",
        short="Großbrand in Flingern-Nord: Fenster und Türen geschlossen halten.",
        long="In Flingern-Nord brennt eine Lagerhalle. Es zieht Rauch nach Nordost.",
        instruction="Halten Sie Fenster und Türen geschlossen. Schalten Sie Lüftungs- und "
        "Klimaanlagen ab.",
    ),
    "en": Texts(
        title="Smoke after major fire in Flingern-Nord",
        short="Major fire in Flingern-Nord: keep windows and doors closed.",
        long="A warehouse is on fire in Flingern-Nord. Smoke drifts north-east.",
        instruction="Keep windows and doors closed. Switch off ventilation.",
    ),
}
PARAMS = {"location": "Ackerstraße", "district": "Flingern-Nord"}


def alert(
    alert_id: str = "FW-1",
    *,
    stage: str = "warning",
    mode: str = "live",
    state: str = "sent",
    at: datetime = T0,
    released: bool = True,
    params: dict[str, Any] | None = None,
    **extra: Any,
) -> Alert:
    return Alert.model_validate(
        {
            "id": alert_id,
            "incident": "E-2026-4711",
            "scenario": "major_fire",
            "stage": stage,
            "mode": mode,
            "state": state,
            "msg_type": PLAYBOOK.stages[stage].msg_type,
            "issued_at": at,
            "created_at": at,
            "updated_at": at,
            "released_at": at + timedelta(seconds=30) if released else None,
            "params": PARAMS if params is None else params,
            "texts": TEXTS,
            **extra,
        }
    )


def render(message: Alert, earlier: list[Alert] | None = None) -> bytes:
    return cap_alert_xml(
        message, PLAYBOOK, earlier or [], sender=SENDER, public_url=URL, expires_after=EXPIRES
    )


def parse(document: bytes) -> ET.Element:
    return ET.fromstring(document)


def text(root: ET.Element, path: str) -> str | None:
    return root.findtext(path, namespaces=NS)


def references(root: ET.Element) -> list[str]:
    return (text(root, "cap:references") or "").split()


def local(tags: list[ET.Element]) -> list[str]:
    return [e.tag.split("}")[1] for e in tags]


def in_order(tags: list[str], order: list[str]) -> bool:
    positions = [order.index(t) for t in tags]
    return positions == sorted(positions)


# -- single documents --------------------------------------------------------------------
def test_live_alert_is_valid_cap(schema: xmlschema.XMLSchema) -> None:
    document = render(alert())
    schema.validate(document)
    root = parse(document)
    assert root.tag == f"{C}alert"
    assert text(root, "cap:identifier") == "FW-1"
    assert text(root, "cap:sender") == SENDER
    assert text(root, "cap:sent") == "2026-11-23T09:15:30+00:00"  # released, whole seconds
    assert text(root, "cap:status") == "Actual"
    assert text(root, "cap:msgType") == "Alert"
    assert text(root, "cap:scope") == "Public"
    assert text(root, "cap:incidents") == "E-2026-4711"
    assert root.find("cap:references", NS) is None
    infos = root.findall("cap:info", NS)
    assert [text(i, "cap:language") for i in infos] == ["de-DE", "en-US"]
    de, en = infos
    assert text(de, "cap:category") == "Fire"
    assert text(de, "cap:event") == "Großbrand"
    assert text(en, "cap:event") == "Major fire"
    assert text(de, "cap:responseType") == "Shelter"
    assert (text(de, "cap:urgency"), text(de, "cap:severity"), text(de, "cap:certainty")) == (
        "Immediate",
        "Severe",
        "Observed",
    )
    assert text(de, "cap:expires") == "2026-11-23T15:15:30+00:00"
    assert text(de, "cap:senderName") == SENDER
    assert text(de, "cap:headline") == TEXTS["de"].title
    assert text(de, "cap:description") == TEXTS["de"].long
    assert text(de, "cap:instruction") == TEXTS["de"].instruction
    assert text(en, "cap:instruction") == TEXTS["en"].instruction
    for info in infos:
        assert text(info, "cap:web") == f"{URL}/cap/FW-1.xml"
        assert text(info, "cap:area/cap:areaDesc") == "Ackerstraße, Flingern-Nord"
        assert info.find("cap:area/cap:circle", NS) is None


def test_umlauts_stay_intact() -> None:
    document = render(alert())
    assert document.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    assert "Türen geschlossen".encode() in document  # raw UTF-8, not escaped or mangled
    assert "Großbrand".encode() in document
    assert "Lüftungs- und Klimaanlagen".encode() in document
    root = parse(document)
    assert text(root, "cap:info/cap:instruction") == TEXTS["de"].instruction


def test_element_order_follows_the_schema() -> None:
    params = {**PARAMS, "latitude": 51.2277, "longitude": 6.7735, "radius_m": 800}
    earlier = [alert("FW-0")]
    root = parse(render(alert("FW-1", stage="update", params=params), earlier))
    tags = local(list(root))
    assert tags == [
        "identifier", "sender", "sent", "status", "msgType", "scope", "references",
        "incidents", "info", "info",
    ]  # fmt: skip
    assert in_order(tags, ALERT_ORDER)
    for info in root.findall("cap:info", NS):
        info_tags = local(list(info))
        assert in_order(info_tags, INFO_ORDER)
        assert {"expires", "web", "headline", "description", "instruction"} <= set(info_tags)
        area = info.find("cap:area", NS)
        assert area is not None
        assert local(list(area)) == ["areaDesc", "circle"]


def test_drill_is_an_exercise(schema: xmlschema.XMLSchema) -> None:
    document = render(alert("DRILL-1", mode="drill"))
    schema.validate(document)
    assert text(parse(document), "cap:status") == "Exercise"
    assert text(parse(render(alert("LIVE-1"))), "cap:status") == "Actual"


def test_update_references_every_earlier_message_of_the_same_mode(
    schema: xmlschema.XMLSchema,
) -> None:
    first = alert("FW-1", at=T0)
    drill = alert("UEB-1", mode="drill", at=T0 + timedelta(minutes=1))
    rejected = alert("FW-2", stage="update", state="rejected", released=False)
    second = alert("FW-3", stage="update", at=T0 + timedelta(minutes=10))
    waiting = alert("FW-4", stage="update", state="awaiting_confirmation", released=False)
    update = alert("FW-5", stage="update", at=T0 + timedelta(minutes=20))
    document = render(update, [first, drill, rejected, second, waiting])
    schema.validate(document)
    root = parse(document)
    assert text(root, "cap:msgType") == "Update"
    assert references(root) == [
        f"{SENDER},FW-1,2026-11-23T09:15:30+00:00",
        f"{SENDER},FW-3,2026-11-23T09:25:30+00:00",
    ]


def test_a_drill_never_references_live_alerts(schema: xmlschema.XMLSchema) -> None:
    live = alert("FW-1")
    drill = alert("UEB-1", mode="drill", at=T0 + timedelta(minutes=1))
    drill_update = alert("UEB-2", stage="update", mode="drill", at=T0 + timedelta(minutes=5))
    root = parse(render(drill_update, [live, drill]))
    assert [r.split(",")[1] for r in references(root)] == ["UEB-1"]
    # and a live update after only drills has nothing to update: it is an Alert
    lone = render(alert("FW-9", stage="update", at=T0 + timedelta(minutes=9)), [drill])
    schema.validate(lone)
    assert text(parse(lone), "cap:msgType") == "Alert"
    assert parse(lone).find("cap:references", NS) is None


def test_all_clear_is_an_update_with_allclear(schema: xmlschema.XMLSchema) -> None:
    earlier = [alert("FW-1"), alert("FW-2", stage="update", at=T0 + timedelta(minutes=5))]
    entwarnung = alert(
        "FW-3",
        stage="all_clear",
        at=T0 + timedelta(hours=2),
        texts={
            "de": Texts(
                title="Entwarnung: Großbrand in Flingern-Nord gelöscht",
                short="Entwarnung",
                long="Der Brand ist gelöscht. Fenster dürfen wieder geöffnet werden.",
            ),
            "en": Texts(title="All clear: fire out", short="All clear", long="The fire is out."),
        },
    )
    document = render(entwarnung, earlier)
    schema.validate(document)
    root = parse(document)
    assert text(root, "cap:msgType") == "Update"
    assert len(references(root)) == 2
    info = root.find("cap:info", NS)
    assert info is not None
    assert text(info, "cap:responseType") == "AllClear"
    assert text(info, "cap:severity") == "Minor"  # the stage's overrides
    assert text(info, "cap:urgency") == "Past"
    assert text(info, "cap:certainty") == "Observed"  # from the playbook
    assert text(info, "cap:headline") == "Entwarnung: Großbrand in Flingern-Nord gelöscht"
    assert info.find("cap:instruction", NS) is None  # the stage has none


def test_cancel_of_a_retracted_alert(schema: xmlschema.XMLSchema) -> None:
    first = alert("FW-1")
    retracted = alert(
        "FW-2",
        stage="update",
        at=T0 + timedelta(minutes=5),
        state="retracted",
        retraction_reason="Falscher Stadtteil",
    ).model_copy(update={"updated_at": T0 + timedelta(minutes=7)})
    document = cap_cancel_xml(
        retracted, PLAYBOOK, [first], sender=SENDER, public_url=URL, expires_after=EXPIRES
    )
    schema.validate(document)
    root = parse(document)
    assert text(root, "cap:identifier") == "FW-2:retraction"
    assert text(root, "cap:msgType") == "Cancel"
    assert text(root, "cap:sent") == "2026-11-23T09:22:00+00:00"  # when it was retracted
    # a Cancel cancels just the retracted message, not the whole incident
    assert references(root) == [f"{SENDER},FW-2,2026-11-23T09:20:30+00:00"]
    assert text(root, "cap:note") == "Falscher Stadtteil"
    de = root.find("cap:info", NS)
    assert de is not None
    assert text(de, "cap:responseType") == "None"
    assert (text(de, "cap:headline") or "").startswith("Aufgehoben: Rauchentwicklung")
    assert "Grund: Falscher Stadtteil" in (text(de, "cap:description") or "")
    assert text(de, "cap:web") == f"{URL}/cap/FW-2:retraction.xml"
    # the retracted alert itself stays a valid document at its URL
    schema.validate(render(retracted, [first]))


def test_stored_correction_references_only_the_retracted_alert(
    schema: xmlschema.XMLSchema,
) -> None:
    first = alert("FW-1")
    retracted = alert("FW-2", stage="update", at=T0 + timedelta(minutes=5), state="retracted")
    correction = alert(
        "FW-2:retraction",
        stage="update",
        at=T0 + timedelta(minutes=6),
        msg_type="Cancel",
        retracts="FW-2",
        retraction_reason="Fehlalarm",
        texts={
            "de": Texts(title='Entwarnung: Die Warnung "Großbrand" war ein Fehlalarm', short="-",
                        long="Die Warnung wurde irrtümlich versendet."),
        },
    )  # fmt: skip
    document = render(correction, [first, retracted])
    schema.validate(document)
    root = parse(document)
    assert text(root, "cap:msgType") == "Cancel"
    assert [r.split(",")[1] for r in references(root)] == ["FW-2"]
    assert [text(i, "cap:language") for i in root.findall("cap:info", NS)] == ["de-DE"]


def test_circle_only_with_coordinates_and_radius(schema: xmlschema.XMLSchema) -> None:
    full = {**PARAMS, "latitude": 51.2277, "longitude": 6.7735, "radius_m": 1500}
    assert circle(full) == "51.2277,6.7735 1.500"
    assert circle({**full, "radius_m": 250}) == "51.2277,6.7735 0.250"
    assert circle({**full, "latitude": "51.2", "longitude": "6.8"}) == "51.2,6.8 1.500"
    assert circle({**full, "radius_m": None}) is None
    assert circle({k: v for k, v in full.items() if k != "latitude"}) is None
    assert circle({**PARAMS, "radius_m": 800}) is None
    assert circle({**full, "latitude": "north"}) is None
    assert circle({**full, "latitude": 123.0}) is None
    assert circle({**full, "radius_m": True}) is None
    document = render(alert(params=full))
    schema.validate(document)
    assert text(parse(document), "cap:info/cap:area/cap:circle") == "51.2277,6.7735 1.500"
    assert (
        parse(render(alert(params={**PARAMS, "radius_m": 800}))).find(
            "cap:info/cap:area/cap:circle", NS
        )
        is None
    )


def test_area_desc_falls_back_to_the_city() -> None:
    root = parse(render(alert(params={"area": ""})))
    assert [text(i, "cap:area/cap:areaDesc") for i in root.findall("cap:info", NS)] == [
        "Stadtgebiet",
        "City",
    ]


def test_timestamps_match_the_schema_pattern() -> None:
    assert cap_time(datetime(2026, 11, 23, 10, 15, 7, 999999, tzinfo=UTC)) == (
        "2026-11-23T10:15:07+00:00"
    )
    cet = timezone(timedelta(hours=1))
    assert cap_time(datetime(2026, 11, 23, 10, 15, tzinfo=cet)) == "2026-11-23T10:15:00+01:00"
    assert cap_time(datetime(2026, 11, 23, 10, 15, tzinfo=timezone(-timedelta(hours=5)))) == (
        "2026-11-23T10:15:00-05:00"
    )
    assert cap_time(datetime(2026, 11, 23, 10, 15)) == "2026-11-23T10:15:00+00:00"  # naive: UTC
    root = parse(render(alert(at=datetime(2026, 7, 1, 12, 0, 0, 5, tzinfo=cet))))
    stamps = [text(root, "cap:sent")] + [
        text(i, "cap:expires") for i in root.findall("cap:info", NS)
    ]
    assert stamps[0] == "2026-07-01T12:00:30+01:00"
    for stamp in stamps:
        assert stamp is not None, stamp
        assert TIME.match(stamp), stamp
        assert "Z" not in stamp
        assert "." not in stamp


def test_long_headlines_are_cut_to_160() -> None:
    long_title = "Rauch " * 40
    message = alert(texts={"de": Texts(title=long_title, short="s", long="l")})
    headline = text(parse(render(message)), "cap:info/cap:headline") or ""
    assert len(headline) == 160
    assert headline.endswith("…")


def test_sender_from_public_url() -> None:
    assert default_sender("https://alerts.example.org") == "alerts.example.org"
    assert default_sender("http://127.0.0.1:8080/") == "127.0.0.1"


def test_cancel_identifier_matches_the_retraction_module() -> None:
    assert correction_id("FW-1") == cancel_identifier("FW-1") == "FW-1" + CANCEL_SUFFIX


# -- which messages exist ---------------------------------------------------------------
def test_cap_messages_builds_a_cancel_only_where_none_went_out() -> None:
    kept = alert("FW-1")
    waiting = alert("FW-2", state="awaiting_confirmation", released=False)
    withdrawn_unsent = alert("FW-3", state="retracted", released=False)  # never released
    retracted = alert("FW-4", state="retracted", at=T0 + timedelta(minutes=1))
    corrected = alert("FW-5", state="retracted", at=T0 + timedelta(minutes=2))
    correction = alert(
        "FW-5:retraction", at=T0 + timedelta(minutes=3), msg_type="Cancel", retracts="FW-5"
    )
    messages = cap_messages([kept, waiting, withdrawn_unsent, retracted, corrected, correction])
    ids = [m.id for m in messages]
    assert sorted(ids) == sorted(["FW-1", "FW-4", "FW-4:retraction", "FW-5", "FW-5:retraction"])
    built = next(m for m in messages if m.id == "FW-4:retraction")
    assert built.msg_type == "Cancel"
    assert built.retracts == "FW-4"
    assert next(m for m in messages if m.id == "FW-5:retraction") == correction
    assert [m.id for m in earlier_messages(built, messages)] == ids[: ids.index(built.id)]


# -- the Atom feed ----------------------------------------------------------------------
def test_feed_lists_only_active_alerts() -> None:
    now = T0 + timedelta(hours=1)
    old = alert("OLD-1", at=T0 - timedelta(hours=8))  # expired
    stored = [
        old,
        alert("FW-1", at=T0),  # superseded by FW-2
        alert("FW-2", stage="update", at=T0 + timedelta(minutes=10)),
        alert("FW-3", state="rejected", released=False).model_copy(update={"incident": "E-3"}),
        alert("FW-4", state="failed").model_copy(update={"incident": "E-4"}),
        alert("FW-5", state="awaiting_confirmation", released=False).model_copy(
            update={"incident": "E-5"}
        ),
        alert("FW-6", state="retracted").model_copy(update={"incident": "E-6"}),
        alert("UEB-1", mode="drill", at=T0 + timedelta(minutes=2)),
    ]
    messages = cap_messages(stored)
    document = atom_feed(
        [(m, PLAYBOOK) for m in messages],
        public_url=URL,
        sender=SENDER,
        now=now,
        expires_after=EXPIRES,
    )
    root = parse(document)
    assert root.tag == f"{A}feed"
    assert text(root, "atom:id") == f"{URL}/cap/feed.atom"
    entries = root.findall("atom:entry", NS)
    ids = [text(e, "cap:identifier") for e in entries]
    # newest first; the drill is its own thread; the retraction's Cancel is listed
    assert ids == ["FW-2", "UEB-1", "FW-6:retraction"]
    for entry in entries:
        identifier = text(entry, "cap:identifier")
        links = entry.findall("atom:link", NS)
        assert [(x.get("rel"), x.get("type"), x.get("href")) for x in links] == [
            ("alternate", "application/cap+xml", f"{URL}/cap/{identifier}.xml")
        ]
        assert text(entry, "atom:id") == f"{URL}/cap/{identifier}.xml"
        assert text(entry, "atom:author/atom:name") == SENDER
        for stamp in (text(entry, "atom:updated"), text(entry, "cap:expires")):
            assert stamp is not None
            assert TIME.match(stamp)
        assert text(entry, "cap:areaDesc") == "Ackerstraße, Flingern-Nord"
    fw2 = entries[0]
    assert text(fw2, "atom:title") == TEXTS["de"].title
    assert text(fw2, "cap:event") == "Großbrand"
    assert text(fw2, "cap:severity") == "Severe"
    assert text(fw2, "cap:status") == "Actual"
    assert text(fw2, "cap:msgType") == "Update"
    assert text(entries[1], "cap:status") == "Exercise"
    assert text(entries[2], "cap:msgType") == "Cancel"
    # an empty feed is still a valid feed
    empty = parse(atom_feed([], public_url=URL, sender=SENDER, now=now, expires_after=EXPIRES))
    assert empty.findall("atom:entry", NS) == []
    assert text(empty, "atom:updated") == cap_time(now)


def test_active_messages_drop_expired_ones() -> None:
    message = alert("FW-1")
    sent = T0 + timedelta(seconds=30)
    assert active_messages([message], now=sent + EXPIRES - timedelta(seconds=1),
                           expires_after=EXPIRES) == [message]  # fmt: skip
    assert active_messages([message], now=sent + EXPIRES, expires_after=EXPIRES) == []


# -- the routes -------------------------------------------------------------------------
CAP_CHANNELS: dict[str, ChannelConfig] = {
    "cap": CapFeedChannel(type="cap_feed", drill="send"),
    "log_de": LogChannel(type="log", drill="send"),
}


def delivery(
    alert_id: str, state: str, *, channel: str = "cap", was_delivered: bool = True
) -> Delivery:
    return Delivery.model_validate(
        {
            "alert_id": alert_id,
            "channel_id": channel,
            "channel_type": "cap_feed" if channel == "cap" else "log",
            "language": "de",
            "variant": "long",
            "title": "t",
            "text": "t",
            "state": state,
            "delivered_at": T0 if was_delivered and state in ("delivered", "retracted") else None,
        }
    )


async def serve(store: SqliteStore, channels: dict[str, ChannelConfig]) -> TestClient[Any, Any]:
    app = web.Application()
    app[STATE] = cast(WebState, SimpleNamespace(store=store))
    add_cap_routes(app, {"major_fire": PLAYBOOK}, URL + "/", SENDER, EXPIRES, channels=channels)
    test_client: TestClient[Any, Any] = TestClient(TestServer(app))
    await test_client.start_server()
    return test_client


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "cap.db")
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def client(store: SqliteStore) -> AsyncIterator[tuple[TestClient[Any, Any], SqliteStore]]:
    test_client = await serve(store, CAP_CHANNELS)
    try:
        yield test_client, store
    finally:
        await test_client.close()


async def test_routes_serve_released_alerts_only(
    client: tuple[TestClient[Any, Any], SqliteStore], schema: xmlschema.XMLSchema
) -> None:
    http, store = client
    now = datetime.now(UTC) - timedelta(minutes=30)
    stored = [
        (alert("FW.1", at=now), "delivered"),
        (alert("FW.2", stage="update", at=now + timedelta(minutes=5)), "delivered"),
        (alert("FW.3", stage="update", state="awaiting_confirmation", released=False,
               at=now + timedelta(minutes=6)), "pending"),
        (alert("FW.4", stage="update", state="rejected", released=False,
               at=now + timedelta(minutes=7)), "pending"),
        # carried, then withdrawn by its correction: the delivery is `retracted` now
        (alert("FW.5", stage="update", state="retracted", at=now + timedelta(minutes=8),
               retraction_reason="Irrtum"), "retracted"),
        (alert("UEB.1", mode="drill", at=now + timedelta(minutes=9)), "delivered"),
    ]  # fmt: skip
    for a, state in stored:
        assert await store.create_alert(a, [delivery(a.id, state)])

    response = await http.get("/cap/FW.2.xml")
    assert response.status == 200
    assert response.content_type == "application/cap+xml"
    body = await response.read()
    schema.validate(body)
    root = parse(body)
    assert text(root, "cap:identifier") == "FW.2"
    assert [r.split(",")[1] for r in references(root)] == ["FW.1"]

    for unpublished in ("FW.3", "FW.4", "nope", "FW.1:retraction"):
        assert (await http.get(f"/cap/{unpublished}.xml")).status == 404, unpublished

    retracted = await http.get("/cap/FW.5.xml")  # stays reachable
    assert retracted.status == 200
    schema.validate(await retracted.read())
    cancel = await http.get("/cap/FW.5:retraction.xml")
    assert cancel.status == 200
    cancel_root = parse(await cancel.read())
    schema.validate(cancel_root)
    assert text(cancel_root, "cap:msgType") == "Cancel"
    assert [r.split(",")[1] for r in references(cancel_root)] == ["FW.5"]

    drill = parse(await (await http.get("/cap/UEB.1.xml")).read())
    assert text(drill, "cap:status") == "Exercise"
    assert drill.find("cap:references", NS) is None  # live messages are not referenced

    feed = await http.get("/cap/feed.atom")
    assert feed.status == 200
    assert feed.content_type == "application/atom+xml"
    entries = parse(await feed.read()).findall("atom:entry", NS)
    listed = {text(e, "cap:identifier") for e in entries}
    assert listed == {"FW.2", "FW.5:retraction", "UEB.1"}
    for entry in entries:
        link = entry.find("atom:link", NS)
        assert link is not None
        href = link.get("href", "")
        assert href.startswith(f"{URL}/cap/")
        linked = await http.get(href.removeprefix(URL))
        assert linked.status == 200
        assert text(parse(await linked.read()), "cap:identifier") == text(entry, "cap:identifier")


async def test_routes_serve_only_what_the_cap_feed_channel_carried(
    client: tuple[TestClient[Any, Any], SqliteStore],
) -> None:
    http, store = client
    now = datetime.now(UTC) - timedelta(minutes=30)
    carried = alert("FW.1", at=now, incident="E-1")
    stored = [
        (carried, [delivery("FW.1", "delivered")]),
        # a drill while the channel was dry_run
        (alert("UEB.1", mode="drill", at=now, incident="E-1"), [delivery("UEB.1", "dry_run")]),
        # not carried (a daemon run --dry-run): newer, yet it does not supersede FW.1
        (alert("FW.2", stage="update", at=now + timedelta(minutes=1), incident="E-1"),
         [delivery("FW.2", "dry_run")]),
        # the playbook posts elsewhere only
        (alert("FW.3", at=now, incident="E-3"), [delivery("FW.3", "delivered", channel="log_de")]),
        (alert("FW.4", at=now, incident="E-4"), [delivery("FW.4", "failed")]),
        # retracted before the feed got it: neither it nor its Cancel was ever public
        (alert("FW.5", at=now, incident="E-5", state="retracted"),
         [delivery("FW.5", "retracted", was_delivered=False)]),
    ]  # fmt: skip
    for a, deliveries in stored:
        assert await store.create_alert(a, deliveries)

    feed = parse(await (await http.get("/cap/feed.atom")).read())
    assert [text(e, "cap:identifier") for e in feed.findall("atom:entry", NS)] == ["FW.1"]
    assert (await http.get("/cap/FW.1.xml")).status == 200
    for hidden in ("UEB.1", "FW.2", "FW.3", "FW.4", "FW.5", "FW.5:retraction"):
        assert (await http.get(f"/cap/{hidden}.xml")).status == 404, hidden


async def test_no_cap_feed_without_an_enabled_public_cap_feed_channel(store: SqliteStore) -> None:
    assert await store.create_alert(
        alert("FW.1", at=datetime.now(UTC)), [delivery("FW.1", "delivered")]
    )
    no_feed: list[dict[str, ChannelConfig]] = [
        {"log_de": CAP_CHANNELS["log_de"]},
        {"cap": CapFeedChannel(type="cap_feed", enabled=False)},
    ]
    for channels in no_feed:
        http = await serve(store, channels)
        try:
            for path in ("/cap/feed.atom", "/cap/FW.1.xml"):
                response = await http.get(path)
                assert response.status == 404, (channels, path)
                assert response.content_type == "text/plain"
                assert "no enabled public cap_feed channel" in await response.text()
        finally:
            await http.close()
