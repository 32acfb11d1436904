"""The console's board, GET /console: every open incident with its stages, mode and
state, every channel's delivery, the alerts awaiting confirmation, manual tasks and
refused triggers, on one read-only screen that updates itself (board_stream.py).

An incident is open while one of its alerts is not finished (received, awaiting
confirmation, sending) and for `RECENT` after its last change: a finished incident stays
in sight for the shift that handled it, and so do the manual tasks of a retraction.
What is read reuses the command line's and the API's reads (status.py, refusals.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from aiohttp import web

from broadcaster.deployment import Deployment
from broadcaster.models import FINAL_ALERT_STATES, Alert, Delivery, Mode, utcnow
from broadcaster.playbooks import Playbook
from broadcaster.refusals import recent_refusals
from broadcaster.report import PAGES
from broadcaster.status import RECENT, SCAN_LIMIT, open_tasks
from broadcaster.store.base import Store
from broadcaster.web.console.auth import account_of, csrf_token
from broadcaster.web.console.board_texts import BOARD_TEXTS, STATE_WORDS
from broadcaster.web.guard import PAGE_CSP
from broadcaster.web.i18n import LANGUAGES, pick_language

# Templates come from report.py's PAGES: the same folder, autoescaped, strict, and its
# `web_link` filter (only http(s) becomes a link: a provider's answer is not trusted).
BOARD_PATH = "/console"
EVENTS_PATH = "/console/events"
REFUSALS_SHOWN = 10
# The board names no one outside; it links to providers' posts, which learn nothing of it.
HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Vary": "Accept-Language",
}

Expiry = Callable[[Alert], datetime]  # when an alert awaiting confirmation expires


@dataclass
class AlertView:
    alert: Alert
    deliveries: list[Delivery]
    expires: datetime | None = None  # awaiting confirmation only


@dataclass
class Incident:
    id: str
    mode: Mode
    alerts: list[AlertView]  # its stages, oldest first

    @property
    def latest(self) -> Alert:
        return self.alerts[-1].alert

    @property
    def changed(self) -> datetime:
        return max(v.alert.updated_at for v in self.alerts)


@dataclass
class Board:
    at: datetime
    incidents: list[Incident] = field(default_factory=list)
    awaiting: list[AlertView] = field(default_factory=list)
    tasks: list[tuple[Alert, Delivery]] = field(default_factory=list)
    refusals: list[dict[str, Any]] = field(default_factory=list)
    playbooks: Mapping[str, Playbook] = field(default_factory=dict)  # for the labels

    @property
    def zone(self) -> tzinfo | None:
        """The fire brigade's zone (the newest trigger's offset), else the server's."""
        return self.incidents[0].latest.issued_at.tzinfo if self.incidents else None


def _finished(alerts: list[Alert]) -> bool:
    return all(a.state in FINAL_ALERT_STATES for a in alerts)


async def read_board(
    store: Store,
    expiry: Expiry,
    now: datetime | None = None,
    *,
    playbooks: Mapping[str, Playbook] | None = None,
    scan: int = SCAN_LIMIT,
) -> Board:
    """The board's content: one scan of the newest alerts, the deliveries of the open
    incidents' alerts, and the newest refusals; `playbooks` name scenarios, stages and
    params in the board's language."""
    now = now or utcnow()
    groups: dict[tuple[str, Mode], list[Alert]] = {}
    for alert in await store.list_alerts(scan):  # newest first
        groups.setdefault((alert.incident, alert.mode), []).append(alert)
    board = Board(at=now, playbooks=playbooks or {})
    for (incident, mode), alerts in groups.items():
        changed = max(a.updated_at for a in alerts)
        if _finished(alerts) and now - changed > RECENT:
            continue
        views = []
        for alert in reversed(alerts):
            deliveries = await store.get_deliveries(alert.id)
            view = AlertView(alert, deliveries)
            if alert.state == "awaiting_confirmation":
                view.expires = expiry(alert)
                board.awaiting.append(view)
            board.tasks += [(alert, d) for d in open_tasks(deliveries)]
            views.append(view)
        board.incidents.append(Incident(incident, mode, views))
    board.incidents.sort(key=lambda i: i.changed, reverse=True)
    board.awaiting.sort(key=lambda v: v.expires or now)
    board.refusals = await recent_refusals(store, REFUSALS_SHOWN)
    return board


# -- rendering ------------------------------------------------------------------------
def clock(moment: datetime | str | None, zone: tzinfo | None, lang: str) -> str:
    if moment is None:
        return ""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    text = moment.astimezone(zone).strftime("%d.%m.%Y %H:%M:%S")
    return text + BOARD_TEXTS[lang]["clock_suffix"]


def _context(board: Board, lang: str, via: str = "page") -> dict[str, Any]:
    zone = board.zone

    def when(moment: datetime | str | None) -> str:
        return clock(moment, zone, lang)

    def names(alert: Alert) -> dict[str, str]:
        """The playbook's names for the alert's scenario and stage, else their ids."""
        book = board.playbooks.get(alert.scenario)
        if book is None:
            return {"scenario": alert.scenario, "stage": alert.stage}
        scenario = book.name.get(lang) or book.name.get(book.primary_language)
        return {
            "scenario": scenario or alert.scenario,
            "stage": book.stage_label(alert.stage, lang),
        }

    def param(alert: Alert, name: str) -> str:
        book = board.playbooks.get(alert.scenario)
        return book.param_label(name, lang) if book else name

    return {
        "board": board,
        "lang": lang,
        "t": BOARD_TEXTS[lang],
        "states": STATE_WORDS[lang],
        "when": when,
        "names": names,
        "param": param,
        "via": via,
    }


def render_section(board: Board, lang: str, via: str = "stream") -> str:
    """The part of the page that each live update replaces; `via` (page or stream) is
    marked on it, so a test can tell when the stream took over."""
    template = PAGES.get_template("console/board_section.html.j2")
    return template.render(_context(board, lang, via))


def render_board(board: Board, lang: str, account: str = "", csrf: str = "") -> str:
    """The whole page; with `account`, who is signed in and a sign-out form (`csrf`: the
    session's token)."""
    other = {"de": "en", "en": "de"}[lang]
    return PAGES.get_template("console/board.html.j2").render(
        _context(board, lang),
        account=account,
        csrf=csrf,
        other_lang=other,
        events_url=f"{EVENTS_PATH}?lang={lang}",
        switch_url=f"{BOARD_PATH}?lang={other}",
    )


def board_language(request: web.Request) -> str:
    """`?lang=de|en` when given (the switch), else the browser's Accept-Language."""
    asked = request.query.get("lang", "")
    return asked if asked in LANGUAGES else pick_language(request.headers.get("Accept-Language"))


@dataclass
class BoardReader:
    """Where the board's content comes from: the daemon's store, its confirm desk, and
    its deployment (read each time: a reload replaces the playbooks)."""

    store: Store
    expiry: Expiry
    deployment: Deployment | None = None

    async def read(self) -> Board:
        books = self.deployment.playbooks if self.deployment is not None else None
        return await read_board(self.store, self.expiry, playbooks=books)


class BoardPage:
    def __init__(self, reader: BoardReader) -> None:
        self.reader = reader

    async def get(self, request: web.Request) -> web.Response:
        lang = board_language(request)
        account = account_of(request).name
        html = render_board(await self.reader.read(), lang, account, csrf_token(request))
        return web.Response(text=html, content_type="text/html", headers=HEADERS)


__all__ = [
    "BOARD_PATH",
    "EVENTS_PATH",
    "Board",
    "BoardPage",
    "BoardReader",
    "read_board",
    "render_board",
    "render_section",
]
