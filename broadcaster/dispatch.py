"""Fan-out: one task per delivery, all channels at the same time.

A slow or failing channel never delays the others: each delivery has its own task,
its own rate limiter and its own retries. Every state change is written to the store
before it is published. A delivery is claimed with a lease before it is sent, so a
second daemon (or this one after a crash) only resumes what nobody is sending, and
the provider's answer is recorded as soon as it arrives, so a confirmed post is never
sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import structlog
from aiolimiter import AsyncLimiter
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
)

from broadcaster.channels.base import (
    Channel,
    ChannelError,
    OutgoingMessage,
    PermanentError,
    TransientError,
)
from broadcaster.channels.settings import ChannelConfig
from broadcaster.config import DeliverySettings
from broadcaster.events import Events
from broadcaster.metrics import Metrics
from broadcaster.models import Alert, AuditEntry, Delivery, Receipt, utcnow
from broadcaster.store.base import Store

log = structlog.get_logger(__name__)


class Retracted(Exception):
    """The alert was retracted while this delivery waited: it must not go out."""


class LostClaim(Exception):
    """Another daemon took this delivery over (our lease ran out): hands off."""


class Dispatcher:
    def __init__(
        self,
        store: Store,
        events: Events,
        metrics: Metrics,
        channels: dict[str, Channel],
        configs: dict[str, ChannelConfig],
        policy: DeliverySettings,
        *,
        owner: str,
        dry_run: bool = False,
    ) -> None:
        self.store = store
        self.events = events
        self.metrics = metrics
        self.channels = channels
        self.configs = configs
        self.policy = policy
        self.owner = owner
        self.dry_run = dry_run
        self.stops: dict[str, asyncio.Event] = {}  # set when an alert is retracted
        self.limiters = {
            cid: AsyncLimiter(limit.count, limit.period)
            for cid, c in configs.items()
            if (limit := c.effective_rate_limit) is not None
        }
        self.tasks: set[asyncio.Task[None]] = set()
        self.by_alert: dict[str, asyncio.Task[None]] = {}

    # -- entry points ------------------------------------------------------------
    async def release(self, alert_id: str, by: str | None = None) -> bool:
        """Start sending an alert that waits for release (or was just accepted)."""
        changes: dict[str, object] = {"state": "sending", "released_at": utcnow()}
        if by is not None:
            changes["confirmed_by"] = by
        alert = await self.store.update_alert(
            alert_id, expect={"received", "awaiting_confirmation"}, **changes
        )
        if alert is None:
            return False
        await self.store.audit(
            AuditEntry(alert_id=alert_id, event="released", actor=by or "system")
        )
        await self.publish(alert)
        self.spawn(alert)
        return True

    async def resume(self) -> int:
        """After a restart: carry on with every released alert that is not finished."""
        alerts = await self.store.alerts_in_state("sending")
        for alert in alerts:
            log.info("resuming_alert", alert_id=alert.id)
            await self.store.audit(AuditEntry(alert_id=alert.id, event="resumed"))
            self.spawn(alert)
        return len(alerts)

    def spawn(self, alert: Alert) -> None:
        task = asyncio.create_task(self.send_alert(alert), name=f"alert:{alert.id}")
        self.tasks.add(task)
        self.by_alert[alert.id] = task
        task.add_done_callback(self.tasks.discard)
        task.add_done_callback(lambda done: self.forget(alert.id, done))

    def forget(self, alert_id: str, task: asyncio.Task[None]) -> None:
        if self.by_alert.get(alert_id) is task:
            del self.by_alert[alert_id]
            self.stops.pop(alert_id, None)

    async def pause(self, alert_id: str, seconds: float) -> None:
        """Wait between attempts; a retraction cuts the wait short."""
        stop = self.stops.setdefault(alert_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)

    async def settled(self, alert_id: str, timeout: float) -> None:
        """Stop an alert's fan-out and wait (bounded) for it: deliveries waiting to retry
        stop at once, requests already on their way get their answer, so a retraction
        knows what was posted."""
        self.stops.setdefault(alert_id, asyncio.Event()).set()
        task = self.by_alert.get(alert_id)
        if task is not None and not task.done():
            await asyncio.wait({task}, timeout=timeout)

    async def drain(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for in-flight alerts; True when all finished."""
        if not self.tasks:
            return True
        _, pending = await asyncio.wait(set(self.tasks), timeout=timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return not pending

    # -- one alert -----------------------------------------------------------------
    async def send_alert(self, alert: Alert) -> None:
        deliveries = await self.store.get_deliveries(alert.id)
        open_ = [d for d in deliveries if not d.final]
        await asyncio.gather(*(self.deliver(alert, d) for d in open_))
        if alert.retracts is not None:
            # Resumed after a crash between a correction and the deletion of its original.
            for d in deliveries:
                channel = self.channels.get(d.channel_id)
                if d.state == "delivered" and channel is not None:
                    await self.remove_original(alert, d, channel)
        await self.finish(alert.id)

    async def finish(self, alert_id: str) -> None:
        deliveries = await self.store.get_deliveries(alert_id)
        if any(not d.final for d in deliveries):
            return  # another daemon still holds a claim; it finishes the alert
        sent = [d for d in deliveries if d.state in ("delivered", "dry_run")]
        state = (
            "sent" if len(sent) == len(deliveries) else "failed" if not sent else "partially_failed"
        )
        alert = await self.store.update_alert(alert_id, expect={"sending"}, state=state)
        if alert is not None:
            await self.store.audit(
                AuditEntry(alert_id=alert_id, event=state, detail={"deliveries": len(deliveries)})
            )
            log.info("alert_finished", alert_id=alert_id, state=state)
            await self.events.alert_changed(alert, deliveries)

    async def deliver(self, alert: Alert, delivery: Delivery) -> None:
        now = utcnow()
        claimed = await self.store.claim_delivery(
            alert.id, delivery.channel_id, self.owner, now + self.policy.lease, now
        )
        if claimed is None:
            return  # final already, or another daemon is sending it
        try:
            await self._deliver(alert, claimed)
        except asyncio.CancelledError:
            raise  # shutdown: the claim expires and the delivery is resumed
        except LostClaim:
            log.warning("delivery_taken_over", alert_id=alert.id, channel=delivery.channel_id)
        except Exception as exc:  # a bug must not leave a delivery hanging
            log.exception("delivery_crashed", alert_id=alert.id, channel=delivery.channel_id)
            await self.conclude(alert, claimed, "failed", error=f"internal error: {exc!r}")

    async def _deliver(self, alert: Alert, delivery: Delivery) -> None:
        config = self.configs.get(delivery.channel_id)
        if self.dry_run or (alert.mode == "drill" and (config is None or config.drill != "send")):
            # A drill never reaches a channel that is not set up for drills.
            await self.conclude(alert, delivery, "dry_run")
            return
        channel = self.channels.get(delivery.channel_id)
        if channel is None or config is None:
            await self.conclude(alert, delivery, "failed", error="channel is not configured")
            return
        message = await self.message(alert, delivery, channel)
        try:
            try:
                receipt = await self.attempts(alert, delivery, channel, message)
            except PermanentError as exc:
                if message.reply_to is None:
                    raise
                # The post to reply under may be gone (deleted by hand, too old): an
                # update must not be lost for that, so it goes out on its own.
                await self.store.audit(
                    AuditEntry(
                        alert_id=alert.id,
                        event="thread_fallback",
                        detail={"channel": delivery.channel_id, "error": exc.message},
                    )
                )
                message = replace(message, reply_to=None)
                receipt = await self.attempts(alert, delivery, channel, message)
        except Retracted:
            # The false alarm was retracted before this channel got it: it never will.
            await self.conclude(alert, delivery, "retracted", error="retracted before sending")
            return
        except PermanentError as exc:
            await self.conclude(alert, delivery, "failed", error=exc.message)
        except TransientError as exc:
            error = f"gave up after {delivery.attempts} attempts: {exc.message}"
            await self.conclude(alert, delivery, "failed", error=error)
        else:
            await self.conclude(alert, delivery, "delivered", receipt=receipt)
            if alert.retracts is not None:
                await self.remove_original(alert, delivery, channel)

    async def attempts(
        self, alert: Alert, delivery: Delivery, channel: Channel, message: OutgoingMessage
    ) -> Receipt:
        """Send with retries: exponential backoff with jitter, the provider's wait honoured."""
        limiter = self.limiters.get(delivery.channel_id)
        retrying = self.retrying(alert, before_sleep=partial(self.note_retry, alert, delivery))
        async for attempt in retrying:
            with attempt:
                if limiter is not None:
                    await limiter.acquire()
                if alert.retracts is None and await self.retracted(alert.id):
                    raise Retracted(alert.id)
                delivery.attempts += 1
                delivery.state = "sending"
                delivery.claimed_until = utcnow() + self.policy.lease
                await self.save(alert, delivery)
                try:
                    receipt = await channel.send(replace(message, previous=delivery.receipt))
                except TransientError as exc:
                    self.metrics.attempts.labels(delivery.channel_id, "transient").inc()
                    delivery.error = exc.message
                    self.keep_partial(delivery, exc)
                    raise
                except PermanentError as exc:
                    self.metrics.attempts.labels(delivery.channel_id, "permanent").inc()
                    self.keep_partial(delivery, exc)
                    raise
                self.metrics.attempts.labels(delivery.channel_id, "ok").inc()
                return receipt
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def retrying(self, alert: Alert, **hooks: Any) -> AsyncRetrying:
        """The retry policy: transient errors only, within max_attempts and the deadline,
        waits from `wait`, cut short by a retraction (`pause`)."""
        return AsyncRetrying(
            stop=stop_after_attempt(self.policy.max_attempts)
            | stop_before_delay(self.policy.deadline.total_seconds()),
            wait=self.wait,
            retry=retry_if_exception_type(TransientError),
            reraise=True,
            sleep=partial(self.pause, alert.id),
            **hooks,
        )

    @staticmethod
    def keep_partial(delivery: Delivery, exc: ChannelError) -> None:
        if exc.partial is not None:
            delivery.receipt = exc.partial
            delivery.recipients = exc.partial.recipients

    def wait(self, state: RetryCallState) -> float:
        """Seconds before the next attempt: the provider's Retry-After when it gave one,
        else exponential backoff (first_retry, doubling, capped at max_retry) with full jitter."""
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransientError) and exc.retry_after is not None:
            return max(0.0, exc.retry_after)
        first = self.policy.first_retry.total_seconds()
        cap = self.policy.max_retry.total_seconds()
        ceiling = min(cap, first * 2 ** (state.attempt_number - 1))
        return random.uniform(first / 2, max(first / 2, ceiling))

    async def note_retry(self, alert: Alert, delivery: Delivery, state: RetryCallState) -> None:
        wait = state.upcoming_sleep
        exc = state.outcome.exception() if state.outcome else None
        # Keep the claim through the wait, so no other daemon takes over a delivery
        # that is only waiting for the provider's Retry-After.
        delivery.claimed_until = utcnow() + timedelta(seconds=wait) + self.policy.lease
        await self.save(alert, delivery)
        log.warning(
            "delivery_retry",
            alert_id=alert.id,
            channel=delivery.channel_id,
            attempt=state.attempt_number,
            wait=round(wait, 3),
            error=str(exc),
        )
        await self.store.audit(
            AuditEntry(
                alert_id=alert.id,
                event="retry_scheduled",
                detail={
                    "channel": delivery.channel_id,
                    "attempt": state.attempt_number,
                    "wait_seconds": round(wait, 3),
                    "retry_after": getattr(exc, "retry_after", None),
                    "error": str(exc),
                },
            )
        )

    async def retracted(self, alert_id: str) -> bool:
        current = await self.store.get_alert(alert_id)
        return current is not None and current.state == "retracted"

    async def original(self, alert: Alert, channel_id: str) -> Delivery | None:
        """On a correction: the retracted alert's delivery to the same channel."""
        if alert.retracts is None:
            return None
        deliveries = await self.store.get_deliveries(alert.retracts)
        return next((d for d in deliveries if d.channel_id == channel_id), None)

    async def remove_original(self, alert: Alert, correction: Delivery, channel: Channel) -> None:
        """After the correction is out (so a reply has its parent), delete the false
        alarm where the provider allows it; either way the original counts as retracted."""
        original = await self.original(alert, correction.channel_id)
        if original is None or original.state != "delivered":
            return
        deleted = False
        if channel.can_delete and original.receipt is not None:
            receipt = original.receipt
            try:
                async for attempt in self.retrying(alert):
                    with attempt:
                        await channel.delete(receipt)
                deleted = True
            except ChannelError as exc:
                await self.store.audit(
                    AuditEntry(
                        alert_id=original.alert_id,
                        event="delete_failed",
                        detail={"channel": original.channel_id, "error": exc.message},
                    )
                )
        original.state = "retracted"
        await self.store.save_delivery(original)
        await self.store.audit(
            AuditEntry(
                alert_id=original.alert_id,
                event="retracted",
                detail={
                    "channel": original.channel_id,
                    "deleted": deleted,
                    "correction": correction.remote_id,
                },
            )
        )
        retracted = await self.store.get_alert(original.alert_id)
        if retracted is not None:
            await self.publish(retracted)

    async def message(self, alert: Alert, delivery: Delivery, channel: Channel) -> OutgoingMessage:
        if alert.retracts is not None:
            original = await self.original(alert, delivery.channel_id)
            reply_to = original.receipt if original and channel.can_thread else None
        else:
            reply_to = await self.thread_root(alert, delivery) if channel.can_thread else None
        return OutgoingMessage(
            kind="alert" if alert.retracts is None else "retraction",
            alert_id=alert.id,
            incident=alert.incident,
            scenario=alert.scenario,
            stage=alert.stage,
            mode=alert.mode,
            language=delivery.language,
            title=delivery.title,
            text=delivery.text,
            idempotency_key=delivery.idempotency_key,
            reply_to=reply_to,
        )

    async def thread_root(self, alert: Alert, delivery: Delivery) -> Receipt | None:
        """The incident's first post on this channel, for a later stage to reply under.

        Only alerts of the same mode: a drill never threads under a live post, or back.
        """
        for earlier in await self.store.incident_alerts(alert.incident):
            if earlier.id == alert.id or earlier.mode != alert.mode:
                continue
            for d in await self.store.get_deliveries(earlier.id):
                if d.channel_id == delivery.channel_id and d.state == "delivered" and d.receipt:
                    return d.receipt
        return None

    async def conclude(
        self,
        alert: Alert,
        delivery: Delivery,
        state: str,
        *,
        receipt: Receipt | None = None,
        error: str | None = None,
    ) -> None:
        delivery.state = state  # type: ignore[assignment]
        delivery.claimed_by = None
        delivery.claimed_until = None
        if receipt is not None:
            now = utcnow()
            delivery.receipt = receipt
            delivery.remote_id = receipt.remote_id
            delivery.url = receipt.url
            delivery.recipients = receipt.recipients
            delivery.delivered_at = now
            delivery.error = None
            self.metrics.latency.labels(delivery.channel_id).observe(
                _seconds(alert.created_at, now)
            )
        if error is not None:
            delivery.error = error
        await self.save(alert, delivery)
        self.metrics.deliveries.labels(delivery.channel_id, state).inc()
        detail = {"channel": delivery.channel_id, "attempts": delivery.attempts}
        if delivery.remote_id:
            detail["remote_id"] = delivery.remote_id
        if error:
            detail["error"] = error
        await self.store.audit(AuditEntry(alert_id=alert.id, event=state, detail=detail))
        log.info("delivery_" + state, alert_id=alert.id, **detail)

    async def save(self, alert: Alert, delivery: Delivery) -> None:
        """Write a delivery this daemon holds; LostClaim when another took it over."""
        if not await self.store.save_delivery(delivery, owner=self.owner):
            raise LostClaim(delivery.idempotency_key)
        await self.publish(alert)

    async def publish(self, alert: Alert) -> None:
        current = await self.store.get_alert(alert.id) or alert
        await self.events.alert_changed(current, await self.store.get_deliveries(alert.id))


def _seconds(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start) / timedelta(seconds=1))
