"""The takeover scan finishes what a crashed daemon left: a correction between its
delivery and the original's deletion, an alert stored but never released."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from broadcaster.channels.base import Channel, OutgoingMessage
from broadcaster.channels.log import LogAdapter
from broadcaster.deployment import load_deployment
from broadcaster.inbox import Inbox
from broadcaster.models import Alert, Delivery, Receipt
from broadcaster.pipeline import Pipeline, build_pipeline
from broadcaster.store.sqlite import SqliteStore
from broadcaster.supervision import Supervisor
from broadcaster.takeover import Scan, Takeover
from tests.integration.harness import write_deployment

T = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


class Provider:
    channel_id = "toot"
    can_thread = True
    can_delete = True

    def __init__(self) -> None:
        self.deleted: list[str | None] = []
        self.sent: list[OutgoingMessage] = []

    async def send(self, message: OutgoingMessage) -> Receipt:
        self.sent.append(message)
        return Receipt(remote_id="again")

    async def delete(self, receipt: Receipt) -> None:
        self.deleted.append(receipt.remote_id)


async def scan(pipeline: Pipeline) -> Scan:
    """One takeover scan, then wait for what it started."""
    supervisor = Supervisor(lambda reason: None)
    inbox = Inbox(pipeline.receiver, pipeline.store, supervisor, owner="d", broker_session="c")
    takeover = Takeover(
        pipeline.store,
        inbox,
        pipeline.receiver,
        pipeline.dispatcher,
        pipeline.desk,
        pipeline.retractor,
        pipeline.metrics,
    )
    found = await takeover.scan()
    await pipeline.dispatcher.drain(10)
    await supervisor.close()
    return found


def pipeline_for(tmp_path, store: SqliteStore, channels: dict[str, Channel]) -> Pipeline:
    config = write_deployment(
        tmp_path, mqtt_url="mqtt://127.0.0.1:9", channels={"log_de": {"type": "log"}}
    )
    return build_pipeline(load_deployment(config), store, channels, owner="d")


def delivery(alert_id: str, **fields: Any) -> Delivery:
    values: dict[str, Any] = {"channel_id": "toot", "channel_type": "mastodon", **fields}
    return Delivery(
        alert_id=alert_id, language="de", variant="short", title="t", text="x", **values
    )


async def test_a_resumed_correction_deletes_the_original_once(tmp_path):
    store = SqliteStore(tmp_path / "s.db")
    await store.open()
    original = Alert(
        id="A",
        incident="A",
        scenario="major_fire",
        stage="warning",
        mode="live",
        state="retracted",
        issued_at=T,
        created_at=T,
    )
    correction = Alert(
        id="A:retraction",
        incident="A",
        scenario="major_fire",
        stage="warning",
        mode="live",
        state="sending",
        msg_type="Cancel",
        issued_at=T,
        created_at=T,
        retracts="A",
    )
    posted = Receipt(remote_id="first")
    await store.create_alert(
        original, [delivery("A", state="delivered", receipt=posted, remote_id="first")]
    )
    await store.create_alert(
        correction, [delivery("A:retraction", state="delivered", receipt=Receipt(remote_id="fix"))]
    )
    provider = Provider()
    found = await scan(pipeline_for(tmp_path, store, {"toot": provider}))
    assert found.sending == 1
    [after] = await store.get_deliveries("A")
    finished = await store.get_alert("A:retraction")
    await store.close()
    assert provider.deleted == ["first"]  # the false alarm is removed ...
    assert provider.sent == []  # ... and the correction is not posted twice
    assert after.state == "retracted"
    assert finished is not None
    assert finished.state == "sent"


async def test_an_alert_stored_but_never_released_is_released_after_a_restart(tmp_path):
    """A crash right after the alert was written, before the gate: nothing is lost."""
    store = SqliteStore(tmp_path / "r.db")
    await store.open()
    stranded = Alert(
        id="B",
        incident="B",
        scenario="major_fire",
        stage="warning",
        mode="live",
        state="received",
        issued_at=T,
        created_at=T,
        updated_at=T,  # long ago: whoever stored it is gone
    )
    await store.create_alert(stranded, [delivery("B", channel_id="log_de", channel_type="log")])
    found = await scan(pipeline_for(tmp_path, store, {"log_de": LogAdapter("log_de")}))
    assert found.received == 1
    alert = await store.get_alert("B")
    [sent] = await store.get_deliveries("B")
    await store.close()
    assert alert is not None
    assert alert.state == "sent"
    assert sent.state == "delivered"
