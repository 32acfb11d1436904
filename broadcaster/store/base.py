"""The store: the single source of truth. A state change is written here before anyone
is told about it (ARCHITECTURE.md). SQLite and Redis implement this one protocol and pass
one contract test suite (tests/store/)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any, Protocol

from broadcaster.models import Alert, AlertState, AuditEntry, Delivery, InboxEntry


class Store(Protocol):
    async def open(self) -> None:
        """Connect and create what is missing (tables, indexes)."""

    async def close(self) -> None: ...

    async def ping(self) -> bool:
        """True while the store answers (for /healthz)."""

    # -- inbox: raw triggers, kept until handled ---------------------------------
    async def inbox_add(self, entry: InboxEntry) -> None: ...

    async def inbox_done(self, entry_id: str) -> None: ...

    async def inbox_pending(self) -> list[InboxEntry]:
        """Entries not yet marked done, oldest first."""

    # -- alerts and deliveries ---------------------------------------------------
    async def create_alert(self, alert: Alert, deliveries: list[Delivery]) -> bool:
        """Store a new alert with its deliveries, atomically.

        False (and nothing written) when an alert with this id exists: the trigger
        id is the idempotency key, so a repeated id never sends twice.
        """

    async def get_alert(self, alert_id: str) -> Alert | None: ...

    async def list_alerts(self, limit: int = 50) -> list[Alert]:
        """Newest first."""

    async def alerts_in_state(self, *states: AlertState) -> list[Alert]: ...

    async def incident_alerts(self, incident: str) -> list[Alert]:
        """Every alert of an incident, oldest first (for threading and CAP references)."""

    async def update_alert(
        self, alert_id: str, *, expect: Collection[AlertState] | None = None, **changes: Any
    ) -> Alert | None:
        """Apply `changes` (e.g. state="sending") and bump updated_at.

        With `expect`, only when the alert's current state is one of them (compare
        and set, so two daemons or a timer and a person cannot both act). Returns the
        updated alert, or None when it does not exist or its state did not match.
        """

    async def get_deliveries(self, alert_id: str) -> list[Delivery]:
        """In channel_id order."""

    async def save_delivery(self, delivery: Delivery, *, owner: str | None = None) -> bool:
        """Overwrite the delivery (alert_id, channel_id) with this one, updated_at bumped.

        With `owner`, only while the stored delivery is still claimed by `owner`
        (compare and set): a daemon whose lease ran out and was taken over must not
        overwrite its successor's result. False when nothing was written.
        """

    async def claim_delivery(
        self, alert_id: str, channel_id: str, owner: str, until: datetime, now: datetime
    ) -> Delivery | None:
        """Take the delivery for `owner` until `until`, atomically.

        Only when it is not final and unclaimed, claimed by `owner`, or its claim has
        expired before `now`. Returns the claimed delivery, else None.
        """

    # -- audit trail -------------------------------------------------------------
    async def audit(self, entry: AuditEntry) -> None:
        """Append; entries are never changed or removed."""

    async def audit_trail(self, alert_id: str | None = None) -> list[AuditEntry]:
        """Oldest first; all entries, or one alert's."""
