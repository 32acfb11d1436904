"""GET/POST /console/login (the password form) and POST /console/logout."""

from __future__ import annotations

import math
from collections.abc import Mapping
from urllib.parse import quote, unquote, urlsplit

import structlog
from aiohttp import web

from broadcaster.models import AuditEntry
from broadcaster.web.console import csrf, sessions
from broadcaster.web.console.auth_pages import forbidden_page, language, login_page
from broadcaster.web.console.auth_texts import TEXTS
from broadcaster.web.console.context import ConsoleAuth, console_auth
from broadcaster.web.console.sessions import LOGIN_COOKIE, LOGIN_PATH
from broadcaster.web.console.signin import Outcome, PasswordSignIn

log = structlog.get_logger(__name__)
HOME = "/console"


def safe_next(value: str | None) -> str:
    """Where to go after sign-in: a path under /console only (no open redirect)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return HOME
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or any(ord(c) < 0x21 for c in value):
        return HOME
    if not (parts.path == HOME or parts.path.startswith(HOME + "/")):
        return HOME
    if parts.path in (LOGIN_PATH, "/console/logout"):
        return HOME
    # A browser resolves `..` (also written %2e%2e) before it asks: /console/../api is /api.
    if any(seg in (".", "..") for seg in unquote(parts.path).split("/")):
        return HOME
    return value


def login_url(next_path: str) -> str:
    return f"{LOGIN_PATH}?next={quote(next_path, safe='/')}"


def client_of(request: web.Request) -> str:
    return request.remote or "unknown"


class LoginRoutes:
    def __init__(self, auth: ConsoleAuth) -> None:
        self.auth = auth
        self.password = PasswordSignIn(auth.settings.lock_after, auth.settings.lock_for)

    def form(
        self,
        request: web.Request,
        *,
        next_path: str,
        error: str | None = None,
        notice: str | None = None,
        name: str = "",
        status: int = 200,
    ) -> web.Response:
        """The sign-in form with a fresh form cookie and its CSRF token."""
        value, nonce = sessions.issue_login_form(self.auth.key, self.auth.clock())
        lang = language(request)
        oidc = self.auth.settings.oidc
        response = login_page(
            lang,
            csrf=csrf.token_for(self.auth.key, nonce),
            next_path=next_path,
            error=error,
            notice=notice,
            name=name,
            status=status,
            single_sign_on=(oidc.label.get(lang) or oidc.label.get("en")) if oidc else None,
        )
        response.set_cookie(
            LOGIN_COOKIE,
            value,
            path=LOGIN_PATH,
            max_age=int(sessions.LOGIN_FORM_LIFETIME.total_seconds()),
            httponly=True,
            samesite="Strict",
            secure=self.auth.secure,
        )
        return response

    async def get(self, request: web.Request) -> web.StreamResponse:
        next_path = safe_next(request.query.get("next"))
        if await self.auth.signed_in(request) is not None:
            raise web.HTTPSeeOther(next_path)
        t = TEXTS[language(request)]
        notice = t["signed_out"] if request.query.get("signed_out") == "1" else None
        return self.form(request, next_path=next_path, notice=notice)

    async def post(self, request: web.Request) -> web.StreamResponse:
        lang = language(request)
        t = TEXTS[lang]
        if not csrf.origin_ok(request, self.auth.public_url):
            return forbidden_page(lang, t["forbidden_csrf"])
        form = await request.post()
        next_path = safe_next(_field(form, "next"))
        nonce = sessions.read_login_form(
            self.auth.key, request.cookies.get(LOGIN_COOKIE), self.auth.clock()
        )
        if nonce is None or not csrf.token_ok(self.auth.key, nonce, _field(form, csrf.FIELD)):
            return self.form(request, next_path=next_path, error=t["expired"], status=403)
        name = _field(form, "name").strip()
        now = self.auth.clock()
        outcome = await self.password.attempt(
            self.auth.store(request), name, _field(form, "password"), now, client_of(request)
        )
        if outcome.account is None:
            return self.form(
                request,
                next_path=next_path,
                error=self.refusal_text(lang, outcome),
                name=name[:64],
                status=403 if outcome.refused == "locked" else 401,
            )
        response = web.HTTPSeeOther(next_path)
        self.auth.start_session(response, outcome.account)
        response.del_cookie(LOGIN_COOKIE, path=LOGIN_PATH)
        raise response

    def refusal_text(self, lang: str, outcome: Outcome) -> str:
        t = TEXTS[lang]
        if outcome.refused == "locked" and outcome.locked_until is not None:
            left = (outcome.locked_until - self.auth.clock()).total_seconds()
            return t["locked"].format(minutes=max(1, math.ceil(left / 60)))
        return t["disabled"] if outcome.refused == "disabled" else t["wrong"]

    async def logout(self, request: web.Request) -> web.StreamResponse:
        lang = language(request)
        if not csrf.origin_ok(request, self.auth.public_url):
            return forbidden_page(lang, TEXTS[lang]["forbidden_csrf"])
        found = await self.auth.signed_in(request)
        if found is not None:
            account, session = found
            if not csrf.token_ok(self.auth.key, session.nonce, await csrf.given_token(request)):
                return forbidden_page(lang, TEXTS[lang]["forbidden_csrf"])
            entry = AuditEntry(
                event="logout", actor=account.name, detail={"client": client_of(request)}
            )
            await self.auth.store(request).audit(entry)
            log.info("console_logout", account=account.name)
        response = web.HTTPSeeOther(f"{LOGIN_PATH}?signed_out=1&lang={lang}")
        self.auth.end_session(response)
        raise response


def _field(form: Mapping[str, object], name: str) -> str:
    """A text field of the form; absent, or a file instead of text: empty."""
    value = form.get(name)
    return value if isinstance(value, str) else ""


def add_login_routes(app: web.Application, auth: ConsoleAuth) -> None:
    routes = LoginRoutes(auth)
    app.router.add_get(LOGIN_PATH, routes.get)
    app.router.add_post(LOGIN_PATH, routes.post)
    app.router.add_post("/console/logout", routes.logout)


__all__ = ["add_login_routes", "console_auth", "login_url", "safe_next"]
