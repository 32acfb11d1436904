"""What the city's warning page shows: the current warnings, built from the stored alerts.

Pure functions, no I/O: broadcaster/web/warnings.py reads the store and serves what these
build (the page, its JSON, the Atom feed, the banner).

The page is the single source of truth that posts link to, so it shows every alert that
was released to the public (any released state, a failed fan-out too), whichever channels
it went to; never one awaiting confirmation, rejected, expired before release, or cancelled
before it went out. Nor a live alert that never reached the public: one whose every
delivery ended `dry_run` (`broadcaster run --dry-run` contacts no channel, and still calls
it sent); see `went_public`. Drills are kept apart: a view shows one mode only.

"Current" is the CAP feed's notion (broadcaster/cap.py, `active_messages`): within an
incident the newest released stage replaces the earlier ones, a message is current for
`cap.expires_after` after it was sent, and a retracted alert is replaced by its correction
(CAP Cancel). On top of that, an all-clear is shown for `all_clear_for` and then drops off,
and a correction for `correction_for`.
"""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote

from broadcaster.cap import (
    ATOM_MIME,
    ATOM_NS,
    CAP_MIME,
    active_messages,
    area_desc,
    cap_messages,
    cap_time,
    is_published,
    sent_at,
    xml_safe,
)
from broadcaster.models import RELEASED_STATES, Alert, Delivery, Mode
from broadcaster.playbooks import Playbook

Kind = Literal["warning", "correction", "all_clear"]
PAGE_PATH = "/warnings"
# The page's own languages (its labels); an alert's texts may come in more.
PAGE_LANGUAGES = ("de", "en")
SEVERITY_RANK = {"Extreme": 4, "Severe": 3, "Moderate": 2, "Minor": 1, "Unknown": 0}
KIND_RANK: dict[Kind, int] = {"warning": 0, "correction": 1, "all_clear": 2}


def page_url(public_url: str, drill: bool = False) -> str:
    """The warning page under `http.public_url`; a drill's links go to its marked view."""
    url = f"{public_url.rstrip('/')}{PAGE_PATH}"
    return f"{url}?drill=1" if drill else url


def anchor(alert_id: str) -> str:
    """The id of an entry's element on the page (alert ids may hold `:` and `.`)."""
    return "w-" + quote(alert_id, safe="").replace("%", "_")


@dataclass(frozen=True)
class Block:
    """One language's texts of an entry."""

    lang: str
    title: str
    short: str
    long: str
    instruction: str | None
    area: str


@dataclass(frozen=True)
class Withdrawn:
    """The warning a correction withdraws, as it was shown."""

    id: str
    titles: dict[str, str]  # by language
    sent: datetime


@dataclass(frozen=True)
class Entry:
    """One card of the page: a warning, an all-clear, or a correction."""

    id: str
    incident: str
    scenario: str
    mode: Mode
    kind: Kind
    stage: str
    severity: str
    issued: datetime  # the incident's first released message
    updated: datetime  # this message
    blocks: tuple[Block, ...]  # the playbook's languages first, primary first
    labels: dict[str, dict[str, str]]  # page language -> {scenario, stage}
    cap_url: str | None = None
    withdrawn: Withdrawn | None = None
    expires: datetime | None = None

    @property
    def anchor(self) -> str:
        return anchor(self.id)

    def block(self, lang: str) -> Block:
        """The texts in `lang`, else the first language's."""
        return next((b for b in self.blocks if b.lang == lang), self.blocks[0])

    def ordered_blocks(self, lang: str) -> list[Block]:
        """The page language's texts first, then the others."""
        return sorted(self.blocks, key=lambda b: b.lang != lang)


@dataclass(frozen=True)
class Snapshot:
    """The page's content in one mode at one moment; `version` changes with the content."""

    mode: Mode
    entries: tuple[Entry, ...]
    at: datetime
    version: str = field(default="")

    @property
    def warnings(self) -> list[Entry]:
        return [e for e in self.entries if e.kind == "warning"]


def carrier(message: Alert) -> str:
    """The alert whose deliveries tell whether `message` went public: a correction's
    (stored, or built for a retracted alert) is the alert it retracts."""
    return message.retracts if message.retracts is not None else message.id


def went_public(deliveries: Collection[Delivery]) -> bool:
    """A released live alert reached the public unless every delivery ended `dry_run`
    (`broadcaster run --dry-run`). An alert released to no channel at all is still the
    city's warning: the page is where it is published. A delivery still under way counts
    as public: on a normal daemon it is about to be."""
    return not deliveries or any(d.state != "dry_run" for d in deliveries)


