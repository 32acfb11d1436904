"""Single sign-on through the city's OIDC provider: the second sign-in source
(signin.py), set with `console.oidc` (authorization code flow with PKCE).

    GET /console/login/oidc?next=...   to the provider, with state, nonce and PKCE kept in
                                       a signed cookie of this flow alone
    GET /console/login/oidc/callback   the provider's answer: the code exchanged at its
                                       token endpoint, the ID token checked (id_token.py),
                                       its `account_claim` mapped to an account of the store

The account must exist and be enabled; its role is the store's, never the provider's.
The session then starts as for a password (ConsoleAuth.start_session). The flow cookie is
SameSite=Lax, since the provider sends the browser back from its own site; the session
cookie stays Strict, so the callback answers with a page that moves on by itself (a
navigation from our own page, which sends the Strict cookie).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import aiohttp
import structlog
from aiohttp import web

from broadcaster.config import OidcSettings
from broadcaster.models import AuditEntry
from broadcaster.web.console.auth_pages import forbidden_page, language, redirect_page
from broadcaster.web.console.auth_texts import TEXTS
from broadcaster.web.console.context import ConsoleAuth
from broadcaster.web.console.id_token import Keys, TokenRefused, keys_of, verify
from broadcaster.web.console.login import client_of, safe_next

log = structlog.get_logger(__name__)

START_PATH = "/console/login/oidc"
CALLBACK_PATH = START_PATH + "/callback"
FLOW_COOKIE = "broadcaster_oidc"
FLOW_LIFETIME = timedelta(minutes=10)
TIMEOUT = aiohttp.ClientTimeout(total=10)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Provider:
    """The provider's endpoints and keys, from its discovery document (fetched when
    first needed, and again when a token names a key we do not have)."""

    def __init__(self, settings: OidcSettings, session: aiohttp.ClientSession) -> None:
        self.settings = settings
        self.session = session
        self.config: dict[str, Any] | None = None
        self.keys: Keys = {}

    async def get_json(self, url: str) -> dict[str, Any]:
        async with self.session.get(url, timeout=TIMEOUT) as answer:
            answer.raise_for_status()
            data: dict[str, Any] = await answer.json()
            return data

    async def discovered(self) -> dict[str, Any]:
        if self.config is None:
            url = f"{self.settings.issuer}/.well-known/openid-configuration"
            config = await self.get_json(url)
            if config.get("issuer") != self.settings.issuer:
                raise TokenRefused(f"the provider names itself {config.get('issuer')!r}")
            self.config = config
        return self.config

    async def refresh_keys(self) -> Keys:
        self.keys = keys_of(await self.get_json(str((await self.discovered())["jwks_uri"])))
        return self.keys

    async def exchange(self, code: str, verifier: str, redirect_uri: str) -> str:
        """The ID token for `code` (client_secret_post, with the PKCE verifier)."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self.settings.client_id,
            "client_secret": self.settings.client_secret,
            "code_verifier": verifier,
        }
        endpoint = str((await self.discovered())["token_endpoint"])
        async with self.session.post(endpoint, data=form, timeout=TIMEOUT) as answer:
            data = await answer.json(content_type=None)
            if answer.status != 200 or not isinstance(data, dict) or "id_token" not in data:
                error = data.get("error") if isinstance(data, dict) else None
                raise TokenRefused(f"the token endpoint answered {answer.status} {error or ''}")
            return str(data["id_token"])


