"""Fan-out: one task per delivery, all channels at the same time.

A slow or failing channel never delays the others: each delivery has its own task, and
each channel its own connection pool, concurrency limit, rate limiter and circuit
breaker. Every state change is written to the store before it is published. A delivery
is claimed with a lease before it is sent, and the lease is renewed while a request is
on its way, so a second daemon only takes over what a dead one left; the provider's
answer is recorded as soon as it arrives, so a confirmed post is never sent again.

The dispatcher knows nothing of retraction: a correction is an alert like any other,
and `Corrections` (retraction.py) says where it replies and what follows its delivery.

The life of a delivery: claim -> attempts -> conclude; of an alert: all its deliveries
at once, then finish.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol

import structlog
from aiolimiter import AsyncLimiter
from tenacity import RetryCallState

from broadcaster.breaker import STATE_VALUE, Breaker, BreakerState, CircuitOpen
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
from broadcaster.models import (
    Alert,
    AuditEntry,
    ChannelState,
    Delivery,
    DeliveryState,
    Receipt,
    utcnow,
)
from broadcaster.retries import RetryPolicy
from broadcaster.store import held_by_other
from broadcaster.store.base import Store
from broadcaster.store.outage import StoreUnavailable
from broadcaster.supervision import same_host_and_dead

log = structlog.get_logger(__name__)


# A claim this young (seconds) still vouches for its delivery: no other daemon can have
# taken it (leases last far longer) and the claim found the alert not retracted. A
# retraction since then by this daemon stops the delivery through its stop event; one by
# another daemon within this second finds it sent and corrects it, as for any sent post.
FRESH_CLAIM = 1.0


class Retracted(Exception):
    """The alert was retracted while this delivery waited: it must not go out."""


class LostClaim(Exception):
    """Another daemon took this delivery over (our lease ran out): hands off."""


class Corrections(Protocol):
    """What a correction (an alert with `retracts`) needs beyond an ordinary alert."""

    async def reply_to(self, correction: Alert, channel_id: str) -> Receipt | None:
        """The post to reply under: the retracted alert's post on this channel."""

    async def delivered(self, correction: Alert, delivery: Delivery, channel: Channel) -> None:
        """The correction is out on this channel: now the original may go."""


