"""The duty officer's page: GET/POST /confirm/{token} and its live state.

Server-rendered HTML (Jinja2 with autoescaping: every param from a trigger is shown as
text, never markup), a little JavaScript for the second tap and the live delivery
states. Actions are POST only; the token in the URL is the capability, so it is never
logged (the access log is off) and only its hash is stored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape

from broadcaster.channels.kinds import kind
from broadcaster.confirm import ConfirmDesk, Link, Outcome
from broadcaster.deployment import Deployment
from broadcaster.limits import Measurement
from broadcaster.models import (
    REASON_MAX_LENGTH,
    RELEASED_STATES,
    Alert,
    AuditEntry,
    Delivery,
    reason_problem,
    utcnow,
)
from broadcaster.retraction import Retractor
from broadcaster.store.base import Store
from broadcaster.web.guard import PAGE_CSP, Throttle, same_origin
from broadcaster.web.i18n import TEXTS, pick_language

STATIC = Path(__file__).parent / "static"


@dataclass
class ConfirmState:
    desk: ConfirmDesk
    retractor: Retractor
    deployment: Deployment
    store: Store


CONFIRM = web.AppKey("confirm", ConfirmState)
PAGES = Environment(
    loader=PackageLoader("broadcaster.web", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


def _local(moment: datetime | None, zone: tzinfo | None) -> str:
    """In the fire brigade's time zone (the trigger's offset), not the server's."""
    return moment.astimezone(zone).strftime("%d.%m.%Y %H:%M:%S") if moment else ""


# The units limits.py counts in, for the German page (English reads them as they are).
UNITS_DE = {
    "characters": "Zeichen",
    "weighted characters": "gewichtete Zeichen",
    "graphemes": "Zeichen (Grapheme)",
    "UTF-8 bytes": "UTF-8-Bytes",
    "UTF-16 units": "UTF-16-Einheiten",
    "SMS segments": "SMS-Teile",
    "hashtags": "Hashtags",
}


def length_text(m: Measurement, lang: str) -> str:
    if lang != "de":
        return str(m)
    unit = UNITS_DE.get(m.unit, m.unit)
    text = f"{m.count} {unit} (ohne Grenze)" if m.limit is None else f"{m.count}/{m.limit} {unit}"
    return f"{text} ({m.detail})" if m.detail else text


def view_of(alert: Alert, locked: bool) -> str:
    if locked and alert.state == "awaiting_confirmation":
        return "locked"
    if alert.state == "awaiting_confirmation":
        return "pending_release" if alert.release_at else "decide"
    if alert.state in RELEASED_STATES or alert.state == "retracted":
        return "released"
    return "rejected" if alert.state == "rejected" else "expired"


def _html(text: str, status: int = 200) -> web.Response:
    # The other security headers come with every answer (web/guard.py).
    return web.Response(
        text=text,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers={"Content-Security-Policy": PAGE_CSP},
    )


def message_page(lang: str, key: str, status: int, drill: bool = False) -> web.Response:
    t = TEXTS[lang]
    page = PAGES.get_template("message.html.j2").render(
        lang=lang, t=t, title=t[f"{key}_title"], text=t[f"{key}_text"], drill=drill
    )
    return _html(page, status)


# Links that do not exist, per client address: 20 per 10 minutes, then 429.
GUESSES = 20
GUESS_PERIOD = 600.0
UNDO_COOKIE = "undo"


