"""State changes are told coalesced: a burst of changes is a few publishes, never one
that is out of date at the end, and nobody waits for a publish."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from broadcaster.events import Events
from broadcaster.models import Alert, Delivery
from broadcaster.store.sqlite import SqliteStore
from tests.store.helpers import make_alert, make_deliveries

CHANNELS = [f"c{n}" for n in range(10)]


class HeldSink:
    """Records what it is told; its first publish waits until `release` is set."""

    def __init__(self) -> None:
        self.told: list[tuple[str, list[str]]] = []
        self.release = asyncio.Event()
        self.first = asyncio.Event()
        self.held = asyncio.Condition()

    async def alert_changed(self, alert: Alert, deliveries: list[Delivery]) -> None:
        self.told.append((alert.state, [d.state for d in deliveries]))
        self.first.set()
        async with self.held:
            self.held.notify_all()
        await self.release.wait()

    async def holding(self, count: int) -> None:
        async with self.held:
            await self.held.wait_for(lambda: len(self.told) >= count)

    async def refused(self, refusal: dict[str, Any]) -> None:
        return None


async def test_a_burst_of_changes_is_told_twice_and_the_last_is_the_latest(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "events.db")
    await store.open()
    events, sink = Events(), HeldSink()
    events.subscribe(sink)
    try:
        alert = make_alert("FW-EVENTS", state="sending")
        deliveries = make_deliveries(alert.id, *CHANNELS)
        assert await store.create_alert(alert, deliveries)
        events.changed(alert.id, store)
        await sink.first.wait()  # the first publish is under way, and held
        for delivery in deliveries:  # ten answers arrive while it is
            delivery.state = "delivered"
            assert await store.save_delivery(delivery)
            events.changed(alert.id, store)  # returns at once
        assert await store.update_alert(alert.id, state="sent") is not None
        events.changed(alert.id, store)
        sink.release.set()
        await events.flush()
    finally:
        await store.close()
    assert len(sink.told) == 2
    assert sink.told[0] == ("sending", ["pending"] * 10)
    assert sink.told[-1] == ("sent", ["delivered"] * 10)
    assert events.telling == {}


async def test_changes_of_different_alerts_do_not_wait_for_each_other(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "events.db")
    await store.open()
    events, sink = Events(), HeldSink()
    events.subscribe(sink)
    try:
        for name in ("FW-A", "FW-B"):
            assert await store.create_alert(make_alert(name), make_deliveries(name, "c0"))
            events.changed(name, store)
        await sink.holding(2)  # both held at once: neither waits for the other
        sink.release.set()
        await events.flush()
    finally:
        await store.close()
    assert len(sink.told) == 2
