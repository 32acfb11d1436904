"""The SMS adapter against a fake Twilio Messages API over real sockets."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from broadcaster.channels.base import OutgoingMessage, PermanentError, TransientError
from broadcaster.channels.settings import SmsChannel
from broadcaster.channels.sms import SmsAdapter, gsm7_text
from broadcaster.limits import is_gsm7
from broadcaster.models import Receipt, Recipients
from tests.fakes.sms import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.servers import free_port

MakeMessage = Callable[..., OutgoingMessage]
SENDER = "+4921155550000"
N1, N2, N3 = "+4915100000001", "+4915100000002", "+4915100000003"
TEXT = "Großbrand in Düsseldorf-Flingern, Ackerstraße <12> & Co. Fenster schließen!"
SID = re.compile(r"^SM[0-9a-f]{32}$")


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio.start(senders={SENDER}) as server:
        yield server


@pytest.fixture
def sms(message: MakeMessage) -> MakeMessage:
    def make(**changes: Any) -> OutgoingMessage:
        fields: dict[str, Any] = {"text": TEXT, "idempotency_key": "FW-DUS-2026-000123:sms"}
        fields.update(changes)
        return message(**fields)

    return make


def adapter(
    session: aiohttp.ClientSession,
    base_url: str,
    *,
    to: list[str] | None = None,
    timeout: float = 5.0,
    **settings: Any,
) -> SmsAdapter:
    data: dict[str, Any] = {
        "type": "sms",
        "base_url": base_url,
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "from": SENDER,
        "to": to or [N1, N2, N3],
        # One request at a time, so these tests can name the order; test_sms_bulk.py
        # sends several at once.
        "max_in_flight": 1,
    }
    data.update(settings)
    return SmsAdapter("sms", SmsChannel.model_validate(data), session, timeout=timeout)


# -- the request ---------------------------------------------------------------------------


async def test_one_form_post_per_recipient(
    session: aiohttp.ClientSession, twilio: FakeTwilio, sms: MakeMessage
) -> None:
    await adapter(session, twilio.base_url).send(sms())

    assert [r.form["To"] for r in twilio.requests] == [N1, N2, N3]
    expected_auth = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    for request in twilio.requests:
        assert request.method == "POST"
        assert request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
        assert request.headers["Authorization"] == expected_auth
        assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
        assert set(request.form) == {"To", "From", "Body"}
        assert request.form["From"] == SENDER
        # Plain text: no HTML escaping, umlauts as they are (UTF-8, percent-encoded).
        assert request.form["Body"] == TEXT
        assert b"Gro%C3%9Fbrand" in request.body
        assert b"%3C12%3E+%26+Co" in request.body
        assert request.status == 201
    assert [twilio.sent_to(n) for n in (N1, N2, N3)] == [1, 1, 1]


async def test_receipt_keeps_every_sid(
    session: aiohttp.ClientSession, twilio: FakeTwilio, sms: MakeMessage
) -> None:
    receipt = await adapter(session, twilio.base_url).send(sms())

    sids = {m["to"]: m["sid"] for m in twilio.messages}
    assert all(SID.match(sid) for sid in sids.values())
    assert receipt.remote_id == sids[N1]
    assert receipt.url is None
    assert receipt.recipients == Recipients(total=3, delivered=3, failed=0)
    assert receipt.data == {
        "delivered_to": [N1, N2, N3],
        "ids": sids,
        "failed": {},
        "permanent": [],
        "segments": {N1: 1, N2: 1, N3: 1},
    }


async def test_typography_is_made_gsm7_and_umlauts_stay(
    session: aiohttp.ClientSession, twilio: FakeTwilio, sms: MakeMessage
) -> None:
    text = "„Rauch“ über Flingern – Fenster zu… ‚bitte‘\u00a0jetzt"

    await adapter(session, twilio.base_url, to=[N1]).send(sms(text=text))

    body = twilio.requests[0].form["Body"]
    assert body == "\"Rauch\" über Flingern - Fenster zu... 'bitte' jetzt"
    assert is_gsm7(body)
    assert twilio.messages[0]["num_segments"] == "1"


def test_gsm7_text_leaves_ucs2_texts_alone() -> None:
    already = "Großbrand: Fenster schließen! {ÄÖÜ} 100 €"
    with_emoji = "„Rauch“ 🔥 – Fenster zu"
    cyrillic = "Пожар – окна закрыть"

    assert gsm7_text(already) == already
    assert gsm7_text(with_emoji) == with_emoji
    assert gsm7_text(cyrillic) == cyrillic
    assert gsm7_text("Türen\tzu\u00ad—jetzt\u200b") == "Türen zu-jetzt"


async def test_confirmation_request_carries_its_link(
    session: aiohttp.ClientSession, twilio: FakeTwilio, sms: MakeMessage
) -> None:
    url = "https://alerts.example.org/confirm/tok-123"

    await adapter(session, twilio.base_url, to=[N1]).send(
        sms(kind="confirmation_request", confirm_url=url, text="Bitte freigeben:")
    )

    assert twilio.requests[0].form["Body"] == f"Bitte freigeben:\n{url}"


async def test_base_url_with_a_trailing_slash(
    session: aiohttp.ClientSession, twilio: FakeTwilio, sms: MakeMessage
) -> None:
    await adapter(session, twilio.base_url + "/", to=[N1]).send(sms())

    assert twilio.requests[0].path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert twilio.requests[0].status == 201


# -- several recipients --------------------------------------------------------------------


async def test_one_transient_failure_then_a_retry_to_that_number_only(
    session: aiohttp.ClientSession, twilio: FakeTwilio, sms: MakeMessage
) -> None:
    twilio.fail_number(N3, 20500, times=1)
    sender = adapter(session, twilio.base_url)

    with pytest.raises(
        TransientError, match=r"1 of 3 recipients not reached: HTTP 500 20500"
    ) as caught:
        await sender.send(sms())

    partial = caught.value.partial
    assert partial is not None
    assert partial.recipients == Recipients(total=3, delivered=2, failed=1)
    assert partial.data["delivered_to"] == [N1, N2]
    assert set(partial.data["failed"]) == {N3}
    assert partial.data["permanent"] == []

    receipt = await sender.send(sms(previous=partial))

    posts = [r.form["To"] for r in twilio.requests if r.method == "POST"]
    assert posts == [N1, N2, N3, N3]
    # A 5xx may have created it after all: looked up first, then sent.
    assert [q["To"] for q in twilio.lists] == [N3]
    assert [twilio.sent_to(n) for n in (N1, N2, N3)] == [1, 1, 1]
    assert receipt.recipients == Recipients(total=3, delivered=3, failed=0)
    assert receipt.data["ids"] == {m["to"]: m["sid"] for m in twilio.messages}
    assert receipt.data["segments"] == {N1: 1, N2: 1, N3: 1}
    assert receipt.remote_id == partial.remote_id


async def test_a_5xx_for_one_number_does_not_stop_the_others(
    session: aiohttp.ClientSession, twilio: FakeTwilio, sms: MakeMessage
) -> None:
    twilio.fail_number(N2, 20503, times=1)

    with pytest.raises(TransientError, match="HTTP 503") as caught:
        await adapter(session, twilio.base_url).send(sms())

    assert caught.value.partial is not None
    assert caught.value.partial.data["delivered_to"] == [N1, N3]
    assert [r.form["To"] for r in twilio.requests] == [N1, N2, N3]


async def test_rate_limit_stops_the_attempt(
    session: aiohttp.ClientSession, twilio: FakeTwilio, sms: MakeMessage
) -> None:
    sender = adapter(session, twilio.base_url)
    twilio.fail_number(N2, 20429, times=1)

    with pytest.raises(TransientError, match="HTTP 429 20429: Too Many Requests") as caught:
        await sender.send(sms())

    assert caught.value.retry_after is None  # Twilio sends no Retry-After
    assert [r.form["To"] for r in twilio.requests] == [N1, N2]  # N3 not tried
    partial = caught.value.partial
    assert partial is not None
    assert partial.data["delivered_to"] == [N1]
    assert set(partial.data["failed"]) == {N2, N3}
    assert partial.recipients == Recipients(total=3, delivered=1, failed=2)

    receipt = await sender.send(sms(previous=partial))

    assert [r.form["To"] for r in twilio.requests] == [N1, N2, N2, N3]
    assert receipt.recipients == Recipients(total=3, delivered=3, failed=0)


async def test_a_retry_after_is_honoured_when_present(
    session: aiohttp.ClientSession, twilio: FakeTwilio, sms: MakeMessage
) -> None:
    twilio.rate_limit(retry_after="7")

    with pytest.raises(TransientError) as caught:
        await adapter(session, twilio.base_url).send(sms())

    assert caught.value.retry_after == 7
    assert len(twilio.requests) == 1


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (21211, "Invalid 'To' Phone Number"),
        (21408, "Permission to send an SMS has not been enabled"),
        (21610, "Attempt to send to unsubscribed recipient"),
        (21612, "is not currently reachable"),
        (21614, "is not a valid mobile number"),
    ],
)
async def test_a_refused_number_is_permanent_for_that_number_only(
    session: aiohttp.ClientSession, twilio: FakeTwilio, sms: MakeMessage, code: int, words: str
) -> None:
    twilio.fail_number(N2, code)
    sender = adapter(session, twilio.base_url)

    with pytest.raises(PermanentError, match=f"HTTP 400 {code}: .*{re.escape(words)}") as caught:
        await sender.send(sms())

    partial = caught.value.partial
    assert partial is not None
    assert partial.recipients == Recipients(total=3, delivered=2, failed=1)
    assert partial.data["delivered_to"] == [N1, N3]
    assert partial.data["permanent"] == [N2]

    # A later attempt with this partial result sends nothing more.
    with pytest.raises(PermanentError):
        await sender.send(sms(previous=partial))
    assert len(twilio.requests) == 3


async def test_transient_and_permanent_together(
    session: aiohttp.ClientSession, twilio: FakeTwilio, sms: MakeMessage
) -> None:
    twilio.fail_number(N1, 21610)
    twilio.fail_number(N2, 20503, times=1)
    sender = adapter(session, twilio.base_url)

    with pytest.raises(TransientError) as first:
        await sender.send(sms())
    assert first.value.partial is not None
    assert first.value.partial.data["permanent"] == [N1]

    with pytest.raises(PermanentError, match=r"1 of 3 recipients not reached: .*21610") as second:
        await sender.send(sms(previous=first.value.partial))

    assert [r.form["To"] for r in twilio.requests if r.method == "POST"] == [N1, N2, N3, N2]
    assert [q["To"] for q in twilio.lists] == [N2]  # the 503 looked up before the retry
    assert second.value.partial is not None
    assert second.value.partial.data["delivered_to"] == [N2, N3]


async def test_wrong_credentials_stop_at_the_first_request(
    session: aiohttp.ClientSession, twilio: FakeTwilio, sms: MakeMessage
) -> None:
    sender = adapter(session, twilio.base_url, auth_token="wrong")

    with pytest.raises(
        PermanentError, match="3 of 3 recipients not reached: HTTP 401 20003: Authenticate"
    ) as caught:
        await sender.send(sms())

    assert len(twilio.requests) == 1
    assert twilio.messages == []
    assert caught.value.partial is not None
    assert caught.value.partial.recipients == Recipients(total=3, delivered=0, failed=3)
    assert caught.value.partial.data["permanent"] == [N1, N2, N3]


@pytest.mark.parametrize(
    ("settings", "text", "expected"),
    [
        ({"account_sid": "AC" + "f" * 32}, TEXT, "HTTP 401 20003"),  # not this account's token
        ({"from": "+4921155559999"}, TEXT, "HTTP 400 21606"),  # not our number
        ({}, "x" * 1601, "HTTP 400 21617: The concatenated message body exceeds"),
    ],
    ids=["other-account", "foreign-sender", "too-long"],
)
async def test_errors_of_the_whole_message_stop_at_the_first_request(
    session: aiohttp.ClientSession,
    twilio: FakeTwilio,
    sms: MakeMessage,
    settings: dict[str, Any],
    text: str,
    expected: str,
) -> None:
    with pytest.raises(PermanentError, match=expected):
        await adapter(session, twilio.base_url, **settings).send(sms(text=text))

    assert len(twilio.requests) == 1
    assert twilio.messages == []


async def test_wrong_path_is_permanent(
    session: aiohttp.ClientSession, twilio: FakeTwilio, sms: MakeMessage
) -> None:
    with pytest.raises(PermanentError, match="HTTP 404 20404: The requested resource /v1"):
        await adapter(session, twilio.base_url + "/v1").send(sms())

    assert len(twilio.requests) == 1


async def test_an_error_without_twilio_body_stops_the_attempt(
    session: aiohttp.ClientSession, twilio: FakeTwilio, sms: MakeMessage
) -> None:
    twilio.script((400, {"Content-Type": "text/html"}, "<html>Bad Request</html>"))

    with pytest.raises(PermanentError, match=r"HTTP 400: <html>Bad Request</html>"):
        await adapter(session, twilio.base_url).send(sms())

    assert len(twilio.requests) == 1


async def test_a_redirect_is_not_followed(
    session: aiohttp.ClientSession, twilio: FakeTwilio, sms: MakeMessage
) -> None:
    twilio.script((301, {"Location": "https://api.twilio.com/"}, ""))

    with pytest.raises(PermanentError, match="HTTP 301"):
        await adapter(session, twilio.base_url).send(sms())

    assert len(twilio.requests) == 1


async def test_success_without_a_sid_still_counts(
    session: aiohttp.ClientSession, twilio: FakeTwilio, sms: MakeMessage
) -> None:
    twilio.script((201, {"Content-Type": "application/json"}, {"status": "queued"}))

    receipt = await adapter(session, twilio.base_url).send(sms())

    assert receipt.recipients == Recipients(total=3, delivered=3, failed=0)
    assert set(receipt.data["ids"]) == {N2, N3}
    assert receipt.remote_id == receipt.data["ids"][N2]


async def test_everyone_reached_before_sends_nothing(
    session: aiohttp.ClientSession, twilio: FakeTwilio, sms: MakeMessage
) -> None:
    previous = Receipt(
        remote_id="SM1",
        data={
            "delivered_to": [N1, N2, N3],
            "ids": {N1: "SM1", N2: "SM2", N3: "SM3"},
            "segments": {N1: 2, N2: 2, N3: 2},
        },
    )

    receipt = await adapter(session, twilio.base_url).send(sms(previous=previous))

    assert twilio.requests == []
    assert receipt.remote_id == "SM1"
    assert receipt.data["segments"] == {N1: 2, N2: 2, N3: 2}


# -- no answer -----------------------------------------------------------------------------


async def test_connection_refused_is_transient_and_stops(
    session: aiohttp.ClientSession, sms: MakeMessage
) -> None:
    with pytest.raises(TransientError, match="3 of 3 recipients not reached") as caught:
        await adapter(session, f"http://127.0.0.1:{free_port()}").send(sms())

    assert caught.value.partial is not None
    assert caught.value.partial.recipients == Recipients(total=3, delivered=0, failed=3)


async def test_no_answer_within_the_timeout_is_transient_and_stops(
    session: aiohttp.ClientSession, twilio: FakeTwilio, sms: MakeMessage
) -> None:
    twilio.hold()

    with pytest.raises(TransientError, match=r"no answer within 0\.05s") as caught:
        await adapter(session, twilio.base_url, timeout=0.05).send(sms())

    assert len(twilio.requests) == 1
    assert caught.value.partial is not None
    assert set(caught.value.partial.data["failed"]) == {N1, N2, N3}


async def test_a_held_request_completes_on_release(
    session: aiohttp.ClientSession, twilio: FakeTwilio, sms: MakeMessage
) -> None:
    twilio.hold()
    sending = asyncio.create_task(adapter(session, twilio.base_url, to=[N1]).send(sms()))
    await twilio.wait_for_requests(1)
    assert not sending.done()

    twilio.release()
    receipt = await sending

    assert receipt.remote_id == twilio.messages[0]["sid"]


# -- threads and retraction ----------------------------------------------------------------


async def test_sms_has_no_threads_and_cannot_be_recalled(
    session: aiohttp.ClientSession, twilio: FakeTwilio
) -> None:
    sender = adapter(session, twilio.base_url)

    with pytest.raises(PermanentError, match="cannot be recalled"):
        await sender.delete(Receipt(remote_id="SM" + "0" * 32))

    assert not sender.can_thread
    assert not sender.can_delete
    assert twilio.requests == []


async def test_an_account_sid_with_a_colon_is_refused_without_a_request(
    session: aiohttp.ClientSession, twilio: FakeTwilio, sms: MakeMessage
) -> None:
    with pytest.raises(PermanentError, match="account_sid must not contain ':'"):
        await adapter(session, twilio.base_url, account_sid="AC:1").send(sms())

    assert twilio.requests == []
