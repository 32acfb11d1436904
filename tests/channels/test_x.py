"""The X adapter against a fake X API v2 (OAuth 1.0a verified) over real sockets."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict

from broadcaster.channels.base import OutgoingMessage, PermanentError, TransientError
from broadcaster.channels.settings import XChannel
from broadcaster.channels.x import XAdapter, reset_wait
from broadcaster.models import Receipt
from tests.fakes.x import (
    ACCESS_TOKEN,
    API_KEY,
    Answer,
    FakeX,
    hmac_sha1,
    signature_base_string,
)
from tests.servers import free_port

MakeMessage = Callable[..., OutgoingMessage]
GERMAN = "Großbrand in Düsseldorf-Flingern, Ackerstraße <12> & Co – „Fenster schließen“"


@pytest.fixture
async def fake() -> AsyncIterator[FakeX]:
    async with FakeX.start() as server:
        yield server


def x(
    session: aiohttp.ClientSession,
    fake: FakeX,
    *,
    base_url: str | None = None,
    timeout: float = 10.0,
    credentials: dict[str, str] | None = None,
) -> XAdapter:
    keys = {**fake.credentials, **(credentials or {})}
    config = XChannel(type="x", base_url=base_url or fake.base_url, **keys)
    return XAdapter("x", config, session, timeout=timeout)


# -- the request ---------------------------------------------------------------------------


async def test_posts_the_text_signed_with_oauth1(
    session: aiohttp.ClientSession, fake: FakeX, message: MakeMessage
) -> None:
    await x(session, fake).send(message(text=GERMAN))

    [request] = fake.requests
    assert request.method == "POST"
    assert request.path == "/2/tweets"
    assert request.headers["Content-Type"] == "application/json"
    assert request.json == {"text": GERMAN}  # plain text: nothing escaped
    assert GERMAN.encode() in request.body
    assert request.headers["Authorization"].startswith("OAuth ")
    assert request.oauth["oauth_consumer_key"] == API_KEY
    assert request.oauth["oauth_token"] == ACCESS_TOKEN
    assert request.oauth["oauth_signature_method"] == "HMAC-SHA1"
    assert request.oauth["oauth_version"] == "1.0"
    assert abs(int(request.oauth["oauth_timestamp"]) - time.time()) < 60
    assert request.signed is True
    assert request.status == 201
    assert fake.posts[0]["text"] == GERMAN


def test_the_fakes_signature_matches_rfc5849_example() -> None:
    """The fake's own check, against the worked example of RFC 5849 section 3.4.1.1."""
    params = [
        ("b5", "=%3D"),
        ("a3", "a"),
        ("c@", ""),
        ("a2", "r b"),
        ("oauth_consumer_key", "9djdj82h48djs9d2"),
        ("oauth_token", "kkk9d7dh3k39sjv7"),
        ("oauth_signature_method", "HMAC-SHA1"),
        ("oauth_timestamp", "137131201"),
        ("oauth_nonce", "7d8f3e4a"),
        ("c2", ""),
        ("a3", "2 q"),
    ]
    base = signature_base_string("post", "http://example.com/request", params)

    assert base == (
        "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q%26a3%3Da%26"
        "b5%3D%253D%25253D%26c%2540%3D%26c2%3D%26oauth_consumer_key%3D9djdj82h48djs9d2%26"
        "oauth_nonce%3D7d8f3e4a%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D"
        "137131201%26oauth_token%3Dkkk9d7dh3k39sjv7"
    )
    # openssl dgst -sha1 -hmac "b&c": the key is both secrets, percent-encoded, joined by &
    assert hmac_sha1("a", "b", "c") == "sI3tgv7FRWmRT0TmLifBAFF12lU="


async def test_every_request_has_a_fresh_nonce(
    session: aiohttp.ClientSession, fake: FakeX, message: MakeMessage
) -> None:
    adapter = x(session, fake)

    await adapter.send(message(text="Erste Meldung"))
    await adapter.send(message(text="Zweite Meldung"))

    nonces = {r.oauth["oauth_nonce"] for r in fake.requests}
    assert len(nonces) == 2
    assert [r.status for r in fake.requests] == [201, 201]


async def test_the_fake_refuses_a_replayed_signature(
    session: aiohttp.ClientSession, fake: FakeX, message: MakeMessage
) -> None:
    adapter = x(session, fake)
    await adapter.send(message(text="Erste Meldung"))
    replay = {
        "Authorization": fake.requests[0].headers["Authorization"],
        "Content-Type": "application/json",
    }

    async with session.post(
        f"{fake.base_url}/2/tweets", data=b'{"text":"Andere"}', headers=replay
    ) as response:
        assert response.status == 401

    assert len(fake.posts) == 1


@pytest.mark.parametrize("wrong", ["api_key", "api_secret", "access_token", "access_secret"])
async def test_wrong_credentials_are_refused_permanently(
    session: aiohttp.ClientSession, fake: FakeX, message: MakeMessage, wrong: str
) -> None:
    with pytest.raises(PermanentError, match="HTTP 401: Unauthorized") as caught:
        await x(session, fake, credentials={wrong: "not-the-right-one"}).send(message())

    assert not isinstance(caught.value, TransientError)
    assert fake.requests[0].signed is False
    assert fake.posts == []


