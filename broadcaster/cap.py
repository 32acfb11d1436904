"""CAP 1.2 documents and the Atom index feed (CHANNELS.md section 9, contract section 8).

Pure functions, no I/O: broadcaster/web/cap.py reads the store and serves what these build.

Every released alert is a CAP message whose identifier is its alert id. A retracted alert
stays reachable; its Cancel message is the stored correction (`<id>:retraction`, made by
broadcaster/retraction.py with the pre-approved retraction texts) or, when no correction
went out (a drill, or no channel had carried the alert yet), one built here with the same
identifier, so a CAP consumer learns of every retraction.

Elements are emitted in the exact sequence of the OASIS schema (it checks the order), and
timestamps as `YYYY-MM-DDThh:mm:ss+hh:mm` (the schema's pattern: no `Z`, no fractions).
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from broadcaster.models import RELEASED_STATES, Alert, Texts
from broadcaster.playbooks import Playbook, Stage

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
ATOM_NS = "http://www.w3.org/2005/Atom"
CAP_MIME = "application/cap+xml"
ATOM_MIME = "application/atom+xml"

# States of an alert that went out (or is going out); a retracted alert counts when it
# had been released before the retraction.
# Listed in the feed while not expired and not superseded (CAP feeds: active alerts only).
FEED_STATES = frozenset({"sending", "sent", "partially_failed"})
# Same suffix as broadcaster.retraction.correction_id (a test checks they agree).
CANCEL_SUFFIX = ":retraction"
HEADLINE_MAX = 160  # CAP guidance; NINA shows the headline as the warning's title

_LANGUAGE_TAGS = {
    "de": "de-DE",
    "en": "en-US",
    "fr": "fr-FR",
    "nl": "nl-NL",
    "it": "it-IT",
    "es": "es-ES",
    "pl": "pl-PL",
    "tr": "tr-TR",
    "ru": "ru-RU",
    "uk": "uk-UA",
    "ar": "ar-SA",
}
_CITY = {"de": "Stadtgebiet", "en": "City"}
_CANCELLED = {"de": "Aufgehoben", "en": "Cancelled"}
_CANCEL_TEXT = {
    "de": "Diese Warnung wurde aufgehoben: Es handelt sich um einen Fehlalarm. "
    "Sie müssen nichts unternehmen.",
    "en": "This warning has been cancelled: it was a false alarm. No action is required.",
}
_REASON = {"de": "Grund", "en": "Reason"}
_AREA_PARAMS = ("location", "district", "area")
# Characters XML 1.0 does not allow; ElementTree would write them and break the document.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


# -- small helpers -------------------------------------------------------------------
def cap_time(moment: datetime) -> str:
    """`YYYY-MM-DDThh:mm:ss+hh:mm`: whole seconds, a numeric offset, never `Z`.

    A naive datetime is taken as UTC (the store writes UTC).
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        moment = moment.replace(tzinfo=UTC)
    offset = moment.utcoffset() or timedelta(0)
    minutes = round(offset.total_seconds() / 60)
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"{moment.strftime('%Y-%m-%dT%H:%M:%S')}{sign}{hours:02d}:{mins:02d}"


def default_sender(public_url: str) -> str:
    """The sender id from http.public_url: its host, e.g. `alerts.example.org`."""
    host = urlsplit(public_url).hostname
    return host or public_url


def cancel_identifier(alert_id: str) -> str:
    """The identifier (and alert id) of the Cancel message of a retracted alert."""
    return f"{alert_id}{CANCEL_SUFFIX}"


def cap_url(public_url: str, message_id: str) -> str:
    return f"{public_url.rstrip('/')}/cap/{quote(message_id, safe=':')}.xml"


def feed_url(public_url: str) -> str:
    return f"{public_url.rstrip('/')}/cap/feed.atom"


def language_tag(lang: str) -> str:
    """`de` -> `de-DE`, `en` -> `en-US`; a tag with a region stays as it is."""
    return _LANGUAGE_TAGS.get(lang.lower(), lang) if "-" not in lang else lang


def sent_at(alert: Alert) -> datetime:
    """When the message went out: its release, else its creation."""
    return alert.released_at or alert.created_at


def expires_at(alert: Alert, expires_after: timedelta) -> datetime:
    return sent_at(alert) + expires_after


def is_published(alert: Alert) -> bool:
    """Released alerts only: nothing awaiting confirmation, rejected or expired unsent."""
    if alert.state in RELEASED_STATES:
        return True
    return alert.state == "retracted" and alert.released_at is not None


