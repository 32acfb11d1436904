"""The Mastodon adapter against a fake instance over real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

import aiohttp
import pytest

from broadcaster.channels.base import OutgoingMessage, PermanentError, TransientError
from broadcaster.channels.mastodon import MastodonAdapter, reset_wait
from broadcaster.channels.settings import MastodonChannel
from broadcaster.models import Receipt
from tests.fakes.mastodon import TOKEN, FakeMastodon
from tests.servers import free_port

MakeMessage = Callable[..., OutgoingMessage]
TEXT = "Großbrand in Düsseldorf-Flingern, Ackerstraße <12> & Co: Fenster schließen! 🔥"


@pytest.fixture
async def fake() -> AsyncIterator[FakeMastodon]:
    async with FakeMastodon.start() as server:
        yield server


@pytest.fixture
def toot(message: MakeMessage) -> MakeMessage:
    """The sample message as a Mastodon delivery."""

    def make(**changes: object) -> OutgoingMessage:
        fields: dict[str, object] = {"text": TEXT, "idempotency_key": "FW-DUS-2026-000123:masto"}
        return message(**{**fields, **changes})

    return make


def mastodon(
    session: aiohttp.ClientSession,
    base_url: str,
    *,
    token: str = TOKEN,
    visibility: str = "public",
    timeout: float = 10.0,
) -> MastodonAdapter:
    config = MastodonChannel.model_validate(
        {"type": "mastodon", "base_url": base_url, "access_token": token, "visibility": visibility}
    )
    return MastodonAdapter("masto", config, session, timeout=timeout)


# -- the request ---------------------------------------------------------------------------


async def test_posts_the_status_as_form_data(
    session: aiohttp.ClientSession, fake: FakeMastodon, toot: MakeMessage
) -> None:
    await mastodon(session, fake.base_url + "/").send(toot())

    [request] = fake.requests
    assert request.method == "POST"
    assert request.path == "/api/v1/statuses"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Idempotency-Key"] == "FW-DUS-2026-000123:masto"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    # The exact fields, decoded from the bytes on the wire: the text verbatim (UTF-8,
    # no HTML escaping: a status is plain text), no reply field.
    assert parse_qsl(request.body.decode("ascii"), strict_parsing=True) == [
        ("status", TEXT),
        ("visibility", "public"),
        ("language", "de"),
    ]
    assert request.status == 200


async def test_the_instance_escapes_the_text_itself(
    session: aiohttp.ClientSession, fake: FakeMastodon, toot: MakeMessage
) -> None:
    await mastodon(session, fake.base_url).send(toot())

    [status] = fake.posts
    assert status["text"] == TEXT
    assert status["content"] == (
        "<p>Großbrand in Düsseldorf-Flingern, Ackerstraße &lt;12&gt; &amp; Co: "
        "Fenster schließen! 🔥</p>"
    )
    assert status["language"] == "de"


async def test_visibility_and_language_follow_config_and_message(
    session: aiohttp.ClientSession, fake: FakeMastodon, toot: MakeMessage
) -> None:
    await mastodon(session, fake.base_url, visibility="unlisted").send(toot(language="en"))

    [request] = fake.requests
    assert request.params["visibility"] == "unlisted"
    assert request.params["language"] == "en"
    assert fake.posts[0]["visibility"] == "unlisted"


async def test_receipt_names_the_status(
    session: aiohttp.ClientSession, fake: FakeMastodon, toot: MakeMessage
) -> None:
    receipt = await mastodon(session, fake.base_url).send(toot())

    [status] = fake.posts
    assert receipt.remote_id == status["id"]
    assert receipt.url == f"https://social.example/@feuerwehr_dus/{status['id']}"
    assert receipt.data == {"status_id": status["id"], "uri": status["uri"]}


async def test_reply_goes_under_the_first_status(
    session: aiohttp.ClientSession, fake: FakeMastodon, toot: MakeMessage
) -> None:
    adapter = mastodon(session, fake.base_url)
    first = await adapter.send(toot())

    reply = await adapter.send(
        toot(stage="update", text="Entwarnung", idempotency_key="FW-2:masto", reply_to=first)
    )

    assert adapter.can_thread
    assert fake.requests[1].params["in_reply_to_id"] == first.remote_id
    assert fake.posts[1]["in_reply_to_id"] == first.remote_id
    assert reply.remote_id == fake.posts[1]["id"] != first.remote_id


async def test_reply_to_a_status_that_is_gone_is_permanent(
    session: aiohttp.ClientSession, fake: FakeMastodon, toot: MakeMessage
) -> None:
    gone = Receipt(remote_id="109999", data={"status_id": "109999"})

    with pytest.raises(PermanentError) as caught:
        await mastodon(session, fake.base_url).send(toot(reply_to=gone))

    assert "HTTP 404" in caught.value.message
    assert "The post you are trying to reply to does not appear to exist." in caught.value.message
    assert "109999" in caught.value.message
    assert fake.posts == []


# -- idempotency ---------------------------------------------------------------------------


async def test_the_same_key_twice_is_one_status(
    session: aiohttp.ClientSession, fake: FakeMastodon, toot: MakeMessage
) -> None:
    adapter = mastodon(session, fake.base_url)

    first = await adapter.send(toot())
    again = await adapter.send(toot())

    assert again == first
    assert len(fake.requests) == 2
    assert len(fake.posts) == 1
    assert fake.requests[1].replayed


async def test_lost_answer_then_retry_posts_once(
    session: aiohttp.ClientSession, fake: FakeMastodon, toot: MakeMessage
) -> None:
    """The status was made but the answer lost (a proxy's 504): the retry gets it back."""
    adapter = mastodon(session, fake.base_url)
    fake.answer_after_commit(504)

    with pytest.raises(TransientError, match="HTTP 504"):
        await adapter.send(toot())
    receipt = await adapter.send(toot())

    assert len(fake.posts) == 1
    assert receipt.remote_id == fake.posts[0]["id"]
    assert fake.requests[1].replayed


async def test_timeout_then_retry_posts_once(
    session: aiohttp.ClientSession, fake: FakeMastodon, toot: MakeMessage
) -> None:
    fake.hold()
    with pytest.raises(TransientError, match=r"no answer within 0\.05s"):
        await mastodon(session, fake.base_url, timeout=0.05).send(toot())
    # While the instance still works on it, the key is locked: 503, transient.
    with pytest.raises(TransientError, match="HTTP 503: There was a temporary problem"):
        await mastodon(session, fake.base_url, timeout=0.05).send(toot())

    fake.release()
    await fake.wait_for_answers(2)
    receipt = await mastodon(session, fake.base_url).send(toot())

    assert len(fake.posts) == 1
    assert receipt.remote_id == fake.posts[0]["id"]
    assert fake.requests[-1].replayed


async def test_held_request_completes_on_release(
    session: aiohttp.ClientSession, fake: FakeMastodon, toot: MakeMessage
) -> None:
    fake.hold()
    sending = asyncio.create_task(mastodon(session, fake.base_url).send(toot()))
    await fake.wait_for_requests(1)
    assert not sending.done()

    fake.release()
    receipt = await sending

    assert receipt.remote_id == fake.posts[0]["id"]


# -- deletion ------------------------------------------------------------------------------


async def test_delete_removes_the_status(
    session: aiohttp.ClientSession, fake: FakeMastodon, toot: MakeMessage
) -> None:
    adapter = mastodon(session, fake.base_url)
    receipt = await adapter.send(toot())
    assert receipt.remote_id is not None

    await adapter.delete(receipt)

    assert adapter.can_delete
    assert fake.deleted == {receipt.remote_id}
    assert fake.statuses == {}
    deletion = fake.requests[-1]
    assert deletion.method == "DELETE"
    assert deletion.path == f"/api/v1/statuses/{receipt.remote_id}"
    assert deletion.headers["Authorization"] == f"Bearer {TOKEN}"
    assert "Idempotency-Key" not in deletion.headers
    assert deletion.status == 200


async def test_delete_of_a_status_already_gone_succeeds(
    session: aiohttp.ClientSession, fake: FakeMastodon, toot: MakeMessage
) -> None:
    adapter = mastodon(session, fake.base_url)
    receipt = await adapter.send(toot())
    await adapter.delete(receipt)

    await adapter.delete(receipt)  # 404 Record not found: already retracted
    await adapter.delete(Receipt(remote_id="1", data={"status_id": "1"}))

    assert [r.status for r in fake.requests] == [200, 200, 404, 404]


async def test_delete_without_status_id_sends_nothing(
    session: aiohttp.ClientSession, fake: FakeMastodon
) -> None:
    with pytest.raises(PermanentError, match="no status id"):
        await mastodon(session, fake.base_url).delete(Receipt())
    assert fake.requests == []


async def test_delete_limit_is_transient_with_the_reset_wait(
    session: aiohttp.ClientSession, toot: MakeMessage
) -> None:
    async with FakeMastodon.start(delete_limit=1) as fake:
        adapter = mastodon(session, fake.base_url)
        first = await adapter.send(toot())
        second = await adapter.send(toot(idempotency_key="other:masto"))
        await adapter.delete(first)

        with pytest.raises(TransientError, match="HTTP 429: Too many requests") as caught:
            await adapter.delete(second)

    assert caught.value.retry_after is not None
    assert 0 < caught.value.retry_after <= 1800
    assert second.remote_id in fake.statuses


async def test_delete_errors_other_than_404_are_classified(
    session: aiohttp.ClientSession, fake: FakeMastodon
) -> None:
    receipt = Receipt(remote_id="1", data={"status_id": "1"})
    fake.script(502)
    with pytest.raises(TransientError, match="HTTP 502"):
        await mastodon(session, fake.base_url).delete(receipt)
    with pytest.raises(PermanentError, match="HTTP 401: The access token is invalid"):
        await mastodon(session, fake.base_url, token="wrong").delete(receipt)


# -- answers -------------------------------------------------------------------------------


async def test_429_waits_until_x_ratelimit_reset(
    session: aiohttp.ClientSession, fake: FakeMastodon, toot: MakeMessage
) -> None:
    fake.rate_limit(reset_in=90)

    with pytest.raises(TransientError, match="HTTP 429: Too many requests") as caught:
        await mastodon(session, fake.base_url).send(toot())

    [request] = fake.requests
    assert request.status == 429
    assert caught.value.retry_after is not None
    assert 85 < caught.value.retry_after <= 90
    assert fake.posts == []


async def test_answers_carry_rate_limit_headers_but_no_retry_after(
    session: aiohttp.ClientSession, fake: FakeMastodon
) -> None:
    # What the fake sends, checked once: the shape the adapter's reset_wait reads.
    async with session.get(f"{fake.base_url}/api/v1/statuses/1") as answer:
        headers = answer.headers
    assert headers["X-RateLimit-Limit"] == "300"
    assert headers["X-RateLimit-Remaining"] == "299"
    assert datetime.strptime(headers["X-RateLimit-Reset"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert "Retry-After" not in headers


def test_reset_wait_reads_mastodons_iso_time() -> None:
    now = datetime(2026, 11, 23, 10, 20, 0, tzinfo=UTC)

    assert reset_wait({"X-RateLimit-Reset": "2026-11-23T10:25:00.019685Z"}, now=now) == (
        pytest.approx(300.019685)
    )
    assert reset_wait({"X-RateLimit-Reset": "2026-11-23T10:19:00.000000Z"}, now=now) == 0.0
    assert reset_wait({"X-RateLimit-Reset": "2026-11-23T11:25:00+01:00"}, now=now) == 300.0
    assert reset_wait({"X-RateLimit-Reset": "soon", "Retry-After": "7"}, now=now) == 7.0
    assert reset_wait({}, now=now) is None


@pytest.mark.parametrize(
    ("setup", "status", "words"),
    [
        (lambda fake: fake.disable_account(), 403, "Your login is currently disabled"),
        (
            lambda fake: fake.fail_permanently(403, "This action is outside the authorized scopes"),
            403,
            "This action is outside the authorized scopes",
        ),
        (
            lambda fake: fake.fail_permanently(422, "Validation failed: Text can't be blank"),
            422,
            "Validation failed: Text can't be blank",
        ),
    ],
)
async def test_refusals_are_permanent_with_mastodons_words(
    session: aiohttp.ClientSession,
    fake: FakeMastodon,
    toot: MakeMessage,
    setup: Callable[[FakeMastodon], None],
    status: int,
    words: str,
) -> None:
    setup(fake)

    with pytest.raises(PermanentError) as caught:
        await mastodon(session, fake.base_url).send(toot())

    assert caught.value.message == f"mastodon masto: HTTP {status}: {words}"
    assert fake.posts == []


async def test_wrong_token_is_permanent(
    session: aiohttp.ClientSession, fake: FakeMastodon, toot: MakeMessage
) -> None:
    with pytest.raises(PermanentError, match="HTTP 401: The access token is invalid"):
        await mastodon(session, fake.base_url, token="revoked").send(toot())
    assert fake.requests[0].headers["Authorization"] == "Bearer revoked"
    assert fake.posts == []


async def test_too_long_is_permanent(session: aiohttp.ClientSession, toot: MakeMessage) -> None:
    # 480 letters + a URL (23) = 503 > 500, although the URL itself is longer.
    text = "ß" * 480 + " https://www.duesseldorf.de/feuerwehr/einsatz/2026-000123"
    async with FakeMastodon.start() as fake:
        with pytest.raises(PermanentError) as caught:
            await mastodon(session, fake.base_url).send(toot(text=text))
        await mastodon(session, fake.base_url).send(toot(text=text[20:]))

    assert caught.value.message == (
        "mastodon masto: HTTP 422: Validation failed: Text character limit of 500 exceeded"
    )
    assert len(fake.posts) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
async def test_server_errors_are_transient(
    session: aiohttp.ClientSession, fake: FakeMastodon, toot: MakeMessage, status: int
) -> None:
    fake.script(status)

    with pytest.raises(TransientError, match=f"HTTP {status}") as caught:
        await mastodon(session, fake.base_url).send(toot())

    assert caught.value.retry_after is None
    receipt = await mastodon(session, fake.base_url).send(toot())
    assert receipt.remote_id == fake.posts[0]["id"]


async def test_503_with_retry_after_keeps_it(
    session: aiohttp.ClientSession, fake: FakeMastodon, toot: MakeMessage
) -> None:
    fake.script((503, {"Retry-After": "30"}))

    with pytest.raises(TransientError) as caught:
        await mastodon(session, fake.base_url).send(toot())

    assert caught.value.retry_after == 30


async def test_wrong_base_url_is_permanent(
    session: aiohttp.ClientSession, fake: FakeMastodon, toot: MakeMessage
) -> None:
    with pytest.raises(PermanentError, match="HTTP 404: Record not found"):
        await mastodon(session, fake.base_url + "/mastodon").send(toot())


async def test_success_without_a_status_is_permanent(
    session: aiohttp.ClientSession, fake: FakeMastodon, toot: MakeMessage
) -> None:
    fake.script((200, {"Content-Type": "text/html"}, "<html>Welcome</html>"))

    with pytest.raises(PermanentError, match="no status id in the answer: <html>Welcome"):
        await mastodon(session, fake.base_url).send(toot())


async def test_connection_refused_is_transient(
    session: aiohttp.ClientSession, toot: MakeMessage
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(TransientError, match="mastodon masto"):
        await mastodon(session, closed).send(toot())


def test_reset_wait_in_the_future_is_positive() -> None:
    reset = datetime.now(UTC) + timedelta(seconds=60)
    wait = reset_wait({"X-RateLimit-Reset": reset.strftime("%Y-%m-%dT%H:%M:%S.%fZ")})
    assert wait is not None
    assert 55 < wait <= 60
