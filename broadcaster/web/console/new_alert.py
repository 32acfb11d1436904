"""The console's New alert form, for when the dispatch system is down:

    GET  /console/alerts/new                  choose a scenario, then its form
    POST /console/alerts/new/preview          the live preview (an htmx fragment)
    POST /console/alerts/new                  propose it (live) or start it (drill)

The form comes from the playbook's params; the preview is rendered and measured by the
daemon's own code (preview.py). A live alert is proposed by one person and released by
another on the incident screen or by a duty officer's link: it enters as a trigger
through the daemon's Receiver, as from MQTT, with `proposed_by` set. A drill goes the
same way without a proposer (the playbook's own confirmation applies) and is followed on
its drill page. With `incident`, the form proposes the incident's next stage (such as
the all clear), prefilled with the params of its latest alert.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from broadcaster.deployment import Deployment
from broadcaster.drill import drill_id
from broadcaster.messages import Mode
from broadcaster.models import Alert
from broadcaster.playbooks import Playbook
from broadcaster.report import PAGES
from broadcaster.triggering import build_trigger
from broadcaster.web.api import STATE
from broadcaster.web.console.auth import account_of, csrf_token, requires
from broadcaster.web.console.board import HEADERS, board_language
from broadcaster.web.console.board_texts import BOARD_TEXTS
from broadcaster.web.console.new_alert_texts import NEW_ALERT_TEXTS
from broadcaster.web.console.params_form import given_params, param_fields
from broadcaster.web.console.preview import Preview, preview

NEW_PATH = "/console/alerts/new"
PREVIEW_PATH = "/console/alerts/new/preview"
DRILL_PATH = "/console/drills/{alert_id}"


@dataclass(frozen=True)
class Draft:
    """What the form asks for: scenario, stage, mode, the incident it continues (if
    any), and the params as typed."""

    playbook: Playbook
    stage: str
    mode: Mode
    incident: str | None
    given: dict[str, str]


def texts(lang: str) -> dict[str, str]:
    return BOARD_TEXTS[lang] | NEW_ALERT_TEXTS[lang]


def page(html: str, status: int = 200) -> web.Response:
    return web.Response(text=html, status=status, content_type="text/html", headers=HEADERS)


def _shown(value: Any) -> str:
    return "true" if value is True else "false" if value is False else str(value)


class NewAlertForm:
    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment

    async def draft(self, request: web.Request, fields: Mapping[str, Any]) -> Draft | web.Response:
        """The draft a request asks for, or the page that says what is wrong with it."""
        lang = board_language(request)
        t = texts(lang)
        incident = str(fields.get("incident", "")) or None
        mode: Mode = "drill" if fields.get("mode") == "drill" else "live"
        name = str(fields.get("playbook", ""))
        latest: Alert | None = None
        if incident is not None:
            alerts = await request.app[STATE].store.incident_alerts(incident)
            originals = [a for a in alerts if a.retracts is None]
            if not originals:
                return page(self.render(request, problem=t["unknown_incident"] % incident), 404)
            latest = originals[-1]
            name, mode = latest.scenario, latest.mode
        playbook = self.deployment.playbooks.get(name)
        if playbook is None:
            problem = t["unknown_playbook"] % name if name else ""
            return page(self.render(request, problem=problem), 404 if name else 200)
        stage = str(fields.get("stage", "")) or playbook.default_stage
        if stage not in playbook.stages:
            return page(self.render(request, problem=t["unknown_stage"] % stage), 404)
        if "playbook" in fields and request.method == "POST":
            given = given_params(playbook, fields)
        elif latest is not None:
            given = {k: _shown(v) for k, v in latest.params.items() if v not in (None, "")}
        else:
            given = {}
        return Draft(playbook, stage, mode, incident, given)

    def preview(self, draft: Draft) -> Preview:
        return preview(
            self.deployment,
            draft.playbook,
            draft.stage,
            draft.given,
            draft.mode,
            draft.incident or "PREVIEW",
            datetime.now().astimezone(),
        )

    def render(
        self,
        request: web.Request,
        draft: Draft | None = None,
        shown: Preview | None = None,
        *,
        problem: str = "",
        show_problems: bool = False,
    ) -> str:
        lang = board_language(request)
        if draft is not None and shown is None:
            shown = self.preview(draft)
        fields = []
        if draft is not None:
            problems = shown.problems if shown is not None and show_problems else {}
            fields = param_fields(draft.playbook, lang, draft.given, problems)
        return PAGES.get_template("console/new_alert.html.j2").render(
            lang=lang,
            other_lang={"de": "en", "en": "de"}[lang],
            t=texts(lang),
            playbooks=self.deployment.playbooks,
            draft=draft,
            fields=fields,
            preview=shown,
            problem=problem,
            account=account_of(request).name,
            csrf=csrf_token(request),
            new_path=NEW_PATH,
            preview_path=PREVIEW_PATH,
        )

    async def get(self, request: web.Request) -> web.Response:
        draft = await self.draft(request, request.query)
        if isinstance(draft, web.Response):
            return draft
        return page(self.render(request, draft))

    async def preview_fragment(self, request: web.Request) -> web.Response:
        draft = await self.draft(request, await request.post())
        if isinstance(draft, web.Response):
            return draft
        lang = board_language(request)
        html = PAGES.get_template("console/preview.html.j2").render(
            t=texts(lang), preview=self.preview(draft), draft=draft, lang=lang
        )
        return page(html)

    async def submit(self, request: web.Request) -> web.Response:
        draft = await self.draft(request, await request.post())
        if isinstance(draft, web.Response):
            return draft
        t = texts(board_language(request))
        shown = self.preview(draft)
        if not shown.ready:
            html = self.render(request, draft, shown, problem=t["not_ready"], show_problems=True)
            return page(html, 400)
        account = account_of(request)
        state = request.app[STATE]
        alert_id = drill_id() if draft.mode == "drill" else f"CONSOLE-{uuid.uuid4().hex[:12]}"
        payload = build_trigger(
            draft.playbook.id,
            draft.mode,
            draft.given,
            alert_id=alert_id,
            stage=draft.stage,
            incident=draft.incident,
            secret=self.deployment.settings.security.trigger_secret,
        )
        outcome = await state.receiver.receive_trigger(
            json.dumps(payload, ensure_ascii=False).encode(),
            f"console:{account.name}",
            owner=state.owner,
            # A drill needs no second person here: it reaches no one who is not expecting it.
            proposed_by=account.person if draft.mode == "live" else None,
        )
        if outcome.alert is None or outcome.result != "accepted":
            detail = (outcome.refusal or {}).get("detail", outcome.result)
            return page(self.render(request, draft, shown, problem=t["refused"] % detail), 409)
        lang = board_language(request)
        if draft.mode == "drill":
            where = DRILL_PATH.format(alert_id=alert_id)
        else:
            where = f"/console/incidents/{outcome.alert.incident}"
        raise web.HTTPSeeOther(f"{where}?lang={lang}")


def add_new_alert_routes(app: web.Application, deployment: Deployment) -> None:
    form = NewAlertForm(deployment)
    app.router.add_get(NEW_PATH, requires("editor")(form.get))
    app.router.add_post(PREVIEW_PATH, requires("editor")(form.preview_fragment))
    app.router.add_post(NEW_PATH, requires("editor")(form.submit))


__all__ = ["DRILL_PATH", "NEW_PATH", "PREVIEW_PATH", "NewAlertForm", "add_new_alert_routes"]
