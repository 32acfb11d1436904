"""E-mail to many recipients: one SMTP connection for the delivery, BCC batches whose
headers name nobody, refusals per recipient inside a batch, progress saved per batch."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from broadcaster.channels.base import OutgoingMessage, PermanentError
from broadcaster.models import Receipt, Recipients
from tests.channels.test_email import KEY, TEXT, TITLE, adapter
from tests.fakes.smtp import FakeSmtp

MakeMessage = Callable[..., OutgoingMessage]


@pytest.fixture
def mail(message: MakeMessage) -> MakeMessage:
    def make(**changes: Any) -> OutgoingMessage:
        return message(**{"title": TITLE, "text": TEXT, "idempotency_key": KEY, **changes})

    return make


@pytest.fixture
async def smtp() -> AsyncIterator[FakeSmtp]:
    async with FakeSmtp.start() as server:
        yield server


def mailboxes(count: int) -> list[str]:
    return [f"person{index:03d}@example.org" for index in range(count)]


async def test_one_connection_one_message_per_recipient_by_default(
    smtp: FakeSmtp, mail: MakeMessage
) -> None:
    to = mailboxes(40)

    receipt = await adapter(smtp.port, to=to).send(mail())

    assert smtp.connections == 1
    assert len(smtp.messages) == 40
    assert [t.rcpt_tos for t in smtp.messages] == [[r] for r in to]
    assert [t.message["To"] for t in smtp.messages] == to
    assert receipt.recipients == Recipients(total=40, delivered=40, failed=0)


async def test_bcc_batches_name_nobody_in_the_headers(smtp: FakeSmtp, mail: MakeMessage) -> None:
    to = mailboxes(23)

    receipt = await adapter(smtp.port, to=to, bcc_batch=10).send(mail())

    assert smtp.connections == 1
    assert [len(t.rcpt_tos) for t in smtp.messages] == [10, 10, 3]
    assert sorted(r for t in smtp.messages for r in t.rcpt_tos) == sorted(to)
    for transaction in smtp.messages:
        raw = transaction.data.decode("utf-8", "replace").lower()
        headers = raw.split("\r\n\r\n", 1)[0]
        assert not any(address in headers for address in to)  # To, Cc, Bcc: nobody
        assert transaction.message["To"] == "undisclosed-recipients:;"
        assert transaction.message["Cc"] is None
        assert transaction.message["Bcc"] is None
    ids = {t.message["Message-ID"] for t in smtp.messages}
    assert len(ids) == 3  # one per batch, each recipient's id is its batch's
    assert receipt.data["ids"][to[0]] == smtp.messages[0].message["Message-ID"].strip()
    assert receipt.recipients == Recipients(total=23, delivered=23, failed=0)


async def test_a_refused_address_in_a_batch_fails_alone(smtp: FakeSmtp, mail: MakeMessage) -> None:
    to = mailboxes(5)
    smtp.refuse(to[2], 550, "5.1.1 User unknown")

    with pytest.raises(PermanentError, match=r"550 5\.1\.1 User unknown") as caught:
        await adapter(smtp.port, to=to, bcc_batch=5).send(mail())

    assert len(smtp.messages) == 1
    assert smtp.messages[0].rcpt_tos == to[:2] + to[3:]
    partial = caught.value.partial
    assert partial is not None
    assert partial.data["permanent"] == [to[2]]
    assert partial.recipients == Recipients(total=5, delivered=4, failed=1)


async def test_progress_is_saved_per_batch(smtp: FakeSmtp, mail: MakeMessage) -> None:
    to = mailboxes(30)
    saved: list[Receipt] = []

    async def checkpoint(receipt: Receipt) -> None:
        saved.append(receipt)

    sender = adapter(smtp.port, to=to, bcc_batch=10)
    receipt = await sender.send(mail(checkpoint=checkpoint))

    assert receipt.recipients == Recipients(total=30, delivered=30, failed=0)
    # 200 recipients or a second per save: none of 30 fast ones, unless a second passed.
    delivered = [r.recipients.delivered for r in saved if r.recipients is not None]
    assert all(count % 10 == 0 and count < 30 for count in delivered)
