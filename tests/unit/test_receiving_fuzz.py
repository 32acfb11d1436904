"""The whole receiving path under fuzz: intake, duplicate check, params, rendering,
store, dispatch. Whatever arrives ends as a clean refusal or an accepted alert; nothing
escapes as an exception, and a channel hears of nothing but accepted alerts."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broadcaster.channels.base import OutgoingMessage
from broadcaster.confirm import ConfirmDesk
from broadcaster.deployment import load_deployment
from broadcaster.dispatch import Dispatcher
from broadcaster.events import Events
from broadcaster.intake import sign
from broadcaster.metrics import Metrics
from broadcaster.models import ErrorCode, Receipt
from broadcaster.receiving import Receiver
from broadcaster.store.sqlite import SqliteStore
from tests.integration.harness import SECRET, signed_trigger, write_deployment

CODES = frozenset(get_args(ErrorCode))


class RecordingChannel:
    can_thread = True
    can_delete = True

    def __init__(self, channel_id: str) -> None:
        self.channel_id = channel_id
        self.sent: list[OutgoingMessage] = []

    async def send(self, message: OutgoingMessage) -> Receipt:
        self.sent.append(message)
        return Receipt(remote_id=f"{self.channel_id}-{len(self.sent)}")

    async def delete(self, receipt: Receipt) -> None:
        raise AssertionError("nothing is deleted here")


class Harness:
    def __init__(self, folder: Path) -> None:
        config = write_deployment(
            folder,
            mqtt_url="mqtt://127.0.0.1:1",
            channels={
                "hook": {"type": "webhook", "url": "http://127.0.0.1:1/", "drill": "send"},
                "quiet": {"type": "log"},  # drills never reach it
            },
        )
        self.deployment = load_deployment(config)
        self.runner = asyncio.Runner()
        self.store = SqliteStore(folder / "fuzz.db")
        self.channels = {cid: RecordingChannel(cid) for cid in ("hook", "quiet")}
        events, metrics = Events(), Metrics()
        self.dispatcher = Dispatcher(
            self.store,
            events,
            metrics,
            dict(self.channels),
            dict(self.deployment.channels),
            self.deployment.settings.delivery,
            owner="fuzz",
        )
        desk = ConfirmDesk(
            self.deployment.settings,
            self.deployment.playbooks,
            self.store,
            events,
            self.never_notify,
            self.dispatcher.release,
        )
        self.receiver = Receiver(
            self.deployment, self.store, events, metrics, self.dispatcher, desk
        )
        self.accepted: set[str] = set()
        self.runner.run(self.store.open())

    @staticmethod
    async def never_notify(channel_id: str, message: OutgoingMessage) -> bool:
        raise AssertionError("the fuzzed playbooks need no confirmation")

    def feed(self, raw: bytes) -> str:
        async def go() -> str:
            outcome = await self.receiver.receive_trigger(raw, "fuzz", owner="fuzz")
            await self.dispatcher.drain(30)
            if outcome.result == "refused":
                assert outcome.refusal is not None
                assert outcome.refusal["error"] in CODES
                assert set(outcome.refusal) == {"trigger_id", "error", "detail", "received_at"}
            else:
                assert outcome.alert is not None
                if outcome.result == "accepted":
                    self.accepted.add(outcome.alert.id)
            return outcome.result

        return self.runner.run(go())

    def sent_ids(self, channel: str) -> list[str]:
        return [m.alert_id for m in self.channels[channel].sent]

    def close(self) -> None:
        self.runner.run(self.store.close())
        self.runner.close()


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    h = Harness(tmp_path_factory.mktemp("fuzz"))
    yield h
    h.close()


def json_values() -> st.SearchStrategy[Any]:
    scalars = (
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text()
    )
    return st.recursive(
        scalars,
        lambda kids: (
            st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
        ),
        max_leaves=12,
    )


def mutate(payload: dict[str, Any], rnd: random.Random, value: Any) -> dict[str, Any]:
    out = dict(payload)
    key = rnd.choice(sorted(out))
    match rnd.randrange(6):
        case 0:
            out.pop(key)
        case 1:
            out[key] = value
        case 2:
            out["params"] = {**out.get("params", {}), rnd.choice(["location", "x"]): value}
        case 3:
            sig = out.get("signature") or "0" * 64
            i = rnd.randrange(len(sig))
            out["signature"] = sig[:i] + ("1" if sig[i] != "1" else "2") + sig[i + 1 :]
        case 4:
            out["mode"] = rnd.choice(["drill", "live", "LIVE", "", None])
        case _:
            out[str(value)[:10] or "extra"] = value
    return out


SETTINGS = settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes_are_refused_cleanly(harness, raw):
    assert harness.feed(raw) == "refused"


@SETTINGS
@given(json_values())
def test_random_json_is_refused_cleanly(harness, value):
    assert harness.feed(json.dumps(value).encode()) == "refused"


@SETTINGS
@given(st.randoms(use_true_random=False), json_values(), st.booleans())
def test_mutated_signed_triggers_never_send_what_was_not_signed(harness, rnd, value, resign):
    payload = mutate(signed_trigger(f"FZ-{rnd.getrandbits(48):x}"), rnd, value)
    if resign and isinstance(payload.get("params", {}), dict):
        # A sender who knows the secret: the signature matches, the content decides.
        payload["signature"] = sign(payload, SECRET)
    before = len(harness.channels["hook"].sent)
    result = harness.feed(json.dumps(payload, ensure_ascii=False).encode())
    sent = len(harness.channels["hook"].sent) - before
    assert sent == (1 if result == "accepted" else 0)


def test_after_the_fuzz_every_send_belongs_to_an_accepted_alert_and_no_drill_leaked(harness):
    harness.feed(json.dumps(signed_trigger("FZ-DRILL", mode="drill")).encode())
    harness.feed(json.dumps(signed_trigger("FZ-LIVE")).encode())
    hook, quiet = harness.sent_ids("hook"), harness.sent_ids("quiet")
    assert {"FZ-DRILL", "FZ-LIVE"} <= harness.accepted
    assert set(hook) == harness.accepted  # every accepted alert reached the channel ...
    assert len(hook) == len(set(hook))  # ... exactly once
    drills = {m.alert_id for m in harness.channels["hook"].sent if m.mode == "drill"}
    assert not drills & set(quiet)  # a drill never reached the dry-run channel
    assert "FZ-LIVE" in quiet
    for message in harness.channels["quiet"].sent + harness.channels["hook"].sent:
        assert message.text.startswith(("ÜBUNG", "EXERCISE")) == (message.mode == "drill")
