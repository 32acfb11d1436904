"""The city's public warning page: GET / and /warnings, /warnings.json,
/warnings/feed.atom, /warnings/banner (contract section 8). Public, no token.

What is shown is decided in broadcaster/warnings.py. Here: reading the store, a cache, and
the answers. Many citizens open the page at once during an incident, so the content is
read from the store at most once per `CACHE_TTL` per mode and rendered once per language:
a change of an alert told by this daemon's `Events` drops the cache at once, and the TTL
bounds what a change made by another daemon sharing the store (or plain time: an all-clear
dropping off) takes to show. Every answer has an ETag, so polling browsers mostly get 304.

The live view also reads the deliveries of the alerts of current incidents (whether an
alert went public: `went_public`), and keeps each answer once it can no longer change, so
a read costs one query per alert still being sent, not one per alert.

The page is server-rendered and works without JavaScript; warnings.js (a static file: the
CSP allows no inline script) polls the JSON form and swaps in the fresh page when its
version changes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape

from broadcaster.cap import cap_messages, cap_url, default_sender, expires_at
from broadcaster.deployment import Deployment
from broadcaster.events import Events
from broadcaster.models import Alert, Delivery, Mode, utcnow
from broadcaster.store.base import Store
from broadcaster.warnings import (
    PAGE_LANGUAGES,
    PAGE_PATH,
    Entry,
    Snapshot,
    atom_feed,
    banner_entry,
    carrier,
    current_entries,
    page_url,
    public_entry,
    public_settled,
    snapshot,
    went_public,
)
from broadcaster.web.api import HOME, STATE
from broadcaster.web.cap import FEED_SCAN_LIMIT, cap_feed_channels, carried_messages
from broadcaster.web.guard import PAGE_CSP
from broadcaster.web.i18n import PUSH_TEXTS, pick_language
from broadcaster.web.push import push_channel
from broadcaster.web.warning_texts import TEXTS

CACHE_TTL = 5.0  # seconds a snapshot is served without looking at the store again
CHURN_TTL = 0.5  # seconds for one read while alerts were changing under it
BANNER_REFRESH = 60  # seconds: the banner reloads itself (a meta refresh, no script)
MAX_AGE = "public, max-age=5"  # a proxy in front may keep an answer as long as we do
# Each language block is labelled with its language's own name.
LANGUAGE_NAMES = {
    "de": "Deutsch",
    "en": "English",
    "fr": "Français",
    "nl": "Nederlands",
    "it": "Italiano",
    "es": "Español",
    "pl": "Polski",
    "tr": "Türkçe",
    "ru": "Русский",
    "uk": "Українська",
    "ar": "العربية",
}

PAGES = Environment(
    loader=PackageLoader("broadcaster.web", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


def local_time(moment: datetime, lang: str) -> str:
    text = moment.strftime("%d.%m.%Y, %H:%M")
    return f"{text} Uhr" if lang == "de" else text


PAGES.filters["local_time"] = local_time
PAGES.globals["push_texts"] = PUSH_TEXTS  # push_subscribe.html


@dataclass
class WarningPage:
    """The page's state: where the alerts are, the deployment (read at each render: a
    reload changes channels and playbooks in place), and the cache."""

    deployment: Deployment
    store: Store
    snapshots: dict[Mode, tuple[float, Snapshot]] = field(default_factory=dict)
    rendered: dict[tuple[str, ...], tuple[str, str]] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    generation: int = 0  # bumped by every change: a read started before it is kept briefly
    # alert id -> went public, for the alerts whose answer can no longer change
    settled: dict[str, bool] = field(default_factory=dict)
    # `broadcaster run --dry-run` reaches no one: its page shows no live warning, not even
    # while its deliveries are still pending (before each ends dry_run).
    dry_run: bool = False

    @property
    def public_url(self) -> str:
        return self.deployment.settings.http.public_url

    # -- Events sink: an alert changed, so the page may have -----------------------
    async def alert_changed(self, alert: Alert, deliveries: list[Delivery]) -> None:
        self.invalidate()

    async def refused(self, refusal: dict[str, Any]) -> None:
        return None

    def invalidate(self) -> None:
        self.generation += 1
        self.snapshots.clear()

    # -- the content ------------------------------------------------------------------
    async def current(self, mode: Mode) -> Snapshot:
        """The mode's snapshot; one store read at a time serves every waiting request."""
        cached = self.snapshots.get(mode)
        if cached is not None and time.monotonic() - cached[0] < CACHE_TTL:
            return cached[1]
        async with self.lock:
            cached = self.snapshots.get(mode)
            if cached is not None and time.monotonic() - cached[0] < CACHE_TTL:
                return cached[1]
            generation = self.generation
            taken = time.monotonic()
            fresh = await self.load(mode)
            if generation != self.generation:
                # Changed while reading: keep it only briefly, so that a stream of
                # changes (a fan-out) costs a few reads a second, not one per request.
                taken -= CACHE_TTL - CHURN_TTL
            self.snapshots[mode] = (taken, fresh)
            return fresh

    async def load(self, mode: Mode) -> Snapshot:
        settings = self.deployment.settings
        page = settings.warning_page
        now = utcnow()
        alerts = await self.store.list_alerts(FEED_SCAN_LIMIT)
        read: dict[str, list[Delivery]] = {}
        public: set[str] | None = None  # the drill view shows drills that reached no one
        if mode == "live":
            public = set() if self.dry_run else await self.went_public(alerts, now, read)

        def entries(links: Mapping[str, str]) -> list[Entry]:
            return current_entries(
                alerts,
                self.deployment.playbooks,
                mode=mode,
                now=now,
                expires_after=settings.cap.expires_after,
                all_clear_for=page.all_clear_for,
                correction_for=page.correction_for,
                cap_link=lambda m: links.get(m.id),
                public=lambda m: public is None or carrier(m) in public,
            )

        first = entries({})
        links = await self.cap_links(alerts, {e.id for e in first}, read)
        return snapshot(mode, entries(links) if links else first, now)

    async def went_public(
        self, alerts: list[Alert], now: datetime, read: dict[str, list[Delivery]]
    ) -> set[str]:
        """The ids of the live alerts of current incidents that went public. Only those
        can be shown (an entry of an incident without an unexpired message cannot be
        current). The deliveries read are added to `read`."""
        messages = cap_messages(a for a in alerts if a.mode == "live")
        expiry = self.deployment.settings.cap.expires_after
        current = {m.incident for m in messages if expires_at(m, expiry) > now}
        carriers = {carrier(m) for m in messages if m.incident in current}
        public = set()
        for alert_id in sorted(carriers):
            known = self.settled.get(alert_id)
            if known is None:
                deliveries = read[alert_id] = await self.store.get_deliveries(alert_id)
                known = went_public(deliveries)
                if public_settled(deliveries):
                    self.settled[alert_id] = known
            if known:
                public.add(alert_id)
        # Only what is still scanned is kept: the memory stays bounded.
        scanned = {a.id for a in alerts}
        for alert_id in [a for a in self.settled if a not in scanned]:
            del self.settled[alert_id]
        return public

    async def cap_links(
        self, alerts: list[Alert], shown: set[str], read: Mapping[str, list[Delivery]]
    ) -> dict[str, str]:
        """The CAP document of each shown message that the CAP feed serves (web/cap.py);
        `read`: deliveries already read for this snapshot."""
        feed = cap_feed_channels(self.deployment.channels)
        if not feed or not shown:
            return {}
        messages = [m for m in cap_messages(alerts) if m.id in shown]
        deliveries = {
            cid: read[cid] if cid in read else await self.store.get_deliveries(cid)
            for cid in {carrier(m) for m in messages}
        }
        return {
            m.id: cap_url(self.public_url, m.id)
            for m in carried_messages(messages, deliveries, feed)
        }

    def push_offered(self) -> bool:
        """The deployment has a webpush channel (the one web/push.py serves): the page
        offers the subscription."""
        return push_channel(self.deployment.channels) is not None

    def cap_feed(self) -> bool:
        return bool(cap_feed_channels(self.deployment.channels))

    def author(self) -> str:
        cap = self.deployment.settings.cap
        return cap.sender_name or cap.sender or default_sender(self.public_url)

    # -- the page ---------------------------------------------------------------------
    def page_html(self, snap: Snapshot, lang: str) -> tuple[str, str]:
        """(etag, html) of the page, rendered once per version, language and offer."""
        drill = snap.mode == "drill"
        push = self.push_offered()
        key = (snap.mode, lang, "push" if push else "")
        # The minute too: the page says when it was current ("Stand"), to the minute.
        minute = snap.at.strftime("%H%M")
        etag = f'"{snap.version}-{minute}-{lang}-{"p" if push else ""}{"d" if drill else ""}"'
        kept = self.rendered.get(key)
        if kept is not None and kept[0] == etag:
            return kept
        html = render_page(
            snap,
            lang,
            public_url=self.public_url,
            refresh_every=int(self.deployment.settings.warning_page.refresh_every.total_seconds()),
            push=push,
            cap_feed=self.cap_feed(),
            author=self.deployment.settings.cap.sender_name or "",
        )
        self.rendered[key] = (etag, html)
        return etag, html


