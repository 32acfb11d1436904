"""The store contract (broadcaster/store/base.py): SQLite and Redis pass the same tests.

Every test runs once per implementation. Redis tests share the session's redis-server,
each with its own key prefix. `opened()` opens another store on the same data: a second
daemon, or the same daemon after a restart.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from broadcaster.models import (
    FINAL_DELIVERY_STATES,
    Account,
    Alert,
    AuditEntry,
    ChannelState,
    InboxEntry,
    PushSubscription,
    Receipt,
    StatusReport,
)
from broadcaster.store.base import Store
from broadcaster.store.redis import RedisStore
from broadcaster.store.sqlite import SqliteStore
from tests.store.helpers import CET, T0, make_alert, make_deliveries, make_delivery

A = "FW-DUS-2026-000123"
LEASE = timedelta(minutes=2)


@dataclass
class Backend:
    name: str
    new: Callable[[], Store]  # another, unopened store on the same data


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        path = tmp_path / "missing-folder" / "broadcaster.db"
        return Backend("sqlite", lambda: SqliteStore(path))
    url = request.getfixturevalue("redis_server").url
    prefix = f"test-{uuid.uuid4().hex}"
    return Backend("redis", lambda: RedisStore(url, prefix=prefix))


Opener = Callable[[], Awaitable[Store]]


@pytest.fixture
async def opened(backend: Backend) -> AsyncIterator[Opener]:
    stores: list[Store] = []

    async def open_one() -> Store:
        store = backend.new()
        await store.open()
        stores.append(store)
        return store

    yield open_one
    for store in stores:
        await store.close()


@pytest.fixture
async def store(opened: Opener) -> Store:
    return await opened()


def aware_utc(moment: datetime | None) -> bool:
    return moment is not None and moment.utcoffset() == timedelta(0)


# -- open, close, ping ------------------------------------------------------------------


async def test_ping_answers_true_while_open(store: Store) -> None:
    assert await store.ping() is True


async def test_ping_answers_false_after_close(store: Store) -> None:
    await store.close()
    assert await store.ping() is False


async def test_open_twice_and_close_twice_are_harmless(store: Store) -> None:
    await store.open()
    assert await store.ping()
    await store.close()
    await store.close()


# -- create_alert and get --------------------------------------------------------------


async def test_create_alert_stores_alert_and_deliveries(store: Store) -> None:
    alert = make_alert(A)
    deliveries = make_deliveries(A, "x_main", "mastodon_city", "telegram_channel")
    assert await store.create_alert(alert, deliveries) is True
    assert await store.get_alert(A) == alert
    assert await store.get_deliveries(A) == sorted(deliveries, key=lambda d: d.channel_id)


async def test_create_alert_without_deliveries(store: Store) -> None:
    assert await store.create_alert(make_alert(A), []) is True
    assert await store.get_deliveries(A) == []


async def test_unknown_alert_is_none_and_has_no_deliveries(store: Store) -> None:
    assert await store.get_alert("nope") is None
    assert await store.get_deliveries("nope") == []


async def test_create_alert_twice_is_false_and_leaves_the_first_untouched(store: Store) -> None:
    first = make_alert(A)
    first_deliveries = make_deliveries(A, "mastodon_city", "x_main")
    assert await store.create_alert(first, first_deliveries)

    second = make_alert(A, scenario="bomb_defusal", state="sending", incident="E-other")
    assert await store.create_alert(second, make_deliveries(A, "mastodon_city", "sms")) is False

    assert await store.get_alert(A) == first
    assert await store.get_deliveries(A) == first_deliveries
    assert await store.alerts_in_state("sending") == []
    assert await store.incident_alerts("E-other") == []
    assert await store.list_alerts() == [first]


async def test_create_alert_refuses_a_delivery_of_another_alert(store: Store) -> None:
    with pytest.raises(ValueError, match="does not belong"):
        await store.create_alert(make_alert(A), [make_delivery("other", "mastodon_city")])
    assert await store.get_alert(A) is None


async def test_create_alert_refuses_two_deliveries_to_one_channel(store: Store) -> None:
    with pytest.raises(ValueError, match="two deliveries"):
        await store.create_alert(make_alert(A), make_deliveries(A, "sms", "sms"))
    assert await store.get_alert(A) is None


async def test_create_alert_refuses_naive_datetimes(store: Store) -> None:
    with pytest.raises(ValueError, match="naive"):
        await store.create_alert(make_alert(A, created_at=datetime(2026, 11, 23, 9, 15)), [])
    assert await store.get_alert(A) is None


async def test_concurrent_create_alert_of_one_id_has_exactly_one_winner(store: Store) -> None:
    for alert_id in ("A-1", "A-2", "A-3"):  # rounds: later ones find connections ready
        versions = [make_alert(alert_id, stage=f"stage-{i}") for i in range(10)]
        deliveries = [make_deliveries(alert_id, f"channel-{i}", "common") for i in range(10)]
        results = await asyncio.gather(
            *(store.create_alert(v, d) for v, d in zip(versions, deliveries, strict=True))
        )
        assert results.count(True) == 1
        winner = results.index(True)
        assert await store.get_alert(alert_id) == versions[winner]
        expected = sorted(deliveries[winner], key=lambda d: d.channel_id)
        assert await store.get_deliveries(alert_id) == expected


async def test_two_daemons_creating_one_id_have_exactly_one_winner(opened: Opener) -> None:
    first, second = await opened(), await opened()
    results = await asyncio.gather(
        *(
            daemon.create_alert(make_alert(A, stage=f"stage-{i}"), make_deliveries(A, f"c{i}"))
            for i in range(10)
            for daemon in (first, second)
        )
    )
    assert results.count(True) == 1
    assert len(await second.get_deliveries(A)) == 1


# -- listing ------------------------------------------------------------------------------


async def create_at(store: Store, alert_id: str, minutes: int, **fields: object) -> None:
    created = T0 + timedelta(minutes=minutes)
    alert = make_alert(alert_id, created_at=created, updated_at=created, **fields)
    assert await store.create_alert(alert, [])


async def test_list_alerts_is_newest_first_with_a_limit(store: Store) -> None:
    order = list(range(6))
    random.Random(4711).shuffle(order)
    for minutes in order:
        await create_at(store, f"A-{minutes}", minutes)
    assert [a.id for a in await store.list_alerts()] == [f"A-{m}" for m in range(5, -1, -1)]
    assert [a.id for a in await store.list_alerts(limit=2)] == ["A-5", "A-4"]
    assert await store.list_alerts(limit=0) == []


async def test_list_alerts_of_an_empty_store_is_empty(store: Store) -> None:
    assert await store.list_alerts() == []


async def test_alerts_with_one_created_at_keep_a_stable_order(store: Store) -> None:
    for alert_id in ("B", "C", "A"):
        await create_at(store, alert_id, 0)
    assert [a.id for a in await store.list_alerts()] == ["C", "B", "A"]
    assert [a.id for a in await store.incident_alerts("A")] == ["A"]


async def test_alerts_in_state(store: Store) -> None:
    await create_at(store, "A-1", 1, state="awaiting_confirmation")
    await create_at(store, "A-2", 2, state="sending")
    await create_at(store, "A-0", 0, state="awaiting_confirmation")
    await create_at(store, "A-3", 3, state="sent")

    waiting = await store.alerts_in_state("awaiting_confirmation")
    assert [a.id for a in waiting] == ["A-0", "A-1"]
    both = await store.alerts_in_state("sending", "awaiting_confirmation")
    assert [a.id for a in both] == ["A-0", "A-1", "A-2"]
    assert await store.alerts_in_state("retracted") == []
    assert await store.alerts_in_state() == []

    await store.update_alert("A-1", state="sending")
    assert [a.id for a in await store.alerts_in_state("awaiting_confirmation")] == ["A-0"]
    assert [a.id for a in await store.alerts_in_state("sending")] == ["A-1", "A-2"]


async def test_incident_alerts_are_oldest_first(store: Store) -> None:
    await create_at(store, "E-1-all-clear", 30, incident="E-1", stage="all_clear")
    await create_at(store, "E-1-warning", 0, incident="E-1")
    await create_at(store, "E-2-warning", 5, incident="E-2")
    await create_at(store, "E-1-update", 10, incident="E-1", stage="update")
    alerts = await store.incident_alerts("E-1")
    assert [a.id for a in alerts] == ["E-1-warning", "E-1-update", "E-1-all-clear"]
    assert await store.incident_alerts("E-3") == []


# -- update_alert -------------------------------------------------------------------------


async def test_update_alert_applies_changes_and_bumps_updated_at(store: Store) -> None:
    alert = make_alert(A, state="awaiting_confirmation")
    await store.create_alert(alert, [])
    released = datetime(2026, 11, 23, 9, 17, tzinfo=UTC)
    updated = await store.update_alert(
        A, state="sending", confirmed_by="Duty officer A", released_at=released
    )
    assert updated is not None
    assert (updated.state, updated.confirmed_by, updated.released_at) == (
        "sending",
        "Duty officer A",
        released,
    )
    assert updated.updated_at > alert.updated_at
    assert aware_utc(updated.updated_at)
    assert await store.get_alert(A) == updated
    unchanged = {"updated_at", "state", "confirmed_by", "released_at"}
    assert updated.model_dump(exclude=unchanged) == alert.model_dump(exclude=unchanged)


async def test_update_alert_with_matching_expect(store: Store) -> None:
    await store.create_alert(make_alert(A, state="awaiting_confirmation"), [])
    updated = await store.update_alert(
        A, expect=("received", "awaiting_confirmation"), state="rejected"
    )
    assert updated is not None
    assert updated.state == "rejected"
    assert (await store.get_alert(A)) == updated


async def test_update_alert_with_expect_not_matching_changes_nothing(store: Store) -> None:
    alert = make_alert(A, state="sent")
    await store.create_alert(alert, [])
    assert await store.update_alert(A, expect={"awaiting_confirmation"}, state="sending") is None
    assert await store.update_alert(A, expect=(), state="sending") is None
    assert await store.get_alert(A) == alert
    assert await store.alerts_in_state("sending") == []


async def test_update_alert_of_an_unknown_id_is_none(store: Store) -> None:
    assert await store.update_alert("nope", state="sending") is None
    assert await store.update_alert("nope", expect={"received"}, state="sending") is None
    assert await store.get_alert("nope") is None


async def test_update_alert_refuses_bad_changes(store: Store) -> None:
    alert = make_alert(A)
    await store.create_alert(alert, [])
    with pytest.raises(TypeError, match="colour"):
        await store.update_alert(A, colour="red")
    with pytest.raises(ValueError, match="id"):
        await store.update_alert(A, id="other")
    with pytest.raises(ValueError, match="updated_at"):
        await store.update_alert(A, updated_at=T0)
    with pytest.raises(ValidationError):
        await store.update_alert(A, state="exploded")
    assert await store.get_alert(A) == alert


async def test_update_alert_moves_it_to_another_incident(store: Store) -> None:
    await store.create_alert(make_alert(A, incident="E-1"), [])
    await store.update_alert(A, incident="E-2")
    assert await store.incident_alerts("E-1") == []
    assert [a.id for a in await store.incident_alerts("E-2")] == [A]


async def test_concurrent_compare_and_set_has_exactly_one_winner(opened: Opener) -> None:
    stores = [await opened(), await opened()]
    for alert_id in ("A-1", "A-2", "A-3"):  # rounds: later ones find connections ready
        await stores[0].create_alert(make_alert(alert_id, state="awaiting_confirmation"), [])
        results = await asyncio.gather(
            *(
                stores[i % 2].update_alert(
                    alert_id,
                    expect={"awaiting_confirmation"},
                    state="sending",
                    confirmed_by=f"officer-{i}",
                )
                for i in range(10)
            )
        )
        winners = [r for r in results if r is not None]
        assert len(winners) == 1
        assert await stores[1].get_alert(alert_id) == winners[0]


async def test_concurrent_compare_and_set_in_one_daemon_has_exactly_one_winner(
    store: Store,
) -> None:
    for alert_id in ("A-1", "A-2", "A-3"):
        await store.create_alert(make_alert(alert_id, state="awaiting_confirmation"), [])
        results = await asyncio.gather(
            *(
                store.update_alert(alert_id, expect={"awaiting_confirmation"}, state=state)
                for state in ["sending", "rejected", "expired"] * 3
            )
        )
        winners = [r for r in results if r is not None]
        assert len(winners) == 1
        assert await store.get_alert(alert_id) == winners[0]


async def test_concurrent_updates_lose_no_change(opened: Opener) -> None:
    first, second = await opened(), await opened()
    await first.create_alert(make_alert(A), [])
    released = T0 + timedelta(minutes=3)
    await asyncio.gather(
        first.update_alert(A, confirmed_by="Duty officer A"),
        second.update_alert(A, released_at=released),
        first.update_alert(A, retraction_reason="Fehlalarm"),
        second.update_alert(A, unapproved=["major_fire/warning/short.de.j2"]),
    )
    alert = await first.get_alert(A)
    assert alert is not None
    assert alert.confirmed_by == "Duty officer A"
    assert alert.released_at == released
    assert alert.retraction_reason == "Fehlalarm"
    assert alert.unapproved == ["major_fire/warning/short.de.j2"]


# -- save_delivery --------------------------------------------------------------------------


async def test_save_delivery_overwrites_it_and_bumps_updated_at(store: Store) -> None:
    await store.create_alert(make_alert(A), make_deliveries(A, "mastodon_city", "x_main"))
    delivered = make_delivery(
        A,
        "mastodon_city",
        state="delivered",
        attempts=2,
        remote_id="113",
        url="https://social.example.org/@feuerwehr/113",
        delivered_at=T0 + timedelta(seconds=3),
        receipt=Receipt(remote_id="113", data={"id": "113"}),
    )
    await store.save_delivery(delivered)
    saved, untouched = await store.get_deliveries(A)
    assert saved.updated_at > delivered.updated_at
    assert saved.model_copy(update={"updated_at": T0}) == delivered
    assert untouched == make_delivery(A, "x_main")


async def test_save_delivery_adds_a_channel_to_an_existing_alert(store: Store) -> None:
    await store.create_alert(make_alert(A), [])
    await store.save_delivery(make_delivery(A, "sms"))
    assert [d.channel_id for d in await store.get_deliveries(A)] == ["sms"]


async def test_save_delivery_of_an_unknown_alert_raises(store: Store) -> None:
    with pytest.raises(KeyError):
        await store.save_delivery(make_delivery("nope", "sms"))
    assert await store.get_deliveries("nope") == []


# -- claim_delivery --------------------------------------------------------------------------


async def with_delivery(store: Store, **fields: object) -> None:
    await store.create_alert(make_alert(A), [make_delivery(A, "mastodon_city", **fields)])


async def test_claim_of_a_free_delivery(store: Store) -> None:
    await with_delivery(store)
    claim = await store.claim_delivery(A, "mastodon_city", "daemon-1", T0 + LEASE, T0)
    assert claim is not None
    assert (claim.claimed_by, claim.claimed_until) == ("daemon-1", T0 + LEASE)
    assert claim.updated_at > T0
    assert await store.get_deliveries(A) == [claim]


async def test_claim_held_by_another_owner_is_refused(store: Store) -> None:
    await with_delivery(store)
    first = await store.claim_delivery(A, "mastodon_city", "daemon-1", T0 + LEASE, T0)
    almost = T0 + LEASE - timedelta(microseconds=1)
    assert (
        await store.claim_delivery(A, "mastodon_city", "daemon-2", almost + LEASE, almost) is None
    )
    assert await store.get_deliveries(A) == [first]


async def test_claim_with_an_expired_lease_can_be_taken(store: Store) -> None:
    await with_delivery(store, state="sending", attempts=1)
    await store.claim_delivery(A, "mastodon_city", "daemon-1", T0 + LEASE, T0)
    later = T0 + LEASE + timedelta(seconds=1)
    claim = await store.claim_delivery(A, "mastodon_city", "daemon-2", later + LEASE, later)
    assert claim is not None
    assert claim.claimed_by == "daemon-2"
    assert (claim.state, claim.attempts) == ("sending", 1)
    assert await store.get_deliveries(A) == [claim]


async def test_a_lease_is_over_at_its_end(store: Store) -> None:
    await with_delivery(store)
    await store.claim_delivery(A, "mastodon_city", "daemon-1", T0 + LEASE, T0)
    end = T0 + LEASE
    claim = await store.claim_delivery(A, "mastodon_city", "daemon-2", end + LEASE, end)
    assert claim is not None
    assert claim.claimed_by == "daemon-2"


async def test_a_guarded_save_needs_the_claim(store: Store) -> None:
    """A daemon whose lease ran out must not overwrite its successor's result."""
    await with_delivery(store, state="sending", attempts=1)
    await store.claim_delivery(A, "mastodon_city", "daemon-1", T0 + LEASE, T0)
    later = T0 + LEASE + timedelta(seconds=1)
    taken = await store.claim_delivery(A, "mastodon_city", "daemon-2", later + LEASE, later)
    assert taken is not None
    stale = taken.model_copy(update={"state": "failed", "claimed_by": None, "error": "late"})
    assert await store.save_delivery(stale, owner="daemon-1") is False
    assert await store.get_deliveries(A) == [taken]
    done = taken.model_copy(update={"state": "delivered", "claimed_by": None})
    assert await store.save_delivery(done, owner="daemon-2") is True
    [saved] = await store.get_deliveries(A)
    assert (saved.state, saved.claimed_by) == ("delivered", None)
    # Released by that save: nobody holds it any more, so a guarded save is refused.
    assert await store.save_delivery(done, owner="daemon-2") is False
    assert await store.save_delivery(done) is True  # unguarded, as before


