"""Signed session cookies: who is signed in, since when, until when.

A cookie is `<payload>.<mac>`: the payload is base64url JSON, the MAC an HMAC-SHA256 over
the cookie's kind and the payload, with the daemon's session key
(`console.session_secret`). Nothing is kept on the server: every request checks the MAC,
the expiry and, against the account as stored now, the session version (a password reset
or a disable bumps it, which ends every older session). Comparisons are constant time.

The payload holds the account name, issued-at, expiry, the account's session version and
a random nonce (the session's own: the CSRF token is derived from it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

SESSION_COOKIE = "broadcaster_console"
COOKIE_PATH = "/console"
# The sign-in form's own cookie: a nonce for its CSRF token before anyone is signed in.
LOGIN_COOKIE = "broadcaster_console_login"
LOGIN_PATH = "/console/login"
LOGIN_FORM_LIFETIME = timedelta(hours=1)
MAX_COOKIE_LENGTH = 4096


class SessionKey:
    """The HMAC key; `str()` and `repr()` never show it."""

    def __init__(self, secret: bytes) -> None:
        self._key = secret

    @classmethod
    def from_setting(cls, secret: str) -> SessionKey:
        # Derived, so that any long text from the environment makes a full-size key.
        return cls(hashlib.sha256(b"broadcaster-console:" + secret.encode()).digest())

    @classmethod
    def random(cls) -> SessionKey:
        return cls(secrets.token_bytes(32))

    def __repr__(self) -> str:
        return "SessionKey(...)"

    def mac(self, purpose: str, data: str) -> str:
        digest = hmac.new(self._key, f"{purpose}\n{data}".encode(), hashlib.sha256).digest()
        return _b64(digest)

    def sign(self, kind: str, payload: dict[str, Any]) -> str:
        body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
        return f"{body}.{self.mac(kind, body)}"

    def unsign(self, kind: str, value: str | None) -> dict[str, Any] | None:
        """The payload when `value` was signed by this key for `kind`, else None."""
        if not value or len(value) > MAX_COOKIE_LENGTH:
            return None
        body, sep, mac = value.partition(".")
        if not sep or not hmac.compare_digest(mac.encode(), self.mac(kind, body).encode()):
            return None
        try:
            payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except (ValueError, binascii.Error):
            return None
        return payload if isinstance(payload, dict) else None


@dataclass(frozen=True)
class Session:
    account: str
    issued_at: datetime
    expires_at: datetime
    version: int  # the account's session_version when it signed in
    nonce: str


def issue(key: SessionKey, account: str, version: int, now: datetime, lifetime: timedelta) -> str:
    """A new session cookie's value."""
    payload = {
        "a": account,
        "i": int(now.timestamp()),
        "e": int((now + lifetime).timestamp()),
        "v": version,
        "n": secrets.token_urlsafe(16),
    }
    return key.sign("session", payload)


def read(key: SessionKey, value: str | None, now: datetime) -> Session | None:
    """The session in a cookie signed by `key` and not expired at `now`, else None."""
    payload = key.unsign("session", value)
    if payload is None:
        return None
    try:
        account, issued, expires = str(payload["a"]), int(payload["i"]), int(payload["e"])
        version, nonce = int(payload["v"]), str(payload["n"])
    except (KeyError, TypeError, ValueError):
        return None
    if not issued <= now.timestamp() < expires:
        return None
    zone = now.tzinfo
    return Session(
        account,
        datetime.fromtimestamp(issued, zone),
        datetime.fromtimestamp(expires, zone),
        version,
        nonce,
    )


def issue_login_form(key: SessionKey, now: datetime) -> tuple[str, str]:
    """A sign-in form's cookie value and its nonce."""
    nonce = secrets.token_urlsafe(16)
    expires = int((now + LOGIN_FORM_LIFETIME).timestamp())
    return key.sign("login", {"n": nonce, "e": expires}), nonce


def read_login_form(key: SessionKey, value: str | None, now: datetime) -> str | None:
    """The nonce of a sign-in form's cookie that is ours and fresh, else None."""
    payload = key.unsign("login", value)
    if payload is None:
        return None
    nonce, expires = payload.get("n"), payload.get("e")
    if not isinstance(nonce, str) or not isinstance(expires, int) or now.timestamp() >= expires:
        return None
    return nonce


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