def render_page(
    snap: Snapshot,
    lang: str,
    *,
    public_url: str,
    refresh_every: int,
    push: bool,
    cap_feed: bool,
    author: str = "",
    environment: Environment = PAGES,
) -> str:
    drill = snap.mode == "drill"
    here = page_url("", drill)
    # "As of" in the zone the warnings are shown in (the trigger's), else the server's.
    at = snap.at.astimezone(snap.entries[0].updated.tzinfo if snap.entries else None)
    return environment.get_template("warnings.html.j2").render(
        lang=lang,
        language=lang,  # for push_subscribe.html
        t=TEXTS[lang],
        texts=TEXTS,
        drill=drill,
        entries=snap.entries,
        version=snap.version,
        at=at,
        here=here,
        author=author,
        lang_names=LANGUAGE_NAMES,
        other_lang={"de": "en", "en": "de"}[lang],
        json_url=f"{PAGE_PATH}.json" + ("?drill=1" if drill else ""),
        feed_url=f"{PAGE_PATH}/feed.atom",
        cap_feed_url="/cap/feed.atom" if cap_feed else None,
        refresh_every=max(1, refresh_every),
        push=push,
    )


def page_language(request: web.Request) -> str:
    """`?lang=de|en` when given, else the browser's Accept-Language."""
    asked = request.query.get("lang", "")
    if asked in PAGE_LANGUAGES:
        return asked
    return pick_language(request.headers.get("Accept-Language"))