async def test_claim_by_the_same_owner_renews_it(store: Store) -> None:
    await with_delivery(store)
    await store.claim_delivery(A, "mastodon_city", "daemon-1", T0 + LEASE, T0)
    later = T0 + timedelta(seconds=30)
    claim = await store.claim_delivery(A, "mastodon_city", "daemon-1", later + LEASE, later)
    assert claim is not None
    assert (claim.claimed_by, claim.claimed_until) == ("daemon-1", later + LEASE)


async def test_claim_released_by_saving_can_be_taken(store: Store) -> None:
    await with_delivery(store)
    claim = await store.claim_delivery(A, "mastodon_city", "daemon-1", T0 + LEASE, T0)
    assert claim is not None
    await store.save_delivery(claim.model_copy(update={"claimed_by": None, "claimed_until": None}))
    assert await store.claim_delivery(A, "mastodon_city", "daemon-2", T0 + LEASE, T0)


@pytest.mark.parametrize("state", sorted(FINAL_DELIVERY_STATES))
async def test_claim_of_a_final_delivery_is_refused(store: Store, state: str) -> None:
    await with_delivery(store, state=state)
    assert await store.claim_delivery(A, "mastodon_city", "daemon-1", T0 + LEASE, T0) is None
    assert await store.get_deliveries(A) == [make_delivery(A, "mastodon_city", state=state)]


