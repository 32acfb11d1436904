"""The intake: raw input from MQTT into the store's inbox, then handled one at a time.

Every daemon receives every trigger; the store's inbox keeps each broker message once and
says which daemon took it (Store.inbox_add), so no trigger is handled twice and no daemon
publishes a false `duplicate` for one another daemon took. The daemon that took it holds
a claim on the entry; when it dies, the claim expires and the takeover scan hands the
entry to a live daemon (`adopt`). Triggers are handled in arrival order, so an incident's
stages keep their order; retractions run beside them, as they may wait for requests in
flight.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Literal

import structlog

from broadcaster.models import AuditEntry, InboxEntry, utcnow
from broadcaster.receiving import Receiver
from broadcaster.store.base import Store
from broadcaster.store.outage import StoreUnavailable
from broadcaster.supervision import Supervisor, same_host_and_dead

log = structlog.get_logger(__name__)

# An entry whose handling failed this often (a bug, not the store) is given up, so that a
# poison message cannot block the intake forever; it stays in the log and audit trail.
MAX_ATTEMPTS = 3


class Inbox:
    def __init__(
        self,
        receiver: Receiver,
        store: Store,
        supervisor: Supervisor,
        *,
        owner: str,
        broker_session: str,
    ) -> None:
        self.receiver = receiver
        self.store = store
        self.supervisor = supervisor
        self.owner = owner
        self.broker_session = broker_session
        self.lease = receiver.deployment.settings.delivery.lease
        self.queue: asyncio.Queue[InboxEntry] = asyncio.Queue()
        self.here: set[str] = set()  # entries queued or being handled by this daemon
        self.adopting = asyncio.Lock()  # one look at the inbox at a time

    async def from_mqtt(self, kind: Literal["trigger", "retract"], payload: bytes) -> None:
        """Keep the raw message (the MQTT link acknowledges it after this returns)."""
        entry = InboxEntry.new(kind, "mqtt", payload, owner=self.owner, lease=self.lease)
        # Ours from before the write: the takeover scan must not adopt it while the write
        # (and a WAIT for the replicas, store.replicas_to_wait) is still under way.
        self.here.add(entry.id)
        added = False
        try:
            added = await self.store.inbox_add(entry, broker_session=self.broker_session)
        finally:
            if not added:
                self.here.discard(entry.id)
        if added:
            self.queue.put_nowait(entry)
        else:
            log.debug("taken_by_another_daemon", kind=kind)

    def put(self, entry: InboxEntry) -> None:
        if entry.id not in self.here:
            self.here.add(entry.id)
            self.queue.put_nowait(entry)

    async def run(self) -> None:
        while True:
            entry = await self.queue.get()
            if entry.kind == "retract":
                self.supervisor.spawn(f"retract:{entry.id}", self.work(entry))
            else:
                await self.work(entry)

    async def work(self, entry: InboxEntry) -> None:
        try:
            taken = await self.held(entry)
            if taken is None:
                return  # done already, or another daemon has it now
            if taken.attempts > MAX_ATTEMPTS:
                await self.give_up(taken)
                return
            try:
                await self.receiver.handle(taken)
            except (StoreUnavailable, asyncio.CancelledError):
                raise
            except Exception:
                # It stays in the inbox: the takeover scan tries again after the lease.
                log.exception("intake_failed", entry_id=entry.id, attempts=taken.attempts)
        finally:
            self.here.discard(entry.id)

    async def held(self, entry: InboxEntry) -> InboxEntry | None:
        """The entry with our claim: the one we just wrote needs no second write."""
        now = utcnow()
        fresh = (
            entry.claimed_by == self.owner
            and entry.claimed_until is not None
            and entry.claimed_until - now > self.lease / 2
        )
        if fresh:
            return entry
        return await self.store.inbox_take(entry.id, self.owner, now + self.lease, now)

    async def give_up(self, entry: InboxEntry) -> None:
        log.error("intake_given_up", entry_id=entry.id, attempts=entry.attempts - 1)
        await self.store.audit(
            AuditEntry(
                event="intake_given_up",
                actor=entry.source,
                detail={"entry_id": entry.id, "kind": entry.kind, "attempts": entry.attempts - 1},
            )
        )
        await self.store.inbox_done(entry.id)

    async def adopt(self, now: datetime) -> int:
        """Take over entries whose daemon's claim expired (or which died on this host)."""
        async with self.adopting:
            return await self._adopt(now)

    async def _adopt(self, now: datetime) -> int:
        adopted = 0
        for entry in await self.store.inbox_pending():
            if entry.id in self.here:
                continue
            holder = entry.claimed_by
            dead = {holder} if holder and same_host_and_dead(holder) else set()
            taken = await self.store.inbox_take(entry.id, self.owner, now + self.lease, now, dead)
            if taken is not None:
                log.info("inbox_taken_over", entry_id=entry.id, from_owner=holder)
                self.put(taken)
                adopted += 1
        return adopted
