"""The SMS adapter with many recipients: several requests at once, bounded; the pace per
message; a stop-error stops new requests; progress saved while the send runs; numbers
whose answer was lost looked up at the fake's Messages list before sending again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from broadcaster.channels.base import OutgoingMessage, PermanentError, TransientError
from broadcaster.channels.settings import SmsChannel
from broadcaster.channels.sms import SmsAdapter, sms_body
from broadcaster.models import Receipt, Recipients
from tests.fakes.sms import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio

MakeMessage = Callable[..., OutgoingMessage]
SENDER = "+4921155550000"
TEXT = "Großbrand in Düsseldorf-Flingern. Fenster und Türen geschlossen halten."


def numbers(count: int) -> list[str]:
    return [f"+49151{index:08d}" for index in range(1, count + 1)]


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio.start(senders={SENDER}) as server:
        yield server


@pytest.fixture
def sms(message: MakeMessage) -> MakeMessage:
    def make(**changes: Any) -> OutgoingMessage:
        fields: dict[str, Any] = {"text": TEXT, "idempotency_key": "FW-DUS-2026-000124:sms"}
        fields.update(changes)
        return message(**fields)

    return make


def adapter(
    session: aiohttp.ClientSession, base_url: str, to: list[str], **settings: Any
) -> SmsAdapter:
    data: dict[str, Any] = {
        "type": "sms",
        "base_url": base_url,
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "from": SENDER,
        "to": to,
    }
    data.update(settings)
    return SmsAdapter("sms", SmsChannel.model_validate(data), session, timeout=10.0)


class Saved:
    """A checkpoint hook that keeps every Receipt and wakes waiters."""

    def __init__(self) -> None:
        self.receipts: list[Receipt] = []
        self.changed = asyncio.Condition()

    async def __call__(self, receipt: Receipt) -> None:
        self.receipts.append(receipt)
        async with self.changed:
            self.changed.notify_all()

    async def until(self, predicate: Callable[[Receipt], bool]) -> Receipt:
        async with asyncio.timeout(20), self.changed:  # a safety net, not synchronisation
            await self.changed.wait_for(lambda: any(predicate(r) for r in self.receipts))
        return next(r for r in self.receipts if predicate(r))


async def test_requests_at_once_are_bounded_by_max_in_flight_across_deliveries(
    session: aiohttp.ClientSession, twilio: FakeTwilio, sms: MakeMessage
) -> None:
    to = numbers(30)
    sender = adapter(session, twilio.base_url, to, max_in_flight=5)
    twilio.hold()
    # Two alerts on the same channel at once share its five slots.
    first = asyncio.create_task(sender.send(sms()))
    second = asyncio.create_task(sender.send(sms(text=TEXT + " Update.")))
    await twilio.wait_for_requests(5)
    assert twilio.in_flight == 5

    twilio.release()
    receipts = await asyncio.gather(first, second)

    assert twilio.max_in_flight == 5
    assert len(twilio.requests) == 60
    assert all(twilio.sent_to(n) == 2 for n in to)
    for receipt in receipts:
        assert receipt.recipients == Recipients(total=30, delivered=30, failed=0)
        assert receipt.data["delivered_to"] == to  # in configured order, whatever came back
        assert "in_flight" not in receipt.data


@pytest.mark.parametrize(
    ("settings", "allowed"),
    [({"rate_limit": "2/hour"}, 2), ({"messages_per_second": 0.0005}, 1)],
    ids=["rate_limit", "messages_per_second"],
)
async def test_the_pace_counts_every_message_not_the_attempt(
    session: aiohttp.ClientSession,
    twilio: FakeTwilio,
    sms: MakeMessage,
    settings: dict[str, Any],
    allowed: int,
) -> None:
    sender = adapter(session, twilio.base_url, numbers(5), max_in_flight=10, **settings)
    sender.checkpoint_every = 1
    saved = Saved()
    sending = asyncio.create_task(sender.send(sms(checkpoint=saved)))
    try:
        # The allowed messages are answered, and the next number is reserved: its worker
        # now waits for the pace, not for a free slot (ten of them).
        await saved.until(
            lambda r: (
                r.recipients is not None
                and r.recipients.delivered == allowed
                and len(r.data.get("in_flight", [])) >= 1
            )
        )
        assert len(twilio.requests) == allowed
        assert twilio.max_in_flight <= allowed
        assert not sending.done()
    finally:
        sending.cancel()


@pytest.mark.parametrize(
    ("code", "error"),
    [(20429, TransientError), (21606, PermanentError), (20003, PermanentError)],
    ids=["rate-limited", "foreign-sender", "credentials"],
)
async def test_a_stop_error_under_concurrency_starts_no_new_request(
    session: aiohttp.ClientSession,
    twilio: FakeTwilio,
    sms: MakeMessage,
    code: int,
    error: type[Exception],
) -> None:
    to = numbers(20)
    sender = adapter(session, twilio.base_url, to, max_in_flight=5)
    sender.checkpoint_every, sender.checkpoint_interval = 5, 0.0  # a save on every answer
    saved = Saved()
    twilio.fail_number(to[0], code)
    twilio.hold()
    sending = asyncio.create_task(sender.send(sms(checkpoint=saved)))
    await twilio.wait_for_requests(5)
    twilio.let_through(to[0])
    await saved.until(lambda r: to[0] in r.data["failed"])
    twilio.release()  # the four others in flight are answered: 201

    with pytest.raises(error, match=f" {code}: ") as caught:
        await sending

    assert len(twilio.requests) == 5  # no new request after the stop
    partial = caught.value.partial  # type: ignore[attr-defined]
    assert partial.data["delivered_to"] == to[1:5]
    assert partial.recipients == Recipients(total=20, delivered=4, failed=16)
    # Those never started carry the stop-error, and none is left in flight.
    assert {partial.data["failed"][n] for n in to[5:]} == {partial.data["failed"][to[0]]}
    assert "in_flight" not in partial.data


async def test_progress_is_saved_while_the_remaining_requests_are_held(
    session: aiohttp.ClientSession, twilio: FakeTwilio, sms: MakeMessage
) -> None:
    to = numbers(12)
    sender = adapter(session, twilio.base_url, to, max_in_flight=4)
    sender.checkpoint_interval = 0.05
    saved = Saved()
    twilio.hold_answers(after=6)
    sending = asyncio.create_task(sender.send(sms(checkpoint=saved)))

    # Before the first request: every number to be tried is recorded as in flight.
    first = await saved.until(lambda r: True)
    assert first.data["in_flight"] == to
    assert first.recipients == Recipients(total=12, delivered=0, failed=12)
    # Six answered, four held at the fake, two waiting for a slot: saved by the timer.
    partial = await saved.until(lambda r: r.recipients is not None and r.recipients.delivered == 6)
    await twilio.wait_for_requests(10)
    assert partial.data["delivered_to"] == to[:6]
    assert partial.data["in_flight"] == to[6:]
    assert not sending.done()

    twilio.release()
    receipt = await sending
    assert receipt.recipients == Recipients(total=12, delivered=12, failed=0)
    assert all(twilio.sent_to(n) == 1 for n in to)


async def test_numbers_in_flight_at_a_crash_are_looked_up_not_sent_blindly(
    session: aiohttp.ClientSession, twilio: FakeTwilio, sms: MakeMessage
) -> None:
    to = numbers(8)
    sender = adapter(session, twilio.base_url, to, max_in_flight=4)
    sender.checkpoint_interval = 0.05
    saved = Saved()
    twilio.hold_answers(after=2)
    crashed = asyncio.create_task(sender.send(sms(checkpoint=saved)))
    await saved.until(lambda r: r.recipients is not None and r.recipients.delivered == 2)
    await twilio.wait_for_requests(6)  # four more created, their answers held
    crashed.cancel()  # the process dies: those answers are never heard
    with pytest.raises(asyncio.CancelledError):
        await crashed
    twilio.release()
    last = saved.receipts[-1]
    assert last.data["in_flight"] == to[2:]

    receipt = await sender.send(sms(previous=last, checkpoint=saved))

    assert receipt.recipients == Recipients(total=8, delivered=8, failed=0)
    assert all(twilio.sent_to(n) == 1 for n in to)  # nobody got it twice
    # Each unsure number was looked up once, filtered by To and From.
    assert sorted(q["To"] for q in twilio.lists) == to[2:]
    assert {q["From"] for q in twilio.lists} == {SENDER}
    # The four found keep the sid Twilio gave them; the two never created were sent.
    created = {m["to"]: m["sid"] for m in twilio.messages}
    assert receipt.data["ids"] == created
    posts = [r.form["To"] for r in twilio.requests if r.method == "POST"]
    assert sorted(posts) == sorted(to)


async def test_a_look_up_that_fails_leaves_the_number_unsure(
    session: aiohttp.ClientSession, twilio: FakeTwilio, sms: MakeMessage
) -> None:
    to = numbers(2)
    sender = adapter(session, twilio.base_url, to, max_in_flight=1)
    previous = Receipt(
        data={
            "delivered_to": [],
            "ids": {},
            "failed": {},
            "permanent": [],
            "in_flight": [to[0]],
            "in_flight_since": "2026-01-01T00:00:00+00:00",
        }
    )
    twilio.script(503)  # the look-up of to[0] fails; nothing is sent to it

    with pytest.raises(TransientError, match="HTTP 503") as caught:
        await sender.send(sms(previous=previous))

    assert twilio.sent_to(to[0]) == 0
    partial = caught.value.partial
    assert partial is not None
    assert partial.data["in_flight"] == [to[0]]  # asked again next time, never sent blindly


async def test_the_look_up_ignores_other_texts_and_older_messages(
    session: aiohttp.ClientSession, twilio: FakeTwilio, sms: MakeMessage
) -> None:
    number = numbers(1)[0]
    sender = adapter(session, twilio.base_url, [number], max_in_flight=1)
    # An earlier alert to the same number, and this text sent long ago.
    await adapter(session, twilio.base_url, [number]).send(sms(text="Probealarm"))
    await adapter(session, twilio.base_url, [number]).send(sms())
    twilio.messages[-1]["date_created"] = "Wed, 01 Jan 2025 00:00:00 +0000"
    previous = Receipt(data={"in_flight": [number], "in_flight_since": "2026-01-01T00:00:00+00:00"})

    receipt = await sender.send(sms(previous=previous))

    assert twilio.sent_to(number) == 3  # not found: sent
    assert twilio.message(receipt.data["ids"][number])["body"] == sms_body(sms())


async def test_a_message_whose_answer_timed_out_is_looked_up_not_sent_again(
    session: aiohttp.ClientSession, twilio: FakeTwilio, sms: MakeMessage
) -> None:
    """Twilio created it, but its answer never came within the timeout: the retry finds
    it in the Messages list instead of texting the number a second time."""
    to = numbers(2)
    data: dict[str, Any] = {
        "type": "sms",
        "base_url": twilio.base_url,
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "from": SENDER,
        "to": to,
    }
    # A short timeout is the setting under test here, not a way to wait.
    sender = SmsAdapter("sms", SmsChannel.model_validate(data), session, timeout=0.3)
    twilio.hold_answers(after=1)  # the second number's message is created, its answer held
    with pytest.raises(TransientError) as first:
        await sender.send(sms())
    twilio.release()
    partial = first.value.partial
    assert partial is not None
    assert partial.data["in_flight"] == [to[1]]

    receipt = await sender.send(sms(previous=partial))

    assert receipt.recipients == Recipients(total=2, delivered=2, failed=0)
    assert [twilio.sent_to(n) for n in to] == [1, 1]  # nobody got it twice
    assert [q["To"] for q in twilio.lists] == [to[1]]  # only the unsure one looked up