def xml_safe(text: str) -> str:
    return _NOT_XML.sub("", text)


def _headline(title: str) -> str:
    title = " ".join(title.split())
    return title if len(title) <= HEADLINE_MAX else title[: HEADLINE_MAX - 1].rstrip() + "…"


def _number(value: Any) -> float | None:
    """A param as the trigger sent it (a number, or text for `--param k=v`)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _plain(number: float, decimals: int) -> str:
    text = f"{number:.{decimals}f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def area_desc(params: dict[str, Any], lang: str) -> str:
    """The place names the trigger carried (location, district, area), else the city."""
    parts: list[str] = []
    for name in _AREA_PARAMS:
        value = params.get(name)
        if isinstance(value, str) and value.strip() and value.strip() not in parts:
            parts.append(value.strip())
    return ", ".join(parts) if parts else _CITY.get(lang, _CITY["en"])


def circle(params: dict[str, Any]) -> str | None:
    """`lat,lon radius_km` (WGS 84) when the trigger carried coordinates and a radius."""
    lat = _number(params.get("latitude"))
    lon = _number(params.get("longitude"))
    radius_m = _number(params.get("radius_m"))
    if lat is None or lon is None or radius_m is None:
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180 and radius_m > 0):
        return None
    return f"{_plain(lat, 6)},{_plain(lon, 6)} {radius_m / 1000:.3f}"


# -- which messages exist, and which reference which ----------------------------------
def cancel_message(alert: Alert) -> Alert:
    """The Cancel message of a retracted alert when no correction was stored.

    Built from the alert's own texts with fixed wording; its time is the retraction's
    (the alert's last change: a retracted alert changes no more), never before the alert.
    """
    at = max(alert.updated_at, sent_at(alert))
    texts = {
        lang: Texts(
            title=_headline(f"{_CANCELLED.get(lang, _CANCELLED['en'])}: {t.title}"),
            short=_CANCEL_TEXT.get(lang, _CANCEL_TEXT["en"]),
            long=_cancel_description(lang, alert.retraction_reason),
        )
        for lang, t in alert.texts.items()
    }
    return Alert(
        id=cancel_identifier(alert.id),
        incident=alert.incident,
        scenario=alert.scenario,
        stage=alert.stage,
        mode=alert.mode,
        state="sent",
        msg_type="Cancel",
        issued_at=alert.issued_at,
        created_at=at,
        updated_at=at,
        released_at=at,
        params=alert.params,
        texts=texts,
        retraction_reason=alert.retraction_reason,
        retracts=alert.id,
    )


def _cancel_description(lang: str, reason: str | None) -> str:
    text = _CANCEL_TEXT.get(lang, _CANCEL_TEXT["en"])
    if reason and reason.strip():
        text += f"\n{_REASON.get(lang, _REASON['en'])}: {reason.strip()}"
    return text


def cap_messages(alerts: Iterable[Alert]) -> list[Alert]:
    """The CAP messages among stored alerts, oldest `sent` first.

    Released alerts, plus a built Cancel for every retracted one whose stored correction
    has not been released (a drill, or no channel had carried it).
    """
    stored = list(alerts)
    published = [a for a in stored if is_published(a)]
    ids = {a.id for a in published}
    cancels = [
        cancel_message(a)
        for a in published
        if a.state == "retracted" and a.retracts is None and cancel_identifier(a.id) not in ids
    ]
    return sorted([*published, *cancels], key=lambda a: (sent_at(a), a.created_at, a.id))


def earlier_messages(message: Alert, messages: Sequence[Alert]) -> list[Alert]:
    """The messages of `message`'s incident before it, as `cap_messages` orders them."""
    out: list[Alert] = []
    for other in messages:
        if other.id == message.id:
            break
        if other.incident == message.incident:
            out.append(other)
    return out


def referenced(alert: Alert, earlier: Iterable[Alert]) -> list[Alert]:
    """What the message references: a Cancel the alert it retracts; anything else every
    earlier released message of its incident in the same mode (a drill never references
    a live alert, nor the other way round)."""
    candidates = [
        e
        for e in earlier
        if e.id != alert.id
        and e.mode == alert.mode
        and e.incident == alert.incident
        and is_published(e)
    ]
    if alert.msg_type == "Cancel" and alert.retracts is not None:
        return [e for e in candidates if e.id == alert.retracts]
    return candidates


def msg_type(alert: Alert, references: Sequence[Alert]) -> Literal["Alert", "Update", "Cancel"]:
    """The stage's msgType; an Update with nothing earlier to update is an Alert."""
    if alert.msg_type == "Update" and not references:
        return "Alert"
    return alert.msg_type


# -- CAP 1.2 ---------------------------------------------------------------------------
def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    child = ET.SubElement(parent, tag)
    if text is not None:
        child.text = xml_safe(text)
    return child


def _stage(playbook: Playbook, alert: Alert) -> Stage:
    return playbook.stages.get(alert.stage) or Stage(msg_type=alert.msg_type)


def event_name(playbook: Playbook, lang: str) -> str:
    return (
        playbook.cap.event.get(lang)
        or playbook.name.get(lang)
        or playbook.name.get(playbook.primary_language)
        or playbook.id
    )


def _languages(alert: Alert, playbook: Playbook) -> list[str]:
    """The playbook's languages first (primary first), then any other the alert has."""
    ordered = [lang for lang in playbook.languages if lang in alert.texts]
    return ordered + [lang for lang in alert.texts if lang not in ordered]


def cap_alert_xml(
    alert: Alert,
    playbook: Playbook,
    earlier: list[Alert],
    *,
    sender: str,
    public_url: str,
    expires_after: timedelta,
    sender_name: str | None = None,
) -> bytes:
    """The alert as a CAP 1.2 document (UTF-8, with an XML declaration).

    `earlier`: the incident's messages before this one (see `earlier_messages`); only
    released ones of the same mode are referenced, and a Cancel references just the
    alert it retracts.
    """
    sent = sent_at(alert)
    refs = referenced(alert, earlier)
    root = ET.Element("alert", {"xmlns": CAP_NS})
    _sub(root, "identifier", alert.id)
    _sub(root, "sender", sender)
    _sub(root, "sent", cap_time(sent))
    _sub(root, "status", "Exercise" if alert.mode == "drill" else "Actual")
    _sub(root, "msgType", msg_type(alert, refs))
    _sub(root, "scope", "Public")
    if alert.msg_type == "Cancel" and alert.retraction_reason:
        _sub(root, "note", alert.retraction_reason.strip())
    if refs:
        _sub(root, "references", " ".join(f"{sender},{e.id},{cap_time(sent_at(e))}" for e in refs))
    _sub(root, "incidents", alert.incident)

    stage = _stage(playbook, alert)
    profile = playbook.cap
    if alert.msg_type == "Cancel":
        response_type: str | None = "None"  # a false alarm: nothing to do
    else:
        response_type = stage.response_type or profile.response_type
    expires = cap_time(sent + expires_after)
    contact = alert.params.get("hotline")
    circle_text = circle(alert.params)
    for lang in _languages(alert, playbook):
        texts = alert.texts[lang]
        info = _sub(root, "info")
        _sub(info, "language", language_tag(lang))
        _sub(info, "category", profile.category)
        _sub(info, "event", event_name(playbook, lang))
        if response_type is not None:
            _sub(info, "responseType", response_type)
        _sub(info, "urgency", stage.urgency or profile.urgency)
        _sub(info, "severity", stage.severity or profile.severity)
        _sub(info, "certainty", stage.certainty or profile.certainty)
        _sub(info, "expires", expires)
        _sub(info, "senderName", sender_name or sender)
        _sub(info, "headline", _headline(texts.title))
        if texts.long.strip():
            _sub(info, "description", texts.long.strip())
        if texts.instruction and texts.instruction.strip():
            _sub(info, "instruction", texts.instruction.strip())
        _sub(info, "web", cap_url(public_url, alert.id))
        if isinstance(contact, str) and contact.strip():
            _sub(info, "contact", contact.strip())
        area = _sub(info, "area")
        _sub(area, "areaDesc", area_desc(alert.params, lang))
        if circle_text is not None:
            _sub(area, "circle", circle_text)
    return _document(root)


def cap_cancel_xml(
    alert: Alert,
    playbook: Playbook,
    earlier: list[Alert],
    *,
    sender: str,
    public_url: str,
    expires_after: timedelta,
    sender_name: str | None = None,
) -> bytes:
    """The Cancel message of a retracted alert that has no stored correction.

    Identifier `<id>:retraction`, msgType Cancel, referencing the retracted alert (which
    need not be in `earlier`).
    """
    cancel = cancel_message(alert)
    return cap_alert_xml(
        cancel,
        playbook,
        [*earlier, alert],
        sender=sender,
        public_url=public_url,
        expires_after=expires_after,
        sender_name=sender_name,
    )


def _document(root: ET.Element) -> bytes:
    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body.encode("utf-8") + b"\n"


# -- the Atom index feed ---------------------------------------------------------------
def active_messages(
    messages: Iterable[Alert],
    *,
    now: datetime,
    expires_after: timedelta,
    states: frozenset[str] = FEED_STATES,
) -> list[Alert]:
    """What the feed lists: released, not retracted or failed, not expired, not superseded.

    Within an incident (and mode) only the newest Alert/Update is active; a Cancel stays
    listed until it expires, so pollers learn of the retraction. `states`: which count
    (the warning page also shows an alert whose every channel failed).
    """
    live = [m for m in messages if m.state in states and expires_at(m, expires_after) > now]
    newest: dict[tuple[str, str], Alert] = {}
    for m in live:
        if m.msg_type == "Cancel":
            continue
        key = (m.incident, m.mode)
        if key not in newest or (sent_at(m), m.created_at) > (
            sent_at(newest[key]),
            newest[key].created_at,
        ):
            newest[key] = m
    keep = {m.id for m in newest.values()}
    active = [m for m in live if m.msg_type == "Cancel" or m.id in keep]
    return sorted(active, key=lambda m: (sent_at(m), m.id), reverse=True)


def atom_feed(
    entries: list[tuple[Alert, Playbook]],
    *,
    public_url: str,
    sender: str,
    now: datetime,
    expires_after: timedelta,
    title: str = "Warnungen / Alerts (CAP 1.2)",
    sender_name: str | None = None,
) -> bytes:
    """An Atom feed of the active CAP messages among `entries`, newest first.

    Each entry links its CAP document (`rel="alternate" type="application/cap+xml"`) and
    repeats cap: summary elements so consumers can filter without fetching it.
    """
    playbooks = {a.id: p for a, p in entries}
    ordered = sorted((a for a, _ in entries), key=lambda a: (sent_at(a), a.created_at, a.id))
    active = active_messages(ordered, now=now, expires_after=expires_after)
    root = ET.Element("feed", {"xmlns": ATOM_NS, "xmlns:cap": CAP_NS})
    _sub(root, "id", feed_url(public_url))
    _sub(root, "title", title)
    updated = max((sent_at(a) for a in active), default=now)
    _sub(root, "updated", cap_time(updated))
    author = _sub(root, "author")
    _sub(author, "name", sender_name or sender)
    ET.SubElement(root, "link", {"rel": "self", "type": ATOM_MIME, "href": feed_url(public_url)})
    for alert in active:
        playbook = playbooks[alert.id]
        lang = _languages(alert, playbook)[0] if alert.texts else playbook.primary_language
        texts = alert.texts.get(lang)
        stage = _stage(playbook, alert)
        href = cap_url(public_url, alert.id)
        entry = _sub(root, "entry")
        _sub(entry, "id", href)
        _sub(entry, "title", _headline(texts.title) if texts else event_name(playbook, lang))
        _sub(entry, "updated", cap_time(sent_at(alert)))
        entry_author = _sub(entry, "author")
        _sub(entry_author, "name", sender_name or sender)
        ET.SubElement(entry, "link", {"rel": "alternate", "type": CAP_MIME, "href": href})
        if texts and texts.short.strip():
            _sub(entry, "summary", texts.short.strip())
        _sub(entry, "cap:identifier", alert.id)
        _sub(entry, "cap:sender", sender)
        _sub(entry, "cap:sent", cap_time(sent_at(alert)))
        _sub(entry, "cap:status", "Exercise" if alert.mode == "drill" else "Actual")
        _sub(
            entry,
            "cap:msgType",
            msg_type(alert, referenced(alert, earlier_messages(alert, ordered))),
        )
        _sub(entry, "cap:event", event_name(playbook, lang))
        _sub(entry, "cap:urgency", stage.urgency or playbook.cap.urgency)
        _sub(entry, "cap:severity", stage.severity or playbook.cap.severity)
        _sub(entry, "cap:certainty", stage.certainty or playbook.cap.certainty)
        _sub(entry, "cap:expires", cap_time(expires_at(alert, expires_after)))
        _sub(entry, "cap:areaDesc", area_desc(alert.params, lang))
    return _document(root)
