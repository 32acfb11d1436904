"""The Telegram adapter against a fake Bot API over real sockets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest

from broadcaster.channels.base import OutgoingMessage, PermanentError, TransientError
from broadcaster.channels.settings import TelegramChannel
from broadcaster.channels.telegram import TelegramAdapter, escape_html
from broadcaster.models import Receipt
from tests.fakes.telegram import (
    CHANNEL,
    PRIVATE_CHANNEL,
    TOKEN,
    FakeTelegram,
    ok,
    telegram_error,
)
from tests.servers import free_port

MakeMessage = Callable[..., OutgoingMessage]
HEADLINE = "Großbrand in Düsseldorf-Flingern, Ackerstraße <12> & Co"


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram.start() as server:
        yield server


def telegram(
    session: aiohttp.ClientSession,
    base_url: str,
    *,
    chat_id: str | int = CHANNEL.username_ref,
    token: str = TOKEN,
    timeout: float = 10.0,
) -> TelegramAdapter:
    config = TelegramChannel(type="telegram", base_url=base_url, bot_token=token, chat_id=chat_id)
    return TelegramAdapter("tg", config, session, timeout=timeout)


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


# -- the request ---------------------------------------------------------------------------


async def test_posts_send_message_with_the_title_in_bold(
    session: aiohttp.ClientSession, fake: FakeTelegram, message: MakeMessage
) -> None:
    await telegram(session, fake.base_url).send(message())

    [request] = fake.requests
    assert request.method == "POST"
    assert request.path == f"/bot{TOKEN}/sendMessage"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.body) == {
        "chat_id": "@fw_duesseldorf_warn",
        "text": "<b>ÜBUNG: Großbrand in Flingern-Nord</b>\n\n"
        "ÜBUNG: Großbrand 🔥 Ackerstraße. Fenster und Türen schließen.",
        "parse_mode": "HTML",
        "link_preview_options": {"is_disabled": True},
    }
    assert "Großbrand 🔥 Ackerstraße".encode() in request.body  # UTF-8, not \u escapes
    assert request.status == 200


async def test_user_text_is_escaped_for_html_mode(
    session: aiohttp.ClientSession, fake: FakeTelegram, message: MakeMessage
) -> None:
    text = 'Rauch über <b>Flingern</b> & Grafenberg: "Fenster zu" > 3 km, &amp; mehr'

    await telegram(session, fake.base_url).send(message(title=HEADLINE, text=text))

    [request] = fake.requests
    assert request.params["text"] == (
        "<b>Großbrand in Düsseldorf-Flingern, Ackerstraße &lt;12&gt; &amp; Co</b>\n\n"
        'Rauch über &lt;b&gt;Flingern&lt;/b&gt; &amp; Grafenberg: "Fenster zu" &gt; 3 km, '
        "&amp;amp; mehr"
    )
    # What readers see: exactly the user's characters, only the headline bold.
    [posted] = fake.sent
    assert posted["text"] == f"{HEADLINE}\n\n{text}"
    assert posted["entities"] == [{"type": "bold", "offset": 0, "length": utf16(HEADLINE)}]


def test_escape_html_replaces_exactly_the_three_characters() -> None:
    assert escape_html("<a href=\"x\">'&'</a>") == "&lt;a href=\"x\"&gt;'&amp;'&lt;/a&gt;"


async def test_the_fake_refuses_unescaped_markup_like_telegram(
    session: aiohttp.ClientSession, fake: FakeTelegram
) -> None:
    """Why escaping matters: Telegram refuses the whole message, not just the tag."""
    url = f"{fake.base_url}/bot{TOKEN}/sendMessage"
    body = {"chat_id": CHANNEL.id, "text": f"<b>{HEADLINE}</b>", "parse_mode": "HTML"}

    async with session.post(url, json=body) as response:
        answer = await response.json()

    assert response.status == 400
    assert answer["ok"] is False
    assert answer["description"].startswith("Bad Request: can't parse entities: ")
    assert fake.sent == []


async def test_emoji_offsets_are_utf16_in_the_fakes_entities(
    session: aiohttp.ClientSession, fake: FakeTelegram, message: MakeMessage
) -> None:
    await telegram(session, fake.base_url).send(message(title="🔥 Großbrand", text="Türen zu"))

    [posted] = fake.sent
    assert posted["entities"] == [{"type": "bold", "offset": 0, "length": 12}]


async def test_confirmation_request_gets_its_link(
    session: aiohttp.ClientSession, fake: FakeTelegram, message: MakeMessage
) -> None:
    link = "https://alerts.example.org/confirm/abc?x=1&y=2"

    await telegram(session, fake.base_url).send(
        message(kind="confirmation_request", text="Bitte freigeben.", confirm_url=link)
    )

    assert fake.sent[0]["text"].endswith(f"Bitte freigeben.\n{link}")
    assert "confirm/abc?x=1&amp;y=2" in fake.requests[0].params["text"]


async def test_numeric_chat_id_from_the_environment_is_sent_as_a_number(
    session: aiohttp.ClientSession, fake: FakeTelegram, message: MakeMessage
) -> None:
    receipt = await telegram(session, fake.base_url, chat_id="-1009876543210").send(message())

    assert fake.requests[0].params["chat_id"] == -1009876543210
    assert receipt.url == "https://t.me/c/9876543210/1"
    assert receipt.data == {"chat_id": PRIVATE_CHANNEL.id, "message_id": 1}


# -- the receipt ---------------------------------------------------------------------------


async def test_receipt_of_a_public_channel(
    session: aiohttp.ClientSession, fake: FakeTelegram, message: MakeMessage
) -> None:
    adapter = telegram(session, fake.base_url)

    first = await adapter.send(message())
    second = await adapter.send(message(text="Zweite Meldung"))

    assert first == Receipt(
        remote_id="1",
        url="https://t.me/fw_duesseldorf_warn/1",
        data={"chat_id": CHANNEL.id, "message_id": 1},
    )
    assert second.remote_id == "2"
    assert second.url == "https://t.me/fw_duesseldorf_warn/2"


async def test_public_link_from_the_answers_username_for_a_numeric_chat_id(
    session: aiohttp.ClientSession, fake: FakeTelegram, message: MakeMessage
) -> None:
    receipt = await telegram(session, fake.base_url, chat_id=CHANNEL.id).send(message())

    assert receipt.url == "https://t.me/fw_duesseldorf_warn/1"


async def test_a_scheduled_message_has_no_usable_id(
    session: aiohttp.ClientSession, fake: FakeTelegram, message: MakeMessage
) -> None:
    fake.script(ok({"message_id": 0, "chat": CHANNEL.as_json(), "date": 1, "text": "x"}))

    receipt = await telegram(session, fake.base_url).send(message())

    assert receipt.remote_id is None
    assert receipt.url is None


async def test_the_same_message_twice_is_posted_twice(
    session: aiohttp.ClientSession, fake: FakeTelegram, message: MakeMessage
) -> None:
    """No idempotency in the Bot API: a retry after an ambiguous failure duplicates."""
    adapter = telegram(session, fake.base_url)

    await adapter.send(message())
    await adapter.send(message())

    assert len(fake.sent) == 2


# -- threading -----------------------------------------------------------------------------


async def test_reply_under_the_first_post(
    session: aiohttp.ClientSession, fake: FakeTelegram, message: MakeMessage
) -> None:
    adapter = telegram(session, fake.base_url)
    first = await adapter.send(message())

    update = await adapter.send(message(stage="update", text="Lage stabil", reply_to=first))

    assert adapter.can_thread
    assert fake.requests[1].params["reply_parameters"] == {
        "message_id": 1,
        "allow_sending_without_reply": True,
    }
    assert fake.sent[1]["reply_to_message"]["message_id"] == 1
    assert update.remote_id == "2"


async def test_reply_to_a_removed_post_is_posted_standalone(
    session: aiohttp.ClientSession, fake: FakeTelegram, message: MakeMessage
) -> None:
    adapter = telegram(session, fake.base_url)
    first = await adapter.send(message())
    fake.delete_by_admin(1)

    update = await adapter.send(message(text="Lage stabil", reply_to=first))

    assert update.remote_id == "2"
    assert "reply_to_message" not in fake.sent[1]


async def test_reply_to_a_receipt_without_message_id_in_data(
    session: aiohttp.ClientSession, fake: FakeTelegram, message: MakeMessage
) -> None:
    adapter = telegram(session, fake.base_url)
    await adapter.send(message())

    await adapter.send(message(text="Lage stabil", reply_to=Receipt(remote_id="1")))

    assert fake.sent[1]["reply_to_message"]["message_id"] == 1


# -- deletion ------------------------------------------------------------------------------


async def test_delete_calls_delete_message(
    session: aiohttp.ClientSession, fake: FakeTelegram, message: MakeMessage
) -> None:
    adapter = telegram(session, fake.base_url)
    receipt = await adapter.send(message())

    await adapter.delete(receipt)

    assert adapter.can_delete
    deletion = fake.requests[-1]
    assert deletion.path == f"/bot{TOKEN}/deleteMessage"
    assert deletion.params == {"chat_id": CHANNEL.id, "message_id": 1}
    assert deletion.status == 200
    assert fake.deleted == {(CHANNEL.id, 1)}
    assert fake.message(1) is None


async def test_delete_of_a_message_already_gone_succeeds(
    session: aiohttp.ClientSession, fake: FakeTelegram, message: MakeMessage
) -> None:
    adapter = telegram(session, fake.base_url)
    receipt = await adapter.send(message())
    fake.delete_by_admin(1)

    await adapter.delete(receipt)

    assert fake.requests[-1].status == 400  # "message to delete not found"


async def test_delete_of_an_old_message_is_permanent(
    session: aiohttp.ClientSession, fake: FakeTelegram, message: MakeMessage
) -> None:
    adapter = telegram(session, fake.base_url)
    receipt = await adapter.send(message())
    fake.too_old(1)

    with pytest.raises(PermanentError, match="message can't be deleted"):
        await adapter.delete(receipt)

    assert fake.message(1) is not None


async def test_delete_without_message_id_sends_nothing(
    session: aiohttp.ClientSession, fake: FakeTelegram
) -> None:
    with pytest.raises(PermanentError, match="no message id"):
        await telegram(session, fake.base_url).delete(Receipt(remote_id="abc"))

    assert fake.requests == []


async def test_delete_during_flood_control_is_transient(
    session: aiohttp.ClientSession, fake: FakeTelegram, message: MakeMessage
) -> None:
    adapter = telegram(session, fake.base_url)
    receipt = await adapter.send(message())
    fake.rate_limit(retry_after=3)

    with pytest.raises(TransientError) as caught:
        await adapter.delete(receipt)

    assert caught.value.retry_after == 3
    assert fake.message(1) is not None


# -- answers -------------------------------------------------------------------------------


async def test_flood_control_is_transient_with_retry_after(
    session: aiohttp.ClientSession, fake: FakeTelegram, message: MakeMessage
) -> None:
    fake.rate_limit(retry_after=7)

    with pytest.raises(TransientError, match="Too Many Requests: retry after 7") as caught:
        await telegram(session, fake.base_url).send(message())

    assert caught.value.retry_after == 7
    assert fake.sent == []


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_transient_and_a_retry_succeeds(
    session: aiohttp.ClientSession,
    fake: FakeTelegram,
    message: MakeMessage,
    status: int,
) -> None:
    adapter = telegram(session, fake.base_url)
    fake.script(status)

    with pytest.raises(TransientError, match=f"HTTP {status}") as caught:
        await adapter.send(message())
    receipt = await adapter.send(message())

    assert caught.value.retry_after is None
    assert receipt.remote_id == "1"
    assert len(fake.sent) == 1


async def test_a_proxys_html_error_page_is_transient(
    session: aiohttp.ClientSession, fake: FakeTelegram, message: MakeMessage
) -> None:
    from tests.fakes.telegram import Answer

    fake.script(Answer(502, b"<html><body>502 Bad Gateway</body></html>"))

    with pytest.raises(TransientError, match="HTTP 502"):
        await telegram(session, fake.base_url).send(message())


async def test_wrong_token_is_permanent_and_not_repeated_in_the_error(
    session: aiohttp.ClientSession, fake: FakeTelegram, message: MakeMessage
) -> None:
    secret = "987654321:WRONG-token"

    with pytest.raises(PermanentError, match="HTTP 401: Unauthorized") as caught:
        await telegram(session, fake.base_url, token=secret).send(message())

    assert secret not in caught.value.message
    assert fake.requests[0].status == 401


async def test_unknown_chat_is_permanent(
    session: aiohttp.ClientSession, fake: FakeTelegram, message: MakeMessage
) -> None:
    with pytest.raises(PermanentError, match="HTTP 400: Bad Request: chat not found"):
        await telegram(session, fake.base_url, chat_id="@no_such_channel").send(message())


async def test_kicked_bot_is_permanent(
    session: aiohttp.ClientSession, fake: FakeTelegram, message: MakeMessage
) -> None:
    fake.kick()

    with pytest.raises(PermanentError, match="HTTP 403: Forbidden: bot is not a member"):
        await telegram(session, fake.base_url).send(message())


async def test_parse_error_is_permanent(
    session: aiohttp.ClientSession, fake: FakeTelegram, message: MakeMessage
) -> None:
    fake.script(
        telegram_error(
            400, 'Bad Request: can\'t parse entities: Unsupported start tag "12" at byte offset 3'
        )
    )

    with pytest.raises(PermanentError, match="can't parse entities") as caught:
        await telegram(session, fake.base_url).send(message())

    assert not isinstance(caught.value, TransientError)


async def test_too_long_is_permanent(
    session: aiohttp.ClientSession, fake: FakeTelegram, message: MakeMessage
) -> None:
    with pytest.raises(PermanentError, match="message is too long"):
        await telegram(session, fake.base_url).send(message(text="ä" * 4096))


async def test_migrated_group_names_the_new_chat(
    session: aiohttp.ClientSession, fake: FakeTelegram, message: MakeMessage
) -> None:
    fake.script(
        telegram_error(
            400,
            "Bad Request: group chat was upgraded to a supergroup chat",
            migrate_to_chat_id=-1001111111111,
        )
    )

    with pytest.raises(PermanentError, match=r"now chat -1001111111111: change chat_id"):
        await telegram(session, fake.base_url).send(message())


async def test_wrong_base_url_is_permanent(
    session: aiohttp.ClientSession, fake: FakeTelegram, message: MakeMessage
) -> None:
    with pytest.raises(PermanentError, match="HTTP 404: Not Found"):
        await telegram(session, fake.base_url + "/telegram").send(message())


# -- no answer -----------------------------------------------------------------------------


async def test_no_answer_within_the_timeout_is_transient(
    session: aiohttp.ClientSession, fake: FakeTelegram, message: MakeMessage
) -> None:
    fake.hold()

    with pytest.raises(TransientError, match=r"no answer within 0\.05s"):
        await telegram(session, fake.base_url, timeout=0.05).send(message())

    assert len(fake.requests) == 1


async def test_connection_refused_is_transient(
    session: aiohttp.ClientSession, message: MakeMessage
) -> None:
    with pytest.raises(TransientError, match="telegram tg") as caught:
        await telegram(session, f"http://127.0.0.1:{free_port()}").send(message())

    assert TOKEN not in caught.value.message


async def test_invalid_url_is_permanent_without_the_token(
    session: aiohttp.ClientSession, message: MakeMessage
) -> None:
    with pytest.raises(PermanentError, match="invalid URL") as caught:
        await telegram(session, "api.telegram.org").send(message())

    assert TOKEN not in caught.value.message
    assert "<bot_token>" in caught.value.message


async def test_held_request_completes_on_release(
    session: aiohttp.ClientSession, fake: FakeTelegram, message: MakeMessage
) -> None:
    fake.hold()
    sending = asyncio.create_task(telegram(session, fake.base_url).send(message()))
    await fake.wait_for_requests(1)
    assert not sending.done()

    fake.release()
    receipt = await sending

    assert receipt.remote_id == "1"