class ConfirmPage:
    def __init__(self, state: ConfirmState) -> None:
        self.s = state
        self.guesses = Throttle(GUESSES, GUESS_PERIOD)

    async def link(self, request: web.Request) -> Link | None:
        link = await self.s.desk.open(request.match_info["token"])
        if link is None:
            await self.guesses.missed(request.remote or "")
        return link

    def guessing(self, request: web.Request) -> web.Response | None:
        if self.guesses.allowed(request.remote or ""):
            return None
        return web.json_response(
            {"error": "too_many_requests", "detail": "too many unknown links; wait a while"},
            status=429,
            headers={"Retry-After": str(int(GUESS_PERIOD / GUESSES))},
        )

    def context(
        self,
        request: web.Request,
        link: Link,
        deliveries: list[Delivery],
        lang: str,
        error: str | None = None,
        notice: str | None = None,
    ) -> dict[str, Any]:
        alert = link.alert
        playbook = self.s.deployment.playbooks[alert.scenario]
        channels = self.s.deployment.channels
        now = utcnow()
        messages = []
        for d in deliveries:
            config = channels.get(d.channel_id)
            limit = config.length_limit if config else None
            m = kind(d.channel_type).measure_message(d.title, d.text, limit)
            messages.append(
                {
                    "channel_id": d.channel_id,
                    "channel_type": d.channel_type,
                    "language": d.language,
                    "variant": d.variant,
                    "title": d.title,
                    "text": d.text,
                    "length": length_text(m, lang),
                    "fits": m.fits,
                }
            )
        token_url = f"/confirm/{request.match_info['token']}"
        return {
            "lang": lang,
            "t": TEXTS[lang],
            "view": view_of(alert, self.s.desk.locked(link)),
            "token_url": token_url,
            "state_url": f"{token_url}/state",
            "drill": alert.mode == "drill",
            "alert": {
                "id": alert.id,
                "scenario_name": playbook.name.get(lang, playbook.name[playbook.primary_language]),
                "stage": alert.stage,
                "stage_label": playbook.stage_label(alert.stage, lang),
                "incident": alert.incident,
                "state": alert.state,
                "proposed_by": alert.proposed_by,  # a proposal from the console
                "created_at": _local(alert.created_at, alert.issued_at.tzinfo),
                "params": [
                    (k, playbook.param_label(k, lang), "" if v is None else str(v))
                    for k, v in alert.params.items()
                ],
            },
            "officer": link.token.officer,
            "expires_at": _local(link.token.expires_at, alert.issued_at.tzinfo),
            "expires_in_seconds": max(0, int((link.token.expires_at - now).total_seconds())),
            "messages": messages,
            "pin_required": self.s.desk.pin_of(link) is not None,
            "error": error,
            "notice": notice,
            "undo_seconds": int(self.s.deployment.settings.confirm.undo_window.total_seconds()),
            "release_at": alert.release_at.isoformat() if alert.release_at else None,
            "retractable": alert.state in RELEASED_STATES,
            "reason_max_length": REASON_MAX_LENGTH,
        }

    async def page(
        self,
        request: web.Request,
        link: Link,
        *,
        error: str | None = None,
        notice: str | None = None,
        status: int = 200,
    ) -> web.Response:
        lang = pick_language(request.headers.get("Accept-Language"))
        deliveries = await self.s.store.get_deliveries(link.alert.id)
        context = self.context(request, link, deliveries, lang, error, notice)
        return _html(PAGES.get_template("confirm.html.j2").render(**context), status)

    async def get(self, request: web.Request) -> web.Response:
        lang = pick_language(request.headers.get("Accept-Language"))
        if (refused := self.guessing(request)) is not None:
            return refused
        link = await self.link(request)
        if link is None:
            return message_page(lang, "invalid", 404)
        if not self.s.desk.usable(link):
            return self.unusable(lang, link)
        notice = request.query.get("done")
        if notice is None:  # not the page shown after an action, which has its own entry
            officer = link.token.officer
            await self.s.store.audit(
                AuditEntry(
                    alert_id=link.alert.id,
                    event="link_opened",
                    actor=officer,
                    detail={"officer": officer},
                )
            )
        t = TEXTS[lang]
        return await self.page(request, link, notice=t.get(f"done_{notice}") if notice else None)

    async def post(self, request: web.Request) -> web.Response:
        lang = pick_language(request.headers.get("Accept-Language"))
        t = TEXTS[lang]
        if not same_origin(request, self.s.deployment.settings.http.public_url):
            return message_page(lang, "foreign", 403)
        if (refused := self.guessing(request)) is not None:
            return refused
        link = await self.link(request)
        if link is None:
            return message_page(lang, "invalid", 404)
        form = await request.post()
        action = str(form.get("action", ""))
        pin = str(form["pin"]) if "pin" in form else None
        if action == "retract":
            reason = str(form.get("reason", "")).strip()
            return await self.retract(request, link, reason, pin, lang)
        if action not in ("release", "reject", "undo"):
            return await self.page(request, link, error=t["error_action"], status=400)
        grant = request.cookies.get(UNDO_COOKIE) if action == "undo" else None
        outcome = await self.s.desk.decide(link, action, pin, grant=grant)
        if outcome in ("wrong_pin", "locked", "too_late", "expired", "own_proposal"):
            return await self.refused(request, link, outcome, lang)
        redirect = web.HTTPSeeOther(f"{request.path}?done={outcome}")
        if outcome == "release_pending":
            # STOP within the undo window needs no second PIN: the release proved it.
            grant = await self.s.desk.grant_undo(link)
            window = self.s.deployment.settings.confirm.undo_window.total_seconds()
            redirect.set_cookie(
                UNDO_COOKIE,
                grant,
                max_age=int(window) + 60,
                path=request.path,
                httponly=True,
                samesite="Strict",
                secure=request.secure,
            )
        raise redirect

    async def refused(
        self, request: web.Request, link: Link, outcome: Outcome, lang: str
    ) -> web.Response:
        if outcome == "expired":
            return self.unusable(lang, link)
        fresh = await self.s.desk.open(request.match_info["token"]) or link
        left = max(0, self.s.deployment.settings.confirm.pin_attempts - fresh.token.pin_failures)
        error = TEXTS[lang][f"error_{outcome}"].format(left=left)
        return await self.page(request, fresh, error=error, status=403)

    async def retract(
        self, request: web.Request, link: Link, reason: str, pin: str | None, lang: str
    ) -> web.Response:
        t = TEXTS[lang]
        if reason_problem(reason):
            return await self.page(request, link, error=t["error_reason"], status=400)
        if not self.s.desk.usable(link):
            return self.unusable(lang, link)
        refused = await self.s.desk.check_pin(link, pin)
        if refused is not None:
            return await self.refused(request, link, refused, lang)
        result = await self.s.retractor.retract(link.alert.id, reason, link.token.officer)
        if result.outcome not in ("retracted", "cancelled"):
            fresh = await self.s.desk.open(request.match_info["token"]) or link
            return await self.page(request, fresh, error=result.detail, status=409)
        raise web.HTTPSeeOther(f"{request.path}?done=retracted")

    @staticmethod
    def unusable(lang: str, link: Link) -> web.Response:
        """Out of time: undecided (nothing was sent), or decided long ago."""
        key = "expired" if not link.decided or link.alert.state == "expired" else "used"
        return message_page(lang, key, 410, link.alert.mode == "drill")

    async def state(self, request: web.Request) -> web.Response:
        if (refused := self.guessing(request)) is not None:
            return refused
        link = await self.link(request)
        if link is None or not self.s.desk.usable(link):
            return web.json_response({"error": "invalid or expired link"}, status=404)
        alert = link.alert
        deliveries = await self.s.store.get_deliveries(alert.id)
        seconds = (alert.release_at - utcnow()).total_seconds() if alert.release_at else None
        body = {
            "state": alert.state,
            "release_at": alert.release_at.isoformat() if alert.release_at else None,
            "seconds_to_release": max(0.0, seconds) if seconds is not None else None,
            "deliveries": {
                d.channel_id: {
                    "state": d.state,
                    "attempts": d.attempts,
                    "url": d.url,
                    "error": d.error,
                }
                for d in deliveries
            },
        }
        return web.json_response(
            body,
            dumps=lambda d: json.dumps(d, ensure_ascii=False),
            headers={"Cache-Control": "no-store"},
        )


def add_confirm_routes(app: web.Application, state: ConfirmState) -> None:
    app[CONFIRM] = state
    page = ConfirmPage(state)
    app.router.add_get("/confirm/{token}", page.get)
    app.router.add_post("/confirm/{token}", page.post)
    app.router.add_get("/confirm/{token}/state", page.state)
    app.router.add_static("/static", STATIC, append_version=False)
