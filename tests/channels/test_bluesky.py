"""The Bluesky adapter against a fake PDS over real sockets."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from broadcaster.channels.base import OutgoingMessage, PermanentError, TransientError
from broadcaster.channels.bluesky import (
    BlueskyAdapter,
    link_facets,
    rate_limit_wait,
    record_key,
)
from broadcaster.channels.settings import BlueskyChannel
from broadcaster.models import Receipt
from tests.fakes.bluesky import (
    APP_PASSWORD,
    CREATE_RECORD,
    CREATE_SESSION,
    DELETE_RECORD,
    DID,
    GET_RECORD,
    IDENTIFIER,
    REFRESH_SESSION,
    TID,
    FakePds,
)
from tests.servers import free_port

MakeMessage = Callable[..., OutgoingMessage]
URL = "https://www.duesseldorf.de/feuerwehr"
TEXT = f"Großbrand in Düsseldorf-Flingern, Ackerstraße <12> & Co. Infos: {URL}"
KEY = "FW-DUS-2026-000123:sky"


@pytest.fixture
async def fake() -> AsyncIterator[FakePds]:
    async with FakePds.start() as server:
        yield server


@pytest.fixture
def skeet(message: MakeMessage) -> MakeMessage:
    """The sample message as a Bluesky delivery."""

    def make(**changes: object) -> OutgoingMessage:
        fields: dict[str, object] = {"text": TEXT, "idempotency_key": KEY}
        return message(**{**fields, **changes})

    return make


def bluesky(
    session: aiohttp.ClientSession,
    base_url: str,
    *,
    password: str = APP_PASSWORD,
    timeout: float = 10.0,
) -> BlueskyAdapter:
    config = BlueskyChannel.model_validate(
        {
            "type": "bluesky",
            "base_url": base_url,
            "identifier": IDENTIFIER,
            "app_password": password,
        }
    )
    return BlueskyAdapter("sky", config, session, timeout=timeout)


def nsids(fake: FakePds) -> list[tuple[str, int | None]]:
    return [(request.nsid, request.status) for request in fake.requests]


# -- the requests --------------------------------------------------------------------------


async def test_logs_in_then_creates_the_record(
    session: aiohttp.ClientSession, fake: FakePds, skeet: MakeMessage
) -> None:
    before = datetime.now(UTC)
    await bluesky(session, fake.base_url + "/").send(skeet())

    login, create = fake.requests
    assert (login.method, login.nsid) == ("POST", CREATE_SESSION)
    assert login.json == {"identifier": IDENTIFIER, "password": APP_PASSWORD}
    assert "Authorization" not in login.headers
    assert login.status == 200

    assert (create.method, create.nsid) == ("POST", CREATE_RECORD)
    assert login.answer is not None
    assert create.headers["Authorization"] == f"Bearer {json.loads(login.answer)['accessJwt']}"
    assert create.headers["Content-Type"] == "application/json"
    rkey = record_key(KEY)
    record = create.json["record"]
    assert create.json == {
        "repo": DID,
        "collection": "app.bsky.feed.post",
        "rkey": rkey,
        "record": record,
    }
    assert record == {
        "$type": "app.bsky.feed.post",
        "text": TEXT,  # plain text, nothing escaped
        "createdAt": record["createdAt"],
        "langs": ["de"],
        "facets": [
            {
                "index": {"byteStart": 67, "byteEnd": 103},
                "features": [{"$type": "app.bsky.richtext.facet#link", "uri": URL}],
            }
        ],
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["createdAt"])
    stamp = datetime.strptime(record["createdAt"], "%Y-%m-%dT%H:%M:%S.%f%z")
    assert before - timedelta(seconds=1) <= stamp <= datetime.now(UTC)
    # The text travels as UTF-8, not \u escapes.
    assert "Großbrand in Düsseldorf-Flingern, Ackerstraße <12> & Co".encode() in create.body
    assert create.status == 200


async def test_one_login_for_several_posts(
    session: aiohttp.ClientSession, fake: FakePds, skeet: MakeMessage
) -> None:
    adapter = bluesky(session, fake.base_url)

    for number in range(3):
        await adapter.send(skeet(idempotency_key=f"one-by-one-{number}"))
    await asyncio.gather(
        *(adapter.send(skeet(idempotency_key=f"at-once-{number}")) for number in range(4))
    )

    assert fake.logins == 1
    assert len(fake.calls(CREATE_SESSION)) == 1
    assert len(fake.created) == 7


async def test_receipt_names_the_post(
    session: aiohttp.ClientSession, fake: FakePds, skeet: MakeMessage
) -> None:
    receipt = await bluesky(session, fake.base_url).send(skeet())

    rkey = record_key(KEY)
    [stored] = fake.created
    assert stored["uri"] == f"at://{DID}/app.bsky.feed.post/{rkey}"
    assert receipt.remote_id == stored["uri"]
    assert receipt.url == f"https://bsky.app/profile/{DID}/post/{rkey}"
    assert receipt.data == {"uri": stored["uri"], "cid": stored["cid"], "did": DID, "rkey": rkey}


# -- facets --------------------------------------------------------------------------------


async def test_umlauts_before_urls_shift_the_byte_offsets(
    session: aiohttp.ClientSession, fake: FakePds, skeet: MakeMessage
) -> None:
    text = (
        f"Großbrand in Düsseldorf-Flingern, Ackerstraße <12> & Co. Infos: {URL} "
        "(Karte: https://karte.example/a?b=1&c=ä). Mehr: HTTP://x.example/."
    )
    await bluesky(session, fake.base_url).send(skeet(text=text))

    facets = fake.created[0]["value"]["facets"]
    assert [(f["index"]["byteStart"], f["index"]["byteEnd"]) for f in facets] == [
        (67, 103),
        (112, 144),
        (153, 170),
    ]
    uris = [f["features"][0]["uri"] for f in facets]
    assert uris == [URL, "https://karte.example/a?b=1&c=ä", "HTTP://x.example/"]
    raw = text.encode("utf-8")
    for facet, uri in zip(facets, uris, strict=True):
        assert raw[facet["index"]["byteStart"] : facet["index"]["byteEnd"]].decode() == uri
    # Character offsets would be wrong: three 2-byte letters come before the first URL.
    assert text.index(URL) == 64


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Siehe https://a.example/x.", [(6, 25, "https://a.example/x")]),
        ("(https://a.example/x)", [(1, 20, "https://a.example/x")]),
        ("(https://de.wikipedia.org/wiki/A_(B))", [(1, 36, "https://de.wikipedia.org/wiki/A_(B)")]),
        ("https://a.example!", [(0, 17, "https://a.example")]),
        ("Üben: http://ü.example/ä\nweiter", [(7, 27, "http://ü.example/ä")]),
        ("xhttps://a.example and mailto:x@y.example", []),
        ("no link, only https:// and www.example.org", []),
        ("", []),
    ],
)
def test_link_facets(text: str, expected: list[tuple[int, int, str]]) -> None:
    found = [
        (f["index"]["byteStart"], f["index"]["byteEnd"], f["features"][0]["uri"])
        for f in link_facets(text)
    ]
    assert found == expected
    assert all(
        f["features"][0]["$type"] == "app.bsky.richtext.facet#link" for f in link_facets(text)
    )


async def test_no_urls_no_facets(
    session: aiohttp.ClientSession, fake: FakePds, skeet: MakeMessage
) -> None:
    await bluesky(session, fake.base_url).send(
        skeet(text="Entwarnung für Flingern.", language="en")
    )

    value = fake.created[0]["value"]
    assert "facets" not in value
    assert value["langs"] == ["en"]


# -- the record key ------------------------------------------------------------------------


def test_record_key_is_a_deterministic_tid() -> None:
    keys = [record_key(f"FW-DUS-2026-{number:06d}:sky") for number in range(500)]

    assert all(TID.fullmatch(key) for key in keys)
    assert all(len(key) == 13 for key in keys)
    assert len(set(keys)) == 500
    assert record_key(KEY) != record_key(KEY + "x")


def test_record_key_is_the_same_in_every_daemon() -> None:
    # Another process (another daemon, or this one restarted, with its own hash seed)
    # must find the same record for a delivery.
    script = f"from broadcaster.channels.bluesky import record_key; print(record_key({KEY!r}))"
    other = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "random"},
    )
    assert other.stdout.strip() == record_key(KEY)


def test_record_key_timestamps_are_not_in_the_future() -> None:
    alphabet = "234567abcdefghijklmnopqrstuvwxyz"
    for number in range(200):
        value = 0
        for char in record_key(f"key-{number}"):
            value = value * 32 + alphabet.index(char)
        assert value >> 63 == 0
        moment = datetime.fromtimestamp((value >> 10) / 1e6, UTC)
        assert datetime(2023, 1, 1, tzinfo=UTC) <= moment < datetime(2025, 1, 2, tzinfo=UTC)


# -- idempotency ---------------------------------------------------------------------------


async def test_lost_answer_then_retry_finds_the_post(
    session: aiohttp.ClientSession, fake: FakePds, skeet: MakeMessage
) -> None:
    """The record was committed but the answer lost: the retry's 500 is the duplicate."""
    adapter = bluesky(session, fake.base_url)
    fake.answer_after_commit(CREATE_RECORD, 502)

    with pytest.raises(TransientError, match="HTTP 502: UpstreamFailure"):
        await adapter.send(skeet())
    receipt = await adapter.send(skeet())

    [stored] = fake.created
    assert receipt.remote_id == stored["uri"]
    assert receipt.data["cid"] == stored["cid"]
    assert nsids(fake) == [
        (CREATE_SESSION, 200),
        (CREATE_RECORD, 502),
        (CREATE_RECORD, 500),
        (GET_RECORD, 200),
    ]
    lookup = fake.calls(GET_RECORD)[0]
    assert lookup.query == {
        "repo": DID,
        "collection": "app.bsky.feed.post",
        "rkey": record_key(KEY),
    }


