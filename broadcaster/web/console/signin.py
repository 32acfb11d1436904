"""Sign-in sources: how a person proves who they are before a session starts.

A source ends in an Account of the store, and the session layer (sessions.py, auth.py)
takes it from there: the cookie, its checks on every request, roles and CSRF do not care
how the person signed in. Today there is one source, `PasswordSignIn` (the account's
argon2 password, with a lock-out after repeated failures). Single sign-on through OIDC
(a city's directory) is meant to come as a second source: its routes would send the
browser to the provider, check the answer, map the claims to an account, and call
`ConsoleAuth.start_session` like the password form does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

import structlog

from broadcaster.accounts import check_password, name_problem
from broadcaster.models import Account, AuditEntry
from broadcaster.store.base import Store

log = structlog.get_logger(__name__)
Refusal = Literal["wrong", "locked", "disabled"]


class SignIn(Protocol):
    """A way to sign in; `source` names it in the audit trail ("password", later "oidc")."""

    source: str


@dataclass(frozen=True)
class Outcome:
    account: Account | None = None  # signed in as this account
    refused: Refusal | None = None
    locked_until: datetime | None = None


@dataclass(frozen=True)
class PasswordSignIn:
    """Name and password, checked against the store; locked after `lock_after` wrong
    passwords in a row for `lock_for`. Every attempt is audited, never the password."""

    lock_after: int
    lock_for: timedelta
    source: str = "password"

    async def attempt(
        self, store: Store, name: str, password: str, now: datetime, client: str
    ) -> Outcome:
        found = await store.get_account(name) if name_problem(name) is None else None
        if found is None:
            await check_password(None, password)  # as slow as a wrong password
            # The typed name is not kept: it may be a password typed into the wrong field.
            await self._audit(store, "login_failed", "anonymous", client, reason="unknown_account")
            return Outcome(refused="wrong")
        if found.locked(now):
            await self._audit(store, "login_refused", name, client, reason="locked")
            return Outcome(refused="locked", locked_until=found.locked_until)
        ok = await check_password(found, password)
        after = await store.record_login(name, ok, now, self.lock_after, self.lock_for)
        if after is None:  # removed meanwhile
            return Outcome(refused="wrong")
        if after.locked(now):
            if not ok:
                await self._audit(store, "login_failed", name, client, reason="wrong_password")
                until = after.locked_until.isoformat() if after.locked_until else None
                await self._audit(store, "login_locked", name, client, until=until)
            else:  # another daemon locked it between our read and our count
                await self._audit(store, "login_refused", name, client, reason="locked")
            return Outcome(refused="locked", locked_until=after.locked_until)
        if not ok:
            await self._audit(store, "login_failed", name, client, reason="wrong_password")
            return Outcome(refused="wrong")
        if after.disabled:
            await self._audit(store, "login_refused", name, client, reason="disabled")
            return Outcome(refused="disabled")
        await self._audit(store, "login", name, client, role=after.role)
        return Outcome(account=after)

    async def _audit(
        self, store: Store, event: str, actor: str, client: str, **detail: str | None
    ) -> None:
        entry = {"source": self.source, "client": client, **detail}
        await store.audit(AuditEntry(event=event, actor=actor, detail=entry))
        log.info(f"console_{event}", account=actor, **entry)
