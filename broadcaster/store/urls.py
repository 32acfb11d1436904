"""The Redis Sentinel form of `store.url`, and hiding passwords in any store URL.

    redis+sentinel://[[user]:password@]host:port[,host:port...]/service[/db][?sentinel_password=...]

The hosts are the sentinels (port 26379 when left out); `service` is the name they
monitor the primary under; the user and password are the Redis servers' own, and
`sentinel_password` is the sentinels' `requirepass`, if they have one. Parsed here only:
the settings check it, the store connects with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote

SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_PORT = 26379
SENTINEL_FORM = (
    "redis+sentinel://[:password@]host:port,host:port,.../service/db "
    "(e.g. redis+sentinel://s1:26379,s2:26379,s3:26379/mymaster/0)"
)
_HOST = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9_.-]+))(?::(?P<port>\d+))?$")
_SERVICE = re.compile(r"^[A-Za-z0-9_.-]+$")
_OPTIONS = frozenset({"sentinel_password"})
# scheme://user:password@ (up to the last @ before the path), and password=... options
_USERINFO = re.compile(r"^([^:/?#]+://[^:@/?#]*):[^/?#]*@")
_SECRET_OPTION = re.compile(r"(password=)[^&#]*")


@dataclass(frozen=True)
class SentinelUrl:
    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int
    username: str | None
    password: str | None
    sentinel_password: str | None


def is_sentinel_url(url: str) -> bool:
    return url.lower().startswith(f"{SENTINEL_SCHEME}://")


def parse_sentinel_url(url: str) -> SentinelUrl:
    """The parts of a redis+sentinel:// URL; ValueError naming the expected form."""

    def refuse(problem: str) -> ValueError:
        return ValueError(f"store.url {redacted(url)!r}: {problem}; expected {SENTINEL_FORM}")

    if not is_sentinel_url(url):
        raise refuse(f"does not start with {SENTINEL_SCHEME}://")
    rest = url[len(SENTINEL_SCHEME) + 3 :]
    rest, _, query = rest.partition("?")
    if "#" in rest or "#" in query:
        raise refuse("a fragment (#) has no meaning here")
    netloc, _, path = rest.partition("/")
    userinfo, at, hostlist = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    sentinels: list[tuple[str, int]] = []
    for part in hostlist.split(","):
        found = _HOST.match(part)
        if found is None:
            raise refuse(f"{part!r} is not a sentinel's host:port")
        port = int(found["port"]) if found["port"] else SENTINEL_PORT
        if not 0 < port < 65536:
            raise refuse(f"port {port} of {part!r} is out of range")
        sentinels.append((found["v6"] or found["name"], port))
    segments = path.split("/") if path else []
    if not segments or not _SERVICE.match(segments[0]):
        raise refuse("the service name the sentinels monitor is missing")
    if len(segments) > 2 or (len(segments) == 2 and not segments[1].isdigit()):
        raise refuse(f"{'/'.join(segments[1:])!r} is not a database number")
    options: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)):
        if key not in _OPTIONS:
            raise refuse(f"unknown option {key!r} (only sentinel_password)")
        options[key] = value
    return SentinelUrl(
        sentinels=tuple(sentinels),
        service=segments[0],
        db=int(segments[1]) if len(segments) == 2 else 0,
        username=username,
        password=password,
        sentinel_password=options.get("sentinel_password"),
    )


def redacted(url: str) -> str:
    """The URL without its passwords (the one before @ and any *password= option), for
    messages; for any scheme, one host or several."""
    return _SECRET_OPTION.sub(r"\1***", _USERINFO.sub(r"\1:***@", url))