async def test_timeout_then_retry_posts_once(
    session: aiohttp.ClientSession, fake: FakePds, skeet: MakeMessage
) -> None:
    adapter = bluesky(session, fake.base_url)
    await adapter.send(skeet(idempotency_key="warm-up"))  # the session exists
    fake.hold()
    impatient = bluesky(session, fake.base_url, timeout=0.05)
    impatient._auth = adapter._auth  # the same cached session, a shorter timeout
    with pytest.raises(TransientError, match=r"no answer within 0\.05s"):
        await impatient.send(skeet())

    fake.release()
    await fake.wait_for_answers(3)
    receipt = await adapter.send(skeet())

    assert len(fake.created) == 2
    assert receipt.remote_id == fake.created[1]["uri"]
    assert fake.calls(CREATE_RECORD)[-1].status == 500
    assert fake.logins == 1


async def test_a_500_without_the_record_is_transient(
    session: aiohttp.ClientSession, fake: FakePds, skeet: MakeMessage
) -> None:
    fake.script(CREATE_RECORD, 500)

    with pytest.raises(
        TransientError, match="HTTP 500: InternalServerError: Internal Server Error"
    ):
        await bluesky(session, fake.base_url).send(skeet())

    assert nsids(fake)[-1] == (GET_RECORD, 400)
    assert fake.created == []