async def test_claim_of_an_unknown_delivery_is_none(store: Store) -> None:
    await with_delivery(store)
    assert await store.claim_delivery(A, "sms", "daemon-1", T0 + LEASE, T0) is None
    assert await store.claim_delivery("nope", "sms", "daemon-1", T0 + LEASE, T0) is None


async def test_claim_refuses_a_lease_that_is_already_over(store: Store) -> None:
    await with_delivery(store)
    with pytest.raises(ValueError, match="expired"):
        await store.claim_delivery(A, "mastodon_city", "daemon-1", T0, T0)
    with pytest.raises(ValueError, match="naive"):
        await store.claim_delivery(
            A, "mastodon_city", "daemon-1", datetime(2026, 11, 23, 10), datetime(2026, 11, 23, 9)
        )
    assert await store.get_deliveries(A) == [make_delivery(A, "mastodon_city")]


async def test_concurrent_claims_have_exactly_one_winner(store: Store) -> None:
    channels = [f"channel-{c}" for c in range(5)]  # rounds: later ones find connections ready
    await store.create_alert(make_alert(A), make_deliveries(A, *channels))
    for channel in channels:
        results = await asyncio.gather(
            *(store.claim_delivery(A, channel, f"daemon-{i}", T0 + LEASE, T0) for i in range(10))
        )
        winners = [r for r in results if r is not None]
        assert len(winners) == 1
        assert winners[0] in await store.get_deliveries(A)


