"""A retraction's manual tasks: which retracted posts get one, in the same write as the
`retracted` state with its audit entry, and told to the officers once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from broadcaster import tasks
from broadcaster.channels.base import OutgoingMessage, PermanentError
from broadcaster.config import DeliverySettings, Settings
from broadcaster.events import Events
from broadcaster.models import Alert, Delivery, ManualTask, Receipt
from broadcaster.officers import OfficerNotices
from broadcaster.retraction import CorrectionFollowUp, manual_deletion
from broadcaster.retries import RetryPolicy
from broadcaster.store import open_store
from broadcaster.store.base import Store
from broadcaster.tasks import NoTask
from tests.store.helpers import make_alert, make_delivery

FAST = DeliverySettings(max_attempts=2, first_retry=timedelta(milliseconds=1))


class Channel:
    """A channel that can or cannot delete, and says how often it was asked to."""

    def __init__(self, channel_id: str, *, can_delete: bool, fails: bool = False) -> None:
        self.channel_id = channel_id
        self.can_thread = True
        self.can_delete = can_delete
        self.fails = fails
        self.deletes = 0

    async def send(self, message: object) -> Receipt:
        raise AssertionError("not sent here")

    async def delete(self, receipt: Receipt) -> None:
        self.deletes += 1
        if self.fails:
            raise PermanentError("facebook fb: code 10: no permission to delete")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    found = open_store("sqlite:///test.db", tmp_path)
    await found.open()
    yield found
    await found.close()


async def retract_on(
    store: Store, channel: Channel, channel_type: str
) -> tuple[Delivery, list[tuple[Alert, Delivery, ManualTask]]]:
    original = make_alert("FW-1", state="retracted")
    posted = make_delivery(
        "FW-1",
        channel.channel_id,
        channel_type=channel_type,
        state="delivered",
        remote_id="17900000000000002",
        url="https://www.instagram.com/p/C0ffee/",
        receipt=Receipt(remote_id="17900000000000002", url="https://www.instagram.com/p/C0ffee/"),
    )
    await store.create_alert(original, [posted])
    correction = make_alert("FW-1:retraction", retracts="FW-1", state="sending")
    out = make_delivery("FW-1:retraction", channel.channel_id, state="delivered", remote_id="c1")
    await store.create_alert(correction, [out])
    told: list[tuple[Alert, Delivery, ManualTask]] = []
    events = Events()
    follow_up = CorrectionFollowUp(store, events, RetryPolicy(FAST))
    follow_up.tell = lambda *args: told.append(args)
    await follow_up.delivered(correction, out, channel)
    await follow_up.delivered(correction, out, channel)  # again (after a crash): no new task
    await events.flush(5)  # the state changes told before the store closes
    [after] = await store.get_deliveries("FW-1")
    return after, told


async def test_instagram_cannot_delete_so_a_person_must(store: Store) -> None:
    channel = Channel("insta", can_delete=False)
    after, told = await retract_on(store, channel, "instagram")

    assert channel.deletes == 0
    assert after.state == "retracted"
    assert after.manual_task is not None
    assert after.manual_task.task == "delete post https://www.instagram.com/p/C0ffee/ by hand"
    assert after.manual_task.done_at is None
    [(correction, delivery, task)] = told
    assert (correction.id, delivery.channel_id, task) == (
        "FW-1:retraction",
        "insta",
        after.manual_task,
    )
    trail = [e for e in await store.audit_trail("FW-1") if e.event in ("retracted", "manual_task")]
    assert [e.event for e in trail] == ["retracted", "manual_task"]
    assert trail[1].detail["why"] == "the provider's API cannot delete a post"


async def test_a_failed_delete_leaves_a_task_too(store: Store) -> None:
    channel = Channel("fb", can_delete=True, fails=True)
    after, told = await retract_on(store, channel, "facebook")

    assert channel.deletes == 1  # permanent: not retried
    assert after.manual_task is not None
    assert len(told) == 1
    [entry] = [e for e in await store.audit_trail("FW-1") if e.event == "manual_task"]
    assert "no permission to delete" in entry.detail["why"]


async def test_a_deleted_post_and_a_message_nobody_can_take_back_get_none(store: Store) -> None:
    deleted, told = await retract_on(store, Channel("fb", can_delete=True), "facebook")
    assert deleted.manual_task is None
    assert told == []
    for channel_type in ("sms", "email", "webhook", "log", "cap_feed"):
        sent = make_delivery("FW-2", "c", channel_type=channel_type, url="https://x")
        assert manual_deletion(sent) is None, channel_type


def test_a_post_whose_address_is_unknown_still_gets_a_task() -> None:
    lost = make_delivery("FW-3", "insta", channel_type="instagram")
    task = manual_deletion(lost)
    assert task is not None
    assert task.task == (
        "find and delete the post of alert FW-3 on insta by hand (its address is not known)"
    )


async def test_the_officers_hear_of_a_task_on_their_channels_marked_in_a_drill(
    store: Store,
) -> None:
    settings = Settings.model_validate(
        {"duty_officers": [{"name": "A. Schmidt", "notify": ["officer_sms", "officer_mail"]}]}
    )
    sent: list[tuple[str, OutgoingMessage]] = []

    async def notify(channel_id: str, message: OutgoingMessage) -> bool:
        sent.append((channel_id, message))
        return True

    officers = OfficerNotices(settings, {}, notify, store, owner="t", language=lambda: "de")
    task = ManualTask(task="delete post https://www.instagram.com/p/C0ffee/ by hand")
    original = make_delivery("FW-1", "insta", channel_type="instagram")
    for mode in ("live", "drill"):
        correction = make_alert("FW-1:retraction", retracts="FW-1", mode=mode)
        officers.manual_task(correction, original, task)
        await asyncio.gather(*officers.tasks)
    assert [cid for cid, _ in sent] == ["officer_sms", "officer_mail"] * 2
    live, drill = sent[0][1], sent[2][1]
    assert (live.kind, live.error, live.detail) == ("refusal", "manual_task", task.task)
    assert live.alert_id == "FW-1"
    assert live.title == "Von Hand zu tun: Beitrag löschen (insta)"
    assert task.task in live.text
    assert "broadcaster task done FW-1 insta" in live.text
    assert drill.mode == "drill"
    assert drill.title.startswith("ÜBUNG: ")
    assert drill.text.startswith("ÜBUNG: ")
    told = [e for e in await store.audit_trail("FW-1") if e.event == "manual_task_told"]
    assert [e.detail["channels"] for e in told] == [["officer_sms", "officer_mail"]] * 2


class Meddled:
    """The store mark_done opens, with another writer changing the delivery right after
    mark_done read it, for the first `times` reads (a daemon writing at that moment)."""

    def __init__(self, store: Store, other: Store, times: int) -> None:
        self._store, self._other, self.times = store, other, times
        self.reads = self.changes = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def get_deliveries(self, alert_id: str) -> list[Delivery]:
        found = await self._store.get_deliveries(alert_id)
        self.reads += 1
        if self.reads % 2 == 1 and self.changes < self.times:  # the first read of a try
            self.changes += 1
            [current] = await self._other.get_deliveries(alert_id)
            await self._other.save_delivery(current.model_copy(update={"attempts": self.changes}))
        return found


async def marked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, times: int
) -> tuple[Delivery | NoTask, Delivery, Meddled]:
    url = "sqlite:///tasks.db"
    other = open_store(url, tmp_path)
    await other.open()
    task = ManualTask(task="delete post https://www.instagram.com/p/C0ffee/ by hand")
    original = make_delivery(
        "FW-1", "insta", channel_type="instagram", state="retracted", manual_task=task
    )
    await other.create_alert(make_alert("FW-1", state="retracted"), [original])
    meddled = Meddled(open_store(url, tmp_path), other, times)
    monkeypatch.setattr(tasks, "open_store", lambda *_: meddled)
    try:
        result: Delivery | NoTask = await tasks.mark_done(url, tmp_path, "FW-1", "insta", "A. S.")
    except NoTask as exc:
        result = exc
    [stored] = await other.get_deliveries("FW-1")
    await other.close()
    return result, stored, meddled


async def test_marking_a_task_done_keeps_a_change_made_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    done, stored, meddled = await marked(tmp_path, monkeypatch, times=2)
    assert isinstance(done, Delivery)
    assert meddled.reads == 6  # two tries found it changed, the third wrote
    assert stored.attempts == 2  # the other writer's last change is kept
    assert stored.manual_task is not None
    assert stored.manual_task.done_by == "A. S."


async def test_a_task_whose_delivery_keeps_changing_is_not_marked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused, stored, meddled = await marked(tmp_path, monkeypatch, times=tasks.TRIES)
    assert isinstance(refused, NoTask)
    assert "changed 5 times" in str(refused)
    assert meddled.reads == 2 * tasks.TRIES
    assert stored.attempts == tasks.TRIES  # the other writer's last change
    assert stored.manual_task is not None
    assert stored.manual_task.done_at is None  # nothing was written
