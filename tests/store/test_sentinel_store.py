"""The Redis store behind Sentinel: it follows a failover by itself, and with
replicas_to_wait a promise is on the replica before the call returns."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from broadcaster.models import InboxEntry
from broadcaster.store import ReplicaWait, open_store
from broadcaster.store import redis as redis_store
from broadcaster.store.redis import RedisStore
from tests.servers import SentinelGroup, ask, start_sentinel_group

WAIT_ONE = ReplicaWait(1, timedelta(milliseconds=500))


@pytest.fixture
def group(tmp_path: Path) -> Iterator[SentinelGroup]:
    servers = start_sentinel_group(tmp_path)
    yield servers
    servers.stop()


def _store(group: SentinelGroup, tmp_path: Path, wait: ReplicaWait = WAIT_ONE) -> RedisStore:
    store = open_store(group.url, tmp_path, outage_limit=timedelta(seconds=30), replica_wait=wait)
    assert isinstance(store, RedisStore)
    return store


def _entry(n: int) -> InboxEntry:
    return InboxEntry.new("trigger", "mqtt", f'{{"n": {n}}}'.encode())


async def test_a_promise_is_on_the_replica_when_the_call_returns(
    group: SentinelGroup, tmp_path: Path
) -> None:
    store = _store(group, tmp_path)
    await store.open()
    try:
        with capture_logs() as logs:
            entries = [_entry(n) for n in range(20)]
            for entry in entries:
                assert await store.inbox_add(entry)
                # Read from the replica at once: WAIT returned only once it had the entry.
                on_replica = await asyncio.to_thread(
                    ask, group.replica.port, "HEXISTS", store.keys.inbox, entry.id
                )
                assert on_replica == 1, entry.id
    finally:
        await store.close()
    assert [e for e in logs if e["event"] == "store_replicas_behind"] == []
    assert _waits(group) == len(entries)


async def test_without_replicas_to_wait_no_wait_is_sent(
    group: SentinelGroup, tmp_path: Path
) -> None:
    store = _store(group, tmp_path, ReplicaWait())
    await store.open()
    try:
        for n in range(5):
            assert await store.inbox_add(_entry(n))
    finally:
        await store.close()
    assert _waits(group) == 0


def _waits(group: SentinelGroup) -> int:
    """How many WAIT commands the primary has run."""
    stats = ask(group.primary.port, "INFO", "commandstats")
    return int(stats.get("cmdstat_wait", {}).get("calls", 0))


async def test_without_a_replica_the_write_stands_and_says_so(
    group: SentinelGroup, tmp_path: Path
) -> None:
    group.replica.stop()
    store = _store(group, tmp_path)
    await store.open()
    try:
        entry = _entry(1)
        with capture_logs() as logs:
            assert await store.inbox_add(entry)
        assert [e.id for e in await store.inbox_pending()] == [entry.id]
    finally:
        await store.close()
    behind = [e for e in logs if e["event"] == "store_replicas_behind"]
    assert len(behind) == 1
    assert (behind[0]["replicas"], behind[0]["wanted"], behind[0]["write"]) == (0, 1, "inbox_add")


async def test_the_store_follows_a_failover_and_keeps_what_it_waited_for(
    group: SentinelGroup, tmp_path: Path
) -> None:
    store = _store(group, tmp_path)
    await store.open()
    try:
        before = [_entry(n) for n in range(10)]
        for entry in before:
            await store.inbox_add(entry)
        group.primary.kill()
        # The next write waits out the failover (store.outage_limit) and lands on the new
        # primary, the former replica.
        after = _entry(99)
        with capture_logs() as logs:
            assert await store.inbox_add(after)
        await asyncio.to_thread(group.until_named, group.replica)
        pending = {e.id for e in await store.inbox_pending()}
    finally:
        await store.close()
    assert pending == {e.id for e in [*before, after]}
    events = [e["event"] for e in logs]
    assert "store_unreachable" in events
    assert "store_reachable_again" in events
    # The new primary has no replica (the old primary is dead): said, not refused.
    assert "store_replicas_behind" in events


async def test_a_wait_longer_than_the_socket_timeout_is_no_outage(
    group: SentinelGroup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_store, "SOCKET_TIMEOUT", 1)
    group.replica.stop()
    store = _store(group, tmp_path, ReplicaWait(1, timedelta(milliseconds=1500)))
    await store.open()
    try:
        with capture_logs() as logs:
            assert await store.inbox_add(_entry(1))
    finally:
        await store.close()
    events = [e["event"] for e in logs]
    assert events == ["store_replicas_behind"]