async def test_a_fan_out_starts_with_one_claim_of_every_delivery(store: Store) -> None:
    channels = ["free", "expired", "held", "done", "dead", "not-asked"]
    await store.create_alert(make_alert(A, state="sending"), make_deliveries(A, *channels))
    later = T0 + LEASE + timedelta(seconds=1)
    for channel, owner, now in [
        ("expired", "d-2", T0),
        ("held", "d-3", later),
        ("dead", "d-4", later),
    ]:
        assert await store.claim_delivery(A, channel, owner, now + LEASE, now) is not None
    (done,) = [d for d in await store.get_deliveries(A) if d.channel_id == "done"]
    done.state = "delivered"
    assert await store.save_delivery(done)
    asked = [c for c in channels if c != "not-asked"]
    taken = await store.start_deliveries(A, asked, "d-1", later + LEASE, later, dead={"d-4"})
    assert [d.channel_id for d in taken] == ["dead", "expired", "free"]
    assert {(d.state, d.attempts, d.claimed_by) for d in taken} == {("sending", 0, "d-1")}
    stored = {d.channel_id: d for d in await store.get_deliveries(A)}
    assert [stored[d.channel_id] for d in taken] == taken
    assert stored["held"].claimed_by == "d-3"
    assert (stored["not-asked"].state, stored["not-asked"].claimed_by) == ("pending", None)
    # Again by another daemon: nothing is left for it.
    assert await store.start_deliveries(A, asked, "d-5", later + LEASE, later) == []


async def test_a_retracted_alert_starts_no_delivery(store: Store) -> None:
    await store.create_alert(make_alert(A, state="retracted"), make_deliveries(A, "sms", "web"))
    assert await store.start_deliveries(A, ["sms", "web"], "d-1", T0 + LEASE, T0) == []
    assert {d.claimed_by for d in await store.get_deliveries(A)} == {None}


async def test_fan_outs_started_by_two_daemons_at_once_share_nothing(opened: Opener) -> None:
    first, second = await opened(), await opened()
    channels = [f"c{n}" for n in range(8)]
    await first.create_alert(make_alert(A, state="sending"), make_deliveries(A, *channels))
    results = await asyncio.gather(
        *(
            daemon.start_deliveries(A, channels, f"daemon-{i}", T0 + LEASE, T0)
            for i, daemon in enumerate([first, second] * 3)
        )
    )
    taken = [d.channel_id for result in results for d in result]
    assert sorted(taken) == channels  # each exactly once


async def test_claims_by_two_daemons_have_exactly_one_winner(opened: Opener) -> None:
    first, second = await opened(), await opened()
    await with_delivery(first)
    results = await asyncio.gather(
        *(
            daemon.claim_delivery(A, "mastodon_city", f"daemon-{i}", T0 + LEASE, T0)
            for i, daemon in enumerate([first, second] * 5)
        )
    )
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert await second.get_deliveries(A) == winners