async def test_a_clock_far_off_is_refused(message: MakeMessage) -> None:
    async with FakeX.start(clock_skew=-1) as strict, aiohttp.ClientSession() as session:
        with pytest.raises(PermanentError, match="HTTP 401"):
            await x(session, strict).send(message())


# -- the receipt ---------------------------------------------------------------------------


async def test_receipt_names_the_post(
    session: aiohttp.ClientSession, fake: FakeX, message: MakeMessage
) -> None:
    receipt = await x(session, fake).send(message())

    post_id = fake.posts[0]["id"]
    assert receipt == Receipt(
        remote_id=post_id, url=f"https://x.com/i/status/{post_id}", data={"tweet_id": post_id}
    )


async def test_no_idempotency_but_duplicate_content_is_refused(
    session: aiohttp.ClientSession, fake: FakeX, message: MakeMessage
) -> None:
    adapter = x(session, fake)
    await adapter.send(message())

    with pytest.raises(PermanentError, match="HTTP 403: Forbidden: You are not allowed") as e:
        await adapter.send(message())

    assert "duplicate content" in e.value.message
    assert "earlier attempt may have been posted" in e.value.message
    assert len(fake.posts) == 1


async def test_success_without_an_id_is_permanent(
    session: aiohttp.ClientSession, fake: FakeX, message: MakeMessage
) -> None:
    fake.script(
        Answer(200, b'{"errors":[{"title":"Oops","detail":"Something odd","type":"about:blank"}]}')
    )

    with pytest.raises(PermanentError, match="no post id in the answer: Something odd"):
        await x(session, fake).send(message())


# -- threading -----------------------------------------------------------------------------


async def test_reply_under_the_first_post(
    session: aiohttp.ClientSession, fake: FakeX, message: MakeMessage
) -> None:
    adapter = x(session, fake)
    first = await adapter.send(message())

    update = await adapter.send(message(stage="update", text="Lage stabil", reply_to=first))

    assert adapter.can_thread
    assert fake.requests[1].json == {
        "text": "Lage stabil",
        "reply": {"in_reply_to_tweet_id": first.remote_id},
    }
    assert fake.posts[1]["reply_to"] == first.remote_id
    assert update.remote_id == fake.posts[1]["id"]


async def test_reply_to_a_removed_post_is_permanent(
    session: aiohttp.ClientSession, fake: FakeX, message: MakeMessage
) -> None:
    adapter = x(session, fake)
    first = await adapter.send(message())
    assert first.remote_id is not None
    fake.remove(first.remote_id)

    with pytest.raises(PermanentError, match=r"HTTP 403: .*deleted or not visible"):
        await adapter.send(message(text="Lage stabil", reply_to=first))


# -- deletion ------------------------------------------------------------------------------


async def test_delete_removes_the_post(
    session: aiohttp.ClientSession, fake: FakeX, message: MakeMessage
) -> None:
    adapter = x(session, fake)
    receipt = await adapter.send(message())

    await adapter.delete(receipt)

    assert adapter.can_delete
    deletion = fake.requests[-1]
    assert deletion.method == "DELETE"
    assert deletion.path == f"/2/tweets/{receipt.remote_id}"
    assert deletion.signed is True
    assert deletion.body == b""
    assert deletion.status == 200
    assert fake.deleted == {receipt.remote_id}


async def test_delete_of_a_post_already_gone_succeeds(
    session: aiohttp.ClientSession, fake: FakeX, message: MakeMessage
) -> None:
    adapter = x(session, fake)
    receipt = await adapter.send(message())
    assert receipt.remote_id is not None
    fake.remove(receipt.remote_id)

    await adapter.delete(receipt)

    assert fake.requests[-1].status == 404


async def test_delete_answered_with_a_not_found_problem_succeeds(
    session: aiohttp.ClientSession, fake: FakeX
) -> None:
    body = {"errors": [{"type": "https://api.twitter.com/2/problems/resource-not-found"}]}
    fake.script(Answer(200, json.dumps(body).encode()))

    await x(session, fake).delete(Receipt(remote_id="1445880548472328192"))


async def test_delete_not_confirmed_is_permanent(
    session: aiohttp.ClientSession, fake: FakeX
) -> None:
    fake.script(Answer(200, b'{"data":{"deleted":false}}'))

    with pytest.raises(PermanentError, match="not confirmed"):
        await x(session, fake).delete(Receipt(remote_id="1445880548472328192"))


async def test_delete_without_a_post_id_sends_nothing(
    session: aiohttp.ClientSession, fake: FakeX
) -> None:
    with pytest.raises(PermanentError, match="no post id"):
        await x(session, fake).delete(Receipt(remote_id="../users/me"))

    assert fake.requests == []


async def test_delete_while_rate_limited_is_transient(
    session: aiohttp.ClientSession, fake: FakeX, message: MakeMessage
) -> None:
    adapter = x(session, fake)
    receipt = await adapter.send(message())
    fake.rate_limit(reset_in=30)

    with pytest.raises(TransientError) as caught:
        await adapter.delete(receipt)

    assert caught.value.retry_after is not None
    assert 25 <= caught.value.retry_after <= 30
    assert fake.deleted == set()


