"""The store: the single source of truth. A state change is written here before anyone
is told about it (ARCHITECTURE.md). SQLite and Redis implement this one protocol and pass
one contract test suite (tests/store/).

Every call rides out a short outage of the store (a Redis restart, a locked SQLite file):
it is retried with backoff, a write with the same token so it never runs twice. Past
`store.outage_limit` it raises `StoreUnavailable` for good, and the daemon exits so that
its supervisor restarts it cleanly (see store/outage.py).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from broadcaster.models import (
    Account,
    Alert,
    AlertState,
    AuditEntry,
    ChannelState,
    Delivery,
    InboxEntry,
    PushSubscription,
    StatusReport,
)
from broadcaster.store.outage import Outage

# Looks at the alert as stored and says what to change, or None to leave it alone; the
# store applies it atomically (a compare and set), so it may be called more than once.
AlertChange = Callable[[Alert], Mapping[str, Any] | None]


class Store(Protocol):
    outage: Outage

    async def open(self) -> None:
        """Connect and create what is missing (tables, indexes)."""

    async def close(self) -> None: ...

    async def ping(self) -> bool:
        """True while the store answers (for /healthz); never waits out an outage."""

    # -- inbox: raw triggers, kept until handled ---------------------------------
    async def inbox_add(self, entry: InboxEntry, *, broker_session: str | None = None) -> bool:
        """Keep a raw input (an entry id already waiting keeps its first entry).

        `broker_session` is the MQTT client id the message came to. Every daemon receives
        every trigger, each on its own session; the n-th copy of the same bytes on each
        session is the same broker message, and only the first daemon to keep it gets
        True. The others get False and must not handle it (no false `duplicate`).
        """

    async def inbox_take(
        self,
        entry_id: str,
        owner: str,
        until: datetime,
        now: datetime,
        dead: Collection[str] = (),
    ) -> InboxEntry | None:
        """Claim a waiting entry for `owner` (free, already ours, its claim expired before
        `now`, or held by one of `dead`), counting the attempt; None when it is done or
        held by another."""

    async def inbox_done(self, entry_id: str) -> None: ...

    async def inbox_pending(self) -> list[InboxEntry]:
        """Entries not yet marked done, oldest first."""

    # -- alerts and deliveries ---------------------------------------------------
    # The writes below take `audit`: entries appended in the same transaction, only when
    # the write happened, so a state change and its trail are one write, not two.
    async def create_alert(
        self, alert: Alert, deliveries: list[Delivery], *, audit: Sequence[AuditEntry] = ()
    ) -> bool:
        """Store a new alert with its deliveries, atomically.

        False (and nothing written) when an alert with this id exists: the trigger
        id is the idempotency key, so a repeated id never sends twice.
        """

    async def get_alert(self, alert_id: str) -> Alert | None: ...

    async def list_alerts(self, limit: int = 50) -> list[Alert]:
        """Newest first."""

    async def alerts_in_state(self, *states: AlertState) -> list[Alert]:
        """Oldest first."""

    async def incident_alerts(self, incident: str) -> list[Alert]:
        """Every alert of an incident, oldest first (for threading and CAP references)."""

    async def modify_alert(
        self, alert_id: str, change: AlertChange, *, audit: Sequence[AuditEntry] = ()
    ) -> Alert | None:
        """Apply what `change` returns for the alert as stored, and bump updated_at,
        atomically (compare and set, so two daemons or a timer and a person cannot both
        act). The updated alert, or None when it does not exist or `change` said None."""

    async def update_alert(
        self,
        alert_id: str,
        *,
        expect: Collection[AlertState] | None = None,
        audit: Sequence[AuditEntry] = (),
        **changes: Any,
    ) -> Alert | None:
        """`modify_alert` with fixed `changes`; with `expect`, only when the alert's
        current state is one of them."""

    async def get_deliveries(self, alert_id: str) -> list[Delivery]:
        """In channel_id order."""

    async def save_delivery(
        self, delivery: Delivery, *, owner: str | None = None, audit: Sequence[AuditEntry] = ()
    ) -> bool:
        """Overwrite the delivery (alert_id, channel_id) with this one, updated_at bumped.

        With `owner`, only while the stored delivery is still claimed by `owner`
        (compare and set): a daemon whose lease ran out and was taken over must not
        overwrite its successor's result. False when nothing was written.
        """

    async def claim_delivery(
        self,
        alert_id: str,
        channel_id: str,
        owner: str,
        until: datetime,
        now: datetime,
        dead: Collection[str] = (),
    ) -> Delivery | None:
        """Take the delivery for `owner` until `until`, atomically.

        Only when it is not final and unclaimed, claimed by `owner`, its claim has
        expired before `now`, or its holder is one of `dead` (processes known to have
        ended). Returns the claimed delivery, else None.
        """

    async def start_deliveries(
        self,
        alert_id: str,
        channel_ids: Collection[str],
        owner: str,
        until: datetime,
        now: datetime,
        dead: Collection[str] = (),
    ) -> list[Delivery]:
        """Claim the alert's deliveries to `channel_ids` for `owner` at once, each now
        `sending`, atomically: one write for an alert's whole fan-out. Each is taken as
        `claim_delivery` would take it; none while the alert is retracted. The deliveries
        taken, in channel_id order."""

    # -- leases: one holder at a time for a name (an MQTT client id, a job) ----------
    async def take_lease(
        self, name: str, owner: str, until: datetime, now: datetime, dead: Collection[str] = ()
    ) -> str:
        """Hold `name` for `owner` until `until` when it is free, ours, expired before
        `now`, or held by one of `dead`; returns the holder afterwards (`owner` when taken)."""

    async def lease_holder(self, name: str, now: datetime) -> str | None:
        """Who holds `name` at `now`, if anyone."""

    async def drop_lease(self, name: str, owner: str) -> None:
        """Give `name` up, if `owner` holds it."""

    # -- channels' circuits (for `broadcaster status`) --------------------------
    async def save_channel_state(self, channel_id: str, state: ChannelState) -> None: ...

    async def channel_states(self) -> dict[str, ChannelState]: ...

    # -- status reports: providers' word on each recipient after acceptance ----------
    async def add_status_report(self, report: StatusReport) -> bool:
        """Keep a report. False (nothing written) when the same (channel, message, status)
        is kept already: providers repeat callbacks."""

    async def status_reports(
        self, channel_id: str, message_ids: Collection[str]
    ) -> dict[str, list[StatusReport]]:
        """The reports kept for these messages of a channel, each message's oldest first;
        a message with none is absent."""

    # -- Web Push subscriptions (the warning page) ----------------------------------
    async def save_subscription(self, subscription: PushSubscription) -> None:
        """Keep it, replacing one with the same id (a browser that subscribes again)."""

    async def subscriptions(self) -> list[PushSubscription]:
        """Every subscription, oldest first."""

    async def remove_subscription(self, subscription_id: str) -> bool:
        """Forget it (unsubscribed, or the push service said it is gone); False when
        there was none."""

    # -- console accounts (broadcaster user ...) --------------------------------------
    async def save_account(self, account: Account, *, new: bool = False) -> bool:
        """Keep it, replacing the account of that name; with `new`, only when there is
        none (False, nothing written, when the name is taken)."""

    async def get_account(self, name: str) -> Account | None: ...

    async def list_accounts(self) -> list[Account]:
        """Every account, by name."""

    async def record_login(
        self, name: str, ok: bool, now: datetime, lock_after: int, lock_for: timedelta
    ) -> Account | None:
        """Count one sign-in attempt whose password was checked, atomically (two daemons
        never both miss a failure): a success clears the count, the `lock_after`-th
        failure in a row locks the account until `now + lock_for` (and starts the count
        again). While it is locked nothing changes, a right password included. The
        account afterwards; None when there is none."""

    # -- audit trail -------------------------------------------------------------
    async def audit(self, entry: AuditEntry) -> None:
        """Append; entries are never changed."""

    async def audit_trail(self, alert_id: str | None = None) -> list[AuditEntry]:
        """One alert's entries, or (None) the entries of no alert: refused input and the
        daemon's own events; oldest first."""

    async def audit_all(self) -> list[AuditEntry]:
        """The whole trail, every alert's entries and those of no alert (for the archive:
        `broadcaster audit --export`), oldest first; entries of the same moment keep
        their own trail's order."""

    async def audit_tail(self, limit: int) -> list[AuditEntry]:
        """The newest `limit` entries of no alert (refused input, daemon events), newest
        first."""

    async def prune(self, before: datetime) -> int:
        """Forget what is kept only for a while, older than `before`: audit entries of no
        alert (refused input) and the record of which broker messages were taken.
        An alert's own trail is kept. Returns how many audit entries went."""