async def test_the_key_holding_another_text_is_permanent(
    session: aiohttp.ClientSession, fake: FakePds, skeet: MakeMessage
) -> None:
    adapter = bluesky(session, fake.base_url)
    first = await adapter.send(skeet())

    with pytest.raises(PermanentError, match=f"record key {record_key(KEY)} already holds"):
        await adapter.send(skeet(text="Ein ganz anderer Text"))

    assert [stored["uri"] for stored in fake.created] == [first.remote_id]


# -- the session ---------------------------------------------------------------------------


async def test_expired_token_is_refreshed_and_the_request_repeated(
    session: aiohttp.ClientSession, fake: FakePds, skeet: MakeMessage
) -> None:
    adapter = bluesky(session, fake.base_url)
    await adapter.send(skeet(idempotency_key="first"))
    old = fake.calls(CREATE_RECORD)[0].headers["Authorization"]
    fake.expire_access_tokens()

    receipt = await adapter.send(skeet())

    assert nsids(fake)[2:] == [(CREATE_RECORD, 400), (REFRESH_SESSION, 200), (CREATE_RECORD, 200)]
    refused, refresh, repeated = fake.requests[2:]
    assert refused.headers["Authorization"] == old
    assert refresh.headers["Authorization"] != old  # the refresh token, not the access token
    assert refresh.body == b""
    assert repeated.headers["Authorization"] not in (old, refresh.headers["Authorization"])
    assert repeated.json == refused.json
    assert (fake.logins, fake.refreshes) == (1, 1)
    assert receipt.remote_id == fake.created[1]["uri"]


