"""The console's sign-in state on the app, and who is signed in on a request."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from aiohttp import web

from broadcaster.config import ConsoleSettings
from broadcaster.deployment import Deployment
from broadcaster.models import Account, utcnow
from broadcaster.store.base import Store
from broadcaster.web.console import sessions
from broadcaster.web.console.sessions import COOKIE_PATH, SESSION_COOKIE, Session, SessionKey


@dataclass
class ConsoleAuth:
    deployment: Deployment
    store_from_app: Callable[[web.Application], Store]
    key: SessionKey
    clock: Callable[[], datetime] = field(default=utcnow)  # tests move time by hand

    @property
    def settings(self) -> ConsoleSettings:
        return self.deployment.settings.console

    @property
    def public_url(self) -> str:
        return self.deployment.settings.http.public_url

    @property
    def secure(self) -> bool:
        """Cookies only over HTTPS, when the console is reached over HTTPS."""
        return self.public_url.startswith("https://")

    def store(self, request: web.Request) -> Store:
        return self.store_from_app(request.app)

    def start_session(self, response: web.StreamResponse, account: Account) -> None:
        """Sign `account` in on this response (every sign-in source ends here)."""
        lifetime = self.settings.session_lifetime
        value = sessions.issue(
            self.key, account.name, account.session_version, self.clock(), lifetime
        )
        response.set_cookie(
            SESSION_COOKIE,
            value,
            path=COOKIE_PATH,
            max_age=int(lifetime.total_seconds()),
            httponly=True,
            samesite="Strict",
            secure=self.secure,
        )

    def end_session(self, response: web.StreamResponse) -> None:
        response.del_cookie(
            SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="Strict", secure=self.secure
        )

    async def signed_in(self, request: web.Request) -> tuple[Account, Session] | None:
        """The account and session of a valid cookie, the account as stored now: a
        disabled account, or one whose password was reset since, has none."""
        session = sessions.read(self.key, request.cookies.get(SESSION_COOKIE), self.clock())
        if session is None:
            return None
        account = await self.store(request).get_account(session.account)
        if account is None or account.disabled or account.session_version != session.version:
            return None
        return account, session


AUTH = web.AppKey("console_auth", ConsoleAuth)
ACCOUNT = web.RequestKey("console_account", Account)
SESSION = web.RequestKey("console_session", Session)


def console_auth(request: web.Request) -> ConsoleAuth:
    """Found on the app or any parent app (the console may be a sub-application)."""
    return request.config_dict[AUTH]