# -- audit ----------------------------------------------------------------------------------


async def test_audit_trail_keeps_order_and_filters_by_alert(store: Store) -> None:
    entries = [
        AuditEntry(at=T0, alert_id=A, event="trigger_received", detail={"source": "mqtt"}),
        AuditEntry(at=T0, alert_id=None, event="refused", detail={"error": "stale"}),
        AuditEntry(at=T0, alert_id="B", event="trigger_received"),
        AuditEntry(at=T0 + timedelta(seconds=1), alert_id=A, event="confirmation_requested"),
        AuditEntry(at=T0, alert_id=A, event="released", actor="Duty officer A"),
    ]
    for entry in entries:
        await store.audit(entry)
    assert await store.audit_trail() == [entries[1]]  # the entries of no alert
    assert await store.audit_trail(A) == [entries[0], entries[3], entries[4]]
    assert await store.audit_trail("B") == [entries[2]]
    assert await store.audit_trail("nope") == []


async def test_audit_all_is_every_trail_merged_in_time_order(store: Store) -> None:
    odd = "odd*[id]?"  # glob characters in an alert id are no pattern
    entries = [
        AuditEntry(at=T0 + timedelta(seconds=2), alert_id=A, event="delivered"),
        AuditEntry(at=T0, alert_id=None, event="refused", detail={"error": "stale"}),
        AuditEntry(at=T0 + timedelta(seconds=1), alert_id="B", event="trigger_received"),
        AuditEntry(at=T0, alert_id=A, event="trigger_received"),  # a late write of T0
        AuditEntry(at=T0 + timedelta(seconds=3), alert_id=odd, event="trigger_received"),
        AuditEntry(at=T0 + timedelta(seconds=2), alert_id=A, event="sent"),
    ]
    for entry in entries:
        await store.audit(entry)
    every = await store.audit_all()

    def key(e: AuditEntry) -> str:
        return e.model_dump_json()

    assert sorted(every, key=key) == sorted(entries, key=key)  # each entry once
    assert [e.at for e in every] == sorted(e.at for e in entries)
    # Ties across trails may come in either order; within A's trail, as written.
    of_a = [e.event for e in every if e.alert_id == A]
    assert of_a == ["trigger_received", "delivered", "sent"]
    assert every[-1].alert_id == odd


async def test_identical_audit_entries_are_all_kept(store: Store) -> None:
    entry = AuditEntry(at=T0, alert_id=A, event="delivered", detail={"channel": "sms"})
    for _ in range(3):
        await store.audit(entry)
    assert await store.audit_trail(A) == [entry] * 3


async def test_audit_of_an_empty_store_is_empty(store: Store) -> None:
    assert await store.audit_trail() == []


async def test_a_write_carries_its_audit_entries_only_when_it_happens(store: Store) -> None:
    def entry(event: str) -> AuditEntry:
        return AuditEntry(at=T0, alert_id=A, event=event, detail={"by": "test"})

    received, again = entry("trigger_received"), entry("duplicate")
    assert await store.create_alert(make_alert(A), make_deliveries(A, "sms"), audit=[received])
    assert not await store.create_alert(make_alert(A), [], audit=[again])
    released = entry("released")
    changed = await store.update_alert(A, expect={"received"}, state="sending", audit=[released])
    assert changed is not None
    refused = await store.update_alert(A, expect={"received"}, state="sent", audit=[again])
    assert refused is None
    (delivery,) = await store.get_deliveries(A)
    delivery.state = "delivered"
    sent = entry("delivered")
    assert await store.save_delivery(delivery, audit=[sent])
    # Not the holder of the delivery's claim: nothing written, no entry either.
    assert not await store.save_delivery(delivery, owner="someone-else", audit=[again])
    assert await store.audit_trail(A) == [received, released, sent]
    assert await store.audit_trail() == []


async def test_one_writes_audit_entries_belong_to_one_alert(store: Store) -> None:
    alien = AuditEntry(at=T0, alert_id="another", event="released")
    own = AuditEntry(at=T0, alert_id=A, event="trigger_received")
    with pytest.raises(ValueError, match="one alert"):
        await store.create_alert(make_alert(A), [], audit=[own, alien])
    assert await store.get_alert(A) is None
    assert await store.audit_trail("another") == []


# -- inbox ----------------------------------------------------------------------------------


def inbox_entry(entry_id: str, seconds: int, payload: bytes = b"{}") -> InboxEntry:
    received = T0 + timedelta(seconds=seconds)
    return InboxEntry(
        id=entry_id, kind="trigger", source="mqtt", payload=payload, received_at=received
    )


async def test_inbox_pending_is_oldest_first_until_done(store: Store) -> None:
    later, earliest, middle = inbox_entry("m-3", 3), inbox_entry("m-1", 1), inbox_entry("m-2", 2)
    for entry in (later, earliest, middle):
        await store.inbox_add(entry)
    assert await store.inbox_pending() == [earliest, middle, later]
    await store.inbox_done("m-2")
    assert await store.inbox_pending() == [earliest, later]
    await store.inbox_done("m-1")
    await store.inbox_done("m-3")
    assert await store.inbox_pending() == []


async def test_inbox_done_of_an_unknown_id_is_harmless(store: Store) -> None:
    await store.inbox_add(inbox_entry("m-1", 1))
    await store.inbox_done("nope")
    assert [e.id for e in await store.inbox_pending()] == ["m-1"]


async def test_inbox_payload_bytes_round_trip_exactly(store: Store) -> None:
    payloads = {
        "binary": bytes(range(256)),
        "not-utf8": b"\xff\xfe{\x00}",
        "empty": b"",
        "json": '{"params": {"location": "Ackerstraße"}}'.encode(),
    }
    for i, (entry_id, payload) in enumerate(payloads.items()):
        await store.inbox_add(inbox_entry(entry_id, i, payload))
    pending = await store.inbox_pending()
    assert {e.id: e.payload for e in pending} == payloads
    retract = InboxEntry(id="r-1", kind="retract", source="http", payload=b"x", received_at=T0)
    await store.inbox_add(retract)
    assert retract in await store.inbox_pending()


