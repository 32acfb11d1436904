"""How an HTTP provider's answer becomes a Receipt, a TransientError or a PermanentError.

Shared by the HTTP adapters so that every one classifies alike:

- 2xx: success (the adapter builds its Receipt from the body);
- 408, 425, 429 and 5xx: TransientError, with `retry_after` from a Retry-After header
  (seconds or an HTTP-date);
- any other status (3xx included: adapters do not follow redirects, a moved endpoint is
  a configuration problem): PermanentError naming the status and the start of the body;
- timeouts and connection errors: TransientError; an invalid URL: PermanentError.

Nothing here retries or sleeps: the dispatcher owns that.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import ClassVar, Generic, TypeVar

import aiohttp

from broadcaster.channels.base import ChannelError, PermanentError, TransientError

DEFAULT_TIMEOUT = 10.0  # seconds for one request, answer included
ConfigT = TypeVar("ConfigT")

# Statuses that mean "not now" rather than "never".
TRANSIENT_STATUSES: frozenset[int] = frozenset({408, 425, 429})
# Of those (and a webhook's 409 "in progress"), the ones that say the provider is up.
BUSY_STATUSES: frozenset[int] = frozenset({409, 425, 429})
BODY_LIMIT = 64 * 1024  # bytes of an answer we read at most
EXCERPT_LENGTH = 200  # characters of an error body kept in the error message


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After as seconds to wait: `120` or `Wed, 21 Oct 2026 07:28:00 GMT`.

    A date in the past means 0; a value that is neither (or negative) means None.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        return float(min(int(value), 10**9))  # an absurd value must not overflow
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" in RFC 2822 terms: UTC without a stated zone
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


def excerpt(body: bytes, limit: int = EXCERPT_LENGTH) -> str:
    """The start of an answer's body, on one line, for an error message."""
    text = " ".join(body.decode("utf-8", errors="replace").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def read_body(response: aiohttp.ClientResponse, limit: int = BODY_LIMIT) -> bytes:
    """At most `limit` bytes of the answer: a broken endpoint cannot make us read forever."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(16 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]


def check_status(
    service: str,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    transient: frozenset[int] = TRANSIENT_STATUSES,
) -> None:
    """Return for 2xx; raise TransientError or PermanentError for anything else."""
    if 200 <= status < 300:
        return
    detail = excerpt(body)
    message = f"{service}: HTTP {status}" + (f": {detail}" if detail else "")
    if status in transient or 500 <= status < 600:
        raise TransientError(
            message,
            retry_after=retry_after_seconds(headers.get("Retry-After")),
            busy=status in BUSY_STATUSES,
        )
    if 300 <= status < 400 and headers.get("Location"):
        message += f" (redirect to {headers['Location']}; fix the configured URL)"
    raise PermanentError(message)


def transport_error(service: str, exc: BaseException, timeout: float | None = None) -> ChannelError:
    """The error for a request that got no HTTP answer at all."""
    if isinstance(exc, aiohttp.InvalidURL):
        return PermanentError(f"{service}: invalid URL {exc}")
    if isinstance(exc, TimeoutError):  # asyncio.TimeoutError, aiohttp.ServerTimeoutError
        within = f" within {timeout:g}s" if timeout is not None else ""
        return TransientError(f"{service}: no answer{within}")
    reason = str(exc) or type(exc).__name__
    return TransientError(f"{service}: {type(exc).__name__}: {reason}")


class HttpAdapter(Generic[ConfigT]):
    """What every adapter of an HTTP provider keeps: its settings, the daemon's shared
    session, a per-request timeout, and a name for its error messages."""

    service: ClassVar[str]  # "mastodon", "telegram", ...

    def __init__(
        self,
        channel_id: str,
        config: ConfigT,
        session: aiohttp.ClientSession,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.channel_id = channel_id
        self._config = config
        self._session = session
        self._timeout = timeout
        self._service = f"{self.service} {channel_id}"
        self.setup()

    def setup(self) -> None:
        """What a provider derives from its settings once (base URL, signer, ...)."""
