"""Delivery receipts: the providers' signatures, the ranking of repeated and out-of-order
reports, and the hooks and API routes over HTTP against a real SQLite store."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yarl
from aiohttp.test_utils import TestServer
from structlog.testing import capture_logs

from broadcaster.channels.settings import SmsChannel, parse_channel
from broadcaster.channels.sms import SmsAdapter
from broadcaster.metrics import Metrics
from broadcaster.models import Receipt, Recipients, StatusReport
from broadcaster.receipts import (
    counts_as,
    furthest,
    is_loopback,
    meta_signature,
    sms_status_callback,
    twilio_signature,
)
from broadcaster.store import open_store
from broadcaster.store.base import Store
from broadcaster.web.api import WebState, make_app
from broadcaster.web.hooks import HOOK_MAX_BODY, HookState, add_hook_routes
from broadcaster.web.recipients import add_recipient_routes
from tests.channels.conftest import MESSAGE
from tests.fakes import sms as fake_sms
from tests.fakes import whatsapp as fake_wa
from tests.servers import free_port
from tests.store.helpers import make_alert, make_delivery

TOKEN = "api-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
N1, N2, N3 = "+4915100000001", "+4915100000002", "+4915100000003"


# -- signatures ----------------------------------------------------------------------------


def test_twilios_published_example_signature() -> None:
    # twilio.com/docs/usage/security#validating-requests
    params = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+12349013030"),
        ("Digits", "1234"),
        ("From", "+12349013030"),
        ("To", "+18005551212"),
    ]
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio_signature("12345", url, reversed(params)) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert fake_sms.twilio_signature("12345", url, dict(params)) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def test_metas_signature_is_the_hex_hmac_sha256_of_the_raw_body() -> None:
    body = b'{"object":"whatsapp_business_account","entry":[]}'
    signed = meta_signature("app-secret", body)
    assert signed == fake_wa.sign("app-secret", body)
    assert signed.startswith("sha256=")
    assert len(signed) == len("sha256=") + 64
    assert meta_signature("app-secret", body + b" ") != signed


def test_status_callbacks_are_asked_for_unless_no_provider_can_reach_the_daemon() -> None:
    public, local = "https://warn.example.org/", "http://127.0.0.1:8080"
    assert sms_status_callback("sms", None, public) == "https://warn.example.org/hooks/sms/sms"
    assert sms_status_callback("sms", None, local) is None
    assert sms_status_callback("sms", True, local) == "http://127.0.0.1:8080/hooks/sms/sms"
    assert sms_status_callback("sms", False, public) is None
    assert is_loopback("http://localhost:8080")
    assert is_loopback("http://[::1]:8080")
    assert not is_loopback("https://192.0.2.10")


# -- ranking -------------------------------------------------------------------------------


def reports(*words: str) -> list[StatusReport]:
    return [StatusReport(channel_id="c", message_id="m", status=w) for w in words]


@pytest.mark.parametrize(
    ("kind", "words", "state"),
    [
        ("whatsapp", ["read", "sent", "delivered"], "read"),
        ("whatsapp", ["sent", "read"], "read"),  # read as it arrived: no delivered
        ("whatsapp", ["delivered", "sent", "delivered"], "delivered"),
        ("whatsapp", ["sent", "failed", "delivered"], "failed"),
        ("whatsapp", ["deleted"], "pending"),  # a word Meta may add: never wins
        ("sms", ["delivered", "sent", "queued"], "delivered"),
        ("sms", ["queued"], "pending"),
        ("sms", ["sending", "sent"], "sent"),
        ("sms", ["sent", "undelivered", "sent"], "undelivered"),
        ("sms", ["failed", "queued"], "failed"),
        ("sms", [], "pending"),
    ],
)
def test_the_furthest_state_wins(kind: str, words: list[str], state: str) -> None:
    assert counts_as(kind, furthest(kind, reports(*words))) == state


# -- the hooks and the API over HTTP -------------------------------------------------------

WA_CHANNEL = {
    "type": "whatsapp",
    "phone_number_id": fake_wa.PHONE_NUMBER_ID,
    "access_token": "token",
    "app_secret": fake_wa.APP_SECRET,
    "verify_token": "verify-me",
    "templates": {"warning": {"name": "zivilschutz_warnung"}},
    "to": [N1, N2, N3],
}
SMS_CHANNEL = {
    "type": "sms",
    "account_sid": fake_sms.ACCOUNT_SID,
    "auth_token": fake_sms.AUTH_TOKEN,
    "from": "+4921155550000",
    "to": [N1, N2],
}


@dataclass
class Daemonish:
    url: str
    store: Store
    http: aiohttp.ClientSession


@pytest.fixture
async def web(tmp_path: Path) -> AsyncIterator[Daemonish]:
    store = open_store("sqlite:///receipts.db", tmp_path)
    await store.open()
    port = free_port()
    public_url = f"http://127.0.0.1:{port}"
    state = WebState(
        receiver=None,  # type: ignore[arg-type]
        store=store,
        metrics=Metrics(),
        api_token=TOKEN,
        healthy=None,  # type: ignore[arg-type]
        retractor=None,  # type: ignore[arg-type]
    )
    app = make_app(state)
    channels = {
        "wa": parse_channel(WA_CHANNEL),
        "sms": parse_channel(SMS_CHANNEL),
    }
    add_hook_routes(app, HookState(store, channels, public_url))
    add_recipient_routes(app)
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            yield Daemonish(public_url, store, http)
    finally:
        await server.close()
        await store.close()


async def post_wa(web: Daemonish, body: bytes, signature: str | None, cid: str = "wa") -> Any:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    async with web.http.post(f"{web.url}/hooks/whatsapp/{cid}", data=body, headers=headers) as r:
        return r.status, await r.json()


def wa_status(wamid: str, to: str, status: str, error: int | None = None) -> bytes:
    fake = fake_wa.FakeWhatsapp(
        access_token="t",
        app_secret=fake_wa.APP_SECRET,
        phone_number_id=fake_wa.PHONE_NUMBER_ID,
        templates={},
        pair_window=0,
    )
    return json.dumps(fake.status_body(wamid, to.lstrip("+"), status, error)).encode()


async def test_a_signed_whatsapp_status_is_kept_once(web: Daemonish) -> None:
    body = wa_status("wamid.A", N1, "delivered")
    assert await post_wa(web, body, fake_wa.sign(fake_wa.APP_SECRET, body)) == (
        200,
        {"kept": 1, "repeated": 0},
    )
    assert await post_wa(web, body, fake_wa.sign(fake_wa.APP_SECRET, body)) == (
        200,
        {"kept": 0, "repeated": 1},
    )
    kept = await web.store.status_reports("wa", ["wamid.A"])
    assert [r.status for r in kept["wamid.A"]] == ["delivered"]
    failed = wa_status("wamid.B", N2, "failed", 131026)
    await post_wa(web, failed, fake_wa.sign(fake_wa.APP_SECRET, failed))
    kept = await web.store.status_reports("wa", ["wamid.B"])
    assert kept["wamid.B"][0].error == "131026: Message undeliverable"


async def test_a_bad_or_missing_signature_is_refused_and_nothing_kept(web: Daemonish) -> None:
    body = wa_status("wamid.A", N1, "read")
    wrong = fake_wa.sign("another-secret", body)
    with capture_logs() as logs:
        status, answer = await post_wa(web, body, wrong)
        assert status == 403
        assert answer["error"] == "bad_signature"
        assert (await post_wa(web, body, None))[0] == 401
        assert (await post_wa(web, body, "sha256=" + "0" * 64))[0] == 403
        # Signed over another body: a changed byte is refused.
        changed = body + b" "
        assert (await post_wa(web, changed, fake_wa.sign(fake_wa.APP_SECRET, body)))[0] == 403
    assert await web.store.status_reports("wa", ["wamid.A"]) == {}
    refused = [e for e in logs if e["event"] == "hook_signature_refused"]
    assert len(refused) == 4
    assert all(e["path"] == "/hooks/whatsapp/wa" for e in refused)
    assert fake_wa.APP_SECRET not in repr(logs)
    assert wrong.removeprefix("sha256=") not in repr(logs)


async def test_unknown_channels_and_channels_of_another_type_are_404(web: Daemonish) -> None:
    body = wa_status("wamid.A", N1, "read")
    signed = fake_wa.sign(fake_wa.APP_SECRET, body)
    assert (await post_wa(web, body, signed, "nope"))[0] == 404
    assert (await post_wa(web, body, signed, "sms"))[0] == 404
    async with web.http.post(f"{web.url}/hooks/sms/wa", data={"MessageSid": "SM1"}) as r:
        assert r.status == 404


async def test_the_whatsapp_handshake(web: Daemonish) -> None:
    query = {
        "hub.mode": "subscribe",
        "hub.verify_token": "verify-me",
        "hub.challenge": "1158201444",
    }
    async with web.http.get(f"{web.url}/hooks/whatsapp/wa", params=query) as r:
        assert r.status == 200
        assert await r.text() == "1158201444"
    for wrong in ({"hub.verify_token": "guess"}, {"hub.mode": "unsubscribe"}):
        async with web.http.get(f"{web.url}/hooks/whatsapp/wa", params={**query, **wrong}) as r:
            assert r.status == 403


async def post_sms(web: Daemonish, params: dict[str, str], signature: str | None) -> int:
    headers = {"X-Twilio-Signature": signature} if signature is not None else {}
    async with web.http.post(f"{web.url}/hooks/sms/sms", data=params, headers=headers) as r:
        return r.status


def sms_params(sid: str, status: str, **extra: str) -> dict[str, str]:
    return {
        "AccountSid": fake_sms.ACCOUNT_SID,
        "MessageSid": sid,
        "MessageStatus": status,
        "From": "+4921155550000",
        "To": N1,
        **extra,
    }


async def test_a_signed_twilio_callback_is_kept_and_a_forged_one_refused(web: Daemonish) -> None:
    url = f"{web.url}/hooks/sms/sms"
    params = sms_params("SM1", "undelivered", ErrorCode="30003")
    assert (
        await post_sms(web, params, fake_sms.twilio_signature(fake_sms.AUTH_TOKEN, url, params))
        == 200
    )
    again = fake_sms.twilio_signature(fake_sms.AUTH_TOKEN, url, params)
    assert await post_sms(web, params, again) == 200  # a repeat is answered, not kept twice
    kept = await web.store.status_reports("sms", ["SM1"])
    assert [(r.status, r.error) for r in kept["SM1"]] == [("undelivered", "30003")]

    forged = sms_params("SM2", "delivered")
    other_url = "http://evil.example/hooks/sms/sms"  # signed for another address
    assert (
        await post_sms(
            web, forged, fake_sms.twilio_signature(fake_sms.AUTH_TOKEN, other_url, forged)
        )
        == 403
    )
    assert await post_sms(web, forged, None) == 401
    tampered = {**params, "MessageStatus": "delivered"}
    assert await post_sms(web, tampered, again) == 403
    assert await web.store.status_reports("sms", ["SM2"]) == {}
    assert [r.status for r in (await web.store.status_reports("sms", ["SM1"]))["SM1"]] == [
        "undelivered"
    ]


async def test_the_alert_shows_receipt_counts_and_each_recipient_its_receipt(
    web: Daemonish,
) -> None:
    alert = make_alert("FW-R-1")
    ids = {N1: "wamid.1", N2: "wamid.2"}
    delivery = make_delivery(
        "FW-R-1",
        "wa",
        channel_type="whatsapp",
        state="failed",
        receipt=Receipt(
            remote_id="wamid.1",
            data={
                "delivered_to": [N1, N2],
                "ids": ids,
                "failed": {N3: "HTTP 400 131026: Message undeliverable"},
                "permanent": [N3],
            },
            recipients=Recipients(total=3, delivered=2, failed=1),
        ),
        recipients=Recipients(total=3, delivered=2, failed=1),
    )
    await web.store.create_alert(alert, [delivery])
    # Out of order and repeated: read before delivered, sent twice.
    for wamid, word in [("wamid.1", "read"), ("wamid.1", "sent"), ("wamid.1", "delivered")]:
        body = wa_status(wamid, N1, word)
        await post_wa(web, body, fake_wa.sign(fake_wa.APP_SECRET, body))
    for word in ("sent", "sent"):
        body = wa_status("wamid.2", N2, word)
        await post_wa(web, body, fake_wa.sign(fake_wa.APP_SECRET, body))

    async with web.http.get(f"{web.url}/api/alerts/FW-R-1", headers=AUTH) as r:
        assert r.status == 200
        shown = await r.json()
    assert shown["deliveries"]["wa"]["state"] == "failed"  # the delivery is the dispatcher's
    assert shown["deliveries"]["wa"]["recipients"] == {
        "total": 3,
        "delivered": 2,
        "failed": 1,
        "receipts": {
            "pending": 0,
            "sent": 1,
            "delivered": 0,
            "read": 1,
            "undelivered": 0,
            "failed": 0,
        },
    }

    async with web.http.get(f"{web.url}/api/alerts/FW-R-1/deliveries/wa", headers=AUTH) as r:
        assert r.status == 200
        detail = await r.json()
    listed = {e["recipient"]: e for e in detail["recipient_list"]}
    assert listed[N1]["receipt"] == "read"
    assert listed[N1]["message_id"] == "wamid.1"
    assert listed[N2]["receipt"] == "sent"
    assert listed[N3]["outcome"] == "refused"
    assert "131026" in listed[N3]["error"]
    assert "receipt" not in listed[N3]

    async with web.http.get(f"{web.url}/api/alerts/FW-R-1/deliveries/wa") as r:
        assert r.status == 401  # behind the token like every /api route
    async with web.http.get(f"{web.url}/api/alerts/FW-R-1/deliveries/none", headers=AUTH) as r:
        assert r.status == 404


async def test_the_sms_adapter_asks_for_callbacks_and_the_fake_sends_them_signed(
    web: Daemonish,
) -> None:
    async with fake_sms.FakeTwilio.start() as twilio:
        twilio.callback_statuses(N2, ["sent", "undelivered"], error_code=30003)
        twilio.callback_order = "reversed"
        twilio.callback_repeat = True
        config = SmsChannel.model_validate(
            {**SMS_CHANNEL, "base_url": twilio.base_url, "status_callback": True}
        )
        adapter = SmsAdapter("sms", config, web.http, public_url=web.url)
        receipt = await adapter.send(MESSAGE)
        await twilio.wait_for_callbacks(8)

    assert {r.form["StatusCallback"] for r in twilio.requests} == {f"{web.url}/hooks/sms/sms"}
    assert [status for _, _, status in twilio.callbacks] == [200] * 8
    sids = receipt.data["ids"]
    kept = await web.store.status_reports("sms", list(sids.values()))
    assert counts_as("sms", furthest("sms", kept[sids[N1]])) == "delivered"
    assert counts_as("sms", furthest("sms", kept[sids[N2]])) == "undelivered"
    assert [r.error for r in kept[sids[N2]] if r.status == "undelivered"] == ["30003"]
    assert sum(len(v) for v in kept.values()) == 4  # each (message, status) once


def wa_batch(count: int, pad: int = 0) -> tuple[bytes, list[str]]:
    """One webhook body with `count` statuses (Meta batches them in a large fan-out)."""
    data = json.loads(wa_status("wamid.0", N1, "delivered"))
    [status] = data["entry"][0]["changes"][0]["value"]["statuses"]
    wamids = [f"wamid.HBgNNDkxNTEwMDAwMDAwMRUCABEYEj{i:08d}" for i in range(count)]
    data["entry"][0]["changes"][0]["value"]["statuses"] = [
        {**status, "id": wamid, "biz_opaque_callback_data": "x" * pad} for wamid in wamids
    ]
    return json.dumps(data).encode(), wamids


async def test_a_large_batch_of_statuses_is_kept_whole(web: Daemonish) -> None:
    body, wamids = wa_batch(2500, pad=150)
    assert 1024 * 1024 < len(body) < HOOK_MAX_BODY  # far over the API's client_max_size
    status, answer = await post_wa(web, body, fake_wa.sign(fake_wa.APP_SECRET, body))
    assert (status, answer) == (200, {"kept": 2500, "repeated": 0})
    kept = await web.store.status_reports("wa", wamids)
    assert sorted(kept) == sorted(wamids)
    assert all([r.status for r in reports] == ["delivered"] for reports in kept.values())


async def test_a_body_over_the_hooks_limit_is_413_and_nothing_kept(web: Daemonish) -> None:
    body, wamids = wa_batch(20)
    body += b" " * (HOOK_MAX_BODY + 1 - len(body))  # still JSON, one byte too many
    signed = fake_wa.sign(fake_wa.APP_SECRET, body)
    status, answer = await post_wa(web, body, signed)  # Content-Length says so at once
    assert status == 413
    assert answer["error"] == "too_large"
    assert str(HOOK_MAX_BODY) in answer["detail"]

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        for start in range(0, len(body), 256 * 1024):
            yield body[start : start + 256 * 1024]

    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": signed}
    async with web.http.post(f"{web.url}/hooks/whatsapp/wa", data=chunked(), headers=headers) as r:
        assert r.request_info.headers.get("Transfer-Encoding") == "chunked"
        assert r.status == 413
    assert await web.store.status_reports("wa", wamids) == {}
    # One byte fewer is taken.
    fits = body[:-1]
    status, answer = await post_wa(web, fits, fake_wa.sign(fake_wa.APP_SECRET, fits))
    assert (status, answer) == (200, {"kept": 20, "repeated": 0})


async def test_twilio_signs_the_callback_url_with_its_query_still_encoded(
    web: Daemonish,
) -> None:
    query = "a=b%20c&d=e%2Bf+g"
    url = f"{web.url}/hooks/sms/sms?{query}"  # the StatusCallback as the channel gave it
    params = sms_params("SM7", "delivered")
    signed = fake_sms.twilio_signature(fake_sms.AUTH_TOKEN, url, params)
    headers = {"X-Twilio-Signature": signed}
    async with web.http.post(yarl.URL(url, encoded=True), data=params, headers=headers) as r:
        assert r.status == 200
    decoded = f"{web.url}/hooks/sms/sms?a=b c&d=e+f g"
    forged = fake_sms.twilio_signature(fake_sms.AUTH_TOKEN, decoded, params)
    headers = {"X-Twilio-Signature": forged}
    async with web.http.post(yarl.URL(url, encoded=True), data=params, headers=headers) as r:
        assert r.status == 403  # signed over the decoded URL: not what Twilio signs
    kept = await web.store.status_reports("sms", ["SM7"])
    assert [r.status for r in kept["SM7"]] == ["delivered"]
