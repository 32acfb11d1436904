"""Manual tasks: what a person must still do by hand on a channel (a retracted post the
provider's API cannot delete). Recorded by the retraction (retraction.py), listed by
`broadcaster status` and `GET /api/alerts/{id}`, marked done by `broadcaster task done`.
"""

from __future__ import annotations

from pathlib import Path

from broadcaster.models import AuditEntry, Delivery, utcnow
from broadcaster.store import open_store


class NoTask(Exception):
    """There is no open task for that alert and channel (the message says why)."""


async def mark_done(url: str, base: Path, alert_id: str, channel_id: str, by: str) -> Delivery:
    """Mark the open task of one delivery done, with an audit entry, in one write."""
    store = open_store(url, base)
    await store.open()
    try:
        if await store.get_alert(alert_id) is None:
            raise NoTask(f"no alert {alert_id!r}")
        found = {d.channel_id: d for d in await store.get_deliveries(alert_id)}
        delivery = found.get(channel_id)
        if delivery is None:
            channels = ", ".join(sorted(found)) or "none"
            raise NoTask(f"alert {alert_id} has no delivery to {channel_id!r} (it has: {channels})")
        task = delivery.manual_task
        if task is None:
            raise NoTask(f"{alert_id} on {channel_id}: no manual task")
        if task.done_at is not None:
            raise NoTask(f"{alert_id} on {channel_id}: done already by {task.done_by}")
        done = delivery.model_copy(
            update={"manual_task": task.model_copy(update={"done_at": utcnow(), "done_by": by})}
        )
        entry = AuditEntry(
            alert_id=alert_id,
            event="manual_task_done",
            actor=by,
            detail={"channel": channel_id, "task": task.task},
        )
        await store.save_delivery(done, audit=[entry])
        return done
    finally:
        await store.close()
