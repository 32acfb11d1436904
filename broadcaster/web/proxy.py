"""Behind a reverse proxy (Caddy, nginx: deploy/), each request's peer is the proxy. For
the proxies named in `http.trusted_proxies`, the client's own address comes from
`X-Forwarded-For` and the scheme from `X-Forwarded-Proto`, so that the confirm page's
per-address throttle, the console's sign-in audit and secure cookies see the person, not
the proxy. From any other peer the headers are ignored: anyone could send them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web
from aiohttp.typedefs import Middleware

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def networks(entries: Sequence[str]) -> list[Network]:
    return [ipaddress.ip_network(entry, strict=False) for entry in entries]


def _trusted(address: str | None, trusted: list[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(ip in net for net in trusted)


def forwarded_client(peer: str | None, forwarded_for: str, trusted: list[Network]) -> str | None:
    """The right-most address of the chain that is not a trusted proxy (the ones left of
    it were written by the client itself and prove nothing)."""
    if not _trusted(peer, trusted):
        return peer
    chain = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(chain):
        if not _trusted(hop, trusted):
            return hop
    return chain[0] if chain else peer


def forwarded_middleware(trusted: list[Network]) -> Middleware:
    @web.middleware
    async def forwarded(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not trusted or not _trusted(request.remote, trusted):
            return await handler(request)
        chain = request.headers.get("X-Forwarded-For", "")
        client = forwarded_client(request.remote, chain, trusted)
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        scheme = proto if proto in ("http", "https") else request.scheme
        if client is None:
            return await handler(request.clone(scheme=scheme))
        return await handler(request.clone(remote=client, scheme=scheme))

    return forwarded
