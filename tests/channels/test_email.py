"""The e-mail adapter against an aiosmtpd submission server over real sockets."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from broadcaster.channels.base import OutgoingMessage, PermanentError, TransientError
from broadcaster.channels.email import EmailAdapter, message_id
from broadcaster.channels.settings import EmailChannel
from broadcaster.models import Receipt, Recipients
from tests.fakes.smtp import (
    FakeSmtp,
    Transaction,
    client_context,
    self_signed_certificate,
    server_context,
)
from tests.servers import free_port

MakeMessage = Callable[..., OutgoingMessage]
SENDER = "Feuerwehr Düsseldorf <alarm@feuerwehr-duesseldorf.example>"
A, B, C = "a.schmidt@example.org", "b.yilmaz@example.org", "c.nowak@example.net"
TEXT = "Großbrand in Düsseldorf-Flingern, Ackerstraße <12> & Co\nFenster und Türen schließen."
TITLE = "Großbrand in Düsseldorf-Flingern: Fenster schließen"
KEY = "FW-DUS-2026-000123:mail"
USER, PASSWORD = "alarm@feuerwehr-duesseldorf.example", "pässwort"
# RFC 5322 msg-id: "<" dot-atom-text "@" dot-atom-text ">"
MSG_ID = re.compile(r"^<[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+>$")


def channel(port: int, *, to: list[str] | None = None, **settings: Any) -> EmailChannel:
    data: dict[str, Any] = {
        "type": "email",
        "host": "127.0.0.1",
        "port": port,
        "starttls": False,
        "from": SENDER,
        "to": to or [A, B, C],
    }
    data.update(settings)
    return EmailChannel.model_validate(data)


def adapter(port: int, *, timeout: float = 5.0, tls_cert: Path | None = None, **settings: Any):
    context = client_context(tls_cert) if tls_cert is not None else None
    return EmailAdapter(
        "mail", channel(port, **settings), None, timeout=timeout, tls_context=context
    )


@pytest.fixture
def mail(message: MakeMessage) -> MakeMessage:
    def make(**changes: Any) -> OutgoingMessage:
        fields: dict[str, Any] = {"title": TITLE, "text": TEXT, "idempotency_key": KEY}
        fields.update(changes)
        return message(**fields)

    return make


@pytest.fixture
async def smtp() -> AsyncIterator[FakeSmtp]:
    async with FakeSmtp.start() as server:
        yield server


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path)


@pytest.fixture
async def secure_smtp(certificate: tuple[Path, Path]) -> AsyncIterator[FakeSmtp]:
    async with FakeSmtp.start(
        tls=server_context(*certificate), credentials=(USER, PASSWORD)
    ) as server:
        yield server


def parts(mail: EmailMessage) -> tuple[str, str]:
    plain = mail.get_body(preferencelist=("plain",))
    rich = mail.get_body(preferencelist=("html",))
    assert isinstance(plain, EmailMessage)
    assert isinstance(rich, EmailMessage)
    return (
        str(plain.get_content()).replace("\r\n", "\n"),
        str(rich.get_content()).replace("\r\n", "\n"),
    )


def ident(value: Any) -> str | None:
    """A Message-ID-like header, unfolded: a long one is folded onto its own line."""
    return None if value is None else str(value).strip()


def only(transactions: list[Transaction], address: str) -> Transaction:
    [found] = [t for t in transactions if t.rcpt_tos == [address]]
    return found


# -- the messages --------------------------------------------------------------------------


async def test_one_mail_per_recipient_with_its_own_headers(
    smtp: FakeSmtp, mail: MakeMessage
) -> None:
    receipt = await adapter(smtp.port).send(mail())

    assert [t.rcpt_tos for t in smtp.messages] == [[A], [B], [C]]
    for address in (A, B, C):
        sent = only(smtp.messages, address)
        assert sent.mail_from == "alarm@feuerwehr-duesseldorf.example"
        assert not sent.tls
        assert sent.login is None
        parsed = sent.message
        assert parsed["From"] == SENDER
        assert parsed["To"] == address  # nobody sees the other recipients
        assert parsed["Subject"] == TITLE
        assert ident(parsed["Message-ID"]) == message_id(KEY, address, SENDER)
        assert parsed["Auto-Submitted"] == "auto-generated"
        assert parsed["X-Auto-Response-Suppress"] == "All"
        assert parsed["X-Broadcaster-Alert"] == "FW-DUS-2026-000123"
        assert parsed["Content-Language"] == "de"
        assert parsed["Date"] is not None
        assert ident(parsed["In-Reply-To"]) is None
        assert ident(parsed["References"]) is None
        assert parsed.get_content_type() == "multipart/alternative"
    # The umlauts of the subject travel as an RFC 2047 encoded word, the body as UTF-8.
    raw = smtp.messages[0].data
    assert b"Subject: =?utf-8?" in raw
    assert "Großbrand".encode() not in raw.split(b"\r\n\r\n")[0]
    assert receipt.recipients == Recipients(total=3, delivered=3, failed=0)


async def test_text_and_escaped_html(smtp: FakeSmtp, mail: MakeMessage) -> None:
    await adapter(smtp.port, to=[A]).send(mail())

    plain, rich = parts(smtp.messages[0].message)
    assert plain.rstrip("\n") == TEXT
    assert "Ackerstraße &lt;12&gt; &amp; Co<br>\nFenster und Türen schließen." in rich
    assert "<12>" not in rich
    assert "& Co" not in rich
    assert '<html lang="de">' in rich


async def test_receipt_keeps_every_message_id(smtp: FakeSmtp, mail: MakeMessage) -> None:
    receipt = await adapter(smtp.port).send(mail())

    ids = {
        address: ident(only(smtp.messages, address).message["Message-ID"]) for address in (A, B, C)
    }
    assert len(set(ids.values())) == 3
    assert all(MSG_ID.match(value or "") for value in ids.values())
    assert receipt.remote_id == ids[A]
    assert receipt.url is None
    assert receipt.data == {
        "delivered_to": [A, B, C],
        "ids": ids,
        "failed": {},
        "permanent": [],
    }


def test_message_id_is_stable_and_escapes_the_key() -> None:
    first = message_id("FW:1..x/ü", "A.Schmidt@Example.org", SENDER)

    assert first == message_id("FW:1..x/ü", "a.schmidt@example.org", SENDER)
    assert first != message_id("FW:1..x/ü", B, SENDER)
    assert first != message_id("FW-1..x/ü", "a.schmidt@example.org", SENDER)
    assert first.startswith("<FW=3A1=2E=2Ex=2F=C3=BC.")
    assert first.endswith("@feuerwehr-duesseldorf.example>")
    assert MSG_ID.match(first)


async def test_display_names_and_duplicates_in_the_list(smtp: FakeSmtp, mail: MakeMessage) -> None:
    named = "Bärbel Schmidt <baerbel@example.org>"

    receipt = await adapter(smtp.port, to=[named, A, named]).send(mail())

    assert [t.rcpt_tos for t in smtp.messages] == [["baerbel@example.org"], [A]]
    assert smtp.messages[0].message["To"] == named
    assert receipt.recipients == Recipients(total=2, delivered=2, failed=0)


async def test_subject_is_one_line(smtp: FakeSmtp, mail: MakeMessage) -> None:
    await adapter(smtp.port, to=[A]).send(mail(title="Großbrand\r\nBcc: everyone@example.org"))

    parsed = smtp.messages[0].message
    assert parsed["Subject"] == "Großbrand Bcc: everyone@example.org"
    assert parsed["Bcc"] is None
    assert smtp.messages[0].rcpt_tos == [A]


async def test_confirmation_request_carries_its_link(smtp: FakeSmtp, mail: MakeMessage) -> None:
    url = "https://alerts.example.org/confirm/tok-123?a=1&b=2"

    await adapter(smtp.port, to=[A]).send(mail(kind="confirmation_request", confirm_url=url))

    plain, rich = parts(smtp.messages[0].message)
    assert plain.rstrip("\n").endswith("\n\n" + url)
    escaped = url.replace("&", "&amp;")
    assert f'<a href="{escaped}">{escaped}</a>' in rich


# -- threading -----------------------------------------------------------------------------


async def test_a_later_stage_threads_under_each_recipients_first_mail(
    smtp: FakeSmtp, mail: MakeMessage
) -> None:
    sender = adapter(smtp.port)
    first = await sender.send(mail())

    await sender.send(
        mail(alert_id="FW-2", stage="update", idempotency_key="FW-2:mail", reply_to=first)
    )

    assert sender.can_thread
    for address in (A, B, C):
        original, update = [t.message for t in smtp.messages if t.rcpt_tos == [address]]
        assert ident(update["In-Reply-To"]) == ident(original["Message-ID"])
        assert ident(update["References"]) == ident(original["Message-ID"])
        assert ident(update["Message-ID"]) != ident(original["Message-ID"])
        assert update["X-Broadcaster-Alert"] == "FW-2"


async def test_a_recipient_added_later_threads_under_the_first_id(
    smtp: FakeSmtp, mail: MakeMessage
) -> None:
    first = Receipt(remote_id="<root@feuerwehr-duesseldorf.example>", data={"ids": {A: "<a@x>"}})

    await adapter(smtp.port, to=[A, B]).send(mail(reply_to=first))

    assert ident(only(smtp.messages, A).message["In-Reply-To"]) == "<a@x>"
    assert (
        ident(only(smtp.messages, B).message["In-Reply-To"])
        == "<root@feuerwehr-duesseldorf.example>"
    )


# -- TLS and authentication ----------------------------------------------------------------


async def test_starttls_then_auth(
    secure_smtp: FakeSmtp, certificate: tuple[Path, Path], mail: MakeMessage
) -> None:
    sender = adapter(
        secure_smtp.port,
        tls_cert=certificate[0],
        starttls=True,
        username=USER,
        password=PASSWORD,
    )

    receipt = await sender.send(mail())

    assert [t.tls for t in secure_smtp.messages] == [True, True, True]
    assert [t.login for t in secure_smtp.messages] == [USER, USER, USER]
    assert receipt.recipients == Recipients(total=3, delivered=3, failed=0)


async def test_an_untrusted_certificate_is_refused(
    secure_smtp: FakeSmtp, mail: MakeMessage
) -> None:
    # No tls_context: the system's trust store, which does not know the throwaway cert.
    sender = adapter(secure_smtp.port, starttls=True, username=USER, password=PASSWORD)

    with pytest.raises(PermanentError, match="certificate does not verify") as caught:
        await sender.send(mail())

    assert secure_smtp.transactions == []
    assert secure_smtp.auth_failures == 0  # the password never left
    assert caught.value.partial is not None
    assert caught.value.partial.recipients == Recipients(total=3, delivered=0, failed=3)


async def test_wrong_password_is_permanent_and_tried_once(
    secure_smtp: FakeSmtp, certificate: tuple[Path, Path], mail: MakeMessage
) -> None:
    sender = adapter(
        secure_smtp.port, tls_cert=certificate[0], starttls=True, username=USER, password="nope"
    )

    with pytest.raises(PermanentError, match=r"3 of 3 recipients not reached: 535 5\.7\.8"):
        await sender.send(mail())

    # One login per attempt, not one per recipient (3 x 2); aiosmtplib tries each
    # mechanism the server offers (PLAIN, LOGIN) before giving up.
    assert secure_smtp.auth_failures == 2
    assert secure_smtp.transactions == []


async def test_missing_credentials_are_permanent(
    secure_smtp: FakeSmtp, certificate: tuple[Path, Path], mail: MakeMessage
) -> None:
    sender = adapter(secure_smtp.port, tls_cert=certificate[0], starttls=True)

    with pytest.raises(PermanentError, match=r"530 5\.7\.0 Authentication required"):
        await sender.send(mail())

    assert secure_smtp.messages == []


async def test_server_requiring_starttls_refuses_plain_mail(
    secure_smtp: FakeSmtp, mail: MakeMessage
) -> None:
    with pytest.raises(PermanentError, match="530 Must issue a STARTTLS command first"):
        await adapter(secure_smtp.port, starttls=False).send(mail())

    assert secure_smtp.messages == []


async def test_starttls_wanted_but_not_offered_is_permanent(
    smtp: FakeSmtp, mail: MakeMessage
) -> None:
    with pytest.raises(PermanentError, match="STARTTLS extension not supported"):
        await adapter(smtp.port, starttls=True).send(mail())

    assert smtp.transactions == []


# -- several recipients --------------------------------------------------------------------


async def test_one_transient_refusal_then_a_retry_to_that_recipient_only(
    smtp: FakeSmtp, mail: MakeMessage
) -> None:
    smtp.refuse(B, 451, "4.3.0 Mailbox temporarily unavailable", times=1)
    sender = adapter(smtp.port)

    with pytest.raises(
        TransientError, match=r"1 of 3 recipients not reached: 451 4\.3\.0"
    ) as caught:
        await sender.send(mail())

    partial = caught.value.partial
    assert partial is not None
    assert caught.value.retry_after is None
    assert partial.recipients == Recipients(total=3, delivered=2, failed=1)
    assert partial.data["delivered_to"] == [A, C]
    assert partial.data["failed"] == {B: "451 4.3.0 Mailbox temporarily unavailable"}
    assert partial.data["permanent"] == []
    assert [t.rcpt_tos for t in smtp.messages] == [[A], [C]]

    receipt = await sender.send(mail(previous=partial))

    assert smtp.rcpt_attempts == [A, B, C, B]
    assert [t.rcpt_tos for t in smtp.messages] == [[A], [C], [B]]
    assert receipt.recipients == Recipients(total=3, delivered=3, failed=0)
    assert receipt.data["delivered_to"] == [A, B, C]
    assert receipt.data["ids"] == {
        address: ident(only(smtp.messages, address).message["Message-ID"]) for address in (A, B, C)
    }
    assert receipt.data["failed"] == {}
    assert receipt.remote_id == partial.remote_id


async def test_a_permanent_refusal_ends_the_delivery_with_the_others_reached(
    smtp: FakeSmtp, mail: MakeMessage
) -> None:
    smtp.refuse(C, 550, "5.1.1 <c.nowak@example.net>: Recipient address rejected: User unknown")

    with pytest.raises(PermanentError, match=r"550 5\.1\.1") as caught:
        await adapter(smtp.port).send(mail())

    partial = caught.value.partial
    assert partial is not None
    assert partial.recipients == Recipients(total=3, delivered=2, failed=1)
    assert partial.data["permanent"] == [C]
    assert "User unknown" in partial.data["failed"][C]
    assert [t.rcpt_tos for t in smtp.messages] == [[A], [B]]


async def test_permanent_refusals_are_not_retried(smtp: FakeSmtp, mail: MakeMessage) -> None:
    smtp.refuse(B, 452, "4.2.2 Mailbox full", times=1)
    smtp.refuse(C, 553, "5.7.1 Sender not allowed to this recipient")
    sender = adapter(smtp.port)

    with pytest.raises(TransientError) as first:
        await sender.send(mail())
    assert first.value.partial is not None
    assert first.value.partial.data["permanent"] == [C]

    with pytest.raises(PermanentError, match=r"1 of 3 recipients not reached: 553") as second:
        await sender.send(mail(previous=first.value.partial))

    assert smtp.rcpt_attempts == [A, B, C, B]
    assert second.value.partial is not None
    assert second.value.partial.recipients == Recipients(total=3, delivered=2, failed=1)
    assert second.value.partial.data["delivered_to"] == [A, B]


@pytest.mark.parametrize(
    ("code", "error"), [(451, TransientError), (554, PermanentError)], ids=["4xx", "5xx"]
)
async def test_a_refused_data_counts_for_that_recipient(
    smtp: FakeSmtp, mail: MakeMessage, code: int, error: type[Exception]
) -> None:
    smtp.fail_data(B, code, f"{code // 100}.6.0 Message content rejected")

    with pytest.raises(error, match=f"{code} {code // 100}.6.0") as caught:
        await adapter(smtp.port).send(mail())

    assert isinstance(caught.value, TransientError | PermanentError)
    assert caught.value.partial is not None
    assert caught.value.partial.data["delivered_to"] == [A, C]
    assert [t.rcpt_tos for t in smtp.transactions] == [[A], [B], [C]]


async def test_everyone_reached_before_sends_nothing(smtp: FakeSmtp, mail: MakeMessage) -> None:
    previous = Receipt(
        remote_id="<a@x>",
        data={"delivered_to": [A, B, C], "ids": {A: "<a@x>", B: "<b@x>", C: "<c@x>"}},
    )

    receipt = await adapter(smtp.port).send(mail(previous=previous))

    assert smtp.transactions == []
    assert receipt.recipients == Recipients(total=3, delivered=3, failed=0)
    assert receipt.data["ids"] == {A: "<a@x>", B: "<b@x>", C: "<c@x>"}


async def test_recipients_no_longer_configured_are_dropped(
    smtp: FakeSmtp, mail: MakeMessage
) -> None:
    previous = Receipt(data={"delivered_to": ["gone@example.org", A], "ids": {A: "<a@x>"}})

    receipt = await adapter(smtp.port, to=[A, B]).send(mail(previous=previous))

    assert [t.rcpt_tos for t in smtp.messages] == [[B]]
    assert receipt.data["delivered_to"] == [A, B]
    assert receipt.recipients == Recipients(total=2, delivered=2, failed=0)


# -- no answer -----------------------------------------------------------------------------


async def test_connection_refused_is_transient_for_everyone(mail: MakeMessage) -> None:
    with pytest.raises(TransientError, match="3 of 3 recipients not reached") as caught:
        await adapter(free_port()).send(mail())

    assert caught.value.partial is not None
    assert caught.value.partial.recipients == Recipients(total=3, delivered=0, failed=3)
    assert caught.value.partial.data["delivered_to"] == []


async def test_no_answer_to_data_is_transient_and_stops_the_attempt(
    smtp: FakeSmtp, mail: MakeMessage
) -> None:
    smtp.hold()

    with pytest.raises(TransientError, match=r"no answer within 0\.3s \(a\.schmidt") as caught:
        await adapter(smtp.port, timeout=0.3).send(mail())

    assert [t.rcpt_tos for t in smtp.transactions] == [[A]]
    assert caught.value.partial is not None
    assert set(caught.value.partial.data["failed"]) == {A, B, C}
    smtp.release()


async def test_a_held_mail_goes_out_on_release(smtp: FakeSmtp, mail: MakeMessage) -> None:
    smtp.hold()
    sending = asyncio.create_task(adapter(smtp.port, to=[A]).send(mail()))
    await smtp.wait_for_transactions(1)
    assert not sending.done()
    assert smtp.messages == []

    smtp.release()
    receipt = await sending

    assert receipt.recipients == Recipients(total=1, delivered=1, failed=0)
    assert len(smtp.messages) == 1


# -- retraction ----------------------------------------------------------------------------


async def test_mail_cannot_be_recalled(smtp: FakeSmtp) -> None:
    sender = adapter(smtp.port)

    with pytest.raises(PermanentError, match="cannot be recalled"):
        await sender.delete(Receipt(remote_id="<a@x>"))

    assert not sender.can_delete
    assert smtp.transactions == []