# -- answers -------------------------------------------------------------------------------


async def test_429_waits_until_the_window_resets(
    session: aiohttp.ClientSession, fake: FakeX, message: MakeMessage
) -> None:
    fake.rate_limit(reset_in=90)

    with pytest.raises(TransientError, match=r"HTTP 429: Too Many Requests$") as caught:
        await x(session, fake).send(message())

    assert caught.value.retry_after is not None
    assert 85 <= caught.value.retry_after <= 90
    assert fake.posts == []


async def test_429_of_the_daily_limit_waits_for_the_daily_reset(
    session: aiohttp.ClientSession, fake: FakeX, message: MakeMessage
) -> None:
    fake.daily_limit(reset_in=3600, window_reset_in=60)

    with pytest.raises(TransientError) as caught:
        await x(session, fake).send(message())

    assert caught.value.retry_after is not None
    assert 3590 <= caught.value.retry_after <= 3600


async def test_spent_usage_cap_is_permanent(
    session: aiohttp.ClientSession, fake: FakeX, message: MakeMessage
) -> None:
    fake.usage_capped()

    with pytest.raises(PermanentError, match=r"Usage cap exceeded.*usage cap is spent") as e:
        await x(session, fake).send(message())

    assert not isinstance(e.value, TransientError)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_are_transient_and_a_retry_succeeds(
    session: aiohttp.ClientSession, fake: FakeX, message: MakeMessage, status: int
) -> None:
    adapter = x(session, fake)
    fake.script(status)

    with pytest.raises(TransientError, match=f"HTTP {status}") as caught:
        await adapter.send(message())
    receipt = await adapter.send(message())

    assert caught.value.retry_after is None
    assert receipt.remote_id == fake.posts[0]["id"]
    assert len(fake.posts) == 1


async def test_too_long_is_permanent_and_umlauts_weigh_one(
    session: aiohttp.ClientSession, fake: FakeX, message: MakeMessage
) -> None:
    adapter = x(session, fake)

    await adapter.send(message(text="ä" * 280))
    with pytest.raises(PermanentError, match=r"HTTP 400: Invalid Request.*too long"):
        await adapter.send(message(text="ß" * 281))


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (Answer(400, b'{"errors":[{"message":"Bad thing","code":44}]}'), "HTTP 400: Bad thing"),
        (Answer(403, b"<html>nope</html>"), "HTTP 403: <html>nope</html>"),
        (Answer(404, b""), "HTTP 404$"),
    ],
)
async def test_other_refusals_are_permanent_with_xs_words(
    session: aiohttp.ClientSession,
    fake: FakeX,
    message: MakeMessage,
    answer: Answer,
    expected: str,
) -> None:
    fake.script(answer)

    with pytest.raises(PermanentError, match=expected):
        await x(session, fake).send(message())


def test_reset_wait() -> None:
    now = 1_800_000_000.0
    headers: Any = CIMultiDict({"x-rate-limit-reset": "1800000090"})

    assert reset_wait(headers, now=now) == 90
    assert reset_wait(CIMultiDict({"x-rate-limit-reset": "1799999000"}), now=now) == 0
    assert reset_wait(CIMultiDict(), now=now) is None
    assert reset_wait(CIMultiDict({"x-rate-limit-reset": "soon"}), now=now) is None
    both = CIMultiDict(
        {
            "x-rate-limit-reset": "1800000090",
            "x-app-limit-24hour-remaining": "0",
            "x-app-limit-24hour-reset": "1800007200",
        }
    )
    assert reset_wait(both, now=now) == 7200


# -- no answer -----------------------------------------------------------------------------


async def test_no_answer_within_the_timeout_is_transient(
    session: aiohttp.ClientSession, fake: FakeX, message: MakeMessage
) -> None:
    fake.hold()

    with pytest.raises(TransientError, match=r"no answer within 0\.05s"):
        await x(session, fake, timeout=0.05).send(message())

    assert len(fake.requests) == 1


async def test_connection_refused_is_transient(
    session: aiohttp.ClientSession, fake: FakeX, message: MakeMessage
) -> None:
    with pytest.raises(TransientError, match="x x"):
        await x(session, fake, base_url=f"http://127.0.0.1:{free_port()}").send(message())


async def test_a_base_url_without_scheme_is_permanent(
    session: aiohttp.ClientSession, fake: FakeX, message: MakeMessage
) -> None:
    with pytest.raises(PermanentError, match="invalid URL"):
        await x(session, fake, base_url="api.x.com").send(message())

    assert fake.requests == []


async def test_held_request_completes_on_release(
    session: aiohttp.ClientSession, fake: FakeX, message: MakeMessage
) -> None:
    fake.hold()
    sending = asyncio.create_task(x(session, fake).send(message()))
    await fake.wait_for_requests(1)
    assert not sending.done()

    fake.release()
    receipt = await sending

    assert receipt.remote_id == fake.posts[0]["id"]
