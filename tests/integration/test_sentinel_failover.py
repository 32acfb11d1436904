"""Redis Sentinel, the primary killed mid-burst (issue 14): the sentinels promote the
replica, the daemon follows by itself (its store outage handling rides over the
failover), and with replicas_to_wait every trigger ends sent with one post per channel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.fakes.webhook import FakeWebhook
from tests.integration.cluster import Cluster, requests_per_key, until_healthy
from tests.integration.harness import Watcher, publish_many, signed_trigger
from tests.servers import MosquittoServer, SentinelGroup, start_sentinel_group

BURST = 30
WAITING = {"replicas_to_wait": 1, "replica_timeout": "500ms"}


@pytest.fixture
def group(tmp_path: Path) -> Iterator[SentinelGroup]:
    servers = start_sentinel_group(tmp_path / "redis")
    yield servers
    servers.stop()


@pytest.fixture
async def slow_hooks() -> AsyncIterator[list[FakeWebhook]]:
    """Three providers answering in 300, 400 and 500 ms: posts are under way at the kill."""
    async with FakeWebhook.start() as a, FakeWebhook.start() as b, FakeWebhook.start() as c:
        for fake, delay in ((a, 0.3), (b, 0.4), (c, 0.5)):
            fake.delay(delay)
        yield [a, b, c]


def all_final(watcher: Watcher, ids: list[str]) -> bool:
    final = {"sent", "failed", "partially_failed"}
    return all((watcher.alert(i) or {}).get("state") in final for i in ids)


async def test_a_failover_mid_burst_loses_no_trigger_and_sends_nothing_twice(
    tmp_path: Path,
    group: SentinelGroup,
    mosquitto: MosquittoServer,
    watcher: Watcher,
    slow_hooks: list[FakeWebhook],
) -> None:
    (tmp_path / "daemons").mkdir()
    cluster = Cluster(
        tmp_path / "daemons", mosquitto.url, group.url, slow_hooks, delivery={}, store=WAITING
    )
    node = cluster.start(cluster.add("d0"))
    ids = [f"FW-SENTINEL-{n:02d}" for n in range(BURST)]
    half = BURST // 2
    try:
        await until_healthy(node)
        await publish_many(mosquitto.url, "bc/trigger", [signed_trigger(i) for i in ids[:half]])
        await slow_hooks[0].wait_for_answers(5, timeout=30)  # the fan-out is under way
        group.primary.kill()  # SIGKILL: no goodbye to the replica or the clients
        # The rest of the burst arrives while the sentinels have not yet decided.
        await publish_many(mosquitto.url, "bc/trigger", [signed_trigger(i) for i in ids[half:]])
        await asyncio.to_thread(group.until_named, group.replica)
        await watcher.wait_for(lambda: all_final(watcher, ids), 120)
    finally:
        cluster.stop_all()
    states = {i: (watcher.alert(i) or {}).get("state") for i in ids}
    per_key = requests_per_key(slow_hooks)
    posts = [len(hook.posts) for hook in slow_hooks]
    events = [e["event"] for e in node.events()]
    # Every trigger sent, each channel's post made once: nothing lost, nothing doubled.
    assert states == dict.fromkeys(ids, "sent"), cluster.logs()
    assert posts == [BURST, BURST, BURST]
    assert per_key == {f"{i}:hook_{n}": 1 for i in ids for n in range(3)}
    assert [e for e in watcher.errors() if e["error"] == "duplicate"] == []
    # Each trigger handled once, by the intake that stored it: none adopted by the takeover
    # scan while its write still waited for the replica.
    assert events.count("trigger_accepted") == BURST
    assert "inbox_taken_over" not in events
    assert "alert_resumed_from_inbox" not in events
    # The outage handling rode over the failover: the daemon never gave up or crashed.
    assert "store_unreachable" in events
    assert "store_reachable_again" in events
    assert "store_given_up" not in events
    assert "loop_crashed" not in events
    assert "task_failed" not in events
    # The new primary has no replica (the old one is dead): WAIT says so, writes go on.
    assert "store_replicas_behind" in events
