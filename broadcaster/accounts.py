"""Console accounts: who may sign in to the newsroom console, with which role.

Kept in the store (Store.save_account); created and managed with `broadcaster user ...`
(cli.py), checked at sign-in by the console (web/console/signin.py). Passwords are hashed
with argon2id (argon2-cffi's defaults, RFC 9106); the password itself is never kept,
logged or audited.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Collection
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from broadcaster.models import ACCOUNT_NAME_PATTERN, ROLES, Account, AuditEntry, Role, utcnow
from broadcaster.store.base import Store

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024  # argon2 takes any length; a megabyte "password" is an attack
HASHER = PasswordHasher()


class AccountError(Exception):
    """A `broadcaster user` request that cannot be done (the message says why and what to do)."""


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def password_matches(password_hash: str, password: str) -> bool:
    """argon2's own verification (constant time in the password)."""
    try:
        return HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@cache
def _decoy_hash() -> str:
    """A hash to check an unknown name's password against, so that a name that does not
    exist takes as long to refuse as a wrong password (no guessing names by timing)."""
    return HASHER.hash(secrets.token_urlsafe(16))


async def check_password(account: Account | None, password: str) -> bool:
    """Whether `password` is the account's, in a thread (argon2 takes tens of ms)."""
    if len(password) > MAX_PASSWORD_LENGTH:
        return False
    stored = account.password_hash if account is not None else _decoy_hash()
    ok = await asyncio.to_thread(password_matches, stored, password)
    return ok and account is not None


def name_problem(name: str) -> str | None:
    if not re.match(ACCOUNT_NAME_PATTERN, name):
        return (
            f"account name {name!r}: use 1 to 64 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    return None


def role_problem(role: str) -> str | None:
    if role not in ROLES:
        return f"unknown role {role!r}: use one of {', '.join(ROLES)}"
    return None


def password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"the password is too short: use at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"the password is too long: use at most {MAX_PASSWORD_LENGTH} characters"
    if password != password.strip():
        return "the password starts or ends with a space: remove it"
    return None


def as_role(role: str) -> Role:
    problem = role_problem(role)
    if problem is not None:
        raise AccountError(problem)
    return next(r for r in ROLES if r == role)


async def add_account(
    store: Store,
    name: str,
    role: str,
    password: str,
    *,
    officer: str | None,
    officers: Collection[str],
    by: str,
) -> Account:
    """A new account, audited; AccountError for a bad name, role, password or officer."""
    for problem in (name_problem(name), role_problem(role), password_problem(password)):
        if problem is not None:
            raise AccountError(problem)
    if officer is not None and officer not in officers:
        known = ", ".join(repr(o) for o in officers) or "none"
        raise AccountError(
            f"unknown duty officer {officer!r}: use a name of duty_officers in "
            f"broadcaster.yaml (known: {known})"
        )
    account = Account(
        name=name, role=as_role(role), password_hash=hash_password(password), officer=officer
    )
    if not await store.save_account(account, new=True):
        raise AccountError(
            f"an account {name!r} exists already: choose another name, or "
            f"`broadcaster user reset {name}` for a new password"
        )
    detail: dict[str, str] = {"account": name, "role": role}
    if officer is not None:
        detail["officer"] = officer
    await store.audit(AuditEntry(event="account_added", actor=by, detail=detail))
    return account


async def _existing(store: Store, name: str) -> Account:
    account = await store.get_account(name)
    if account is None:
        raise AccountError(f"no account {name!r}; `broadcaster user list` lists them")
    return account


async def set_disabled(store: Store, name: str, disabled: bool, *, by: str) -> Account:
    """Disable (ending its sessions) or enable an account, audited."""
    account = await _existing(store, name)
    changes: dict[str, object] = {"disabled": disabled}
    if disabled:
        changes["session_version"] = account.session_version + 1
    changed = account.model_copy(update=changes)
    await store.save_account(changed)
    event = "account_disabled" if disabled else "account_enabled"
    await store.audit(AuditEntry(event=event, actor=by, detail={"account": name}))
    return changed


async def reset_password(store: Store, name: str, password: str, *, by: str) -> Account:
    """A new password: unlocks the account and ends its sessions, audited."""
    problem = password_problem(password)
    if problem is not None:
        raise AccountError(problem)
    account = await _existing(store, name)
    changed = account.model_copy(
        update={
            "password_hash": hash_password(password),
            "failed_logins": 0,
            "locked_until": None,
            "session_version": account.session_version + 1,
        }
    )
    await store.save_account(changed)
    await store.audit(AuditEntry(event="account_reset", actor=by, detail={"account": name}))
    return changed


def account_state(account: Account) -> str:
    """For `user list`: active, disabled, or locked until when."""
    if account.disabled:
        return "disabled"
    if account.locked_until is not None and account.locked(utcnow()):
        return f"locked until {account.locked_until.astimezone():%Y-%m-%d %H:%M}"
    return "active"