class OidcRoutes:
    def __init__(self, auth: ConsoleAuth, settings: OidcSettings) -> None:
        self.auth = auth
        self.settings = settings
        self.provider: Provider | None = None

    @property
    def redirect_uri(self) -> str:
        return self.auth.public_url + CALLBACK_PATH

    async def opened(self, app: web.Application) -> None:
        self.provider = Provider(self.settings, aiohttp.ClientSession())

    async def closed(self, app: web.Application) -> None:
        if self.provider is not None:
            await self.provider.session.close()

    async def start(self, request: web.Request) -> web.StreamResponse:
        assert self.provider is not None
        lang = language(request)
        try:
            endpoint = str((await self.provider.discovered())["authorization_endpoint"])
        except (aiohttp.ClientError, TimeoutError, KeyError, ValueError, TokenRefused) as exc:
            log.warning("oidc_unreachable", error=str(exc))
            return forbidden_page(lang, TEXTS[lang]["oidc_unreachable"], 502)
        state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
        flow = {
            "state": state,
            "nonce": nonce,
            "verifier": verifier,
            "next": safe_next(request.query.get("next")),
            "lang": lang,
            "until": (self.auth.clock() + FLOW_LIFETIME).timestamp(),
        }
        query = {
            "response_type": "code",
            "client_id": self.settings.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": " ".join(self.settings.scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": _b64(hashlib.sha256(verifier.encode()).digest()),
            "code_challenge_method": "S256",
        }
        response = web.HTTPFound(f"{endpoint}?{urlencode(query)}")
        response.set_cookie(
            FLOW_COOKIE,
            self.auth.key.sign("oidc", flow),
            path=START_PATH,
            max_age=int(FLOW_LIFETIME.total_seconds()),
            httponly=True,
            samesite="Lax",
            secure=self.auth.secure,
        )
        raise response

    async def callback(self, request: web.Request) -> web.StreamResponse:
        assert self.provider is not None
        flow = self.auth.key.unsign("oidc", request.cookies.get(FLOW_COOKIE))
        lang = str(flow.get("lang", "")) if flow else ""
        lang = lang if lang in TEXTS else language(request)
        t = TEXTS[lang]
        state = request.query.get("state", "")
        if (
            flow is None
            or float(flow.get("until", 0)) < self.auth.clock().timestamp()
            or not hmac.compare_digest(state.encode(), str(flow.get("state", "")).encode())
        ):
            return forbidden_page(lang, t["oidc_expired"], 400)
        if "error" in request.query or "code" not in request.query:
            why = request.query.get("error", "no code")[:80]
            await self.audit(request, "login_failed", "anonymous", reason=f"provider: {why}")
            return forbidden_page(lang, t["oidc_refused"])
        store = self.auth.store(request)
        try:
            token = await self.provider.exchange(
                request.query["code"], str(flow["verifier"]), self.redirect_uri
            )
            claims = await self.checked(token, str(flow["nonce"]))
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
            log.warning("oidc_unreachable", error=str(exc))
            return forbidden_page(lang, t["oidc_unreachable"], 502)
        except TokenRefused as exc:
            await self.audit(request, "login_failed", "anonymous", reason=f"id token: {exc}")
            return forbidden_page(lang, t["oidc_refused"])
        name = str(claims.get(self.settings.account_claim, ""))
        account = await store.get_account(name) if name else None
        if account is None or account.disabled:
            reason = "disabled" if account is not None else "unknown_account"
            actor = name if account is not None else "anonymous"
            await self.audit(request, "login_refused", actor, reason=reason)
            message = t["disabled"] if account is not None else t["oidc_no_account"]
            return forbidden_page(lang, message)
        await self.audit(request, "login", account.name, role=account.role)
        log.info("console_login", account=account.name, source="oidc")
        next_path = safe_next(str(flow.get("next", "")))
        response = redirect_page(lang, next_path)
        self.auth.start_session(response, account)
        response.del_cookie(FLOW_COOKIE, path=START_PATH)
        return response

    async def checked(self, token: str, nonce: str) -> dict[str, Any]:
        assert self.provider is not None
        check = {
            "issuer": self.settings.issuer,
            "client_id": self.settings.client_id,
            "nonce": nonce,
        }
        keys = self.provider.keys or await self.provider.refresh_keys()
        try:
            return verify(token, keys, now=self.auth.clock(), **check)
        except TokenRefused as exc:
            if not str(exc).startswith("no published key"):
                raise
        # The provider rolled its keys over since we fetched them.
        return verify(token, await self.provider.refresh_keys(), now=self.auth.clock(), **check)

    async def audit(self, request: web.Request, event: str, actor: str, **detail: str) -> None:
        entry = AuditEntry(
            event=event,
            actor=actor,
            detail={"source": "oidc", "client": client_of(request), **detail},
        )
        await self.auth.store(request).audit(entry)


def add_oidc_routes(app: web.Application, auth: ConsoleAuth) -> None:
    settings = auth.settings.oidc
    if settings is None:
        return
    routes = OidcRoutes(auth, settings)
    app.on_startup.append(routes.opened)
    app.on_cleanup.append(routes.closed)
    app.router.add_get(START_PATH, routes.start)
    app.router.add_get(CALLBACK_PATH, routes.callback)


__all__ = ["CALLBACK_PATH", "START_PATH", "add_oidc_routes"]