def public_settled(deliveries: Collection[Delivery]) -> bool:
    """`went_public` can no longer change: a delivery ended other than `dry_run` (such an
    end is never undone), or every delivery has ended (no delivery is added later)."""
    return all(d.final for d in deliveries) or any(
        d.final and d.state != "dry_run" for d in deliveries
    )


def is_all_clear(alert: Alert, playbook: Playbook | None) -> bool:
    """The stage gives the all-clear (CAP responseType AllClear, or a stage so named)."""
    if playbook is None:
        return alert.stage == "all_clear"
    stage = playbook.stages.get(alert.stage)
    response = (stage.response_type if stage else None) or playbook.cap.response_type
    return response == "AllClear" or (response is None and alert.stage == "all_clear")


def severity_of(alert: Alert, playbook: Playbook | None) -> str:
    if playbook is None:
        return "Unknown"
    stage = playbook.stages.get(alert.stage)
    return (stage.severity if stage else None) or playbook.cap.severity


def _languages(alert: Alert, playbook: Playbook | None) -> list[str]:
    first = [lang for lang in (playbook.languages if playbook else []) if lang in alert.texts]
    return first + [lang for lang in alert.texts if lang not in first]


def _labels(alert: Alert, playbook: Playbook | None) -> dict[str, dict[str, str]]:
    out = {}
    for lang in PAGE_LANGUAGES:
        if playbook is None:
            out[lang] = {"scenario": alert.scenario, "stage": alert.stage}
            continue
        name = playbook.name.get(lang) or playbook.name[playbook.primary_language]
        out[lang] = {"scenario": name, "stage": playbook.stage_label(alert.stage, lang)}
    return out


def current_entries(
    alerts: Iterable[Alert],
    playbooks: Mapping[str, Playbook],
    *,
    mode: Mode,
    now: datetime,
    expires_after: timedelta,
    all_clear_for: timedelta,
    correction_for: timedelta,
    cap_link: Callable[[Alert], str | None] = lambda _: None,
    public: Callable[[Alert], bool] = lambda _: True,
) -> list[Entry]:
    """The page's entries in `mode`: warnings (most severe, then newest first), then
    corrections, then all-clears.

    `alerts`: the stored alerts to look at (the newest few hundred do: nothing older is
    current). `cap_link`: the CAP document's URL of a message, when one is served.
    `public`: whether a message reached the public (the live view: `went_public` of its
    carrier's deliveries); one that did not is neither shown nor replaces an earlier stage.
    """
    stored = [a for a in alerts if a.mode == mode]
    by_id = {a.id: a for a in stored}
    messages = [m for m in cap_messages(stored) if public(m)]
    active = active_messages(messages, now=now, expires_after=expires_after, states=RELEASED_STATES)
    first_sent: dict[str, datetime] = {}
    for m in messages:
        if m.msg_type != "Cancel" and m.retracts is None:
            first_sent.setdefault(m.incident, sent_at(m))
    windows: dict[Kind, timedelta] = {
        "warning": expires_after,
        "correction": correction_for,
        "all_clear": all_clear_for,
    }
    entries = []
    for m in active:
        playbook = playbooks.get(m.scenario)
        zone = m.issued_at.tzinfo  # times as the fire brigade wrote them, not the server's
        age = now - sent_at(m)
        withdrawn = None
        kind: Kind
        if m.msg_type == "Cancel" or m.retracts is not None:
            kind = "correction"
            if age > correction_for:
                continue
            original = by_id.get(m.retracts or "")
            if original is not None and is_published(original):
                withdrawn = Withdrawn(
                    original.id,
                    {lang: t.title for lang, t in original.texts.items()},
                    sent_at(original),
                )
        elif is_all_clear(m, playbook):
            kind = "all_clear"
            if age > all_clear_for:
                continue
        else:
            kind = "warning"
        if not m.texts:
            continue
        blocks = tuple(
            Block(
                lang,
                m.texts[lang].title.strip(),
                m.texts[lang].short.strip(),
                m.texts[lang].long.strip(),
                (m.texts[lang].instruction or "").strip() or None,
                area_desc(m.params, lang),
            )
            for lang in _languages(m, playbook)
        )
        entries.append(
            Entry(
                id=m.id,
                incident=m.incident,
                scenario=m.scenario,
                mode=m.mode,
                kind=kind,
                stage=m.stage,
                severity=severity_of(m, playbook),
                issued=min(first_sent.get(m.incident, sent_at(m)), sent_at(m)).astimezone(zone),
                updated=sent_at(m).astimezone(zone),
                blocks=blocks,
                labels=_labels(m, playbook),
                cap_url=cap_link(m),
                withdrawn=withdrawn,
                expires=sent_at(m).astimezone(zone) + min(expires_after, windows[kind]),
            )
        )
    entries.sort(
        key=lambda e: (
            KIND_RANK[e.kind],
            -SEVERITY_RANK.get(e.severity, 0),
            -e.updated.timestamp(),
            e.id,
        )
    )
    return entries


