"""The console's ad-hoc update form (role editor and up):

    GET  /console/incidents/{incident}/update            the form: one text per language
                                                         and variant the channels post
    POST /console/incidents/{incident}/update/preview    each channel's text, measured
    POST /console/incidents/{incident}/update            propose it (Receiver.receive_update)

The proposal waits on the incident screen until a second person releases it there (the
proposer never can). What it is and how it travels: broadcaster/adhoc.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from broadcaster.adhoc import (
    AdhocText,
    AdhocUpdate,
    latest_alert,
    needed,
    rendered_update,
    text_problems,
)
from broadcaster.deployment import Deployment
from broadcaster.drill import drill_id
from broadcaster.messages import channel_language, fan_out_channels
from broadcaster.models import Alert
from broadcaster.playbooks import Playbook
from broadcaster.report import PAGES
from broadcaster.web.api import STATE
from broadcaster.web.console.adhoc_texts import ADHOC_TEXTS
from broadcaster.web.console.auth import account_of, csrf_token, requires
from broadcaster.web.console.board import board_language
from broadcaster.web.console.new_alert import page, texts
from broadcaster.web.console.preview import Preview, channel_previews

FORM_PATH = "/console/incidents/{incident}/update"
VARIANTS = ("title", "short", "long")


@dataclass(frozen=True)
class TextField:
    name: str  # text.<lang>.<variant>
    language: str
    variant: str
    value: str
    channels: list[str]  # who posts it; none: the warning page only
    problem: str = ""


@dataclass
class Draft:
    base: Alert  # the incident's newest alert: scenario, mode and params carry over
    playbook: Playbook
    update: AdhocUpdate
    problems: dict[str, str] = field(default_factory=dict)


def adhoc_texts(lang: str) -> dict[str, str]:
    return texts(lang) | ADHOC_TEXTS[lang]


def given_update(incident: str, fields: Mapping[str, Any], alert_id: str) -> AdhocUpdate:
    by_lang: dict[str, dict[str, str]] = {}
    for key, value in fields.items():
        parts = str(key).split(".")
        if len(parts) == 3 and parts[0] == "text" and parts[2] in VARIANTS:
            by_lang.setdefault(parts[1], {})[parts[2]] = str(value)
    return AdhocUpdate(
        id=alert_id,
        incident=incident,
        texts={lang: AdhocText(**given) for lang, given in by_lang.items()},
    )


class AdhocForm:
    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment

    async def draft(self, request: web.Request, fields: Mapping[str, Any]) -> Draft | web.Response:
        lang = board_language(request)
        incident = request.match_info["incident"]
        base = latest_alert(await request.app[STATE].store.incident_alerts(incident))
        if base is None:
            return page(adhoc_texts(lang)["unknown_incident"] % incident, 404)
        playbook = self.deployment.playbooks.get(base.scenario)
        if playbook is None:
            return page(adhoc_texts(lang)["unknown_playbook"] % base.scenario, 409)
        alert_id = drill_id() if base.mode == "drill" else f"UPDATE-{uuid.uuid4().hex[:12]}"
        update = given_update(incident, fields, alert_id)
        return Draft(base, playbook, update)

    def fields(self, draft: Draft, lang: str, problems: Mapping[str, str]) -> list[TextField]:
        t = adhoc_texts(lang)
        posting: dict[tuple[str, str], list[str]] = {}
        for cid, channel in fan_out_channels(draft.playbook, self.deployment.channels).items():
            key = (channel_language(draft.playbook, channel), channel.variant)
            posting.setdefault(key, []).append(cid)
        shown = []
        for language, variants in needed(draft.playbook, self.deployment.channels).items():
            given = draft.update.texts.get(language, AdhocText())
            for variant in ("title", *variants):
                name = f"{language}.{variant}"
                why = problems.get(name, "")
                shown.append(
                    TextField(
                        name=f"text.{name}",
                        language=language,
                        variant=variant,
                        value=getattr(given, variant),
                        channels=posting.get((language, variant), []),
                        problem=t["text_required"] if why == "required" else why,
                    )
                )
        return shown

    def preview(self, draft: Draft) -> Preview:
        channels = self.deployment.channels
        shown = Preview(problems=text_problems(draft.update, draft.playbook, channels))
        if shown.problems:
            return shown
        prefix = self.deployment.renderer().prefix
        rendered = rendered_update(draft.update, draft.playbook, channels, draft.base.mode, prefix)
        shown.channels = channel_previews(
            self.deployment, draft.playbook, rendered, draft.base.mode
        )
        return shown

    def render(
        self,
        request: web.Request,
        draft: Draft,
        shown: Preview,
        *,
        problem: str = "",
        show_problems: bool = False,
    ) -> str:
        lang = board_language(request)
        problems = shown.problems if show_problems else {}
        return PAGES.get_template("console/adhoc.html.j2").render(
            lang=lang,
            other_lang={"de": "en", "en": "de"}[lang],
            t=adhoc_texts(lang),
            draft=draft,
            fields=self.fields(draft, lang, problems),
            preview=shown,
            problem=problem,
            account=account_of(request).name,
            csrf=csrf_token(request),
            form_path=FORM_PATH.format(incident=draft.base.incident),
        )

    async def get(self, request: web.Request) -> web.Response:
        draft = await self.draft(request, request.query)
        if isinstance(draft, web.Response):
            return draft
        return page(self.render(request, draft, self.preview(draft)))

    async def preview_fragment(self, request: web.Request) -> web.Response:
        draft = await self.draft(request, await request.post())
        if isinstance(draft, web.Response):
            return draft
        lang = board_language(request)
        html = PAGES.get_template("console/adhoc_preview.html.j2").render(
            t=adhoc_texts(lang), preview=self.preview(draft), lang=lang
        )
        return page(html)

    async def submit(self, request: web.Request) -> web.Response:
        draft = await self.draft(request, await request.post())
        if isinstance(draft, web.Response):
            return draft
        t = adhoc_texts(board_language(request))
        shown = self.preview(draft)
        if not shown.ready:
            html = self.render(request, draft, shown, problem=t["not_ready"], show_problems=True)
            return page(html, 400)
        account = account_of(request)
        state = request.app[STATE]
        outcome = await state.receiver.receive_update(
            draft.update, f"console:{account.name}", owner=state.owner, proposed_by=account.person
        )
        if outcome.alert is None or outcome.result != "accepted":
            detail = (outcome.refusal or {}).get("detail", outcome.result)
            return page(self.render(request, draft, shown, problem=t["refused"] % detail), 409)
        where = f"/console/incidents/{outcome.alert.incident}"
        raise web.HTTPSeeOther(f"{where}?lang={board_language(request)}")


def add_adhoc_routes(app: web.Application, deployment: Deployment) -> None:
    form = AdhocForm(deployment)
    app.router.add_get(FORM_PATH, requires("editor")(form.get))
    app.router.add_post(FORM_PATH + "/preview", requires("editor")(form.preview_fragment))
    app.router.add_post(FORM_PATH, requires("editor")(form.submit))


__all__ = ["FORM_PATH", "add_adhoc_routes"]
