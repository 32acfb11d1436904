"""The confirmation gate: what happens to an accepted alert before it may go out.

`confirmation.mode: none` releases at once. `required` and `auto` park the alert in
`awaiting_confirmation`; the duty officer's link, page, escalation and timers plug in
here (ConfirmationGate), the rest of the engine does not change.
"""

from __future__ import annotations

from typing import Protocol

from broadcaster.events import Events
from broadcaster.models import Alert, AuditEntry
from broadcaster.playbooks import Playbook
from broadcaster.store.base import Store


class ConfirmationGate(Protocol):
    async def request(self, alert: Alert, playbook: Playbook) -> None:
        """Ask for a release of `alert` (state `received`); must not block for long."""


class AwaitConfirmation:
    """Parks the alert in `awaiting_confirmation` until someone releases or rejects it."""

    def __init__(self, store: Store, events: Events) -> None:
        self.store = store
        self.events = events

    async def request(self, alert: Alert, playbook: Playbook) -> None:
        parked = await self.store.update_alert(
            alert.id, expect={"received"}, state="awaiting_confirmation"
        )
        if parked is None:
            return
        await self.store.audit(
            AuditEntry(
                alert_id=alert.id,
                event="confirmation_requested",
                detail={
                    "mode": playbook.confirmation.mode,
                    "timeout": playbook.confirmation.timeout.total_seconds(),
                },
            )
        )
        await self.events.alert_changed(parked, await self.store.get_deliveries(alert.id))
