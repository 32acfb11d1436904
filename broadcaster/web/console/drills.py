"""The console's Drills screen:

    GET /console/drills                  every playbook and stage to start a drill of,
                                         and the drills of the last hours
    GET /console/drills/{alert}          one drill, followed until it ends (an ended
                                         one: its report)
    GET /console/drills/{alert}/state    its state (htmx polls it); at the end it sends
                                         the browser to the incident's report

A drill is started with the New alert form in drill mode (new_alert.py), so it takes the
trigger's path through the daemon; it is followed here and on the board.
"""

from __future__ import annotations

from aiohttp import web

from broadcaster.deployment import Deployment
from broadcaster.models import FINAL_ALERT_STATES, Alert
from broadcaster.report import PAGES
from broadcaster.status import RECENT, SCAN_LIMIT
from broadcaster.web.api import STATE
from broadcaster.web.console.auth import account_of, csrf_token, requires
from broadcaster.web.console.board import board_language
from broadcaster.web.console.board_texts import STATE_WORDS
from broadcaster.web.console.new_alert import DRILL_PATH, NEW_PATH, page, texts

DRILLS_PATH = "/console/drills"


def report_path(alert: Alert) -> str:
    return f"/console/incidents/{alert.incident}/report"


class DrillScreen:
    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment

    def render(self, request: web.Request, name: str, **context: object) -> str:
        lang = board_language(request)
        return PAGES.get_template(f"console/{name}.html.j2").render(
            lang=lang,
            other_lang={"de": "en", "en": "de"}[lang],
            t=texts(lang),
            states=STATE_WORDS[lang],
            account=account_of(request).name,
            csrf=csrf_token(request),
            new_path=NEW_PATH,
            **context,
        )

    async def list(self, request: web.Request) -> web.Response:
        store = request.app[STATE].store
        alerts = await store.list_alerts(SCAN_LIMIT)
        newest = max((a.updated_at for a in alerts), default=None)
        recent = [
            a
            for a in alerts
            if a.mode == "drill" and newest is not None and newest - a.updated_at < RECENT
        ]
        html = self.render(request, "drills", playbooks=self.deployment.playbooks, recent=recent)
        return page(html)

    async def alert(self, request: web.Request) -> Alert | None:
        alert = await request.app[STATE].store.get_alert(request.match_info["alert_id"])
        return alert if alert is not None and alert.mode == "drill" else None

    async def follow(self, request: web.Request) -> web.Response:
        alert = await self.alert(request)
        if alert is None:
            lang = board_language(request)
            return page(texts(lang)["unknown_incident"] % request.match_info["alert_id"], 404)
        context = await self.state_context(request, alert)
        if context["ended"]:  # before the page could follow it: straight to its report
            raise web.HTTPSeeOther(f"{context['report']}?lang={board_language(request)}")
        return page(self.render(request, "drill", **context))

    async def state(self, request: web.Request) -> web.Response:
        alert = await self.alert(request)
        if alert is None:
            raise web.HTTPNotFound()
        lang = board_language(request)
        context = await self.state_context(request, alert)
        template = PAGES.get_template("console/drill_state.html.j2")
        response = page(
            template.render(lang=lang, t=texts(lang), states=STATE_WORDS[lang], **context)
        )
        if context["ended"]:
            # htmx follows this header with a full page load: the report opens.
            response.headers["HX-Redirect"] = f"{report_path(alert)}?lang={lang}"
        return response

    async def state_context(self, request: web.Request, alert: Alert) -> dict[str, object]:
        deliveries = await request.app[STATE].store.get_deliveries(alert.id)
        return {
            "alert": alert,
            "deliveries": deliveries,
            "ended": alert.state in FINAL_ALERT_STATES,
            "report": report_path(alert),
            "state_url": DRILL_PATH.format(alert_id=alert.id) + "/state",
        }


def add_drill_routes(app: web.Application, deployment: Deployment) -> None:
    screen = DrillScreen(deployment)
    app.router.add_get(DRILLS_PATH, requires("editor")(screen.list))
    app.router.add_get(DRILL_PATH, requires("viewer")(screen.follow))
    app.router.add_get(DRILL_PATH + "/state", requires("viewer")(screen.state))


__all__ = ["DRILLS_PATH", "add_drill_routes"]