async def test_inbox_add_of_a_waiting_id_keeps_the_first(store: Store) -> None:
    first = inbox_entry("m-1", 1, b"first")
    await store.inbox_add(first)
    await store.inbox_add(inbox_entry("m-1", 0, b"second"))
    assert await store.inbox_pending() == [first]


# -- datetimes and durability ---------------------------------------------------------------


async def test_datetimes_round_trip_timezone_aware(store: Store) -> None:
    alert = make_alert(A)
    await store.create_alert(alert, [make_delivery(A, "sms", delivered_at=T0)])
    await store.claim_delivery(A, "sms", "daemon-1", T0 + LEASE, T0)
    await store.audit(AuditEntry(at=T0, alert_id=A, event="trigger_received"))
    await store.inbox_add(inbox_entry("m-1", 0))

    stored = await store.get_alert(A)
    assert stored is not None
    assert all(aware_utc(t) for t in (stored.created_at, stored.updated_at))
    assert stored.created_at == T0
    assert stored.created_at.microsecond == T0.microsecond
    assert stored.issued_at == alert.issued_at
    assert stored.issued_at.utcoffset() == CET.utcoffset(None)
    (delivery,) = await store.get_deliveries(A)
    assert aware_utc(delivery.delivered_at)
    assert delivery.delivered_at == T0
    assert aware_utc(delivery.claimed_until)
    assert delivery.claimed_until == T0 + LEASE
    assert aware_utc(delivery.updated_at)
    (entry,) = await store.audit_trail(A)
    assert aware_utc(entry.at)
    assert entry.at == T0
    (inbox,) = await store.inbox_pending()
    assert aware_utc(inbox.received_at)
    assert inbox.received_at == T0


async def test_everything_is_still_there_after_a_restart(opened: Opener) -> None:
    store = await opened()
    alert = make_alert(A, state="awaiting_confirmation", incident="E-1")
    deliveries = make_deliveries(A, "mastodon_city", "sms")
    await store.create_alert(alert, deliveries)
    updated = await store.update_alert(A, state="sending", confirmed_by="Duty officer A")
    claim = await store.claim_delivery(A, "sms", "daemon-1", T0 + LEASE, T0)
    audit = AuditEntry(at=T0, alert_id=A, event="released", actor="Duty officer A")
    await store.audit(audit)
    entry = inbox_entry("m-1", 0, b"\xff raw trigger")
    await store.inbox_add(entry)
    await store.close()

    restarted = await opened()
    assert await restarted.get_alert(A) == updated
    assert await restarted.get_deliveries(A) == [deliveries[0], claim]
    assert await restarted.list_alerts() == [updated]
    assert await restarted.alerts_in_state("sending") == [updated]
    assert await restarted.incident_alerts("E-1") == [updated]
    assert await restarted.audit_trail() == []
    assert await restarted.audit_trail(A) == [audit]
    assert await restarted.inbox_pending() == [entry]
    assert await restarted.create_alert(alert, deliveries) is False
    assert await restarted.claim_delivery(A, "sms", "daemon-2", T0 + LEASE, T0) is None


async def test_a_closed_store_refuses_work(store: Store) -> None:
    await store.close()
    with pytest.raises(RuntimeError, match="not open"):
        await store.get_alert(A)
    with pytest.raises(RuntimeError, match="not open"):
        await store.create_alert(make_alert(A), [])


# -- wave 2: several daemons on one store ---------------------------------------------------


def copy_of(entry_id: str, payload: bytes) -> InboxEntry:
    return InboxEntry(id=entry_id, kind="trigger", source="mqtt", payload=payload, received_at=T0)


async def test_a_broker_message_received_by_three_daemons_is_kept_once(opened: Opener) -> None:
    stores = [await opened() for _ in range(3)]
    payload = b'{"id": "FW-1"}'
    kept = await asyncio.gather(
        *(
            s.inbox_add(copy_of(f"e-{i}", payload), broker_session=f"daemon-{i}")
            for i, s in enumerate(stores)
        )
    )
    assert sorted(kept) == [False, False, True]
    assert len(await stores[0].inbox_pending()) == 1


async def test_the_same_bytes_published_again_are_kept_again_once(opened: Opener) -> None:
    """The n-th copy on each session is the n-th broker message: a repeat publish of the
    same bytes is a new message (it must be refused as duplicate, by one daemon)."""
    first, second = await opened(), await opened()
    payload = b'{"id": "FW-2"}'
    for round_ in range(3):
        results = [
            await first.inbox_add(copy_of(f"a-{round_}", payload), broker_session="a"),
            await second.inbox_add(copy_of(f"b-{round_}", payload), broker_session="b"),
        ]
        assert sorted(results) == [False, True]
    assert len(await first.inbox_pending()) == 3


async def test_different_payloads_are_all_kept(store: Store) -> None:
    for i in range(5):
        assert await store.inbox_add(copy_of(f"e-{i}", b"%d" % i), broker_session="a")
    assert len(await store.inbox_pending()) == 5


async def test_inbox_take_claims_counts_and_honours_other_claims(store: Store) -> None:
    await store.inbox_add(inbox_entry("m-1", 0))
    taken = await store.inbox_take("m-1", "daemon-1", T0 + LEASE, T0)
    assert taken is not None
    assert taken.claimed_by == "daemon-1"
    assert taken.attempts == 1
    assert await store.inbox_take("m-1", "daemon-2", T0 + LEASE, T0) is None
    again = await store.inbox_take("m-1", "daemon-1", T0 + LEASE, T0)
    assert again is not None
    assert again.attempts == 2
    later = T0 + LEASE + timedelta(seconds=1)
    stolen = await store.inbox_take("m-1", "daemon-2", later + LEASE, later)
    assert stolen is not None
    assert stolen.claimed_by == "daemon-2"
    assert stolen.attempts == 3
    (pending,) = await store.inbox_pending()
    assert pending == stolen
    await store.inbox_done("m-1")
    assert await store.inbox_take("m-1", "daemon-1", later + LEASE, later) is None


