"""The Web Push adapter against the fake push service (tests/fakes/webpush.py): who gets a
push, its headers, VAPID and the decrypted payload, gone subscriptions, retries, refused
subscriptions and a refused key, resuming; and the fake's own decryption against RFC
8291's example."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from broadcaster.channels.base import OutgoingMessage, PermanentError, TransientError
from broadcaster.channels.kinds import kind
from broadcaster.channels.settings import WebpushChannel, parse_channel
from broadcaster.channels.webpush import (
    MAX_BODY,
    REFUSALS_TO_STOP,
    WebpushAdapter,
    payload,
    subscription_id,
    topic,
)
from broadcaster.models import PushSubscription, Receipt
from broadcaster.store.sqlite import SqliteStore
from broadcaster.vapid import VapidSigner, new_key_pair
from tests.fakes.webpush import BrowserSubscription, FakePushService, decrypt, unb64url

MakeMessage = Callable[..., OutgoingMessage]
PRIVATE, PUBLIC = new_key_pair()
SUBJECT = "mailto:warnungen@duesseldorf.example"
PUBLIC_URL = "https://warnung.duesseldorf.example"
TEXT = "Großbrand in Flingern-Nord. Fenster und Türen schließen. Lüftung aus."


@pytest.fixture
async def push() -> AsyncIterator[FakePushService]:
    async with FakePushService.start() as server:
        yield server


@pytest.fixture
def live(message: MakeMessage) -> MakeMessage:
    def make(**changes: Any) -> OutgoingMessage:
        fields: dict[str, Any] = {
            "mode": "live",
            "title": "Großbrand in Flingern-Nord",
            "text": TEXT,
            "idempotency_key": "FW-DUS-2026-000123:push",
        }
        fields.update(changes)
        return message(**fields)

    return make


def settings(**changes: Any) -> WebpushChannel:
    data: dict[str, Any] = {
        "type": "webpush",
        "vapid_private_key": PRIVATE,
        "vapid_subject": SUBJECT,
        "push_services": ["127.0.0.1"],
        "drill": "send",
        **changes,
    }
    config = parse_channel(data)
    assert isinstance(config, WebpushChannel)
    return config


def adapter(
    session: aiohttp.ClientSession, store: SqliteStore | None, **changes: Any
) -> WebpushAdapter:
    return WebpushAdapter("push", settings(**changes), session, public_url=PUBLIC_URL, store=store)


async def subscribe(
    store: SqliteStore, fake: FakePushService, count: int, *, drill: bool = False
) -> list[BrowserSubscription]:
    browsers = [fake.subscribe(key=PUBLIC) for _ in range(count)]
    for browser in browsers:
        await save(store, browser, drill=drill)
    return browsers


async def save(store: SqliteStore, browser: BrowserSubscription, *, drill: bool = False) -> None:
    await store.save_subscription(
        PushSubscription(
            id=subscription_id(browser.endpoint),
            endpoint=browser.endpoint,
            p256dh=browser.p256dh,
            auth=browser.auth,
            language="de",
            drill=drill,
        )
    )


# -- the fake's decryption, against RFC 8291 itself --------------------------------------


def test_the_fake_decrypts_rfc_8291s_own_example() -> None:
    # RFC 8291 section 5 and appendix A: the receiver's private key, its auth secret and
    # the encrypted message; no pywebpush involved.
    receiver = ec.derive_private_key(
        int.from_bytes(unb64url("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"), "big"),
        ec.SECP256R1(),
    )
    body = unb64url(
        "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocI"
        "nmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVW"
        "GNWQexSgSxsj_Qulcy4a-fN"
    )
    plaintext = decrypt(body, receiver, unb64url("BTBZMqHH6r4Tts7J_aSIgg"))
    assert plaintext == b"When I grow up, I want to be a watermelon"


# -- who gets it, and what ---------------------------------------------------------------


async def test_a_live_alert_reaches_every_live_subscription_and_no_drill_one(
    session: aiohttp.ClientSession, store: SqliteStore, push: FakePushService, live: MakeMessage
) -> None:
    citizens = await subscribe(store, push, 5)
    testers = await subscribe(store, push, 2, drill=True)
    receipt = await adapter(session, store).send(live())
    assert receipt.recipients is not None
    assert (receipt.recipients.total, receipt.recipients.delivered) == (5, 5)
    assert sorted(receipt.data["delivered_to"]) == sorted(
        subscription_id(b.endpoint) for b in citizens
    )
    for browser in citizens:
        assert len(push.delivered_to(browser)) == 1
    for browser in testers:
        assert push.delivered_to(browser) == []
    assert len(push.requests) == 5


async def test_headers_vapid_and_the_decrypted_payload(
    session: aiohttp.ClientSession, store: SqliteStore, push: FakePushService, live: MakeMessage
) -> None:
    [browser] = await subscribe(store, push, 1)
    await adapter(session, store, ttl="6h").send(live())
    [sent] = push.delivered_to(browser)
    assert sent.ttl == 6 * 3600
    assert sent.urgency == "high"
    assert sent.topic == topic("E-2026-4711", "live")
    assert len(sent.topic) <= 32
    assert sent.claims["aud"] == push.origin
    assert sent.claims["sub"] == SUBJECT
    assert time.time() < sent.claims["exp"] <= time.time() + 24 * 3600
    [request] = push.requests
    assert request.headers["Content-Encoding"] == "aes128gcm"
    assert request.headers["Authorization"].endswith(f"k={PUBLIC}")
    assert sent.data == {
        "title": "Großbrand in Flingern-Nord",
        "text": TEXT,
        "alert_id": "FW-DUS-2026-000123",
        "incident": "E-2026-4711",
        "kind": "alert",
        "mode": "live",
        "language": "de",
        "tag": topic("E-2026-4711", "live"),
        "url": f"{PUBLIC_URL}/warnings",
    }


async def test_a_drill_goes_only_to_drill_subscriptions_with_normal_urgency(
    session: aiohttp.ClientSession, store: SqliteStore, push: FakePushService, live: MakeMessage
) -> None:
    citizens = await subscribe(store, push, 3)
    [tester] = await subscribe(store, push, 1, drill=True)
    receipt = await adapter(session, store).send(live(mode="drill", title="ÜBUNG: Großbrand"))
    assert receipt.recipients is not None
    assert receipt.recipients.delivered == 1
    [sent] = push.delivered_to(tester)
    assert sent.urgency == "normal"
    assert sent.data["url"] == f"{PUBLIC_URL}/warnings?drill=1"
    assert sent.topic != topic("E-2026-4711", "live")  # never replaces a live warning
    assert all(push.delivered_to(b) == [] for b in citizens)


async def test_a_retraction_has_the_incidents_topic(
    session: aiohttp.ClientSession, store: SqliteStore, push: FakePushService, live: MakeMessage
) -> None:
    [browser] = await subscribe(store, push, 1)
    channel = adapter(session, store)
    await channel.send(live())
    await channel.send(
        live(kind="retraction", alert_id="FW-DUS-2026-000123:retraction", title="Entwarnung")
    )
    first, second = push.delivered_to(browser)
    assert first.topic == second.topic
    assert second.data["kind"] == "retraction"
    assert second.data["tag"] == first.data["tag"]
    with pytest.raises(PermanentError, match="cannot be recalled"):
        await channel.delete(Receipt(remote_id=None))


async def test_a_confirmation_request_is_never_pushed(
    session: aiohttp.ClientSession, store: SqliteStore, push: FakePushService, live: MakeMessage
) -> None:
    await subscribe(store, push, 2)
    with pytest.raises(PermanentError, match="only alerts and retractions"):
        await adapter(session, store).send(
            live(kind="confirmation_request", confirm_url="https://x.example/confirm/t")
        )
    assert push.requests == []


async def test_a_long_text_is_shortened_to_fit_4_kb(
    session: aiohttp.ClientSession, store: SqliteStore, push: FakePushService, live: MakeMessage
) -> None:
    [browser] = await subscribe(store, push, 1)
    long_text = "Rauch über Flingern. " * 400  # about 8,400 bytes
    await adapter(session, store).send(live(text=long_text))
    [sent] = push.delivered_to(browser)
    assert sent.data["text"].endswith("…")
    assert long_text.startswith(sent.data["text"][:-1])
    assert len(push.requests[0].body) <= MAX_BODY
    assert len(payload(live(text=long_text), PUBLIC_URL)) <= MAX_BODY - 103


async def test_no_subscriptions_is_delivered_to_nobody(
    session: aiohttp.ClientSession, store: SqliteStore, push: FakePushService, live: MakeMessage
) -> None:
    receipt = await adapter(session, store).send(live())
    assert receipt.recipients is not None
    assert receipt.recipients.total == 0
    assert push.requests == []


# -- answers -----------------------------------------------------------------------------


async def test_gone_subscriptions_are_deleted_and_the_delivery_still_delivered(
    session: aiohttp.ClientSession, store: SqliteStore, push: FakePushService, live: MakeMessage
) -> None:
    browsers = await subscribe(store, push, 4)
    push.expire(browsers[1])  # 410
    push.forget(browsers[2])  # 404
    receipt = await adapter(session, store).send(live())
    assert receipt.recipients is not None
    assert (receipt.recipients.total, receipt.recipients.delivered) == (2, 2)
    assert receipt.data["gone"] == {
        subscription_id(browsers[1].endpoint): 410,
        subscription_id(browsers[2].endpoint): 404,
    }
    left = {s.id for s in await store.subscriptions()}
    assert left == {subscription_id(b.endpoint) for b in (browsers[0], browsers[3])}


async def test_429_and_5xx_are_transient_and_the_retry_pushes_only_the_rest(
    session: aiohttp.ClientSession, store: SqliteStore, push: FakePushService, live: MakeMessage
) -> None:
    await subscribe(store, push, 6)
    channel = adapter(session, store, max_in_flight=1)
    push.script(503, (429, {"Retry-After": "7"}))
    with pytest.raises(TransientError) as caught:
        await channel.send(live())
    error = caught.value
    assert error.retry_after == 7
    assert error.partial is not None
    assert error.partial.recipients is not None
    # The 503 was for one subscription; the 429 stopped this push service for the attempt.
    assert error.partial.recipients.delivered == 0
    assert len(push.requests) == 2
    receipt = await channel.send(live(previous=error.partial))
    assert receipt.recipients is not None
    assert receipt.recipients.delivered == 6
    assert len(push.pushes) == 6  # each subscription exactly once
    assert len({p.token for p in push.pushes}) == 6


async def test_a_5xx_for_one_subscription_does_not_hold_up_the_others(
    session: aiohttp.ClientSession, store: SqliteStore, push: FakePushService, live: MakeMessage
) -> None:
    await subscribe(store, push, 4)
    push.script(500)
    with pytest.raises(TransientError) as caught:
        await adapter(session, store, max_in_flight=1).send(live())
    partial = caught.value.partial
    assert partial is not None
    assert partial.recipients is not None
    assert partial.recipients.delivered == 3
    assert len(push.requests) == 4


@pytest.mark.parametrize("status", [400, 401, 403])
async def test_one_refused_subscription_does_not_stop_the_others(
    session: aiohttp.ClientSession,
    store: SqliteStore,
    push: FakePushService,
    live: MakeMessage,
    status: int,
) -> None:
    await subscribe(store, push, 30)
    push.script(status)  # the first push's answer; the rest are accepted
    receipt = await adapter(session, store, max_in_flight=5).send(live())
    # The push service took the other 29 with our key: that one subscription is broken
    # (made with another key), so it is forgotten like a gone one, not a failure.
    assert receipt.recipients is not None
    assert (receipt.recipients.total, receipt.recipients.delivered) == (29, 29)
    assert receipt.recipients.failed == 0
    [refused] = receipt.data["gone"]
    assert receipt.data["gone"][refused] == status
    assert len(push.requests) == 30
    assert len(push.pushes) == 29
    assert refused not in {s.id for s in await store.subscriptions()}
    assert len(await store.subscriptions()) == 29


async def test_a_strangers_subscriptions_with_another_key_fail_alone(
    session: aiohttp.ClientSession, store: SqliteStore, push: FakePushService, live: MakeMessage
) -> None:
    # The page is public: someone subscribes real endpoints with a key of their own,
    # before anyone else (the store lists oldest first).
    _, theirs = new_key_pair()
    strangers = [push.subscribe(key=theirs) for _ in range(30)]
    for browser in strangers:
        await save(store, browser)
    citizens = await subscribe(store, push, 30)
    receipt = await adapter(session, store, max_in_flight=1).send(live())
    assert receipt.recipients is not None
    assert (receipt.recipients.delivered, receipt.recipients.failed) == (30, 0)
    assert sorted(receipt.data["delivered_to"]) == sorted(
        subscription_id(b.endpoint) for b in citizens
    )
    assert sorted(receipt.data["gone"]) == sorted(subscription_id(b.endpoint) for b in strangers)
    assert len(push.requests) == 60
    # The strangers' subscriptions are gone; the citizens' stay.
    assert len(await store.subscriptions()) == 30


async def test_refusals_in_a_row_stop_that_push_service_and_not_another(
    session: aiohttp.ClientSession, store: SqliteStore, push: FakePushService, live: MakeMessage
) -> None:
    _, other = new_key_pair()
    async with FakePushService.start() as refusing:  # another port: another origin
        assert refusing.origin != push.origin
        for _ in range(100):
            await save(store, refusing.subscribe(key=other))  # our key is refused there
        await subscribe(store, push, 10)
        with pytest.raises(PermanentError) as caught:
            await adapter(session, store, max_in_flight=1).send(live())
        assert len(refusing.requests) == REFUSALS_TO_STOP
        assert all(r.status == 403 for r in refusing.requests)
    assert len(push.pushes) == 10
    partial = caught.value.partial
    assert partial is not None
    assert partial.recipients is not None
    assert (partial.recipients.delivered, partial.recipients.failed) == (10, 100)
    assert "check vapid_private_key and vapid_subject" in caught.value.message
    assert PRIVATE not in caught.value.message


async def test_a_payload_too_large_stops_that_push_service_only(
    session: aiohttp.ClientSession, store: SqliteStore, push: FakePushService, live: MakeMessage
) -> None:
    async with FakePushService.start() as small:
        for _ in range(300):
            await save(store, small.subscribe())
        small.script(*[413] * 5)
        await subscribe(store, push, 10)
        with pytest.raises(PermanentError) as caught:
            await adapter(session, store, max_in_flight=5).send(live())
        # Only the requests already under way when the first 413 came.
        assert len(small.requests) <= 5
    assert "too large" in caught.value.message
    assert len(push.pushes) == 10
    partial = caught.value.partial
    assert partial is not None
    assert partial.recipients is not None
    assert (partial.recipients.delivered, partial.recipients.failed) == (10, 300)


async def test_a_key_the_browsers_did_not_subscribe_with_is_refused_by_the_fake(
    session: aiohttp.ClientSession, store: SqliteStore, push: FakePushService, live: MakeMessage
) -> None:
    await subscribe(store, push, 100)
    other, _ = new_key_pair()
    with pytest.raises(PermanentError, match="check vapid_private_key"):
        await adapter(session, store, vapid_private_key=other, max_in_flight=2).send(live())
    # The first REFUSALS_TO_STOP answers, and at most the one other request under way.
    assert REFUSALS_TO_STOP <= len(push.requests) <= REFUSALS_TO_STOP + 1
    assert push.requests[0].error == "k is not the key this subscription was made with"


async def test_an_unreachable_push_service_is_transient(
    session: aiohttp.ClientSession, store: SqliteStore, live: MakeMessage
) -> None:
    async with FakePushService.start() as gone:
        await subscribe(store, gone, 3)
    # The service has stopped listening: connection refused, once for its origin.
    with pytest.raises(TransientError) as caught:
        await adapter(session, store).send(live())
    assert caught.value.partial is not None
    assert caught.value.partial.recipients is not None
    assert caught.value.partial.recipients.failed == 3


# -- progress and resuming ----------------------------------------------------------------


class Saved:
    def __init__(self) -> None:
        self.receipts: list[Receipt] = []

    async def __call__(self, receipt: Receipt) -> None:
        self.receipts.append(receipt)


async def test_a_crash_resumes_without_pushing_twice_to_anyone_reached(
    session: aiohttp.ClientSession, store: SqliteStore, push: FakePushService, live: MakeMessage
) -> None:
    await subscribe(store, push, 30)
    saved = Saved()
    channel = adapter(session, store, max_in_flight=2)
    channel.checkpoint_every = 5
    push.script(*([201] * 10), 503, *([201] * 19))
    # 503 marks the first attempt's end here; the checkpoints are what a crash leaves.
    with pytest.raises(TransientError):
        await channel.send(live(checkpoint=saved))
    reached = set(saved.receipts[-1].data["delivered_to"])
    assert len(reached) >= 10
    before = len(push.requests)
    resumed = await adapter(session, store).send(live(previous=saved.receipts[-1]))
    assert resumed.recipients is not None
    assert resumed.recipients.delivered == 30
    # The second attempt pushed to nobody the last checkpoint had as reached.
    second = push.requests[before:]
    tokens = {r.path.rsplit("/", 1)[1] for r in second}
    ids = {subscription_id(push.browsers[t].endpoint) for t in tokens}
    assert not ids & reached
    assert len(second) == 30 - len(reached)


async def test_one_vapid_signature_per_push_service_origin(
    session: aiohttp.ClientSession, store: SqliteStore, push: FakePushService, live: MakeMessage
) -> None:
    await subscribe(store, push, 25)
    channel = adapter(session, store)
    await channel.send(live())
    await channel.send(live(alert_id="FW-DUS-2026-000124"))
    assert channel.signer.signed == 1
    assert len({r.headers["Authorization"] for r in push.requests}) == 1


def test_the_signer_renews_a_header_near_its_expiry() -> None:
    signer = VapidSigner(PRIVATE, SUBJECT)
    first = signer.header("https://fcm.googleapis.com", now=1_000_000.0)
    assert signer.header("https://fcm.googleapis.com", now=1_000_000.0 + 3600) == first
    assert signer.header("https://fcm.googleapis.com", now=1_000_000.0 + 11.5 * 3600) != first
    assert signer.signed == 2


# -- settings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "wrong"),
    [
        ({"vapid_private_key": "not-a-key"}, "vapid_private_key"),
        ({"vapid_subject": "warnungen@stadt.example"}, "vapid_subject"),
        ({"ttl": "0s"}, "ttl"),
        ({"ttl": 3600}, "ttl"),
        ({"audience": "internal"}, "audience"),
    ],
)
def test_bad_settings_name_the_key(changes: dict[str, Any], wrong: str) -> None:
    with pytest.raises(ValueError, match=wrong):
        settings(**changes)


def test_accepted_key_forms_and_defaults() -> None:
    from cryptography.hazmat.primitives import serialization

    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    raw = key.private_numbers().private_value.to_bytes(32, "big")
    forms = [pem, base64.urlsafe_b64encode(der).decode(), base64.urlsafe_b64encode(raw).decode()]
    keys = {VapidSigner(form, SUBJECT).public_key for form in forms}
    assert len(keys) == 1
    config = settings()
    assert config.ttl_seconds == 24 * 3600
    assert "fcm.googleapis.com" in WebpushChannel.model_fields["push_services"].get_default(
        call_default_factory=True
    )
    assert kind("webpush").capabilities.per_recipient
    assert not kind("webpush").capabilities.threads


def test_the_vapid_keys_command_prints_a_working_pair() -> None:
    from typer.testing import CliRunner

    from broadcaster.cli import app

    result = CliRunner().invoke(app, ["vapid-keys"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    private = lines[0].removeprefix("VAPID_PRIVATE_KEY=")
    assert len(private) == 43
    assert VapidSigner(private, SUBJECT).public_key in lines[1]
    assert settings(vapid_private_key=private).vapid_private_key == private
