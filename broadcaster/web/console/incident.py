"""The console's incident screen, GET /console/incidents/{incident}: the timeline from
the audit trail, every text as it was sent per channel, a Retract button per released
alert (officers), and the after-action report to download (report.py, as the command
line makes it). Retracting goes through the daemon's Retractor, as the API does."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from aiohttp import web

from broadcaster.confirm import ConfirmDesk, proposed_by
from broadcaster.deployment import Deployment
from broadcaster.models import Alert, AuditEntry, Delivery, reason_problem, utcnow
from broadcaster.playbooks import Playbook
from broadcaster.report import (
    PAGES,
    build_report,
    describe,
    incident_record,
    render_html,
    render_json,
)
from broadcaster.retraction import correction_id
from broadcaster.store.base import Store
from broadcaster.web.api import STATE
from broadcaster.web.console.auth import account_of, csrf_token, requires
from broadcaster.web.console.board import HEADERS, board_language, clock
from broadcaster.web.console.board_texts import BOARD_TEXTS, STATE_WORDS
from broadcaster.web.console.incident_texts import INCIDENT_TEXTS
from broadcaster.web.console.new_alert import NEW_PATH

INCIDENT_PATH = "/console/incidents/{incident}"
RETRACT_PATH = "/console/incidents/{incident}/alerts/{alert_id}/retract"
DECIDE_PATH = "/console/incidents/{incident}/alerts/{alert_id}/decide"
DECISIONS = ("release", "reject", "undo")
# The report is one self-contained file with its own <style> and no script at all.
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"
# Released and not yet retracted: what the Retract button is for. An alert still waiting
# for its officer is rejected on the confirm page instead.
RELEASED = frozenset({"sending", "sent", "partially_failed", "failed"})


@dataclass
class Stage:
    alert: Alert
    deliveries: list[Delivery]

    @property
    def retractable(self) -> bool:
        return self.alert.state in RELEASED and self.alert.retracts is None

    @property
    def waiting(self) -> bool:
        """Awaiting its release: what the Release and Reject buttons are for."""
        return self.alert.state == "awaiting_confirmation"


@dataclass
class IncidentView:
    id: str
    stages: list[Stage]  # every alert, corrections too, oldest first
    timeline: list[AuditEntry]  # all its alerts' entries, oldest first


async def read_incident_view(store: Store, incident: str) -> IncidentView | None:
    alerts = await store.incident_alerts(incident)
    if not alerts:
        return None
    stages = [Stage(a, await store.get_deliveries(a.id)) for a in alerts]
    entries = [e for a in alerts for e in await store.audit_trail(a.id)]
    # Stable: entries of the same moment keep their alert's order (as `audit --incident`).
    return IncidentView(incident, stages, sorted(entries, key=lambda e: e.at))


def render_incident(
    view: IncidentView,
    lang: str,
    *,
    account: str,
    csrf: str,
    may_retract: bool,
    person: str = "",
    expires: Callable[[Alert], datetime] | None = None,
    playbook: Playbook | None = None,
    may_propose: bool = False,
    message: str = "",
    problem: str = "",
) -> str:
    zone = view.stages[0].alert.issued_at.tzinfo  # the fire brigade's, as on the board
    other = {"de": "en", "en": "de"}[lang]
    base = f"/console/incidents/{view.id}"

    def when(moment: datetime | None) -> str:
        return clock(moment, zone, lang)

    return PAGES.get_template("console/incident.html.j2").render(
        view=view,
        lang=lang,
        other_lang=other,
        t=BOARD_TEXTS[lang] | INCIDENT_TEXTS[lang],
        states=STATE_WORDS[lang],
        when=when,
        describe=lambda e: describe(e, zone),
        account=account,
        csrf=csrf,
        may_retract=may_retract,
        own=lambda a: proposed_by(a, person),
        expires=expires,
        playbook=playbook,
        may_propose=may_propose and playbook is not None,
        new_path=NEW_PATH,
        message=message,
        problem=problem,
        base=base,
        mode=view.stages[0].alert.mode,
    )


def add_incident_routes(app: web.Application, deployment: Deployment, desk: ConfirmDesk) -> None:
    """The screen reads the daemon's store and retracts with its Retractor (both from
    the API's WebState); `deployment` names the playbooks in the report; an officer's
    release or rejection goes to the confirmation `desk`, as from the mobile link."""

    async def show(
        request: web.Request, status: int = 200, message: str = "", problem: str = ""
    ) -> web.Response:
        lang = board_language(request)
        incident = request.match_info["incident"]
        view = await read_incident_view(request.app[STATE].store, incident)
        if view is None:
            text = INCIDENT_TEXTS[lang]["no_incident"] % incident
            return web.Response(text=text, status=404, headers=HEADERS)
        account = account_of(request)
        html = render_incident(
            view,
            lang,
            account=account.name,
            csrf=csrf_token(request),
            may_retract=account.may("officer"),
            person=account.person,
            expires=desk.expires_at,
            playbook=deployment.playbooks.get(view.stages[0].alert.scenario),
            may_propose=account.may("editor"),
            message=message,
            problem=problem,
        )
        return web.Response(text=html, status=status, content_type="text/html", headers=HEADERS)

    async def page(request: web.Request) -> web.Response:
        return await show(request)

    async def retract(request: web.Request) -> web.Response:
        lang = board_language(request)
        words = INCIDENT_TEXTS[lang]
        state = request.app[STATE]
        alert_id = request.match_info["alert_id"]
        alert = await state.store.get_alert(alert_id)
        if alert is None or alert.incident != request.match_info["incident"]:
            return await show(request, 404, problem=words["not_in_incident"] % alert_id)
        form = await request.post()
        reason = form.get("reason")
        reason = reason if isinstance(reason, str) else ""
        if bad := reason_problem(reason):
            return await show(request, 400, problem=words["bad_reason"] % bad)
        result = await state.retractor.retract(alert_id, reason.strip(), account_of(request).name)
        if result.outcome in ("not_found", "not_retractable"):
            return await show(request, 409, problem=words["refused"] % result.detail)
        done = words["retracted_ok"] % alert_id
        if result.correction is not None:
            done += " " + words["correction"] % correction_id(alert_id)
        return await show(request, message=done)

    async def decide(request: web.Request) -> web.Response:
        words = INCIDENT_TEXTS[board_language(request)]
        alert_id = request.match_info["alert_id"]
        alert = await request.app[STATE].store.get_alert(alert_id)
        if alert is None or alert.incident != request.match_info["incident"]:
            return await show(request, 404, problem=words["not_in_incident"] % alert_id)
        action = (await request.post()).get("action")
        if action not in DECISIONS:
            return await show(request, 400, problem=words["bad_action"])
        outcome = await desk.decide_as(alert, str(action), account_of(request).person)
        if outcome in ("too_late", "own_proposal"):
            return await show(request, 409, problem=words[outcome] % alert_id)
        return await show(request, message=words[outcome] % alert_id)

    async def report(request: web.Request, kind: str) -> web.Response:
        record = await incident_record(request.app[STATE].store, request.match_info["incident"])
        if record is None:
            raise web.HTTPNotFound()
        names = {
            pid: p.name.get("en", p.name[p.primary_language])
            for pid, p in deployment.playbooks.items()
        }
        data = build_report(replace(record, scenario_names=names), utcnow().astimezone())
        if kind == "view":  # shown in the browser (a drill's report opens at its end)
            headers = HEADERS | {"Content-Security-Policy": REPORT_CSP}
            return web.Response(text=render_html(data), content_type="text/html", headers=headers)
        name = f"incident-{record.incident}.{kind}"
        headers = HEADERS | {"Content-Disposition": f'attachment; filename="{name}"'}
        if kind == "json":
            return web.Response(
                text=render_json(data), content_type="application/json", headers=headers
            )
        return web.Response(text=render_html(data), content_type="text/html", headers=headers)

    async def report_html(request: web.Request) -> web.Response:
        return await report(request, "html")

    async def report_json(request: web.Request) -> web.Response:
        return await report(request, "json")

    async def report_view(request: web.Request) -> web.Response:
        return await report(request, "view")

    app.router.add_get(INCIDENT_PATH, requires("viewer")(page))
    app.router.add_get(INCIDENT_PATH + "/report.html", requires("viewer")(report_html))
    app.router.add_get(INCIDENT_PATH + "/report.json", requires("viewer")(report_json))
    app.router.add_get(INCIDENT_PATH + "/report", requires("viewer")(report_view))
    app.router.add_post(RETRACT_PATH, requires("officer")(retract))
    app.router.add_post(DECIDE_PATH, requires("officer")(decide))


__all__ = [
    "DECIDE_PATH",
    "INCIDENT_PATH",
    "RETRACT_PATH",
    "add_incident_routes",
    "read_incident_view",
]