async def test_concurrent_inbox_takes_have_exactly_one_winner(opened: Opener) -> None:
    stores = [await opened() for _ in range(4)]
    await stores[0].inbox_add(inbox_entry("m-1", 0))
    taken = await asyncio.gather(
        *(s.inbox_take("m-1", f"d-{i}", T0 + LEASE, T0) for i, s in enumerate(stores))
    )
    assert sum(t is not None for t in taken) == 1


async def test_modify_alert_sees_the_stored_alert(store: Store) -> None:
    await store.create_alert(make_alert(A, state="awaiting_confirmation"), [])
    seen: list[str] = []

    def bump(alert: Alert) -> dict[str, object] | None:
        seen.append(alert.state)
        return {"decided_by": "x"} if alert.state == "awaiting_confirmation" else None

    updated = await store.modify_alert(A, bump)
    assert updated is not None
    assert updated.decided_by == "x"
    await store.update_alert(A, state="rejected")
    assert await store.modify_alert(A, bump) is None
    assert (await store.get_alert(A)).state == "rejected"  # type: ignore[union-attr]
    assert await store.modify_alert("nope", bump) is None


async def test_concurrent_increments_through_modify_alert_lose_none(opened: Opener) -> None:
    first, second = await opened(), await opened()
    await first.create_alert(make_alert(A), [])

    def one_more(alert: Alert) -> dict[str, object]:
        return {"unapproved": [*alert.unapproved, "x"]}

    await asyncio.gather(*(s.modify_alert(A, one_more) for s in (first, second) * 10))
    stored = await first.get_alert(A)
    assert stored is not None
    assert len(stored.unapproved) == 20


async def test_a_lease_has_one_holder_until_it_expires(store: Store) -> None:
    assert await store.take_lease("mqtt:c1", "d-1", T0 + LEASE, T0) == "d-1"
    assert await store.take_lease("mqtt:c1", "d-2", T0 + LEASE, T0) == "d-1"
    assert await store.lease_holder("mqtt:c1", T0) == "d-1"
    assert await store.take_lease("mqtt:c1", "d-1", T0 + 2 * LEASE, T0) == "d-1"  # renewed
    after = T0 + 2 * LEASE
    assert await store.lease_holder("mqtt:c1", after) is None
    assert await store.take_lease("mqtt:c1", "d-2", after + LEASE, after) == "d-2"
    await store.drop_lease("mqtt:c1", "d-1")  # not the holder: nothing happens
    assert await store.lease_holder("mqtt:c1", after) == "d-2"
    await store.drop_lease("mqtt:c1", "d-2")
    assert await store.lease_holder("mqtt:c1", after) is None
    assert await store.lease_holder("unknown", T0) is None


async def test_concurrent_lease_takes_have_exactly_one_winner(opened: Opener) -> None:
    stores = [await opened() for _ in range(4)]
    holders = await asyncio.gather(
        *(s.take_lease("job", f"d-{i}", T0 + LEASE, T0) for i, s in enumerate(stores))
    )
    assert len(set(holders)) == 1


async def test_prune_forgets_old_refusals_but_keeps_every_alert_trail(store: Store) -> None:
    old, recent = T0, T0 + timedelta(days=100)
    entries = [
        AuditEntry(at=old, alert_id=None, event="refused", detail={"n": 1}),
        AuditEntry(at=old, alert_id=A, event="trigger_received"),
        AuditEntry(at=old, alert_id=None, event="refused", detail={"n": 2}),
        AuditEntry(at=recent, alert_id=None, event="refused", detail={"n": 3}),
        AuditEntry(at=recent, alert_id=A, event="released"),
    ]
    for entry in entries:
        await store.audit(entry)
    assert await store.prune(T0 + timedelta(days=90)) == 2
    assert await store.audit_trail() == [entries[3]]
    assert await store.audit_trail(A) == [entries[1], entries[4]]
    assert await store.prune(T0 + timedelta(days=90)) == 0


async def test_a_dead_holder_counts_as_gone(store: Store) -> None:
    await store.create_alert(make_alert(A), make_deliveries(A, "sms"))
    await store.inbox_add(inbox_entry("m-1", 0))
    assert await store.claim_delivery(A, "sms", "dead", T0 + LEASE, T0)
    assert await store.inbox_take("m-1", "dead", T0 + LEASE, T0)
    assert await store.take_lease("job", "dead", T0 + LEASE, T0) == "dead"
    assert await store.claim_delivery(A, "sms", "d-2", T0 + LEASE, T0) is None
    claim = await store.claim_delivery(A, "sms", "d-2", T0 + LEASE, T0, dead={"dead"})
    assert claim is not None
    assert claim.claimed_by == "d-2"
    taken = await store.inbox_take("m-1", "d-2", T0 + LEASE, T0, dead={"dead"})
    assert taken is not None
    assert taken.claimed_by == "d-2"
    assert await store.take_lease("job", "d-2", T0 + LEASE, T0, dead={"dead"}) == "d-2"
    assert await store.take_lease("job", "d-3", T0 + LEASE, T0, dead={"dead"}) == "d-2"


async def test_channel_states_keep_the_latest_per_channel(opened: Opener) -> None:
    first, second = await opened(), await opened()
    await first.save_channel_state("sms", ChannelState(circuit="open", failures=5, by="d-1"))
    await second.save_channel_state("sms", ChannelState(circuit="closed", failures=0, by="d-2"))
    await first.save_channel_state("x", ChannelState(circuit="half_open", failures=7, by="d-1"))
    states = await second.channel_states()
    assert sorted(states) == ["sms", "x"]
    assert (states["sms"].circuit, states["sms"].by) == ("closed", "d-2")
    assert states["x"].circuit == "half_open"
    assert states["x"].failures == 7


