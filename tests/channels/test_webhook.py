"""The webhook adapter against a fake receiver over real sockets."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest

from broadcaster.channels.base import OutgoingMessage, PermanentError, TransientError
from broadcaster.channels.settings import WebhookChannel
from broadcaster.channels.webhook import WebhookAdapter
from broadcaster.models import Receipt
from tests.channels.conftest import SECRET
from tests.fakes.webhook import FakeWebhook
from tests.servers import free_port

MakeMessage = Callable[..., OutgoingMessage]


def webhook(
    session: aiohttp.ClientSession,
    url: str,
    *,
    secret: str | None = SECRET,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> WebhookAdapter:
    config = WebhookChannel(type="webhook", url=url, secret=secret, headers=headers or {})
    return WebhookAdapter("hook", config, session, timeout=timeout)


def expected_signature(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


# -- the request ---------------------------------------------------------------------------


async def test_posts_the_contract_body_signed(
    session: aiohttp.ClientSession, fake: FakeWebhook, message: MakeMessage
) -> None:
    adapter = webhook(session, fake.url, headers={"Authorization": "Bearer abc"})

    await adapter.send(message())

    [request] = fake.requests
    assert request.method == "POST"
    assert request.path == "/hooks/broadcaster"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Idempotency-Key"] == "FW-DUS-2026-000123:hook"
    assert request.headers["Authorization"] == "Bearer abc"
    assert request.headers["X-Broadcaster-Signature"] == expected_signature(request.body)
    assert request.json == {
        "kind": "alert",
        "alert_id": "FW-DUS-2026-000123",
        "incident": "E-2026-4711",
        "scenario": "major_fire",
        "stage": "warning",
        "mode": "drill",
        "title": "ÜBUNG: Großbrand in Flingern-Nord",
        "text": "ÜBUNG: Großbrand 🔥 Ackerstraße. Fenster und Türen schließen.",
        "language": "de",
        "expires_at": "2026-11-23T11:15:00+00:00",
    }
    # Non-ASCII travels as UTF-8, not as \u escapes, and the signature covers those bytes.
    assert "Großbrand 🔥 Ackerstraße".encode() in request.body
    assert b"\\u" not in request.body
    assert request.status == 200


async def test_receipt_names_the_post(
    session: aiohttp.ClientSession, fake: FakeWebhook, message: MakeMessage
) -> None:
    receipt = await webhook(session, fake.url).send(message())

    assert receipt.remote_id is not None
    assert fake.post(receipt.remote_id) is fake.posts[0]
    assert receipt.url == f"https://hooks.example/{receipt.remote_id}"
    assert receipt.data == {"alert_id": "FW-DUS-2026-000123"}


async def test_confirmation_request_carries_confirm_url(
    session: aiohttp.ClientSession, fake: FakeWebhook, message: MakeMessage
) -> None:
    url = "https://alerts.example.org/confirm/tok-123"
    await webhook(session, fake.url).send(message(kind="confirmation_request", confirm_url=url))

    [post] = fake.posts
    assert post.json["kind"] == "confirmation_request"
    assert post.json["confirm_url"] == url


async def test_without_expiry_expires_at_is_null(
    session: aiohttp.ClientSession, fake: FakeWebhook, message: MakeMessage
) -> None:
    await webhook(session, fake.url).send(message(expires_at=None, mode="live"))

    [post] = fake.posts
    assert post.json["expires_at"] is None
    assert post.json["mode"] == "live"
    assert "confirm_url" not in post.json
    assert "in_reply_to" not in post.json


async def test_reply_to_is_carried(
    session: aiohttp.ClientSession, fake: FakeWebhook, message: MakeMessage
) -> None:
    adapter = webhook(session, fake.url)
    first = await adapter.send(message())

    await adapter.send(
        message(alert_id="FW-2", stage="update", idempotency_key="FW-2:hook", reply_to=first)
    )

    assert adapter.can_thread
    assert fake.posts[1].json["in_reply_to"] == first.remote_id


async def test_without_secret_no_signature(
    session: aiohttp.ClientSession, message: MakeMessage
) -> None:
    async with FakeWebhook.start() as unsigned:
        await webhook(session, unsigned.url, secret=None).send(message())

    [post] = unsigned.posts
    assert "X-Broadcaster-Signature" not in post.headers


async def test_configured_headers_cannot_replace_the_protocol_ones(
    session: aiohttp.ClientSession, fake: FakeWebhook, message: MakeMessage
) -> None:
    headers = {
        "content-type": "text/plain",
        "Idempotency-Key": "mine",
        "x-broadcaster-signature": "sha256=0",
        "X-Tenant": "fire-dus",
    }
    await webhook(session, fake.url, headers=headers).send(message())

    [post] = fake.posts
    assert post.headers.getall("Content-Type") == ["application/json"]
    assert post.headers.getall("Idempotency-Key") == ["FW-DUS-2026-000123:hook"]
    assert post.headers["X-Broadcaster-Signature"] == expected_signature(post.body)
    assert post.headers["X-Tenant"] == "fire-dus"


# -- deletion ------------------------------------------------------------------------------


async def test_delete_posts_a_deletion(
    session: aiohttp.ClientSession, fake: FakeWebhook, message: MakeMessage
) -> None:
    adapter = webhook(session, fake.url)
    receipt = await adapter.send(message())
    assert receipt.remote_id is not None

    await adapter.delete(receipt)

    assert adapter.can_delete
    assert fake.deleted == {receipt.remote_id}
    deletion = fake.requests[-1]
    assert deletion.json == {
        "kind": "deletion",
        "alert_id": "FW-DUS-2026-000123",
        "remote_id": receipt.remote_id,
    }
    assert deletion.headers["Idempotency-Key"] == f"deletion:{receipt.remote_id}"
    assert deletion.headers["X-Broadcaster-Signature"] == expected_signature(deletion.body)


async def test_delete_of_an_unknown_post_is_permanent(
    session: aiohttp.ClientSession, fake: FakeWebhook
) -> None:
    with pytest.raises(PermanentError, match="HTTP 404"):
        await webhook(session, fake.url).delete(Receipt(remote_id="nope"))


async def test_delete_without_remote_id_sends_nothing(
    session: aiohttp.ClientSession, fake: FakeWebhook
) -> None:
    with pytest.raises(PermanentError, match="no remote id"):
        await webhook(session, fake.url).delete(Receipt())
    assert fake.requests == []


# -- answers -------------------------------------------------------------------------------


async def test_503_is_transient_and_a_retry_succeeds(
    session: aiohttp.ClientSession, fake: FakeWebhook, message: MakeMessage
) -> None:
    adapter = webhook(session, fake.url)
    fake.script(503, 503)

    for _ in range(2):
        with pytest.raises(TransientError, match="HTTP 503") as caught:
            await adapter.send(message())
        assert caught.value.retry_after is None
    receipt = await adapter.send(message())

    assert receipt.remote_id is not None
    assert fake.post(receipt.remote_id) is fake.posts[0]
    assert [r.status for r in fake.requests] == [503, 503, 200]
    assert len(fake.posts) == 1


async def test_429_with_retry_after_seconds(
    session: aiohttp.ClientSession, fake: FakeWebhook, message: MakeMessage
) -> None:
    fake.script((429, {"Retry-After": "2"}))

    with pytest.raises(TransientError, match="HTTP 429") as caught:
        await webhook(session, fake.url).send(message())

    assert caught.value.retry_after == 2


async def test_retry_after_as_http_date(
    session: aiohttp.ClientSession, fake: FakeWebhook, message: MakeMessage
) -> None:
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=120)
    fake.script((503, {"Retry-After": format_datetime(when, usegmt=True)}))

    with pytest.raises(TransientError) as caught:
        await webhook(session, fake.url).send(message())

    assert caught.value.retry_after is not None
    assert 60 < caught.value.retry_after <= 120


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_client_errors_are_permanent(
    session: aiohttp.ClientSession, fake: FakeWebhook, message: MakeMessage, status: int
) -> None:
    fake.fail_permanently(status, "the provider's own words")

    with pytest.raises(PermanentError) as caught:
        await webhook(session, fake.url).send(message())

    assert f"HTTP {status}" in caught.value.message
    assert "the provider's own words" in caught.value.message
    assert fake.posts == []


async def test_wrong_secret_is_refused_permanently(
    session: aiohttp.ClientSession, fake: FakeWebhook, message: MakeMessage
) -> None:
    with pytest.raises(PermanentError, match=r"HTTP 401.*X-Broadcaster-Signature"):
        await webhook(session, fake.url, secret="not-the-secret").send(message())
    assert fake.posts == []


async def test_wrong_path_is_permanent(
    session: aiohttp.ClientSession, fake: FakeWebhook, message: MakeMessage
) -> None:
    with pytest.raises(PermanentError, match="HTTP 404"):
        await webhook(session, fake.base_url + "/hooks/elsewhere").send(message())


async def test_invalid_body_is_permanent(
    session: aiohttp.ClientSession, fake: FakeWebhook, message: MakeMessage
) -> None:
    # The fake validates like a provider: a confirmation request needs its link.
    with pytest.raises(PermanentError, match=r"HTTP 400.*confirm_url"):
        await webhook(session, fake.url).send(message(kind="confirmation_request"))


@pytest.mark.parametrize("status", [408, 409, 425, 500, 502, 504])
async def test_not_now_statuses_are_transient(
    session: aiohttp.ClientSession, fake: FakeWebhook, message: MakeMessage, status: int
) -> None:
    fake.script(status)

    with pytest.raises(TransientError, match=f"HTTP {status}"):
        await webhook(session, fake.url).send(message())


async def test_redirect_is_not_followed(
    session: aiohttp.ClientSession, fake: FakeWebhook, message: MakeMessage
) -> None:
    fake.script((308, {"Location": fake.url}))

    with pytest.raises(PermanentError, match=r"HTTP 308.*redirect to"):
        await webhook(session, fake.url).send(message())

    assert len(fake.requests) == 1


async def test_success_without_json_falls_back_to_the_key(
    session: aiohttp.ClientSession, fake: FakeWebhook, message: MakeMessage
) -> None:
    fake.script((204, {}, b""))

    receipt = await webhook(session, fake.url).send(message())

    assert receipt.remote_id == "FW-DUS-2026-000123:hook"
    assert receipt.url is None


@pytest.mark.parametrize(
    "answer", [{"id": 42}, {"id": "42", "url": 7}, {"id": True, "url": ""}, ["id", "42"], "ok"]
)
async def test_receipt_takes_only_sensible_fields(
    session: aiohttp.ClientSession, fake: FakeWebhook, message: MakeMessage, answer: Any
) -> None:
    fake.script((200, {"Content-Type": "application/json"}, json.dumps(answer)))

    receipt = await webhook(session, fake.url).send(message())

    sensible = isinstance(answer, dict) and answer["id"] in (42, "42")
    assert receipt.remote_id == ("42" if sensible else "FW-DUS-2026-000123:hook")
    assert receipt.url is None


# -- no answer -----------------------------------------------------------------------------


async def test_connection_refused_is_transient(
    session: aiohttp.ClientSession, message: MakeMessage
) -> None:
    closed = f"http://127.0.0.1:{free_port()}/hooks/broadcaster"

    with pytest.raises(TransientError, match="webhook hook"):
        await webhook(session, closed).send(message())


async def test_no_answer_within_the_timeout_is_transient(
    session: aiohttp.ClientSession, fake: FakeWebhook, message: MakeMessage
) -> None:
    fake.hold()

    with pytest.raises(TransientError, match=r"no answer within 0\.05s"):
        await webhook(session, fake.url, timeout=0.05).send(message())

    assert len(fake.requests) == 1
    assert fake.posts == []


async def test_retry_while_the_first_is_still_processed(
    session: aiohttp.ClientSession, fake: FakeWebhook, message: MakeMessage
) -> None:
    """A timed-out request the receiver still works on: 409 now, its answer later."""
    fake.hold()
    impatient = webhook(session, fake.url, timeout=0.05)
    with pytest.raises(TransientError, match="no answer"):
        await impatient.send(message())

    # The retry waits as long as it needs for the receiver's 409 (not 0.05 s under load).
    with pytest.raises(TransientError, match="HTTP 409"):
        await webhook(session, fake.url).send(message())

    fake.release()
    await fake.wait_for_answers(2)
    receipt = await webhook(session, fake.url).send(message())

    assert len(fake.posts) == 1
    assert receipt.remote_id is not None
    assert fake.post(receipt.remote_id) is fake.posts[0]
    assert fake.requests[-1].replayed


async def test_held_request_completes_on_release(
    session: aiohttp.ClientSession, fake: FakeWebhook, message: MakeMessage
) -> None:
    fake.hold()
    sending = asyncio.create_task(webhook(session, fake.url).send(message()))
    await fake.wait_for_requests(1)
    assert not sending.done()

    fake.release()
    receipt = await sending

    assert receipt.remote_id is not None
    assert len(fake.posts) == 1


# -- the fake's idempotency ----------------------------------------------------------------


async def test_the_same_key_twice_is_one_post(
    session: aiohttp.ClientSession, fake: FakeWebhook, message: MakeMessage
) -> None:
    adapter = webhook(session, fake.url)

    first = await adapter.send(message())
    again = await adapter.send(message())

    assert again == first
    assert len(fake.requests) == 2
    assert len(fake.posts) == 1
    assert fake.requests[1].replayed
    assert fake.requests[1].headers["Idempotency-Key"] == "FW-DUS-2026-000123:hook"


async def test_a_key_reused_for_another_body_is_refused(
    session: aiohttp.ClientSession, fake: FakeWebhook, message: MakeMessage
) -> None:
    adapter = webhook(session, fake.url)
    await adapter.send(message())

    # Why a retraction needs a key of its own: the alert's key would be refused (or,
    # at a less careful receiver, silently answered with the alert's receipt).
    with pytest.raises(PermanentError, match="HTTP 422"):
        await adapter.send(message(kind="retraction", title="Entwarnung", text="Fehlalarm"))
    await adapter.send(
        message(kind="retraction", title="Entwarnung", text="Fehlalarm", idempotency_key="r:hook")
    )

    assert [post.json["kind"] for post in fake.posts] == ["alert", "retraction"]
