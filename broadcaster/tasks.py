"""Manual tasks: what a person must still do by hand on a channel (a retracted post the
provider's API cannot delete). Recorded by the retraction (retraction.py), listed by
`broadcaster status` and `GET /api/alerts/{id}`, marked done by `broadcaster task done`.
"""

from __future__ import annotations

from pathlib import Path

from broadcaster.models import AuditEntry, Delivery, utcnow
from broadcaster.store import open_store
from broadcaster.store.base import Store

# How often the delivery may change under us before marking it done gives up.
TRIES = 5


class NoTask(Exception):
    """There is no open task for that alert and channel (the message says why)."""


async def mark_done(url: str, base: Path, alert_id: str, channel_id: str, by: str) -> Delivery:
    """Mark the open task of one delivery done, with an audit entry, in one write.

    The store has no compare and set on a delivery's content (save_delivery's `owner`
    compares the claim only, and a retracted delivery is claimed by nobody). So the
    delivery is read again just before the write, and the change is made afresh from it
    when it moved in between (the daemon wrote it): its change is kept, not overwritten.
    Only the write's own round trip stays open; closing that needs a store method."""
    store = open_store(url, base)
    await store.open()
    try:
        for _ in range(TRIES):
            delivery = await _open_task(store, alert_id, channel_id)
            task = delivery.manual_task
            assert task is not None  # _open_task checked
            done = delivery.model_copy(
                update={"manual_task": task.model_copy(update={"done_at": utcnow(), "done_by": by})}
            )
            if await _find(store, alert_id, channel_id) != delivery:
                continue  # changed since it was read: start again from the new one
            entry = AuditEntry(
                alert_id=alert_id,
                event="manual_task_done",
                actor=by,
                detail={"channel": channel_id, "task": task.task},
            )
            await store.save_delivery(done, audit=[entry])
            return done
        raise NoTask(
            f"{alert_id} on {channel_id}: the delivery changed {TRIES} times while it was "
            "being marked; nothing was written, try again"
        )
    finally:
        await store.close()


async def _find(store: Store, alert_id: str, channel_id: str) -> Delivery | None:
    return next(
        (d for d in await store.get_deliveries(alert_id) if d.channel_id == channel_id), None
    )


async def _open_task(store: Store, alert_id: str, channel_id: str) -> Delivery:
    """The delivery whose task is still open, else NoTask saying why not."""
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
    return delivery