async def test_expired_refresh_token_means_a_new_login(
    session: aiohttp.ClientSession, fake: FakePds, skeet: MakeMessage
) -> None:
    adapter = bluesky(session, fake.base_url)
    await adapter.send(skeet(idempotency_key="first"))
    fake.expire_access_tokens()
    fake.expire_refresh_tokens()

    await adapter.send(skeet())

    assert nsids(fake)[2:] == [
        (CREATE_RECORD, 400),
        (REFRESH_SESSION, 400),
        (CREATE_SESSION, 200),
        (CREATE_RECORD, 200),
    ]
    assert (fake.logins, fake.refreshes) == (2, 0)


async def test_concurrent_expiry_refreshes_once(
    session: aiohttp.ClientSession, fake: FakePds, skeet: MakeMessage
) -> None:
    adapter = bluesky(session, fake.base_url)
    await adapter.send(skeet(idempotency_key="first"))
    fake.expire_access_tokens()

    await asyncio.gather(*(adapter.send(skeet(idempotency_key=f"k{n}")) for n in range(3)))

    assert (fake.logins, fake.refreshes) == (1, 1)
    assert len(fake.created) == 4


@pytest.mark.parametrize("break_it", ["revoke", "401"])
async def test_refused_session_means_one_new_login(
    session: aiohttp.ClientSession, fake: FakePds, skeet: MakeMessage, break_it: str
) -> None:
    adapter = bluesky(session, fake.base_url)
    await adapter.send(skeet(idempotency_key="first"))
    if break_it == "revoke":
        fake.revoke_sessions()  # 400 InvalidToken: Token could not be verified
    else:
        fake.script(CREATE_RECORD, 401)  # 401 AuthenticationRequired

    await adapter.send(skeet())

    assert [nsid for nsid, _ in nsids(fake)[2:]] == [CREATE_RECORD, CREATE_SESSION, CREATE_RECORD]
    assert fake.logins == 2
    assert fake.refreshes == 0
    assert len(fake.created) == 2


async def test_refused_again_after_a_new_login_is_permanent(
    session: aiohttp.ClientSession, fake: FakePds, skeet: MakeMessage
) -> None:
    fake.script(CREATE_RECORD, 401, 401)

    with pytest.raises(PermanentError) as caught:
        await bluesky(session, fake.base_url).send(skeet())

    assert caught.value.message == (
        "bluesky sky: HTTP 401: AuthenticationRequired: Authentication Required "
        "(refused again with a new session)"
    )
    assert fake.logins == 2
    assert len(fake.calls(CREATE_RECORD)) == 2


async def test_wrong_app_password_is_permanent(
    session: aiohttp.ClientSession, fake: FakePds, skeet: MakeMessage
) -> None:
    with pytest.raises(PermanentError) as caught:
        await bluesky(session, fake.base_url, password="wrong").send(skeet())

    assert caught.value.message == (
        f"bluesky sky: login as {IDENTIFIER} refused: "
        "HTTP 401: AuthenticationRequired: Invalid identifier or password"
    )
    assert nsids(fake) == [(CREATE_SESSION, 401)]


async def test_login_rate_limit_is_transient(
    session: aiohttp.ClientSession, skeet: MakeMessage
) -> None:
    async with FakePds.start(login_limit=0) as fake:
        with pytest.raises(TransientError, match="HTTP 429: RateLimitExceeded") as caught:
            await bluesky(session, fake.base_url).send(skeet())

    assert caught.value.retry_after is not None
    assert 0 < caught.value.retry_after <= 300
    assert fake.logins == 0


# -- threads -------------------------------------------------------------------------------


