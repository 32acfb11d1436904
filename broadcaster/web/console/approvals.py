"""The console's "Templates and approvals" screen (issue 13).

    GET  /console/templates                 every template of the loaded playbooks, with its state
    GET  /console/templates/{key}           one template's current text and its approvals
    POST /console/templates/{key}/approve   an officer approves the current bytes

An approval is recorded in templates/approvals.yaml by the same function as
`broadcaster approve` (templating.record_approvals), under the signed-in person's own name:
the linked duty officer's name when the account has one, else the account name. Someone who
already approved these bytes is refused, so two different people (two accounts) are needed.
Then the daemon reloads, as `POST /api/reload` does, so a live alert may use it at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import structlog
from aiohttp import web

from broadcaster.deployment import Deployment
from broadcaster.models import AuditEntry
from broadcaster.templating import (
    RETRACTION_VARIANTS,
    VARIANTS,
    AlreadyApproved,
    Approval,
    ApprovalsBroken,
    ChangedMeanwhile,
    TemplateSource,
    record_approvals,
    retraction_key,
    template_key,
)
from broadcaster.text_hygiene import person_key
from broadcaster.web.console.approvals_texts import TEXTS
from broadcaster.web.console.auth import account_of, csrf_token, requires
from broadcaster.web.console.auth_pages import PAGES, html, language
from broadcaster.web.console.context import console_auth
from broadcaster.web.console.login import client_of
from broadcaster.web.console.template_diff import DiffLine, diff_lines

log = structlog.get_logger(__name__)
State = Literal["approved", "awaiting", "changed", "never"]
# What the page can say of the text two people approved last: "same" as the file,
# "diff" shown against it, "missing" (not recorded: an older approvals.yaml, or none
# approved by two yet), "mismatch" (the kept text is not the approved bytes: not shown).
Kept = Literal["same", "diff", "missing", "mismatch", "none"]
Reload = Callable[[str], Awaitable[dict[str, Any]]]
BASE = "/console/templates"
Place = tuple[str, str, str]  # key, variant, language


@dataclass(frozen=True)
class Row:
    """One template file as the screen shows it."""

    key: str
    variant: str
    language: str
    state: State
    approval: Approval | None
    source: TemplateSource
    baseline: Approval | None = None  # the version two people approved last
    kept: Kept = "none"
    diff: tuple[DiffLine, ...] = ()


@dataclass(frozen=True)
class Group:
    heading: str
    stage: str  # the stage's label, empty for the retraction group
    rows: list[Row]


def state_of(source: TemplateSource, approval: Approval | None, refusal: str | None) -> State:
    if approval is None:
        return "never"
    if approval.sha256 != source.sha256:
        return "changed"
    return "approved" if refusal is None else "awaiting"


def compare(baseline: Approval | None, source: TemplateSource) -> tuple[Kept, tuple[DiffLine, ...]]:
    """How the current bytes stand to the text two people approved last."""
    if baseline is None:
        return "none", ()
    if baseline.sha256 == source.sha256:
        return "same", ()
    if not baseline.text_matches:
        return "mismatch", ()
    text = baseline.approved_text
    if text is None:
        return "missing", ()
    return "diff", tuple(diff_lines(text, source.text))


class TemplateScreen:
    def __init__(self, deployment: Deployment, reload: Reload) -> None:
        self.deployment = deployment
        self.reload = reload
        self.lock = asyncio.Lock()  # one approvals.yaml write at a time

    # -- what there is ------------------------------------------------------------
    def places(self, lang: str) -> list[tuple[str, str, list[Place]]]:
        """(heading, stage label, [(key, variant, language)]) of every template a loaded
        playbook uses, in the playbooks' order, then the retraction texts."""
        d = self.deployment
        t = TEXTS[lang]
        out: list[tuple[str, str, list[Place]]] = []
        for p in d.playbooks.values():
            name = p.name.get(lang) or p.name[p.primary_language]
            for stage in p.stages:
                keys: list[Place] = [
                    (template_key(p.id, stage, v, code), v, code)
                    for code in p.languages
                    for v in VARIANTS
                ]
                label = f"{t['stage']}: {p.stage_label(stage, lang)}"
                out.append((name, label, [k for k in keys if d.templates.exists(k[0])]))
        languages = sorted({c for p in d.playbooks.values() for c in p.languages})
        retraction: list[Place] = [
            (retraction_key(v, code), v, code) for code in languages for v in RETRACTION_VARIANTS
        ]
        out.append((t["retraction"], "", [k for k in retraction if d.templates.exists(k[0])]))
        return [group for group in out if group[2]]

    def known(self, key: str) -> tuple[str, str] | None:
        """(variant, language) of a template the screen lists; None for anything else, so
        a typed path never reaches the files."""
        for _, _, keys in self.places("en"):
            for k, variant, code in keys:
                if k == key:
                    return variant, code
        return None

    def row(self, key: str, variant: str, code: str) -> Row:
        approvals = self.deployment.approvals  # as the daemon uses them now
        source = self.deployment.templates.load(key)
        approval = approvals.entries.get(key)
        state = state_of(source, approval, approvals.refusal(source))
        baseline = approval.last_full if approval is not None else None
        kept, diff = compare(baseline, source)
        return Row(key, variant, code, state, approval, source, baseline, kept, diff)

    def groups(self, lang: str) -> list[Group]:
        return [
            Group(heading, stage, [self.row(*k) for k in keys])
            for heading, stage, keys in self.places(lang)
        ]

    # -- pages --------------------------------------------------------------------
    def page(
        self, request: web.Request, name: str, status: int = 200, **values: Any
    ) -> web.Response:
        lang = language(request)
        account = account_of(request)
        body = PAGES.get_template(name).render(
            lang=lang,
            other="en" if lang == "de" else "de",
            t=TEXTS[lang],
            account=account,
            officer=account.may("officer"),
            me=account.person,
            csrf=csrf_token(request),
            base=BASE,
            **values,
        )
        return html(body, status)

    async def list(self, request: web.Request) -> web.StreamResponse:
        groups = await asyncio.to_thread(self.groups, language(request))
        rows = [r for g in groups for r in g.rows]
        approved = sum(r.state == "approved" for r in rows)
        pending = [r for r in rows if r.state != "approved"]  # what an officer looks for
        return self.page(
            request,
            "templates.html.j2",
            groups=groups,
            pending=pending,
            approved=approved,
            total=len(rows),
        )

    async def show(
        self,
        request: web.Request,
        *,
        error: str | None = None,
        notice: str | None = None,
        status: int = 200,
    ) -> web.StreamResponse:
        key = request.match_info["key"]
        lang = language(request)
        found = self.known(key)
        if found is None:
            return self.not_found(request, key)
        row = await asyncio.to_thread(self.row, key, *found)
        if notice is None and request.query.get("approved") == "1":
            done = "done_approved" if row.state == "approved" else "done_awaiting"
            notice = TEXTS[lang][done]
        mine = row.approval is not None and any(
            person_key(n) == person_key(account_of(request).person)
            for n in row.approval.approved_by
        )
        return self.page(
            request,
            "template.html.j2",
            status=status,
            row=row,
            mine=mine and row.state != "changed",
            error=error,
            notice=notice,
        )

    def not_found(self, request: web.Request, key: str) -> web.Response:
        message = TEXTS[language(request)]["unknown"].format(key=key)
        return self.page(request, "templates.html.j2", 404, groups=[], error=message, total=0)

    async def approve(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]
        lang = language(request)
        t = TEXTS[lang]
        if self.known(key) is None:
            return self.not_found(request, key)
        account = account_of(request)
        name = account.person
        form = await request.post()
        seen = _field(form, "sha256")
        try:
            async with self.lock:
                recorded = await asyncio.to_thread(
                    record_approvals,
                    self.deployment.templates,
                    [key],
                    name,
                    date.today(),
                    seen=seen,
                    first_only=True,
                )
        except AlreadyApproved:
            await self.audit(request, "template_approval_refused", key, reason="same_person")
            return await self.show(request, error=t["refused_same"].format(name=name), status=409)
        except ChangedMeanwhile as exc:
            await self.audit(
                request, "template_approval_refused", key, reason="changed", sha256=exc.sha256
            )
            return await self.show(request, error=t["refused_changed"], status=409)
        except ApprovalsBroken as exc:
            problems = "; ".join(str(p) for p in exc.problems)
            log.error("template_approval_failed", template=key, problems=problems)
            error = t["refused_broken"].format(problems=problems)
            return await self.show(request, error=error, status=409)
        done = recorded[0]
        # Applied at once, exactly as `POST /api/reload` (and the file watch) would.
        await self.reload(f"console:{account.name}")
        await self.audit(
            request,
            "template_approved",
            key,
            sha256=done.approval.sha256,
            approved_as=name,
            approved_by=list(done.approval.approved_by),
            state="approved" if done.refusal is None else "awaiting",
        )
        log.info("template_approved", template=key, account=account.name)
        raise web.HTTPSeeOther(f"{BASE}/{key}?lang={lang}&approved=1")

    async def audit(self, request: web.Request, event: str, key: str, **detail: Any) -> None:
        entry = AuditEntry(
            event=event,
            actor=account_of(request).name,
            detail={"template": key, "client": client_of(request), **detail},
        )
        await console_auth(request).store(request).audit(entry)


def _field(form: Mapping[str, object], name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def add_template_routes(app: web.Application, deployment: Deployment, reload: Reload) -> None:
    """The screen's routes; `reload` is the daemon's Reloader.reload (cause -> report)."""
    screen = TemplateScreen(deployment, reload)
    app.router.add_get(BASE, requires("viewer")(screen.list))
    app.router.add_post(BASE + "/{key:.+}/approve", requires("officer")(screen.approve))
    app.router.add_get(BASE + "/{key:.+}", requires("viewer")(_show(screen)))


def _show(screen: TemplateScreen) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def show(request: web.Request) -> web.StreamResponse:
        return await screen.show(request)

    return show