@dataclass
class Lane:
    """One channel's own way out: its rate limit, its concurrency and its circuit."""

    config: ChannelConfig
    limiter: AsyncLimiter | None
    in_flight: asyncio.Semaphore
    breaker: Breaker


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
        corrections: Corrections | None = None,
        dry_run: bool = False,
    ) -> None:
        self.store = store
        self.events = events
        self.metrics = metrics
        self.channels = channels
        self.configs = configs
        self.policy = policy
        self.retry = RetryPolicy(policy)
        self.owner = owner
        self.corrections = corrections
        self.dry_run = dry_run
        self.stops: dict[str, asyncio.Event] = {}  # set when an alert is retracted
        self.lanes: dict[str, Lane] = {}
        for cid in configs:
            self.lane(cid)
        self.tasks: set[asyncio.Task[None]] = set()
        self.held: dict[str, Delivery] = {}  # claims to keep alive, by idempotency key
        self.renewer: asyncio.Task[None] | None = None
        self.by_alert: dict[str, asyncio.Task[None]] = {}
        self.roots: dict[str, asyncio.Future[dict[str, Receipt]]] = {}  # while it sends
        self.fanned_out: dict[str, asyncio.Event] = {}  # set once an alert's task claimed

    def lane(self, channel_id: str) -> Lane:
        """The channel's lane, made again when its file changed (a reload): the new rate
        limit and concurrency apply at once; the circuit keeps what it learnt."""
        config = self.configs.get(channel_id)
        lane = self.lanes.get(channel_id)
        if lane is not None and (config is None or lane.config == config):
            return lane  # unchanged, or removed by a reload while a delivery was under way
        if config is None:
            raise KeyError(f"channel {channel_id} is not configured")
        limit = config.effective_rate_limit
        breaker = lane.breaker if lane is not None else self.new_breaker(channel_id)
        self.lanes[channel_id] = lane = Lane(
            config,
            AsyncLimiter(limit.count, limit.period) if limit is not None else None,
            asyncio.Semaphore(config.max_in_flight),
            breaker,
        )
        return lane

    def new_breaker(self, channel_id: str) -> Breaker:
        self.metrics.breaker.labels(channel_id).set(0)
        return Breaker(
            channel_id,
            failures=self.policy.breaker_failures,
            cooldown=self.policy.breaker_cooldown,
            on_change=self.breaker_changed,
        )

    # -- entry points ------------------------------------------------------------
    async def release(self, alert_id: str, by: str | None = None) -> bool:
        """Start sending an alert that waits for release (or was just accepted)."""
        changes: dict[str, Any] = {"state": "sending", "released_at": utcnow()}
        if by is not None:
            changes["confirmed_by"] = by
        alert = await self.store.update_alert(
            alert_id,
            expect={"received", "awaiting_confirmation"},
            audit=[AuditEntry(alert_id=alert_id, event="released", actor=by or "system")],
            **changes,
        )
        if alert is None:
            return False
        if alert.confirmation_requested_at is not None and alert.released_at is not None:
            waited = _seconds(alert.confirmation_requested_at, alert.released_at)
            self.metrics.officer_wait.labels(alert.mode).observe(waited)
        self.publish(alert)
        self.spawn(alert)
        # Back to the intake only once the fan-out is claimed: alerts go out in the order
        # their triggers came, and the next trigger does not overtake this one.
        await self.claimed(alert_id)
        return True

    def active(self, alert_id: str) -> bool:
        task = self.by_alert.get(alert_id)
        return task is not None and not task.done()

    def spawn(self, alert: Alert) -> None:
        """Send (or carry on sending) an alert; its deliveries' claims decide who sends."""
        if self.active(alert.id):
            return
        self.fanned_out[alert.id] = asyncio.Event()
        task = asyncio.create_task(self.send_alert(alert), name=f"alert:{alert.id}")
        self.tasks.add(task)
        self.by_alert[alert.id] = task
        task.add_done_callback(self.tasks.discard)
        task.add_done_callback(lambda done: self.forget(alert.id, done))

    async def claimed(self, alert_id: str) -> None:
        """Wait until the alert's task has claimed its fan-out (or has ended)."""
        task, event = self.by_alert.get(alert_id), self.fanned_out.get(alert_id)
        if task is None or event is None:
            return
        waiter = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()

    def forget(self, alert_id: str, task: asyncio.Task[None]) -> None:
        if self.by_alert.get(alert_id) is task:
            del self.by_alert[alert_id]
            self.stops.pop(alert_id, None)
            self.roots.pop(alert_id, None)
            self.fanned_out.pop(alert_id, None)
        exc = None if task.cancelled() else task.exception()
        # A store that gave up is not this alert's fault: the daemon is exiting for it.
        if exc is not None and not isinstance(exc, StoreUnavailable):
            log.error("alert_task_failed", alert_id=alert_id, exc_info=exc)

    def stop_event(self, alert_id: str) -> asyncio.Event:
        return self.stops.setdefault(alert_id, asyncio.Event())

    async def pause(self, alert_id: str, seconds: float) -> None:
        """Wait between attempts; a retraction cuts the wait short."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop_event(alert_id).wait(), seconds)

    async def settled(self, alert_id: str, grace: float) -> None:
        """Stop an alert's fan-out and wait (bounded) for it: deliveries waiting to retry
        stop at once, requests already on their way get their answer, so a retraction
        knows what was posted."""
        self.stop_event(alert_id).set()
        task = self.by_alert.get(alert_id)
        if task is not None and not task.done():
            await asyncio.wait({task}, timeout=grace)

    async def drain(self, grace: float) -> bool:
        """Wait up to `grace` seconds for in-flight alerts; True when all finished."""
        pending: set[asyncio.Task[None]] = set()
        if self.tasks:
            _, pending = await asyncio.wait(set(self.tasks), timeout=grace)
        if self.renewer is not None:
            pending.add(self.renewer)  # nothing left to renew, or we are giving up on it
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return not pending - {self.renewer}

    # -- one alert -----------------------------------------------------------------
    async def send_alert(self, alert: Alert) -> None:
        deliveries = await self.store.get_deliveries(alert.id)
        open_ = [d for d in deliveries if self.claimable(d)]
        started: list[Delivery] = []
        claimed_at = 0.0
        if open_:
            # One write claims the whole fan-out, and vouches for every first attempt.
            now = utcnow()
            claimed_at = asyncio.get_running_loop().time()  # before: the lease runs from now
            started = await self.store.start_deliveries(
                alert.id,
                [d.channel_id for d in open_],
                self.owner,
                now + self.policy.lease,
                now,
                set().union(*(self.dead_holder(d) for d in open_)),
            )
        if started:
            self.publish(alert)
        if event := self.fanned_out.get(alert.id):
            event.set()
        await asyncio.gather(*(self.deliver(alert, d, claimed_at) for d in started))
        if alert.retracts is not None and self.corrections is not None:
            # Also after a crash between a correction and the deletion of its original.
            for d in deliveries:
                channel = self.channels.get(d.channel_id)
                if d.state == "delivered" and channel is not None:
                    await self.corrections.delivered(alert, d, channel)
        await self.finish(alert.id)

    async def finish(self, alert_id: str) -> None:
        deliveries = await self.store.get_deliveries(alert_id)
        if any(not d.final for d in deliveries):
            return  # another daemon still holds a claim; it finishes the alert
        # A correction's delivery to a channel whose original never went out is `retracted`:
        # nothing to correct there, so it counts neither way.
        counted = [d for d in deliveries if d.state != "retracted"]
        sent = [d for d in counted if d.state in ("delivered", "dry_run")]
        state = (
            "sent" if len(sent) == len(counted) else "failed" if not sent else "partially_failed"
        )
        entry = AuditEntry(alert_id=alert_id, event=state, detail={"deliveries": len(deliveries)})
        alert = await self.store.update_alert(
            alert_id, expect={"sending"}, audit=[entry], state=state
        )
        if alert is not None:
            log.info("alert_finished", alert_id=alert_id, state=state)
            posted = [
                d.delivered_at for d in deliveries if d.state == "delivered" and d.delivered_at
            ]
            if posted:
                mode = alert.mode
                self.metrics.first_delivery.labels(mode).observe(
                    _seconds(alert.created_at, min(posted))
                )
                self.metrics.last_delivery.labels(mode).observe(
                    _seconds(alert.created_at, max(posted))
                )
            self.events.changed(alert_id, self.store)

    async def deliver(self, alert: Alert, claimed: Delivery, claimed_at: float) -> None:
        """Send one delivery that this daemon has claimed, its first attempt begun (at
        `claimed_at`, loop time), to its end."""
        try:
            await self._deliver(alert, claimed, claimed_at)
        except (asyncio.CancelledError, StoreUnavailable):
            raise  # shutdown or a store that is gone: the claim expires and it is resumed
        except LostClaim:
            log.warning("delivery_taken_over", alert_id=alert.id, channel=claimed.channel_id)
        except Exception as exc:  # a bug must not leave a delivery hanging
            log.exception("delivery_crashed", alert_id=alert.id, channel=claimed.channel_id)
            await self.conclude(alert, claimed, "failed", error=f"internal error: {exc!r}")

    def claimable(self, delivery: Delivery) -> bool:
        """Worth a claim: not final, and not held by another live daemon's lease."""
        if delivery.final:
            return False
        return not held_by_other(
            delivery.claimed_by,
            delivery.claimed_until,
            self.owner,
            utcnow(),
            self.dead_holder(delivery),
        )

    @staticmethod
    def dead_holder(delivery: Delivery) -> set[str]:
        """The delivery's holder when it is a process on this host that has ended (a
        restarted daemon takes its predecessor's work at once, not after the lease)."""
        holder = delivery.claimed_by
        return {holder} if holder is not None and same_host_and_dead(holder) else set()

    async def _deliver(self, alert: Alert, delivery: Delivery, claimed_at: float) -> None:
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
                receipt = await self.attempts(alert, delivery, channel, message, claimed_at)
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
            if alert.retracts is not None and self.corrections is not None:
                await self.corrections.delivered(alert, delivery, channel)

    async def attempts(
        self,
        alert: Alert,
        delivery: Delivery,
        channel: Channel,
        message: OutgoingMessage,
        claimed_at: float | None = None,
    ) -> Receipt:
        """Send with retries: exponential backoff with jitter, the provider's wait honoured.

        With `claimed_at`, the delivery was claimed at that loop time, `sending` and
        checked against a retraction (store.start_deliveries). If the claim is still that
        fresh when the channel lets the first attempt go, it goes with no other write; its
        count is saved with the answer.
        """
        cid = delivery.channel_id
        loop = asyncio.get_running_loop()
        started = loop.time()
        begun = claimed_at
        retrying = self.retry.retrying(
            sleep=partial(self.pause, alert.id),
            before_sleep=partial(self.note_retry, alert, delivery),
        )
        async for attempt in retrying:
            with attempt:
                # The claim is kept alive while the delivery waits its turn (rate limit,
                # circuit, the channel's concurrency) and while the request is on its way.
                async with self.lease_kept(delivery):
                    try:
                        await self.admitted(cid, started, self.stop_event(alert.id))
                    except CircuitOpen as exc:
                        if alert.retracts is None and self.stop_event(alert.id).is_set():
                            raise Retracted(alert.id) from None
                        raise TransientError(str(exc)) from None
                    async with self.lane(cid).in_flight:
                        if begun is not None and loop.time() - begun <= FRESH_CLAIM:
                            if alert.retracts is None and self.stop_event(alert.id).is_set():
                                raise Retracted(alert.id)  # retracted here while it waited
                            delivery.attempts += 1
                        else:
                            await self.begin_attempt(alert, delivery)
                        begun = None  # a retry begins its own attempt
                        message = replace(
                            message,
                            previous=delivery.receipt,
                            checkpoint=partial(self.checkpoint, alert, delivery),
                        )
                        return await self.request(channel, cid, message, delivery)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def begin_attempt(self, alert: Alert, delivery: Delivery) -> None:
        """Make sure the delivery may still go, and say it is being sent."""
        if alert.retracts is None and await self.retracted(alert.id):
            raise Retracted(alert.id)
        delivery.attempts += 1
        delivery.state = "sending"
        delivery.claimed_until = utcnow() + self.policy.lease
        # Still ours? A daemon that lost its claim stops here, unsent.
        await self.save(alert, delivery)

    async def checkpoint(self, alert: Alert, delivery: Delivery, receipt: Receipt) -> None:
        """A long send's progress so far (SMS, e-mail), saved while it runs with the claim
        renewed; LostClaim when another daemon took the delivery over."""
        delivery.receipt = receipt
        delivery.recipients = receipt.recipients
        delivery.claimed_until = utcnow() + self.policy.lease
        await self.save(alert, delivery)

    async def admitted(
        self, channel_id: str, started: float, stop: asyncio.Event | None = None
    ) -> None:
        """Wait for the channel's rate limit and circuit; CircuitOpen when the wait would
        pass the deadline (counted since `started`) or `stop` is set."""
        lane = self.lane(channel_id)
        loop = asyncio.get_running_loop()
        if lane.limiter is not None:
            asked = loop.time()
            await lane.limiter.acquire()
            self.metrics.rate_limit_wait.labels(channel_id).observe(loop.time() - asked)
        elapsed = loop.time() - started
        left = max(self.policy.deadline.total_seconds() - elapsed, 0.0)
        await lane.breaker.admit(stop, left)

    async def request(
        self,
        channel: Channel,
        channel_id: str,
        message: OutgoingMessage,
        delivery: Delivery | None = None,
    ) -> Receipt:
        """One provider request, its outcome counted and told to the channel's breaker;
        a delivery keeps the error and what was reached before it."""
        breaker = self.lane(channel_id).breaker
        try:
            receipt = await channel.send(message)
        except TransientError as exc:
            if exc.busy:
                breaker.succeeded()  # up, and asking us to wait: the retry policy waits
            else:
                breaker.failed()
            self.metrics.attempts.labels(channel_id, "transient").inc()
            if delivery is not None:
                delivery.error = exc.message
                self.keep_partial(delivery, exc)
            raise
        except PermanentError as exc:
            breaker.succeeded()  # the provider answered: the service is up
            self.metrics.attempts.labels(channel_id, "permanent").inc()
            if delivery is not None:
                self.keep_partial(delivery, exc)
            raise
        except BaseException:
            breaker.abandoned()
            raise
        breaker.succeeded()
        self.metrics.attempts.labels(channel_id, "ok").inc()
        return receipt

    @contextlib.asynccontextmanager
    async def lease_kept(self, delivery: Delivery) -> AsyncIterator[None]:
        """Renew the claim while the delivery waits its turn and while its request is on
        its way (a large SMS batch, a provider that takes its time), so no other daemon
        takes over a delivery that is alive. One task renews every such claim."""
        key = delivery.idempotency_key
        self.held[key] = delivery
        if self.renewer is None or self.renewer.done():
            self.renewer = asyncio.create_task(self.renew_held(), name="lease-renewer")
        try:
            yield
        finally:
            self.held.pop(key, None)

    async def renew_held(self) -> None:
        """Every third of the lease, renew the claims held at that moment. Never awaited
        by a delivery: a renewal that lands after the answer finds the delivery final and
        changes nothing (claims are compare and set)."""
        every = self.policy.lease.total_seconds() / 3
        while self.held:
            await asyncio.sleep(every)
            # All at once: a busy store must not let the last of many claims run out.
            results = await asyncio.gather(
                *(self.renew(key, delivery) for key, delivery in list(self.held.items())),
                return_exceptions=True,
            )
            if any(isinstance(r, StoreUnavailable) for r in results):
                return  # the daemon is exiting for it
            for failed in (r for r in results if isinstance(r, Exception)):
                log.error("lease_not_renewed", exc_info=failed)

    async def renew(self, key: str, delivery: Delivery) -> None:
        now = utcnow()
        renewed = await self.store.claim_delivery(
            delivery.alert_id, delivery.channel_id, self.owner, now + self.policy.lease, now
        )
        if renewed is None:
            self.held.pop(key, None)  # final, or taken over: the next save tells
        else:
            delivery.claimed_until = renewed.claimed_until

    def breaker_changed(self, channel_id: str, state: BreakerState) -> None:
        """Metrics at once; the store (for `broadcaster status`) in the background."""
        self.metrics.breaker.labels(channel_id).set(STATE_VALUE[state])
        lane = self.lanes.get(channel_id)
        failures = lane.breaker.failures if lane is not None else 0
        record = ChannelState(circuit=state, failures=failures, by=self.owner)
        task = asyncio.create_task(self._save_channel_state(channel_id, record))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _save_channel_state(self, channel_id: str, record: ChannelState) -> None:
        try:
            await self.store.save_channel_state(channel_id, record)
        except Exception:
            log.exception("channel_state_not_saved", channel=channel_id)

    @staticmethod
    def keep_partial(delivery: Delivery, exc: ChannelError) -> None:
        if exc.partial is not None:
            delivery.receipt = exc.partial
            delivery.recipients = exc.partial.recipients

    async def note_retry(self, alert: Alert, delivery: Delivery, state: RetryCallState) -> None:
        wait = state.upcoming_sleep
        self.metrics.retry_wait.labels(delivery.channel_id).observe(wait)
        exc = state.outcome.exception() if state.outcome else None
        # Keep the claim through the wait, so no other daemon takes over a delivery
        # that is only waiting for the provider's Retry-After.
        delivery.claimed_until = utcnow() + timedelta(seconds=wait) + self.policy.lease
        entry = AuditEntry(
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
        await self.save(alert, delivery, audit=[entry])
        log.warning(
            "delivery_retry",
            alert_id=alert.id,
            channel=delivery.channel_id,
            attempt=state.attempt_number,
            wait=round(wait, 3),
            error=str(exc),
        )

    async def retracted(self, alert_id: str) -> bool:
        current = await self.store.get_alert(alert_id)
        return current is not None and current.state == "retracted"

    async def message(self, alert: Alert, delivery: Delivery, channel: Channel) -> OutgoingMessage:
        reply_to = None
        if channel.can_thread:
            if alert.retracts is not None and self.corrections is not None:
                reply_to = await self.corrections.reply_to(alert, delivery.channel_id)
            else:
                reply_to = await self.thread_root(alert, delivery)
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
            retracts=alert.retracts,
        )

    async def thread_root(self, alert: Alert, delivery: Delivery) -> Receipt | None:
        """The incident's first post on this channel, for a later stage to reply under."""
        roots = self.roots.get(alert.id)
        if roots is None:  # read once for all of the alert's channels
            roots = self.roots[alert.id] = asyncio.ensure_future(self.thread_roots(alert))
        return (await asyncio.shield(roots)).get(delivery.channel_id)

    async def thread_roots(self, alert: Alert) -> dict[str, Receipt]:
        """Each channel's first post of the incident. Only alerts of the same mode: a
        drill never threads under a live post, or back."""
        roots: dict[str, Receipt] = {}
        for earlier in await self.store.incident_alerts(alert.incident):
            if earlier.id == alert.id or earlier.mode != alert.mode:
                continue
            for d in await self.store.get_deliveries(earlier.id):
                if d.state == "delivered" and d.receipt and d.channel_id not in roots:
                    roots[d.channel_id] = d.receipt
        return roots

    async def conclude(
        self,
        alert: Alert,
        delivery: Delivery,
        state: DeliveryState,
        *,
        receipt: Receipt | None = None,
        error: str | None = None,
    ) -> None:
        delivery.state = state
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
            quota = receipt.data.get("quota")  # {"used", "total"}: Instagram's 24 h posts
            if isinstance(quota, dict) and isinstance(quota.get("total"), int):
                left = quota["total"] - int(quota.get("used") or 0)
                self.metrics.quota_left.labels(delivery.channel_id).set(left)
        if error is not None:
            delivery.error = error
        detail: dict[str, object] = {"channel": delivery.channel_id, "attempts": delivery.attempts}
        # What the provider answered, so the trail alone tells an inquiry where it went.
        if delivery.remote_id:
            detail["remote_id"] = delivery.remote_id
        if delivery.url:
            detail["url"] = delivery.url
        if delivery.recipients is not None:
            detail["recipients"] = delivery.recipients.model_dump()
        if error:
            detail["error"] = error
        entry = AuditEntry(alert_id=alert.id, event=state, detail=detail)
        await self.save(alert, delivery, audit=[entry])
        self.metrics.deliveries.labels(delivery.channel_id, state).inc()
        log.info("delivery_" + state, alert_id=alert.id, **detail)

    async def save(
        self, alert: Alert, delivery: Delivery, audit: Sequence[AuditEntry] = ()
    ) -> None:
        """Write a delivery this daemon holds (with its audit entries); LostClaim when
        another took it over."""
        if not await self.store.save_delivery(delivery, owner=self.owner, audit=audit):
            raise LostClaim(delivery.idempotency_key)
        self.publish(alert)

    def publish(self, alert: Alert) -> None:
        self.events.changed(alert.id, self.store)

    # -- the duty officers' notifications --------------------------------------------
    async def notify(self, channel_id: str, message: OutgoingMessage) -> bool:
        """Send one notification on an internal channel, with the deliveries' retry policy,
        rate limit and circuit breaker; False (logged) when it could not be sent."""
        if self.dry_run:
            log.info("notification_skipped", channel=channel_id, alert_id=message.alert_id)
            return True
        channel = self.channels.get(channel_id)
        if channel is None:
            log.error("notification_channel_missing", channel=channel_id)
            return False
        started = asyncio.get_running_loop().time()
        try:
            async for attempt in self.retry.retrying():
                with attempt:
                    try:
                        await self.admitted(channel_id, started)
                    except CircuitOpen as exc:
                        raise TransientError(str(exc)) from None
                    async with self.lane(channel_id).in_flight:
                        await self.request(channel, channel_id, message)
        except ChannelError as exc:
            log.error(
                "notification_failed",
                channel=channel_id,
                alert_id=message.alert_id,
                kind=message.kind,
                error=exc.message,
            )
            return False
        return True


def _seconds(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start) / timedelta(seconds=1))