async def test_reply_refers_to_the_first_post_as_root_and_parent(
    session: aiohttp.ClientSession, fake: FakePds, skeet: MakeMessage
) -> None:
    adapter = bluesky(session, fake.base_url)
    first = await adapter.send(skeet())

    reply = await adapter.send(skeet(text="Entwarnung", idempotency_key="FW-2:sky", reply_to=first))

    ref = {"uri": first.data["uri"], "cid": first.data["cid"]}
    assert fake.created[1]["value"]["reply"] == {"root": ref, "parent": ref}
    assert reply.data["root"] == ref
    assert adapter.can_thread


async def test_reply_to_a_reply_keeps_the_thread_root(
    session: aiohttp.ClientSession, fake: FakePds, skeet: MakeMessage
) -> None:
    adapter = bluesky(session, fake.base_url)
    first = await adapter.send(skeet())
    second = await adapter.send(skeet(text="Update", idempotency_key="2", reply_to=first))

    await adapter.send(skeet(text="Entwarnung", idempotency_key="3", reply_to=second))

    reply = fake.created[2]["value"]["reply"]
    assert reply["root"] == {"uri": first.data["uri"], "cid": first.data["cid"]}
    assert reply["parent"] == {"uri": second.data["uri"], "cid": second.data["cid"]}


async def test_reply_without_a_strong_ref_is_permanent(
    session: aiohttp.ClientSession, fake: FakePds, skeet: MakeMessage
) -> None:
    incomplete = Receipt(remote_id=f"at://{DID}/app.bsky.feed.post/3abc", data={})

    with pytest.raises(PermanentError, match="no uri and cid"):
        await bluesky(session, fake.base_url).send(skeet(reply_to=incomplete))

    assert fake.requests == []


# -- deletion ------------------------------------------------------------------------------


async def test_delete_removes_the_record_and_is_idempotent(
    session: aiohttp.ClientSession, fake: FakePds, skeet: MakeMessage
) -> None:
    adapter = bluesky(session, fake.base_url)
    receipt = await adapter.send(skeet())

    await adapter.delete(receipt)
    await adapter.delete(receipt)  # gone already: the PDS does nothing, answers 200

    rkey = record_key(KEY)
    assert adapter.can_delete
    assert fake.records == {}
    assert fake.deleted == {rkey}
    first, again = fake.calls(DELETE_RECORD)
    assert first.json == {"repo": DID, "collection": "app.bsky.feed.post", "rkey": rkey}
    assert first.headers["Authorization"].startswith("Bearer ")
    assert (first.status, again.status) == (200, 200)
    assert fake.logins == 1


async def test_delete_from_the_uri_alone(session: aiohttp.ClientSession, fake: FakePds) -> None:
    await bluesky(session, fake.base_url).delete(
        Receipt(remote_id=f"at://{DID}/app.bsky.feed.post/3kabc2defgh2a")
    )

    [deletion] = fake.calls(DELETE_RECORD)
    assert deletion.json["rkey"] == "3kabc2defgh2a"
    assert deletion.json["repo"] == DID


async def test_delete_without_a_post_sends_nothing(
    session: aiohttp.ClientSession, fake: FakePds
) -> None:
    with pytest.raises(PermanentError, match="names no post"):
        await bluesky(session, fake.base_url).delete(Receipt(remote_id="https://bsky.app/x"))
    assert fake.requests == []


async def test_delete_with_an_expired_token_refreshes(
    session: aiohttp.ClientSession, fake: FakePds, skeet: MakeMessage
) -> None:
    adapter = bluesky(session, fake.base_url)
    receipt = await adapter.send(skeet())
    fake.expire_access_tokens()

    await adapter.delete(receipt)

    assert nsids(fake)[2:] == [(DELETE_RECORD, 400), (REFRESH_SESSION, 200), (DELETE_RECORD, 200)]
    assert fake.records == {}


# -- answers -------------------------------------------------------------------------------