def public_entry(entry: Entry, page: str) -> dict[str, Any]:
    """An entry as the JSON form shows it (GET /warnings.json)."""
    return {
        "id": entry.id,
        "incident": entry.incident,
        "scenario": entry.scenario,
        "mode": entry.mode,
        "kind": entry.kind,
        "stage": entry.stage,
        "severity": entry.severity,
        "issued_at": entry.issued.isoformat(),
        "updated_at": entry.updated.isoformat(),
        "expires_at": entry.expires.isoformat() if entry.expires else None,
        "url": f"{page}#{entry.anchor}",
        "cap_url": entry.cap_url,
        "labels": entry.labels,
        "texts": {
            b.lang: {
                "title": b.title,
                "text": b.long,
                "instruction": b.instruction,
                "area": b.area,
            }
            for b in entry.blocks
        },
        "withdrawn": (
            {
                "id": entry.withdrawn.id,
                "titles": entry.withdrawn.titles,
                "sent_at": entry.withdrawn.sent.isoformat(),
            }
            if entry.withdrawn
            else None
        ),
    }


def snapshot(mode: Mode, entries: list[Entry], at: datetime) -> Snapshot:
    """The entries with a version that every daemon computes alike for the same content."""
    content = json.dumps(
        [public_entry(e, "") for e in entries], sort_keys=True, ensure_ascii=False
    ).encode("utf-8")
    version = hashlib.sha256(content).hexdigest()[:16]
    return Snapshot(mode, tuple(entries), at, version)


def banner_entry(entries: Iterable[Entry]) -> Entry | None:
    """What the banner shows: the most severe current warning, else the newest correction,
    else the newest all-clear (the page's order)."""
    return next(iter(entries), None)


# -- the Atom feed of the page ------------------------------------------------------------
FEED_TITLE = {"de": "Aktuelle Warnungen", "en": "Current warnings"}
KIND_WORD = {
    "de": {"warning": "Warnung", "correction": "Korrektur", "all_clear": "Entwarnung"},
    "en": {"warning": "Warning", "correction": "Correction", "all_clear": "All clear"},
}


def atom_feed(
    entries: Iterable[Entry],
    *,
    public_url: str,
    author: str,
    lang: str,
    now: datetime,
) -> bytes:
    """The page's current (live) entries as an Atom feed, in `lang` where an entry has it.

    Each entry links its card on the page (`rel="alternate" type="text/html"`) and, when
    the CAP feed serves it, its CAP document (`rel="alternate" type="application/cap+xml"`,
    as CAP feeds do).
    """
    items = list(entries)
    page = page_url(public_url)
    feed_href = f"{page}/feed.atom"
    root = ET.Element("feed", {"xmlns": ATOM_NS, "xml:lang": lang})
    ET.SubElement(root, "id").text = feed_href
    ET.SubElement(root, "title").text = FEED_TITLE.get(lang, FEED_TITLE["en"])
    updated = max((e.updated for e in items), default=now)
    ET.SubElement(root, "updated").text = cap_time(updated)
    ET.SubElement(ET.SubElement(root, "author"), "name").text = author
    ET.SubElement(root, "link", {"rel": "self", "type": ATOM_MIME, "href": feed_href})
    ET.SubElement(root, "link", {"rel": "alternate", "type": "text/html", "href": page})
    words = KIND_WORD.get(lang, KIND_WORD["en"])
    for e in items:
        block = e.block(lang)
        entry = ET.SubElement(root, "entry", {"xml:lang": block.lang})
        ET.SubElement(entry, "id").text = f"{page}#{e.anchor}"
        ET.SubElement(entry, "title").text = xml_safe(block.title)
        ET.SubElement(entry, "updated").text = cap_time(e.updated)
        ET.SubElement(entry, "published").text = cap_time(e.issued)
        ET.SubElement(ET.SubElement(entry, "author"), "name").text = author
        ET.SubElement(
            entry, "link", {"rel": "alternate", "type": "text/html", "href": f"{page}#{e.anchor}"}
        )
        if e.cap_url:
            ET.SubElement(entry, "link", {"rel": "alternate", "type": CAP_MIME, "href": e.cap_url})
        ET.SubElement(entry, "category", {"term": e.kind, "label": words[e.kind]})
        ET.SubElement(entry, "summary").text = xml_safe(block.short or block.title)
        body = block.long
        if block.instruction and block.instruction not in body:
            body = f"{body}\n\n{block.instruction}"
        ET.SubElement(entry, "content", {"type": "text"}).text = xml_safe(body)
    ET.indent(root, space="  ")
    text = ET.tostring(root, encoding="unicode")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + text.encode("utf-8") + b"\n"
