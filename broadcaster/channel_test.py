"""A test message to a channel's test account, asked for in the console (Channels).

Only a channel set up for drills (`drill: send`) gets one: its account is the test
account, and a drill reaches it anyway. The message is marked as an exercise like every
drill text, and goes through the dispatcher's own request path (rate limit, circuit
breaker, metrics), so it shows what a drill would meet. Each test is in the audit trail
with who asked for it and what the provider answered.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import structlog

from broadcaster.breaker import CircuitOpen
from broadcaster.channels.base import ChannelError, OutgoingMessage
from broadcaster.config import drill_word
from broadcaster.deployment import Deployment
from broadcaster.dispatch import Dispatcher
from broadcaster.models import AuditEntry
from broadcaster.store.base import Store

log = structlog.get_logger(__name__)

EVENT = "channel_test"  # its audit event: one line, without an alert
STAGE = "_test"
TEXT = {
    "de": "Testnachricht des Warnsystems für den Kanal {channel}, ausgelöst von {by}. "
    "Keine echte Warnung.",
    "en": "Test message of the warning system for the channel {channel}, sent by {by}. "
    "Not a real warning.",
}


class NotTestable(Exception):
    """Why this channel gets no test message (the console answers 409 with it)."""


@dataclass(frozen=True)
class TestOutcome:
    channel_id: str
    ok: bool
    url: str | None = None
    error: str | None = None


class ChannelTest:
    def __init__(
        self, deployment: Deployment, dispatcher: Dispatcher, store: Store, *, dry_run: bool
    ) -> None:
        self.deployment = deployment
        self.dispatcher = dispatcher
        self.store = store
        self.dry_run = dry_run

    def refusal(self, channel_id: str) -> str | None:
        """Why `channel_id` may not get a test message now, or None when it may."""
        config = self.deployment.channels.get(channel_id)
        if config is None:
            return f"there is no channel {channel_id!r}"
        if self.dry_run:
            return "this daemon runs in dry-run mode and sends nothing"
        if not config.enabled:
            return f"the channel {channel_id} is disabled (enabled: false)"
        if config.drill != "send":
            return (
                f"the channel {channel_id} is not set up for drills (drill: dry_run): its "
                "account is a public one. Set drill: send only for a test account"
            )
        if channel_id not in self.dispatcher.channels:
            return f"the channel {channel_id} could not be started; see the daemon's log"
        return None

    async def send(self, channel_id: str, by: str) -> TestOutcome:
        """Send the test now; NotTestable when `refusal` says why not."""
        reason = self.refusal(channel_id)
        if reason is not None:
            raise NotTestable(reason)
        config = self.deployment.channels[channel_id]
        language = config.language or self.deployment.primary_language()
        word = drill_word(self.deployment.settings.drill.prefix, language)
        test_id = f"TEST-{uuid.uuid4().hex[:8].upper()}"
        text = TEXT.get(language, TEXT["en"]).format(channel=channel_id, by=by)
        message = OutgoingMessage(
            kind="alert",
            alert_id=test_id,
            incident=test_id,
            scenario=STAGE,
            stage=STAGE,
            mode="drill",
            language=language,
            title=f"{word}: {text.split('.')[0]}",
            text=f"{word}: {text}",
            idempotency_key=f"{test_id}:{channel_id}",
        )
        try:
            # No wait for an open circuit: the person asking is told at once.
            if self.dispatcher.lane(channel_id).breaker.state == "open":
                raise CircuitOpen(f"{channel_id}: its circuit is open after failures in a row")
            await self.dispatcher.admitted(channel_id, asyncio.get_running_loop().time())
            receipt = await self.dispatcher.request(
                self.dispatcher.channels[channel_id], channel_id, message
            )
            outcome = TestOutcome(channel_id, ok=True, url=receipt.url)
        except ChannelError as exc:
            outcome = TestOutcome(channel_id, ok=False, error=exc.message)
        except CircuitOpen as exc:
            outcome = TestOutcome(channel_id, ok=False, error=str(exc))
        detail: dict[str, object] = {"channel": channel_id, "test_id": test_id}
        detail |= {"ok": outcome.ok, "url": outcome.url} if outcome.ok else {"ok": False}
        if outcome.error:
            detail["error"] = outcome.error
        await self.store.audit(AuditEntry(event=EVENT, actor=by, detail=detail))
        log.info("channel_tested", **detail, by=by)
        return outcome
