"""Redis restarted or gone mid-burst: intake resumes by itself, nothing is lost, no post
that a provider confirmed is sent again; past store.outage_limit the daemon exits 75."""

from __future__ import annotations

import asyncio

import pytest

from tests.fakes.webhook import FakeWebhook
from tests.integration.cluster import (
    Cluster,
    healthz,
    onlines,
    requests_per_key,
    until_healthy,
)
from tests.integration.harness import Watcher, publish_many, signed_trigger
from tests.servers import MosquittoServer, start_redis


@pytest.fixture
async def slow_hooks():
    async with FakeWebhook.start() as a, FakeWebhook.start() as b, FakeWebhook.start() as c:
        for fake in (a, b, c):
            fake.delay(0.3)
        yield [a, b, c]


def all_sent(watcher: Watcher, ids: list[str]) -> bool:
    return all((watcher.alert(i) or {}).get("state") == "sent" for i in ids)


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
async def test_intake_resumes_by_itself_after_a_redis_restart(
    tmp_path, mosquitto: MosquittoServer, watcher: Watcher, slow_hooks, how
):
    redis = start_redis(tmp_path, durable=True)
    cluster = Cluster(tmp_path, mosquitto.url, redis.url, slow_hooks, delivery={})
    node = cluster.start(cluster.add("d0"))
    try:
        await until_healthy(node)
        before = [f"FW-BLIP-{how}-{n:02d}" for n in range(20)]
        await publish_many(mosquitto.url, "bc/trigger", [signed_trigger(i) for i in before])
        await asyncio.wait_for(_answered(slow_hooks, 10), 30)
        if how == "sigterm":
            redis.stop()
        else:
            redis.kill()
        during = [f"FW-DURING-{how}-{n:02d}" for n in range(10)]
        await publish_many(mosquitto.url, "bc/trigger", [signed_trigger(i) for i in during])
        await until_healthy(node, want=False)  # the daemon says so
        parts = await healthz(node)
        assert parts is not None
        assert parts["store"] is False
        redis = start_redis(tmp_path, redis.port, durable=True)  # its append-only file
        await until_healthy(node)  # by itself, nobody restarts the daemon
        await watcher.wait_for(lambda: all_sent(watcher, before + during), 60)
    finally:
        cluster.stop_all()
        redis.stop()
    per_key = requests_per_key(slow_hooks)
    # Every delivery asked exactly once: a 200 that met the outage was written afterwards.
    assert per_key == {f"{i}:hook_{n}": 1 for i in before + during for n in range(3)}
    assert [e for e in watcher.errors() if e["error"] == "duplicate"] == []
    events = [e["event"] for e in node.events()]
    assert "store_unreachable" in events
    assert "store_reachable_again" in events
    assert "loop_crashed" not in events
    assert "task_failed" not in events


async def test_past_the_outage_limit_the_daemon_exits_and_loses_nothing(
    tmp_path, mosquitto: MosquittoServer, watcher: Watcher, hooks
):
    redis = start_redis(tmp_path, durable=True)
    cluster = Cluster(
        tmp_path, mosquitto.url, redis.url, hooks, delivery={}, store={"outage_limit": "2s"}
    )
    node = cluster.start(cluster.add("d0"))
    try:
        await until_healthy(node)
        redis.stop()
        await publish_many(mosquitto.url, "bc/trigger", [signed_trigger("FW-GONE-1")])
        assert node.process is not None
        code = await asyncio.to_thread(node.process.wait, 60)
        assert code == 75, node.log.read_text()
        exiting = [e for e in node.events() if e.get("event") == "daemon_exiting"]
        assert len(exiting) == 1
        assert "outage_limit" in exiting[0]["reason"]
        # Restarted, the daemon finds the trigger it never acknowledged at the broker.
        redis = start_redis(tmp_path, redis.port, durable=True)
        before = onlines(watcher)
        cluster.start(node)
        await watcher.wait_for(lambda: onlines(watcher) > before, 30)
        alert = await watcher.alert_in(
            "FW-GONE-1", "sent", "failed", "partially_failed", timeout=30
        )
    finally:
        cluster.stop_all()
        redis.stop()
    assert alert["state"] == "sent"
    assert [len(h.posts) for h in hooks] == [1, 1, 1]


async def _answered(hooks: list[FakeWebhook], count: int) -> None:
    while sum(r.status is not None for h in hooks for r in h.requests) < count:
        await asyncio.sleep(0.05)  # polling the fakes' request lists