async def test_audit_tail_is_the_newest_entries_of_no_alert(store: Store) -> None:
    entries = [
        AuditEntry(at=T0 + timedelta(seconds=n), alert_id=None, event="refused", detail={"n": n})
        for n in range(5)
    ]
    for entry in entries:
        await store.audit(entry)
        await store.audit(AuditEntry(at=T0, alert_id=A, event="released"))
    assert await store.audit_tail(3) == entries[:1:-1]
    assert await store.audit_tail(10) == entries[::-1]
    assert await store.audit_tail(0) == []


async def test_status_reports_are_kept_once_each_and_read_per_message(opened: Opener) -> None:
    first, second = await opened(), await opened()
    sent = StatusReport(channel_id="sms", message_id="SM1", status="sent", at=T0)
    delivered = StatusReport(
        channel_id="sms", message_id="SM1", status="delivered", at=T0 + timedelta(seconds=2)
    )
    # Out of order, and the provider repeats a callback: each status is kept once.
    assert await first.add_status_report(delivered) is True
    assert await second.add_status_report(sent) is True
    assert await first.add_status_report(sent) is False
    failed = StatusReport(
        channel_id="sms", message_id="SM2", status="failed", error="30003 unreachable", at=T0
    )
    assert await second.add_status_report(failed) is True
    # Another channel's report on the same id is that channel's.
    other = StatusReport(channel_id="whatsapp", message_id="SM1", status="read", at=T0)
    assert await second.add_status_report(other) is True
    found = await first.status_reports("sms", ["SM1", "SM2", "SM3", "SM1"])
    assert sorted(found) == ["SM1", "SM2"]
    assert [r.status for r in found["SM1"]] == ["sent", "delivered"]
    assert found["SM2"] == [failed]
    many = [f"SM{n}" for n in range(1200)]  # more than one query's worth of ids
    assert sorted(await second.status_reports("sms", many)) == ["SM1", "SM2"]
    assert await first.status_reports("sms", []) == {}


async def test_push_subscriptions_are_kept_replaced_and_removed(opened: Opener) -> None:
    first, second = await opened(), await opened()

    def subscription(n: int, **changes: object) -> PushSubscription:
        fields: dict[str, object] = {
            "id": f"sub-{n}",
            "endpoint": f"https://push.example/{n}",
            "p256dh": "BPk",
            "auth": "aa",
            "created_at": T0 + timedelta(seconds=n),
        }
        return PushSubscription.model_validate({**fields, **changes})

    for n in (2, 1, 3):
        await first.save_subscription(subscription(n))
    await second.save_subscription(subscription(2, language="en", drill=True))
    kept = await second.subscriptions()
    assert [s.id for s in kept] == ["sub-1", "sub-2", "sub-3"]
    assert (kept[1].language, kept[1].drill) == ("en", True)
    assert await first.remove_subscription("sub-1") is True
    assert await second.remove_subscription("sub-1") is False
    assert [s.id for s in await first.subscriptions()] == ["sub-2", "sub-3"]


def account(name: str, **changes: object) -> Account:
    fields: dict[str, object] = {
        "name": name,
        "role": "editor",
        "password_hash": "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
        "created_at": T0,
    }
    return Account.model_validate({**fields, **changes})


async def test_accounts_are_added_once_replaced_and_listed_by_name(opened: Opener) -> None:
    first, second = await opened(), await opened()
    assert await first.save_account(account("kim"), new=True) is True
    assert await second.save_account(account("kim", role="admin"), new=True) is False
    assert await first.save_account(account("ada", officer="A. Schmidt"), new=True) is True
    assert (await second.get_account("kim")) == account("kim")  # the duplicate wrote nothing
    assert await second.save_account(account("kim", disabled=True, session_version=1)) is True
    kept = await first.list_accounts()
    assert [(a.name, a.disabled, a.session_version) for a in kept] == [
        ("ada", False, 0),
        ("kim", True, 1),
    ]
    assert kept[0].officer == "A. Schmidt"
    assert await first.get_account("nobody") is None


async def test_record_login_counts_locks_and_resets(opened: Opener) -> None:
    store = await opened()
    await store.save_account(account("kim"), new=True)
    lock_for = timedelta(minutes=15)
    for n in (1, 2):
        seen = await store.record_login("kim", False, T0, 3, lock_for)
        assert seen is not None
        assert seen.failed_logins == n
        assert seen.locked_until is None
    locked = await store.record_login("kim", False, T0, 3, lock_for)
    assert locked is not None
    assert locked.locked_until == T0 + lock_for
    assert locked.failed_logins == 0
    # Locked: a right password changes nothing until the lock ends.
    during = T0 + timedelta(minutes=14)
    assert await store.record_login("kim", True, during, 3, lock_for) == locked
    assert await store.get_account("kim") == locked
    after = T0 + lock_for
    again = await store.record_login("kim", False, after, 3, lock_for)
    assert again is not None
    assert (again.failed_logins, again.locked_until) == (1, T0 + lock_for)
    ok = await store.record_login("kim", True, after, 3, lock_for)
    assert ok is not None
    assert (ok.failed_logins, ok.locked_until) == (0, None)
    assert await store.record_login("nobody", False, T0, 3, lock_for) is None


async def test_record_login_misses_no_failure_of_two_daemons(opened: Opener) -> None:
    first, second = await opened(), await opened()
    await first.save_account(account("kim"), new=True)
    lock_for = timedelta(minutes=15)
    await asyncio.gather(
        *(s.record_login("kim", False, T0, 100, lock_for) for s in [first, second] * 10)
    )
    kept = await first.get_account("kim")
    assert kept is not None
    assert kept.failed_logins == 20
