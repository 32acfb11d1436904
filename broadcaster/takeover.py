"""Taking over what a dead daemon left: every daemon scans for it, all the time.

Work is claimed in the store with a lease (inbox entries, deliveries), or is safe for
any daemon to act on because every action is a compare and set (confirmation timers,
releases). Every `delivery.scan_interval` each daemon looks for:

- inbox entries whose claim expired: handled here;
- alerts stuck in `received` (stored, never gated or released): gated, released, or for
  a correction, its retraction resumed;
- alerts in `sending` with a delivery nobody holds: sent on from here (the claims
  decide who sends which delivery; a delivery a provider confirmed is never sent again);
- alerts awaiting confirmation: their timers run here too (escalation, timeout,
  the end of the undo window), each step a compare and set, so only one daemon acts.

So a dead daemon's work is finished within lease + scan interval by any daemon, whatever
its client id. At start-up the first scan is what a crash left behind.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

import structlog

from broadcaster.confirm import ConfirmDesk
from broadcaster.dispatch import Dispatcher
from broadcaster.inbox import Inbox
from broadcaster.metrics import Metrics
from broadcaster.models import Alert, utcnow
from broadcaster.receiving import Receiver
from broadcaster.retraction import IN_FLIGHT_WAIT, Retractor
from broadcaster.store.base import Store

log = structlog.get_logger(__name__)


@dataclass
class Scan:
    inbox: int = 0
    received: int = 0
    sending: int = 0
    waiting: int = 0


class Takeover:
    def __init__(
        self,
        store: Store,
        inbox: Inbox,
        receiver: Receiver,
        dispatcher: Dispatcher,
        desk: ConfirmDesk,
        retractor: Retractor,
        metrics: Metrics,
    ) -> None:
        self.store = store
        self.inbox = inbox
        self.receiver = receiver
        self.dispatcher = dispatcher
        self.desk = desk
        self.retractor = retractor
        self.metrics = metrics
        delivery = receiver.deployment.settings.delivery
        self.interval = delivery.scan_interval.total_seconds()
        # A received alert is abandoned once nobody could still be gating it; a correction
        # may be waiting for requests in flight first. (A restarted daemon does not wait:
        # the alert's inbox entry, held by a dead process, is handled again at once.)
        self.lease = delivery.lease
        self.correction_lease = max(delivery.lease, timedelta(seconds=IN_FLIGHT_WAIT * 2))
        self.last_scan: float | None = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            found = await self.scan()
            self.last_scan = loop.time()
            if any(vars(found).values()):
                log.info("takeover_scan", **vars(found))
            await asyncio.sleep(self.interval)

    def healthy(self) -> bool:
        """A scan finished within the last three intervals."""
        if self.last_scan is None:
            return False
        return asyncio.get_running_loop().time() - self.last_scan < 3 * self.interval + 5

    async def scan(self) -> Scan:
        found = Scan()
        now = utcnow()
        found.inbox = await self.inbox.adopt(now)
        for alert in await self.store.alerts_in_state("received"):
            lease = self.lease if alert.retracts is None else self.correction_lease
            if alert.updated_at + lease < now:
                found.received += 1
                await self.resume_received(alert)
        for alert in await self.store.alerts_in_state("sending"):
            if not self.dispatcher.active(alert.id) and await self.unheld(alert):
                found.sending += 1
                self.dispatcher.spawn(alert)
        for alert in await self.store.alerts_in_state("awaiting_confirmation"):
            if not self.desk.watching(alert.id):
                found.waiting += 1
                self.desk.watch(alert.id)
        for kind, count in vars(found).items():
            if count:
                self.metrics.takeovers.labels(kind).inc(count)
        return found

    async def resume_received(self, alert: Alert) -> None:
        log.warning("alert_taken_over", alert_id=alert.id, state=alert.state)
        if alert.retracts is not None:
            await self.retractor.resume(alert)
        else:
            await self.receiver.gate_or_release(alert)

    async def unheld(self, alert: Alert) -> bool:
        """Something to do: a delivery nobody holds, or all final but the alert unfinished."""
        deliveries = await self.store.get_deliveries(alert.id)
        return all(d.final for d in deliveries) or any(
            self.dispatcher.claimable(d) for d in deliveries
        )