def drill_view(request: web.Request) -> bool:
    return request.query.get("drill") == "1"


def prefers_json(accept: str) -> bool:
    """The client asks for JSON above HTML (`Accept: application/json`); a browser's
    header, `*/*` or none means the page."""
    best: dict[str, float] = {"json": 0.0, "html": 0.0}
    for item in accept.split(","):
        media, _, params = item.partition(";")
        media = media.strip().lower()
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        kinds = {
            "application/json": ("json",),
            "application/*": ("json",),
            "text/html": ("html",),
            "text/*": ("html",),
            "*/*": ("json", "html"),
        }.get(media, ())
        for kind in kinds:
            best[kind] = max(best[kind], q)
    return best["json"] > best["html"]


def _not_modified(request: web.Request, etag: str) -> bool:
    return etag in {tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")}


def _answer(
    request: web.Request,
    etag: str,
    body: str | bytes,
    content_type: str,
    headers: dict[str, str],
) -> web.Response:
    headers = {"ETag": etag, "Cache-Control": MAX_AGE, **headers}
    if _not_modified(request, etag):
        return web.Response(status=304, headers=headers)
    payload = body.encode("utf-8") if isinstance(body, str) else body
    return web.Response(body=payload, content_type=content_type, charset="utf-8", headers=headers)


class Routes:
    def __init__(self, page: WarningPage) -> None:
        self.page = page

    async def home(self, request: web.Request) -> web.StreamResponse | None:
        """GET /: the page for browsers; None (the JSON index) for `Accept: application/json`."""
        if prefers_json(request.headers.get("Accept", "")):
            return None
        response = await self.warnings(request)
        response.headers["Vary"] = "Accept, Accept-Language"
        return response

    async def warnings(self, request: web.Request) -> web.Response:
        lang = page_language(request)
        snap = await self.page.current("drill" if drill_view(request) else "live")
        etag, html = self.page.page_html(snap, lang)
        headers = {"Content-Security-Policy": PAGE_CSP, "Vary": "Accept-Language"}
        if snap.mode == "drill":
            headers["X-Robots-Tag"] = "noindex, nofollow"
        return _answer(request, etag, html, "text/html", headers)

    async def json_form(self, request: web.Request) -> web.Response:
        snap = await self.page.current("drill" if drill_view(request) else "live")
        page = page_url(self.page.public_url, snap.mode == "drill")
        body = {
            "version": snap.version,
            "generated_at": snap.at.isoformat(),
            "page_url": page,
            "exercise": snap.mode == "drill",
            "warnings": [public_entry(e, page) for e in snap.entries],
        }
        text = json.dumps(body, ensure_ascii=False)
        return _answer(
            request,
            f'"{snap.version}"',
            text,
            "application/json",
            {"Access-Control-Allow-Origin": "*"},
        )

    async def feed(self, request: web.Request) -> web.Response:
        """Live warnings only: the feed has no drill view."""
        lang = page_language(request)
        snap = await self.page.current("live")
        body = atom_feed(
            snap.entries,
            public_url=self.page.public_url,
            author=self.page.author(),
            lang=lang,
            now=snap.at,
        )
        return _answer(
            request,
            f'"{snap.version}-{lang}"',
            body,
            "application/atom+xml",
            {"Vary": "Accept-Language", "Access-Control-Allow-Origin": "*"},
        )

    async def banner(self, request: web.Request) -> web.Response:
        """Live warnings only; the one answer other sites may frame."""
        lang = page_language(request)
        snap = await self.page.current("live")
        sources = self.page.deployment.settings.warning_page.banner_frame_ancestors
        html = PAGES.get_template("warnings_banner.html.j2").render(
            lang=lang,
            t=TEXTS[lang],
            entry=banner_entry(snap.entries),
            more=max(0, len(snap.warnings) - 1),
            page=page_url(self.page.public_url),
            public_url=self.page.public_url,
            refresh=BANNER_REFRESH,
        )
        csp = (
            "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; "
            f"form-action 'none'; frame-ancestors {' '.join(sources)}"
        )
        return _answer(
            request,
            f'"{snap.version}-{lang}-banner"',
            html,
            "text/html",
            {
                "Content-Security-Policy": csp,
                "Vary": "Accept-Language",
                "Access-Control-Allow-Origin": "*",
            },
        )


def add_warning_routes(
    app: web.Application,
    deployment: Deployment,
    events: Events | None = None,
    *,
    dry_run: bool = False,
) -> WarningPage:
    """Serve the page from `app[STATE].store`; with `events`, alert changes drop its cache;
    `dry_run`: the daemon's `--dry-run`, whose page shows no live warning."""
    page = WarningPage(deployment, app[STATE].store, dry_run=dry_run)
    if events is not None:
        events.subscribe(page)
    routes = Routes(page)
    app[HOME] = routes.home
    app.router.add_get(PAGE_PATH, routes.warnings)
    app.router.add_get(f"{PAGE_PATH}.json", routes.json_form)
    app.router.add_get(f"{PAGE_PATH}/feed.atom", routes.feed)
    app.router.add_get(f"{PAGE_PATH}/banner", routes.banner)
    return page


__all__ = ["WarningPage", "add_warning_routes", "render_page"]
