"""What is written when, on the way of one delivery: the claim (state `sending`) is in
the store before the request leaves, so no other daemon sends it too; the answer, the
attempt's count and its audit entry are one write, durable before the alert is done."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from broadcaster.channels.base import OutgoingMessage
from broadcaster.deployment import load_deployment
from broadcaster.models import Receipt
from broadcaster.pipeline import Pipeline, build_pipeline
from broadcaster.store.sqlite import SqliteStore
from tests.integration.harness import write_deployment
from tests.store.helpers import make_alert, make_delivery


class HeldProvider:
    """Looks at the store when the request arrives, then answers when told to."""

    channel_id = "held"
    can_thread = False
    can_delete = False

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.arrived = asyncio.Event()
        self.answer = asyncio.Event()
        self.stored_on_arrival: list[tuple[str, str | None, int]] = []
        self.requests = 0

    async def send(self, message: OutgoingMessage) -> Receipt:
        self.requests += 1
        stored = await self.store.get_deliveries(message.alert_id)
        self.stored_on_arrival = [(d.state, d.claimed_by, d.attempts) for d in stored]
        self.arrived.set()
        await self.answer.wait()
        return Receipt(remote_id="post-1")

    async def delete(self, receipt: Receipt) -> None:
        raise AssertionError("nothing is deleted here")


@dataclass
class Held:
    store: SqliteStore
    provider: HeldProvider
    pipeline: Pipeline


@pytest.fixture
async def held(tmp_path: Path) -> AsyncIterator[Held]:
    """A pipeline owned by daemon `d-1` whose one channel is a HeldProvider."""
    store = SqliteStore(tmp_path / "order.db")
    await store.open()
    config = write_deployment(
        tmp_path, mqtt_url="mqtt://127.0.0.1:9", channels={"held": {"type": "log"}}
    )
    provider = HeldProvider(store)
    pipeline = build_pipeline(load_deployment(config), store, {"held": provider}, owner="d-1")
    try:
        yield Held(store, provider, pipeline)
    finally:
        await pipeline.events.flush()
        await store.close()


async def test_the_claim_is_stored_before_the_request_and_the_answer_in_one_write(
    held: Held,
) -> None:
    store, provider, pipeline = held.store, held.provider, held.pipeline
    alert = make_alert("FW-ORDER", state="sending")
    delivery = make_delivery(alert.id, "held", channel_type="log")
    assert await store.create_alert(alert, [delivery])
    pipeline.dispatcher.spawn(alert)
    await provider.arrived.wait()
    provider.answer.set()
    assert await pipeline.dispatcher.drain(10)
    (done,) = await store.get_deliveries(alert.id)
    finished = await store.get_alert(alert.id)
    trail = [e for e in await store.audit_trail(alert.id) if e.event == "delivered"]
    # Claimed and `sending` in the store while the request was on its way.
    assert provider.stored_on_arrival == [("sending", "d-1", 0)]
    assert provider.requests == 1
    assert (done.state, done.attempts, done.remote_id, done.claimed_by) == (
        "delivered",
        1,
        "post-1",
        None,
    )
    assert len(trail) == 1
    assert trail[0].detail["attempts"] == 1
    assert finished is not None
    assert finished.state == "sent"


async def test_a_release_returns_once_its_fan_out_is_claimed(held: Held) -> None:
    """So the intake's next trigger cannot overtake this one: alerts go out in order."""
    store, provider, pipeline = held.store, held.provider, held.pipeline
    alert = make_alert("FW-FIRST", state="received")
    delivery = make_delivery(alert.id, "held", channel_type="log")
    assert await store.create_alert(alert, [delivery])
    assert await pipeline.dispatcher.release(alert.id)
    claimed = await store.get_deliveries(alert.id)
    provider.answer.set()
    assert await pipeline.dispatcher.drain(10)
    assert [(d.state, d.claimed_by) for d in claimed] == [("sending", "d-1")]
