"""The HTTP adapters' request plumbing, and how an answer becomes a Receipt, a
TransientError or a PermanentError.

`HttpAdapter.request` makes every request alike: within the timeout, never redirected,
at most BODY_LIMIT bytes of the answer read, and no answer at all (a timeout, a refused
connection) a TransientError, an invalid URL a PermanentError. `HttpAdapter.check`
classifies the answer by one table:

- 2xx: success (the adapter builds its Receipt from the body);
- 408, 425, 429 and 5xx: TransientError, with `retry_after` from the provider's wait
  headers (`wait`: Retry-After, seconds or an HTTP-date, unless the provider has its own);
- any other status (3xx included: adapters do not follow redirects, a moved endpoint is
  a configuration problem): PermanentError naming the status and the provider's words.

A provider adjusts the table with class attributes and hooks (see HttpAdapter); one
whose errors are not told by status alone (Telegram's envelope, Facebook's error codes,
Twilio's per-recipient codes) reads the answer first and falls back on `check`.

Nothing here retries or sleeps: the dispatcher owns that.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Generic, TypeVar

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


def redirect_note(status: int, headers: Mapping[str, str], fix: str) -> str:
    """What to do about a redirect, which no adapter follows: a moved endpoint is a
    configuration problem."""
    if 300 <= status < 400 and headers.get("Location"):
        return f" (redirect to {headers['Location']}; {fix})"
    return ""


def transport_error(service: str, exc: BaseException, timeout: float | None = None) -> ChannelError:
    """The error for a request that got no HTTP answer at all."""
    if isinstance(exc, aiohttp.InvalidURL):
        return PermanentError(f"{service}: invalid URL {exc}")
    if isinstance(exc, TimeoutError):  # asyncio.TimeoutError, aiohttp.ServerTimeoutError
        within = f" within {timeout:g}s" if timeout is not None else ""
        return TransientError(f"{service}: no answer{within}")
    reason = str(exc) or type(exc).__name__
    return TransientError(f"{service}: {type(exc).__name__}: {reason}")


def parse_json(raw: bytes) -> Any:
    """The JSON value of an answer's body; None when it is empty or not JSON."""
    try:
        return json.loads(raw) if raw.strip() else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Answer:
    """A provider's HTTP answer: status, headers and (at most BODY_LIMIT bytes of) body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def data(self) -> Any:
        """The body as JSON; None when it is empty or not JSON."""
        return parse_json(self.body)

    @property
    def fields(self) -> dict[str, Any]:
        """The body as a JSON object; empty when it is anything else."""
        data = self.data
        return data if isinstance(data, dict) else {}


class HttpAdapter(Generic[ConfigT]):
    """What every adapter of an HTTP provider shares: its settings, its channel's session,
    one way to make a request (timeout, no redirects, bounded body, transport errors as
    ChannelErrors) and one classification of the answer (`check`).

    A provider adjusts the classification with the class attributes and hooks below, not
    with a copy of it: `transient_statuses` and `permanent_statuses` (besides 5xx, which
    are transient), `busy_statuses`, `wait` (the provider's wait headers), `describe` (its
    error text), `note` (a hint on a permanent error) and `secrets` (kept out of every
    error message)."""

    service: ClassVar[str]  # "mastodon", "telegram", ...
    # Statuses worth another attempt besides 5xx (and those 5xx that are not).
    transient_statuses: ClassVar[frozenset[int]] = TRANSIENT_STATUSES
    permanent_statuses: ClassVar[frozenset[int]] = frozenset()
    # Transient statuses that say the provider is up (not a failure for its breaker);
    # None: busy when the provider said how long to wait.
    busy_statuses: ClassVar[frozenset[int] | None] = None
    # What to do about a redirect (the setting that holds the URL).
    redirect_fix: ClassVar[str] = "fix the configured URL"

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

    # -- the request ---------------------------------------------------------------------

    async def request(
        self,
        method: str,
        url: str,
        *,
        data: bytes | Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body_limit: int = BODY_LIMIT,
    ) -> Answer:
        """One request, never redirected, within the timeout; the answer whatever its
        status. No answer at all raises TransientError or PermanentError."""
        try:
            async with self._session.request(
                method,
                url,
                data=data,
                params=params,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                allow_redirects=False,
            ) as response:
                body = await read_body(response, body_limit)
                return Answer(response.status, response.headers, body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self.scrub(transport_error(self._service, exc, self._timeout)) from exc

    # -- the answer ----------------------------------------------------------------------

    def check(self, answer: Answer, *, doing: str | None = None) -> None:
        """Return for 2xx; raise TransientError or PermanentError for anything else, by
        the class's table and hooks. `doing` names a step other than the post itself."""
        if answer.ok:
            return
        said = self.describe(answer)
        what = f"{doing} refused: " if doing else ""
        message = f"{self._service}: {what}HTTP {answer.status}" + (f": {said}" if said else "")
        if self.is_transient(answer.status):
            raise self.scrub(self.transient(message, answer))
        message += self.note(answer, message)
        message += redirect_note(answer.status, answer.headers, self.redirect_fix)
        raise self.scrub(PermanentError(message))

    def is_transient(self, status: int) -> bool:
        """Whether an answer with this status is worth another attempt."""
        if status in self.transient_statuses:
            return True
        return 500 <= status < 600 and status not in self.permanent_statuses

    def transient(self, message: str, answer: Answer) -> TransientError:
        """The TransientError for this answer, with the provider's wait."""
        busy = None if self.busy_statuses is None else answer.status in self.busy_statuses
        return TransientError(message, retry_after=self.wait(answer), busy=busy)

    def wait(self, answer: Answer) -> float | None:
        """Seconds the provider asked us to wait: Retry-After, unless a provider reads
        headers of its own (X-RateLimit-Reset, x-rate-limit-reset, ...)."""
        return retry_after_seconds(answer.headers.get("Retry-After"))

    def describe(self, answer: Answer) -> str:
        """The provider's words for what went wrong: the start of the body by default."""
        return excerpt(answer.body)

    def note(self, answer: Answer, message: str) -> str:
        """A hint appended to a permanent error's message (empty by default)."""
        return ""

    def secrets(self) -> tuple[tuple[str, str], ...]:
        """(value, placeholder) pairs that must never appear in an error message."""
        return ()

    def scrub(self, error: ChannelError) -> ChannelError:
        """The same error with every secret replaced by its placeholder."""
        text = error.message
        for value, placeholder in self.secrets():
            if value:
                text = text.replace(value, placeholder)
        if text == error.message:
            return error
        if isinstance(error, TransientError):
            return TransientError(text, error.retry_after, partial=error.partial, busy=error.busy)
        return PermanentError(text, partial=error.partial)
