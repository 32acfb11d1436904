"""The whatsapp adapter against a fake WhatsApp Cloud API over real sockets."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from broadcaster.channels.base import OutgoingMessage, PermanentError, TransientError
from broadcaster.channels.settings import WhatsappChannel, load_channels
from broadcaster.channels.whatsapp import WhatsappAdapter, parameter_text
from broadcaster.models import Receipt, Recipients
from tests.fakes.whatsapp import (
    ACCESS_TOKEN,
    APP_SECRET,
    PHONE_NUMBER_ID,
    FakeWhatsapp,
)

MakeMessage = Callable[..., OutgoingMessage]
N1, N2, N3, N4 = "+4915100000001", "+4915100000002", "+4915100000003", "+4915100000004"
WAMID = re.compile(r"^wamid\.[A-Za-z0-9]+$")
TEMPLATES = {
    ("zivilschutz_warnung", "de"): 2,
    ("zivilschutz_update", "de"): 2,
    ("zivilschutz_entwarnung", "de"): 2,
    ("zivilschutz_korrektur", "de"): 2,
}
CHANNEL_TEMPLATES = {
    "warning": {"name": "zivilschutz_warnung", "language": "de"},
    "update": {"name": "zivilschutz_update", "language": "de"},
    "all_clear": {"name": "zivilschutz_entwarnung"},
    "_retraction": {"name": "zivilschutz_korrektur"},
}
TEXT = "Großbrand in Flingern-Nord.\n\nFenster\tund Türen      schließen!"


@pytest.fixture
async def meta() -> AsyncIterator[FakeWhatsapp]:
    async with FakeWhatsapp.start(templates=TEMPLATES) as server:
        yield server


@pytest.fixture
def wa(message: MakeMessage) -> MakeMessage:
    def make(**changes: Any) -> OutgoingMessage:
        fields: dict[str, Any] = {
            "text": TEXT,
            "mode": "live",
            "idempotency_key": "FW-DUS-2026-000123:wa",
        }
        fields.update(changes)
        return message(**fields)

    return make


def adapter(
    session: aiohttp.ClientSession,
    fake: FakeWhatsapp,
    *,
    to: list[str] | None = None,
    **settings: Any,
) -> WhatsappAdapter:
    data: dict[str, Any] = {
        "type": "whatsapp",
        "base_url": fake.graph_url,
        "phone_number_id": PHONE_NUMBER_ID,
        "access_token": ACCESS_TOKEN,
        "app_secret": APP_SECRET,
        "templates": CHANNEL_TEMPLATES,
        "to": to or [N1, N2, N3],
        # One request at a time, so the tests can name the order.
        "max_in_flight": 1,
    }
    data.update(settings)
    return WhatsappAdapter("wa", WhatsappChannel.model_validate(data), session, timeout=5.0)


# -- the request ---------------------------------------------------------------------------


async def test_one_template_message_per_subscriber(
    session: aiohttp.ClientSession, meta: FakeWhatsapp, wa: MakeMessage
) -> None:
    receipt = await adapter(session, meta).send(wa())

    assert [r.json["to"] for r in meta.requests] == [n[1:] for n in (N1, N2, N3)]
    for request in meta.requests:
        assert request.method == "POST"
        assert request.path == f"/v21.0/{PHONE_NUMBER_ID}/messages"
        assert request.headers["Authorization"] == f"Bearer {ACCESS_TOKEN}"
        assert request.headers["Content-Type"] == "application/json"
        assert request.json == {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": request.json["to"],
            "type": "template",
            "template": {
                "name": "zivilschutz_warnung",
                "language": {"code": "de"},
                "components": [
                    {
                        "type": "body",
                        "parameters": [
                            {"type": "text", "text": "ÜBUNG: Großbrand in Flingern-Nord"},
                            # Line breaks, tabs and runs of spaces are one space (132018).
                            {
                                "type": "text",
                                "text": "Großbrand in Flingern-Nord. Fenster und Türen schließen!",
                            },
                        ],
                    }
                ],
            },
        }
        assert request.status == 200
    wamids = {f"+{m['to']}": m["id"] for m in meta.messages}
    assert all(WAMID.match(w) for w in wamids.values())
    assert receipt.remote_id == wamids[N1]
    assert receipt.recipients == Recipients(total=3, delivered=3, failed=0)
    assert receipt.data == {
        "delivered_to": [N1, N2, N3],
        "ids": wamids,
        "failed": {},
        "permanent": [],
    }


def test_parameter_text_takes_out_what_meta_refuses() -> None:
    assert parameter_text(" a\nb\r\n\tc      d  ") == "a b c d"
    assert parameter_text("Ä  ß") == "Ä ß"


async def test_a_template_of_its_own_per_playbook_and_parameters_per_template(
    session: aiohttp.ClientSession, wa: MakeMessage
) -> None:
    templates = {("sturm_warnung", "de"): 1, **TEMPLATES}
    async with FakeWhatsapp.start(templates=templates, pair_window=0.0) as meta:
        channel = adapter(
            session,
            meta,
            to=[N1],
            templates={
                **CHANNEL_TEMPLATES,
                "severe_storm/warning": {"name": "sturm_warnung", "parameters": ["text"]},
            },
        )
        await channel.send(wa(scenario="severe_storm"))
        await channel.send(wa(scenario="major_fire"))

    first, second = (r.json["template"] for r in meta.requests)
    assert first["name"] == "sturm_warnung"
    assert len(first["components"][0]["parameters"]) == 1
    assert second["name"] == "zivilschutz_warnung"
    assert [r.status for r in meta.requests] == [200, 200]


async def test_a_stage_without_a_template_sends_nothing(
    session: aiohttp.ClientSession, meta: FakeWhatsapp, wa: MakeMessage
) -> None:
    with pytest.raises(PermanentError, match=r"no template for 'evacuation'.*templates.evacuation"):
        await adapter(session, meta).send(wa(stage="evacuation"))
    assert meta.requests == []


# -- follow-ups and the retraction ---------------------------------------------------------


async def test_a_follow_up_quotes_each_subscribers_own_earlier_message(
    session: aiohttp.ClientSession, meta: FakeWhatsapp, wa: MakeMessage
) -> None:
    meta.pair_window = 0.0
    first = await adapter(session, meta, to=[N1, N2]).send(wa())
    # N3 subscribed since: no earlier message to quote.
    await adapter(session, meta, to=[N1, N2, N3]).send(wa(stage="update", reply_to=first))

    updates = meta.requests[2:]
    assert [r.json["template"]["name"] for r in updates] == ["zivilschutz_update"] * 3
    assert [r.json.get("context") for r in updates] == [
        {"message_id": first.data["ids"][N1]},
        {"message_id": first.data["ids"][N2]},
        None,
    ]
    assert [r.status for r in updates] == [200, 200, 200]


async def test_the_retraction_template_goes_to_those_the_false_alarm_reached(
    session: aiohttp.ClientSession, meta: FakeWhatsapp, wa: MakeMessage
) -> None:
    meta.pair_window = 0.0
    meta.undeliverable(N2)
    channel = adapter(session, meta, to=[N1, N2, N3, N4])
    with pytest.raises(PermanentError) as refused:
        await channel.send(wa())
    original = refused.value.partial
    assert original is not None
    assert original.data["delivered_to"] == [N1, N3, N4]

    correction = await channel.send(
        wa(kind="retraction", alert_id="FW-1:retraction", retracts="FW-1", reply_to=original)
    )

    sent = meta.requests[4:]
    assert [r.json["to"] for r in sent] == [N1[1:], N3[1:], N4[1:]]
    assert {r.json["template"]["name"] for r in sent} == {"zivilschutz_korrektur"}
    assert [r.json["context"]["message_id"] for r in sent] == [
        original.data["ids"][n] for n in (N1, N3, N4)
    ]
    assert correction.recipients == Recipients(total=3, delivered=3, failed=0)


async def test_a_retraction_without_the_original_goes_to_every_subscriber(
    session: aiohttp.ClientSession, meta: FakeWhatsapp, wa: MakeMessage
) -> None:
    await adapter(session, meta).send(wa(kind="retraction", retracts="FW-1"))
    assert [r.json["template"]["name"] for r in meta.requests] == ["zivilschutz_korrektur"] * 3


async def test_the_duty_officers_confirm_link_goes_in_its_own_template(
    session: aiohttp.ClientSession, wa: MakeMessage
) -> None:
    templates = {("dienst_freigabe", "de"): 2, ("dienst_abgelehnt", "de"): 2}
    async with FakeWhatsapp.start(templates=templates, pair_window=0.0) as meta:
        officers = adapter(
            session,
            meta,
            to=[N1],
            audience="internal",
            templates={
                "_confirmation_request": {"name": "dienst_freigabe"},
                "_refusal": {"name": "dienst_abgelehnt"},
            },
        )
        url = "https://warn.example.org/confirm/abc123"
        await officers.send(wa(kind="confirmation_request", confirm_url=url, text="Freigeben?"))
        await officers.send(wa(kind="refusal", error="bad_signature", text="Abgelehnt."))
        with pytest.raises(PermanentError, match="no template for '_retraction'"):
            await officers.send(wa(kind="retraction"))

    confirm, refusal = (r.json["template"] for r in meta.requests)
    assert confirm["name"] == "dienst_freigabe"
    assert confirm["components"][0]["parameters"][1]["text"] == f"Freigeben? {url}"
    assert refusal["name"] == "dienst_abgelehnt"
    assert [r.status for r in meta.requests] == [200, 200]


async def test_nothing_can_be_recalled(session: aiohttp.ClientSession, meta: FakeWhatsapp) -> None:
    channel = adapter(session, meta)
    assert channel.can_thread is True
    assert channel.can_delete is False
    with pytest.raises(PermanentError, match="cannot be recalled"):
        await channel.delete(Receipt(remote_id="wamid.X"))
    assert meta.requests == []


# -- errors --------------------------------------------------------------------------------


async def test_the_pair_rate_limit_is_waited_out_and_nobody_is_dropped_or_sent_twice(
    session: aiohttp.ClientSession, meta: FakeWhatsapp, wa: MakeMessage
) -> None:
    channel = adapter(session, meta, to=[N1, N2, N3], pair_wait=6.0)
    warning = await adapter(session, meta, to=[N1]).send(wa())
    # N1 had the warning a moment ago: Meta refuses the update to N1 for ~6 s.
    with pytest.raises(TransientError) as waited:
        await channel.send(wa(stage="update", reply_to=warning))
    error = waited.value
    assert error.retry_after == 6.0
    assert error.busy is True  # the provider is up: not a failure for the breaker
    assert error.partial is not None
    assert error.partial.data["delivered_to"] == [N2, N3]
    assert "131056" in error.partial.data["failed"][N1]
    assert meta.refusals == [131056]

    meta.advance(6.0)  # the fake's clock, past the window: nobody sleeps
    receipt = await channel.send(wa(stage="update", reply_to=warning, previous=error.partial))

    assert receipt.recipients == Recipients(total=3, delivered=3, failed=0)
    updates = Counter(m["to"] for m in meta.messages if m["template"]["name"].endswith("update"))
    assert updates == Counter({N1[1:]: 1, N2[1:]: 1, N3[1:]: 1})


async def test_over_the_throughput_no_new_request_starts_and_the_pace_halves(
    session: aiohttp.ClientSession, meta: FakeWhatsapp, wa: MakeMessage
) -> None:
    meta.throughput = 2  # messages a second
    channel = adapter(session, meta, to=[N1, N2, N3, N4])
    with pytest.raises(TransientError) as throttled:
        await channel.send(wa())
    error = throttled.value
    assert error.busy is True
    assert error.retry_after == 1.0
    assert len(meta.requests) == 3  # N4 was never tried
    assert meta.refusals == [130429]
    assert error.partial is not None
    assert error.partial.data["delivered_to"] == [N1, N2]
    assert channel.rate == 40.0

    meta.advance(1.0)
    receipt = await channel.send(wa(previous=error.partial))
    assert receipt.recipients == Recipients(total=4, delivered=4, failed=0)
    assert Counter(m["to"] for m in meta.messages) == Counter(n[1:] for n in (N1, N2, N3, N4))


async def test_an_undeliverable_number_is_refused_for_good_and_the_others_reached(
    session: aiohttp.ClientSession, meta: FakeWhatsapp, wa: MakeMessage
) -> None:
    meta.undeliverable(N2)
    channel = adapter(session, meta)
    with pytest.raises(PermanentError) as refused:
        await channel.send(wa())
    partial = refused.value.partial
    assert partial is not None
    assert partial.data["delivered_to"] == [N1, N3]
    assert partial.data["permanent"] == [N2]
    assert "131026" in partial.data["failed"][N2]
    assert partial.recipients == Recipients(total=3, delivered=2, failed=1)
    assert "1 of 3 recipients not reached" in refused.value.message

    # Another attempt tries nobody again.
    with pytest.raises(PermanentError):
        await channel.send(wa(previous=partial))
    assert len(meta.requests) == 3


async def test_a_token_error_stops_the_channel_after_one_request(
    session: aiohttp.ClientSession, meta: FakeWhatsapp, wa: MakeMessage
) -> None:
    numbers = [f"+49151{i:08d}" for i in range(1, 501)]
    token = "EAAG-expired-token-0123456789"
    channel = adapter(session, meta, to=numbers, access_token=token, max_in_flight=10)
    with pytest.raises(PermanentError) as refused:
        await channel.send(wa())
    # Each worker may have had one request under way; none started after the answer.
    assert 1 <= len(meta.requests) <= 10
    assert set(meta.refusals) == {190}
    assert "190" in refused.value.message
    assert token not in refused.value.message
    partial = refused.value.partial
    assert partial is not None
    assert len(partial.data["permanent"]) == 500
    assert "renew access_token" in partial.data["failed"][numbers[0]]


async def test_a_template_meta_does_not_know_stops_the_channel(
    session: aiohttp.ClientSession, meta: FakeWhatsapp, wa: MakeMessage
) -> None:
    templates = {**CHANNEL_TEMPLATES, "warning": {"name": "zivilschutz_warnung", "language": "en"}}
    with pytest.raises(PermanentError, match="132001"):
        await adapter(session, meta, templates=templates).send(wa())
    assert len(meta.requests) == 1

    wrong_count = {**CHANNEL_TEMPLATES, "warning": {"name": "zivilschutz_warnung"}}
    with pytest.raises(PermanentError, match="132000"):
        await adapter(session, meta, templates=wrong_count, parameters=["text"]).send(wa())
    assert len(meta.requests) == 2


async def test_something_went_wrong_is_transient_for_that_subscriber_only(
    session: aiohttp.ClientSession, meta: FakeWhatsapp, wa: MakeMessage
) -> None:
    meta.fail_number(N2, 131000, times=1)
    channel = adapter(session, meta)
    with pytest.raises(TransientError) as failed:
        await channel.send(wa())
    assert failed.value.busy is False  # a failure for the breaker
    partial = failed.value.partial
    assert partial is not None
    assert partial.data["delivered_to"] == [N1, N3]

    receipt = await channel.send(wa(previous=partial))
    assert receipt.recipients == Recipients(total=3, delivered=3, failed=0)
    assert Counter(m["to"] for m in meta.messages) == Counter(n[1:] for n in (N1, N2, N3))


async def test_service_unavailable_and_app_limits_stop_the_attempt(
    session: aiohttp.ClientSession, meta: FakeWhatsapp, wa: MakeMessage
) -> None:
    meta.fail_number(N1, 2, times=1)
    channel = adapter(session, meta)
    with pytest.raises(TransientError) as failed:
        await channel.send(wa())
    assert len(meta.requests) == 1
    partial = failed.value.partial
    assert partial is not None
    assert partial.data["delivered_to"] == []
    await channel.send(wa(previous=partial))
    assert len(meta.messages) == 3


async def test_a_5xx_without_a_graph_code_is_retried(
    session: aiohttp.ClientSession, meta: FakeWhatsapp, wa: MakeMessage
) -> None:
    meta.script((502, {"Content-Type": "text/html"}, "<html>Bad Gateway</html>"))
    channel = adapter(session, meta)
    with pytest.raises(TransientError, match="HTTP 502") as failed:
        await channel.send(wa())
    assert failed.value.partial is not None
    assert failed.value.partial.data["delivered_to"] == [N2, N3]


# -- a crash mid-send ----------------------------------------------------------------------


class LostClaim(Exception):
    pass


async def test_resuming_after_a_crash_sends_nobody_saved_as_reached_again(
    session: aiohttp.ClientSession, meta: FakeWhatsapp, wa: MakeMessage
) -> None:
    numbers = [f"+49151{i:08d}" for i in range(1, 11)]
    saved: list[Receipt] = []

    async def checkpoint(receipt: Receipt) -> None:
        if len(saved) == 3:
            raise LostClaim  # the daemon dies here: nothing after this is saved
        saved.append(receipt)

    channel = adapter(session, meta, to=numbers)
    channel.checkpoint_every = 2
    with pytest.raises(LostClaim):
        await channel.send(wa(checkpoint=checkpoint))
    last = saved[-1]
    reached, unsure = last.data["delivered_to"], last.data["in_flight"]
    assert reached == numbers[:2]
    assert unsure == numbers[2:4]  # sent, but the daemon died before saving their answers
    assert len(meta.messages) == 4

    meta.advance(6.0)  # the restart comes after the pair window
    restarted = adapter(session, meta, to=numbers)
    receipt = await restarted.send(wa(previous=last))

    assert receipt.recipients == Recipients(total=10, delivered=10, failed=0)
    sent = Counter(f"+{m['to']}" for m in meta.messages)
    # Those saved as reached never again; Meta has no look-up, so the unsure ones are
    # sent again (a duplicate warning rather than a missed one); the rest once.
    assert {n: sent[n] for n in reached} == dict.fromkeys(reached, 1)
    assert {n: sent[n] for n in unsure} == dict.fromkeys(unsure, 2)
    assert {n: sent[n] for n in numbers[4:]} == dict.fromkeys(numbers[4:], 1)
    assert receipt.data["ids"][numbers[0]] == last.data["ids"][numbers[0]]


# -- subscribers ---------------------------------------------------------------------------


def _channel_file(folder: Path, **extra: Any) -> None:
    import yaml

    data = {
        "type": "whatsapp",
        "phone_number_id": PHONE_NUMBER_ID,
        "access_token": "t",
        "app_secret": "s",
        "templates": CHANNEL_TEMPLATES,
        **extra,
    }
    (folder / "wa.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")


def test_subscribers_from_a_file_beside_the_channel_file(tmp_path: Path) -> None:
    (tmp_path / "subscribers.txt").write_text(
        f"# opted in at the town hall\n{N1}\n\n{N2}  # Frau M.\n{N1}\n", encoding="utf-8"
    )
    _channel_file(tmp_path, to=[N3], to_file="subscribers.txt")
    channels, problems = load_channels(tmp_path)
    assert problems == []
    channel = channels["wa"]
    assert isinstance(channel, WhatsappChannel)
    assert channel.recipients == [N3, N1, N2]


def test_a_bad_number_in_the_file_is_named_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "subscribers.txt").write_text(f"{N1}\n0151 2345678\n", encoding="utf-8")
    _channel_file(tmp_path, to_file="subscribers.txt")
    channels, problems = load_channels(tmp_path)
    assert channels == {}
    assert len(problems) == 1
    assert "subscribers.txt line 2: '0151 2345678' is not an E.164 number" in problems[0].what


def test_no_subscribers_at_all_is_an_error(tmp_path: Path) -> None:
    _channel_file(tmp_path)
    channels, problems = load_channels(tmp_path)
    assert channels == {}
    assert "no subscribers" in problems[0].what
