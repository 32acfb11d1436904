"""The console's sign-in layer, as the console's pages use it.

    @requires("officer")           # an aiohttp handler that only an officer (or admin) reaches
    async def release(request): account_of(request) ... csrf_token(request) ...

Roles are ordered, each including the ones before: viewer < editor < officer < admin.
Without a valid session a page request is sent to the sign-in page (303, with `next`), a
request that accepts only JSON or an event stream gets 401 JSON. A lower role gets a 403
page. Every POST (and any other method but GET/HEAD/OPTIONS) must come from our own
origin and carry the session's CSRF token, else 403.

A sign-out button is a form posting to /console/logout with the hidden `csrf` field
(`csrf_token(request)`). Sign-in sources (password now, OIDC later) are in signin.py;
cookies in sessions.py.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from broadcaster.deployment import Deployment
from broadcaster.models import ROLES, Account, Role
from broadcaster.store.base import Store
from broadcaster.web.console import csrf
from broadcaster.web.console.auth_pages import forbidden_page, language
from broadcaster.web.console.auth_texts import TEXTS
from broadcaster.web.console.context import ACCOUNT, AUTH, SESSION, ConsoleAuth, console_auth
from broadcaster.web.console.login import add_login_routes, login_url
from broadcaster.web.console.oidc import add_oidc_routes
from broadcaster.web.console.sessions import SessionKey

log = structlog.get_logger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

__all__ = [
    "ROLES",
    "Handler",
    "Role",
    "account_of",
    "add_console_auth",
    "csrf_token",
    "requires",
]


def requires(role: Role) -> Callable[[Handler], Handler]:
    """Guard an aiohttp handler: signed in, with `role` or a higher one, and on a POST
    from our own origin with the session's CSRF token."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            auth = console_auth(request)
            lang = language(request)
            mutating = request.method not in SAFE_METHODS
            if mutating and not csrf.origin_ok(request, auth.public_url):
                return refused(request, lang, TEXTS[lang]["forbidden_csrf"], "origin")
            found = await auth.signed_in(request)
            if found is None:
                return not_signed_in(request)
            account, session = found
            if mutating:
                given = await csrf.given_token(request)
                if not csrf.token_ok(auth.key, session.nonce, given):
                    return refused(request, lang, TEXTS[lang]["forbidden_csrf"], "csrf")
            if not account.may(role):
                message = TEXTS[lang]["forbidden_role"].format(role=account.role, needed=role)
                return refused(request, lang, message, "role", account=account.name)
            request[ACCOUNT] = account
            request[SESSION] = session
            return await handler(request)

        return guarded

    return decorate


def account_of(request: web.Request) -> Account:
    """The signed-in account (inside a handler guarded by `requires`)."""
    try:
        return request[ACCOUNT]
    except KeyError:
        raise RuntimeError("account_of() outside a handler guarded by @requires") from None


def csrf_token(request: web.Request) -> str:
    """The session's CSRF token, for the hidden `csrf` field of every form."""
    try:
        session = request[SESSION]
    except KeyError:
        raise RuntimeError("csrf_token() outside a handler guarded by @requires") from None
    return csrf.token_for(console_auth(request).key, session.nonce)


def wants_data(request: web.Request) -> bool:
    """A request that takes JSON or an event stream, not a page (fetch, EventSource)."""
    accept = request.headers.get("Accept", "")
    if "text/html" in accept:
        return False
    return "application/json" in accept or "text/event-stream" in accept


def not_signed_in(request: web.Request) -> web.StreamResponse:
    target = login_url(request.path_qs)
    if wants_data(request) or request.headers.get("HX-Request") == "true":
        return web.json_response(
            {"error": "unauthorized", "detail": f"sign in at {target}"},
            status=401,
            headers={"Cache-Control": "no-store", "HX-Redirect": target},
        )
    raise web.HTTPSeeOther(target, headers={"Cache-Control": "no-store"})


def refused(
    request: web.Request, lang: str, message: str, why: str, account: str | None = None
) -> web.StreamResponse:
    log.warning("console_refused", path=request.path, why=why, account=account)
    if wants_data(request):
        return web.json_response({"error": "forbidden", "detail": message}, status=403)
    return forbidden_page(lang, message)


def add_console_auth(
    app: web.Application,
    deployment: Deployment,
    store_from_app: Callable[[web.Application], Store],
) -> ConsoleAuth:
    """Sign-in for the console: GET/POST /console/login, POST /console/logout, and the
    state `requires` reads. Without `console.session_secret`, a random key per start."""
    secret = deployment.settings.console.session_secret
    if secret is None:
        key = SessionKey.random()
        log.warning(
            "console_session_secret_unset",
            detail="console sessions end when the daemon restarts and do not span daemons",
            hint="set console.session_secret (e.g. ${CONSOLE_SESSION_SECRET})",
        )
    else:
        key = SessionKey.from_setting(secret)
    auth = ConsoleAuth(deployment, store_from_app, key)
    app[AUTH] = auth
    add_login_routes(app, auth)
    add_oidc_routes(app, auth)  # with console.oidc set
    return auth
