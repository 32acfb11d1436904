"""Cross-site request forgery: every console POST must carry the session's token and
come from our own pages.

The token is an HMAC of the session's nonce (sessions.py), so it needs no storage, is
different for every session, and is useless after sign-out. Forms send it as a hidden
field `csrf`; a script (htmx) may send it as the `X-CSRF-Token` header. On top, the
Sec-Fetch-Site or Origin header must say the request came from our own origin
(web/guard.py `same_origin`).
"""

from __future__ import annotations

import hmac

from aiohttp import web

from broadcaster.web.console.sessions import SessionKey
from broadcaster.web.guard import same_origin

FIELD = "csrf"
HEADER = "X-CSRF-Token"


def token_for(key: SessionKey, nonce: str) -> str:
    return key.mac("csrf", nonce)


def token_ok(key: SessionKey, nonce: str, given: str | None) -> bool:
    """Constant time: the token for `nonce`, exactly."""
    if not given:
        return False
    return hmac.compare_digest(given.encode(), token_for(key, nonce).encode())


async def given_token(request: web.Request) -> str | None:
    """The token the request carries: the header, else the form field. aiohttp keeps the
    parsed form, so the handler can read it again."""
    header = request.headers.get(HEADER)
    if header:
        return header
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        value = (await request.post()).get(FIELD)
        return value if isinstance(value, str) else None
    return None


def origin_ok(request: web.Request, public_url: str) -> bool:
    return same_origin(request, public_url)
