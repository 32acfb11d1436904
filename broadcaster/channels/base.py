"""What every channel adapter is: build one request, classify the answer.

Adapters never retry and never sleep: the dispatcher owns retries, backoff,
Retry-After and rate limits (ARCHITECTURE.md). An adapter raises TransientError
(worth retrying, maybe after `retry_after` seconds) or PermanentError (do not retry;
the provider's message is kept for the delivery record), or returns a Receipt.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from broadcaster.models import Mode, Receipt

MessageKind = Literal["alert", "confirmation_request", "retraction", "refusal"]


@dataclass(frozen=True)
class OutgoingMessage:
    """One text for one channel, with what the provider may need around it."""

    kind: MessageKind
    alert_id: str
    incident: str
    scenario: str
    stage: str
    mode: Mode
    language: str
    title: str
    text: str
    idempotency_key: str  # stable per (alert, channel): safe to resend after a crash
    reply_to: Receipt | None = None  # an earlier post of the same incident on this channel
    # This delivery's own partial result from an earlier attempt: channels with several
    # recipients (SMS, e-mail) send only to those not yet reached.
    previous: Receipt | None = None
    # Saves this delivery's partial Receipt while a long send runs (SMS, e-mail), with the
    # claim renewed; raises when the claim is lost: then no new request may start.
    checkpoint: Callable[[Receipt], Awaitable[None]] | None = None
    confirm_url: str | None = None  # confirmation_request only
    expires_at: datetime | None = None
    retracts: str | None = None  # retraction: the alert it corrects (alert_id is the correction)
    error: str | None = None  # refusal: the error code and what was wrong
    detail: str | None = None


class ChannelError(Exception):
    def __init__(self, message: str, *, partial: Receipt | None = None) -> None:
        super().__init__(message)
        self.message = message
        # Some recipients were reached before the error: kept, so a retry skips them.
        self.partial = partial


class TransientError(ChannelError):
    """5xx, timeouts, connection errors, 429: worth another attempt."""

    def __init__(
        self,
        message: str,
        retry_after: float | None = None,
        *,
        partial: Receipt | None = None,
        busy: bool | None = None,
    ) -> None:
        super().__init__(message, partial=partial)
        self.retry_after = retry_after  # seconds the provider asked us to wait
        # The provider is up and asked us to wait (429, a request still in progress): not a
        # failure for its circuit breaker. By default: when it said how long to wait.
        self.busy = retry_after is not None if busy is None else busy


class PermanentError(ChannelError):
    """Bad credentials, validation errors: the same request will fail again."""


class Channel(Protocol):
    channel_id: str
    can_thread: bool  # can post under an earlier post (reply_to)
    can_delete: bool

    async def send(self, message: OutgoingMessage) -> Receipt: ...

    async def delete(self, receipt: Receipt) -> None:
        """Remove an earlier post (retraction); PermanentError where impossible."""
