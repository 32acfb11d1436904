"""What every HTTP answer and every form POST is guarded by.

- Security headers on every answer, errors and redirects included, and no `Server`
  version (an attacker learns nothing about which aiohttp to aim at).
- A POST from a browser must come from our own pages: its Origin (or Sec-Fetch-Site)
  must be ours. Browsers send these on every cross-site POST; a tool without a browser
  sends neither and is let through (it has no victim's cookies or page to abuse).
- Guessing: a client that keeps opening links that do not exist is slowed to a stop.
"""

from __future__ import annotations

from collections import OrderedDict
from urllib.parse import urlsplit

from aiohttp import web
from aiolimiter import AsyncLimiter

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    # A confirm token must not leak to linked sites. Not `no-referrer`: with it, browsers
    # send `Origin: null` on our own form posts, and the origin check could not tell.
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'"
)


async def secure_headers(request: web.Request, response: web.StreamResponse) -> None:
    """aiohttp's on_response_prepare: runs for every answer, redirects and errors too."""
    for name, value in SECURITY_HEADERS.items():
        if name == "X-Frame-Options" and _may_be_framed(response):
            continue  # its own frame-ancestors says who may (the warning banner)
        response.headers.setdefault(name, value)
    response.headers["Server"] = "broadcaster"
    if request.path.startswith("/confirm/"):
        response.headers["Cache-Control"] = "no-store"


def _may_be_framed(response: web.StreamResponse) -> bool:
    policy = response.headers.get("Content-Security-Policy", "")
    return "frame-ancestors" in policy and "frame-ancestors 'none'" not in policy


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def same_origin(request: web.Request, public_url: str) -> bool:
    """A form POST that a browser sent from one of our own pages (or no browser at all)."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:  # every current browser sends it, and cannot be made to lie
        return site in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    own = {origin_of(public_url), f"{request.scheme}://{request.host}".lower()}
    return origin.lower() in own


class Throttle:
    """At most `count` misses per `period` seconds per client address; the rest wait it out."""

    MAX_CLIENTS = 10_000  # addresses remembered; the oldest are forgotten first

    def __init__(self, count: int, period: float) -> None:
        self.count = count
        self.period = period
        self.clients: OrderedDict[str, AsyncLimiter] = OrderedDict()

    def allowed(self, client: str) -> bool:
        limiter = self.clients.get(client)
        return limiter is None or limiter.has_capacity()

    async def missed(self, client: str) -> None:
        limiter = self.clients.pop(client, None) or AsyncLimiter(self.count, self.period)
        self.clients[client] = limiter
        while len(self.clients) > self.MAX_CLIENTS:
            self.clients.popitem(last=False)
        if limiter.has_capacity():
            await limiter.acquire()


async def read_body(request: web.Request, limit: int) -> bytes | None:
    """The raw body, or None when it is over `limit` bytes: by its Content-Length before
    reading, else while reading (a chunked body has none), so no more is ever held."""
    declared = request.content_length
    if declared is not None and declared > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