async def test_429_waits_until_ratelimit_reset(
    session: aiohttp.ClientSession, fake: FakePds, skeet: MakeMessage
) -> None:
    fake.rate_limit(CREATE_RECORD, reset_in=120, retry_after=False)

    with pytest.raises(
        TransientError, match="HTTP 429: RateLimitExceeded: Rate Limit Exceeded"
    ) as caught:
        await bluesky(session, fake.base_url).send(skeet())

    # The PDS answered without Retry-After: the wait comes from RateLimit-Reset alone.
    answered = fake.calls(CREATE_RECORD)[0].answer_headers or {}
    assert "Retry-After" not in answered
    assert "RateLimit-Reset" in answered
    assert caught.value.retry_after is not None
    assert 115 < caught.value.retry_after <= 120
    assert fake.created == []


async def test_429_with_retry_after(
    session: aiohttp.ClientSession, fake: FakePds, skeet: MakeMessage
) -> None:
    fake.script(CREATE_RECORD, (429, {"Retry-After": "42"}))

    with pytest.raises(TransientError) as caught:
        await bluesky(session, fake.base_url).send(skeet())

    assert caught.value.retry_after == 42


def test_rate_limit_wait() -> None:
    now = 1_800_000_000.0
    assert rate_limit_wait({"RateLimit-Reset": "1800000090"}, now=now) == 90
    assert rate_limit_wait({"RateLimit-Reset": "1799999990"}, now=now) == 0
    assert rate_limit_wait({"Retry-After": "30"}, now=now) == 30
    assert rate_limit_wait({"RateLimit-Reset": "1800000010", "Retry-After": "30"}, now=now) == 30
    assert rate_limit_wait({"RateLimit-Reset": "soon"}, now=now) is None
    assert rate_limit_wait({}, now=now) is None


async def test_text_the_lexicon_refuses_is_permanent(
    session: aiohttp.ClientSession, fake: FakePds, skeet: MakeMessage
) -> None:
    with pytest.raises(PermanentError) as caught:
        await bluesky(session, fake.base_url).send(skeet(text="ä" * 301))

    assert caught.value.message == (
        "bluesky sky: HTTP 400: InvalidRequest: Invalid app.bsky.feed.post record: "
        "Record/text must not be longer than 300 graphemes"
    )
    assert fake.created == []


@pytest.mark.parametrize("status", [400, 403, 413, 501])
async def test_refusals_are_permanent(
    session: aiohttp.ClientSession, fake: FakePds, skeet: MakeMessage, status: int
) -> None:
    fake.script(CREATE_RECORD, status)

    with pytest.raises(PermanentError, match=f"HTTP {status}"):
        await bluesky(session, fake.base_url).send(skeet())


@pytest.mark.parametrize("status", [502, 503, 504, 408])
async def test_outages_are_transient(
    session: aiohttp.ClientSession, fake: FakePds, skeet: MakeMessage, status: int
) -> None:
    adapter = bluesky(session, fake.base_url)
    fake.script(CREATE_RECORD, status)

    with pytest.raises(TransientError, match=f"HTTP {status}"):
        await adapter.send(skeet())
    receipt = await adapter.send(skeet())

    assert receipt.remote_id == fake.created[0]["uri"]
    assert fake.logins == 1


async def test_login_outage_is_transient_and_nothing_is_cached(
    session: aiohttp.ClientSession, fake: FakePds, skeet: MakeMessage
) -> None:
    adapter = bluesky(session, fake.base_url)
    fake.script(CREATE_SESSION, 503)

    with pytest.raises(TransientError, match=r"login as .* refused: HTTP 503"):
        await adapter.send(skeet())
    await adapter.send(skeet())

    assert nsids(fake) == [(CREATE_SESSION, 503), (CREATE_SESSION, 200), (CREATE_RECORD, 200)]


async def test_connection_refused_is_transient(
    session: aiohttp.ClientSession, skeet: MakeMessage
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(TransientError, match="bluesky sky"):
        await bluesky(session, closed).send(skeet())


async def test_no_answer_within_the_timeout_is_transient(
    session: aiohttp.ClientSession, fake: FakePds, skeet: MakeMessage
) -> None:
    fake.hold()

    with pytest.raises(TransientError, match=r"no answer within 0\.05s"):
        await bluesky(session, fake.base_url, timeout=0.05).send(skeet())

    assert [request.nsid for request in fake.requests] == [CREATE_SESSION]
