"""Several daemons on one Redis and one mosquitto: a daemon killed mid fan-out, replaced,
or sharing a client id by mistake; every trigger handled by exactly one of them."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter

import pytest

from broadcaster.store.redis import RedisStore
from tests.fakes.webhook import FakeWebhook
from tests.integration.cluster import (
    Cluster,
    Node,
    onlines,
    recorded,
    requests_per_key,
    until_healthy,
)
from tests.integration.harness import (
    Watcher,
    publish_many,
    running_daemon,
    signed_trigger,
    webhook,
    write_deployment,
)
from tests.servers import MosquittoServer, start_redis

BURST = 50


@pytest.fixture
async def slow_hooks():
    """Three providers answering in 300, 500 and 800 ms."""
    async with FakeWebhook.start() as a, FakeWebhook.start() as b, FakeWebhook.start() as c:
        for fake, delay in ((a, 0.3), (b, 0.5), (c, 0.8)):
            fake.delay(delay)
        yield [a, b, c]


@pytest.fixture
def redis(tmp_path):
    server = start_redis(tmp_path, durable=True)
    yield server
    server.stop()


async def kill_mid_fan_out(
    cluster: Cluster,
    watcher: Watcher,
    hooks: list[FakeWebhook],
    keys: set[str],
    victim_index: int = 0,
    excused: frozenset[str] = frozenset(),
) -> set[str]:
    """SIGKILL one daemon while requests are on their way; returns the idempotency keys
    of the deliveries not recorded at the kill (the only ones that may be sent twice:
    the killed daemon may have sent them and never heard the answer). `excused`: keys an
    earlier kill left unrecorded; `keys`: every delivery's key."""
    await asyncio.wait_for(
        _until(lambda: sum(r.status is not None for h in hooks for r in h.requests) >= 20), 60
    )
    for hook in hooks:
        hook.hold()
    answered = {
        r.headers["Idempotency-Key"] for h in hooks for r in h.requests if r.status is not None
    } - excused
    # Every answer so far is recorded (store first, then the retained state), so a
    # request answered before the kill is never sent again.
    await watcher.wait_for(lambda: all(recorded(watcher, key) for key in answered), 30)
    cluster.kill(cluster.nodes[victim_index])
    # Not recorded as delivered when the daemon died: only these may be asked again. (Not
    # "requested": its last requests may still be on their way to the fakes.)
    held = {key for key in keys if not recorded(watcher, key)}
    for hook in hooks:
        hook.release()
    return held


async def _until(predicate) -> None:
    while not predicate():
        await asyncio.sleep(0.05)  # polling the fakes' request lists


def keys_of(ids: list[str], hooks: list[FakeWebhook]) -> set[str]:
    return {f"{i}:hook_{n}" for i in ids for n in range(len(hooks))}


def history(hooks: list[FakeWebhook], keys: set[str]) -> dict[str, list[tuple[str, int | None]]]:
    """Each key's requests as the providers saw them: when, and what they answered."""
    return {
        key: [
            (r.at.time().isoformat(), r.status)
            for h in hooks
            for r in h.requests
            if r.headers["Idempotency-Key"] == key
        ]
        for key in keys
    }


def check_fan_out(
    watcher: Watcher, hooks: list[FakeWebhook], ids: list[str], held: set[str]
) -> None:
    alerts = {i: watcher.alert(i) for i in ids}
    assert all(a is not None and a["state"] == "sent" for a in alerts.values()), {
        i: a and a["state"] for i, a in alerts.items()
    }
    assert [e for e in watcher.errors() if e["error"] == "duplicate"] == []
    per_key = requests_per_key(hooks)
    expected = keys_of(ids, hooks)
    assert set(per_key) == expected  # every delivery requested, under its one key
    assert max(per_key.values()) <= 2
    twice = {key for key, count in per_key.items() if count == 2}
    # only where the kill fell between request and answer
    assert twice <= held, history(hooks, twice - held)
    # A takeover can meet the dead daemon's request still at the provider (turned away).
    turned_away = set(requests_per_key(hooks, in_progress=True))
    assert turned_away <= held, history(hooks, turned_away - held)
    posts = Counter(p.json["alert_id"] for h in hooks for p in h.posts if p.json["kind"] == "alert")
    assert posts == Counter({i: len(hooks) for i in ids})  # one post per channel (the key)


@pytest.mark.parametrize(
    ("daemons", "victim_host"),
    [(2, None), (2, "another-host"), (3, "another-host")],
    ids=["2-same-host", "2-other-host", "3-other-host"],
)
async def test_a_daemon_killed_mid_fan_out_is_taken_over_by_the_survivors(
    tmp_path, mosquitto: MosquittoServer, watcher: Watcher, slow_hooks, redis, daemons, victim_host
):
    """On this host a dead process is seen at once; on another, its leases must expire."""
    cluster = Cluster(tmp_path, mosquitto.url, redis.url, slow_hooks)
    for i in range(daemons):
        cluster.start(cluster.add(f"d{i}"), host=victim_host if i == 0 else None)
    try:
        await watcher.wait_for(lambda: onlines(watcher) >= daemons, 30)
        ids = [f"FW-KILL-{daemons}-{n:02d}" for n in range(BURST)]
        await publish_many(mosquitto.url, "bc/trigger", [signed_trigger(i) for i in ids])
        held = await kill_mid_fan_out(cluster, watcher, slow_hooks, keys_of(ids, slow_hooks))
        killed_at = time.monotonic()
        await watcher.wait_for(
            lambda: all((watcher.alert(i) or {}).get("state") == "sent" for i in ids), 60
        )
        print(
            f"takeover: all {BURST} alerts sent {time.monotonic() - killed_at:.1f}s after the kill"
        )
    finally:
        cluster.stop_all()
    check_fan_out(watcher, slow_hooks, ids, held)
    store = RedisStore(redis.url)
    await store.open()
    try:
        received = [
            [e.actor for e in await store.audit_trail(i) if e.event == "trigger_received"]
            for i in ids
        ]
    finally:
        await store.close()
    assert received == [["mqtt"]] * BURST  # each trigger taken in once, by one daemon


async def test_a_killed_daemon_replaced_by_one_with_a_new_client_id(
    tmp_path, mosquitto: MosquittoServer, watcher: Watcher, slow_hooks, redis
):
    cluster = Cluster(tmp_path, mosquitto.url, redis.url, slow_hooks)
    for i in range(2):
        cluster.start(cluster.add(f"d{i}"))
    try:
        await watcher.wait_for(lambda: onlines(watcher) >= 2, 30)
        ids = [f"FW-NEW-{n:02d}" for n in range(BURST)]
        await publish_many(mosquitto.url, "bc/trigger", [signed_trigger(i) for i in ids])
        keys = keys_of(ids, slow_hooks)
        held = await kill_mid_fan_out(cluster, watcher, slow_hooks, keys)
        # The other one dies too: only a newcomer with a new client id is left.
        held |= await kill_mid_fan_out(
            cluster, watcher, slow_hooks, keys, victim_index=1, excused=frozenset(held)
        )
        cluster.start(cluster.add("replacement", client_id="broadcaster-rescheduled"))
        await watcher.wait_for(
            lambda: all((watcher.alert(i) or {}).get("state") == "sent" for i in ids), 90
        )
    finally:
        cluster.stop_all()
    check_fan_out(watcher, slow_hooks, ids, held)


async def test_two_daemons_with_one_client_id_the_second_refuses_to_start(
    tmp_path, mosquitto: MosquittoServer, watcher: Watcher, hooks, redis
):
    cluster = Cluster(tmp_path, mosquitto.url, redis.url, hooks)
    first = cluster.start(cluster.add("first", client_id="broadcaster-same"))
    try:
        await until_healthy(first)
        second = cluster.start(cluster.add("second", client_id="broadcaster-same"))
        assert second.process is not None
        code = await asyncio.to_thread(second.process.wait, 60)
        assert code == 78, cluster.logs()
        assert "is in use by another running daemon" in second.log.read_text()
        assert first.process is not None
        assert first.process.poll() is None
        await until_healthy(first)
    finally:
        cluster.stop_all()
    assert onlines(watcher) >= 1


async def test_a_delivery_waiting_its_turn_keeps_its_claim(
    tmp_path, mosquitto: MosquittoServer, watcher: Watcher, redis
):
    """One request at a time to a slow channel: deliveries queue far longer than the lease,
    and the other daemon must not take them over while they wait."""
    async with FakeWebhook.start() as slow:
        slow.delay(0.4)
        configs = [
            write_deployment(
                tmp_path / name,
                mqtt_url=mosquitto.url,
                store_url=redis.url,
                channels={"slow": webhook(slow.url, max_in_flight=1)},
                delivery={"lease": "1s", "scan_interval": "200ms"},
            )
            for name in ("a", "b")
        ]
        async with running_daemon(configs[0]), running_daemon(configs[1]):
            ids = [f"FW-QUEUE-{n}" for n in range(8)]  # 3.2 s of queue, a 1 s lease
            await publish_many(mosquitto.url, "bc/trigger", [signed_trigger(i) for i in ids])
            await watcher.wait_for(
                lambda: all((watcher.alert(i) or {}).get("state") == "sent" for i in ids), 60
            )
    per_key = requests_per_key([slow])
    assert per_key == Counter({f"{i}:slow": 1 for i in ids})


async def test_a_dead_daemon_s_confirmation_timers_run_on_in_the_other(
    tmp_path, mosquitto: MosquittoServer, watcher: Watcher, hooks, redis
):
    """Escalation and timeout happen once, by whichever daemon is alive."""
    public, officer_a, officer_b = hooks
    cluster = Cluster(
        tmp_path,
        mosquitto.url,
        redis.url,
        hooks,
        channels={
            "public": webhook(public.url),
            "officer_a": webhook(officer_a.url, audience="internal"),
            "officer_b": webhook(officer_b.url, audience="internal"),
        },
        confirmation={"mode": "required", "timeout": "6s", "on_timeout": "abort"},
        extra={
            "duty_officers": [
                {"name": "A. Schmidt", "notify": ["officer_a"]},
                {"name": "B. Yilmaz", "notify": ["officer_b"]},
            ],
            "escalate_after": "2s",
        },
    )
    first = cluster.start(cluster.add("d0"), host="another-host")
    cluster.start(cluster.add("d1"))
    try:
        await until_healthy(first)
        await watcher.wait_for(lambda: onlines(watcher) >= 2, 30)
        await publish_many(mosquitto.url, "bc/trigger", [signed_trigger("FW-TIMERS")])
        await officer_a.wait_for_requests(1)
        cluster.kill(first)
        await officer_b.wait_for_requests(1, timeout=30)
        alert = await watcher.alert_in("FW-TIMERS", "expired", timeout=30)
    finally:
        cluster.stop_all()
    store = RedisStore(redis.url)
    await store.open()
    try:
        trail = [e.event for e in await store.audit_trail("FW-TIMERS")]
    finally:
        await store.close()
    assert [len(officer_a.posts), len(officer_b.posts), len(public.posts)] == [1, 1, 0]
    assert trail.count("officer_asked") == 2
    assert trail.count("confirmation_timeout") == 1
    assert trail.count("expired") == 1
    assert all(d["state"] == "pending" for d in alert["deliveries"].values())


async def logged(node: Node, *events: str, timeout: float = 30.0) -> dict[str, object]:
    """The first line of the node's log with one of these events, once it is there."""
    async with asyncio.timeout(timeout):
        while True:
            found = next((e for e in node.events() if e.get("event") in events), None)
            if found is not None:
                return found
            await asyncio.sleep(0.05)  # polling the daemon's log


async def test_a_daemon_that_lost_its_claim_stops_without_posting_again(
    tmp_path, mosquitto: MosquittoServer, watcher: Watcher, hooks, redis
):
    """Daemon A is frozen (SIGSTOP) while its request waits at the provider, so it cannot
    renew its lease; B takes the delivery over and delivers it. A, thawed, gets the answer
    to its old request, finds its claim gone and stops: no second request, no second
    post, `delivery_taken_over` in its log."""
    hook = hooks[0]
    cluster = Cluster(tmp_path, mosquitto.url, redis.url, [hook])
    a = cluster.start(cluster.add("a"))
    b = cluster.add("b")
    assert a.process is not None
    try:
        await until_healthy(a)
        hook.hold()
        await publish_many(mosquitto.url, "bc/trigger", [signed_trigger("FW-FROZEN")])
        await hook.wait_for_requests(1)  # A holds the claim, its request is on its way
        a.process.send_signal(signal.SIGSTOP)
        hook.script(503)  # A's request fails; the answer waits in A's socket
        hook.release()
        await hook.wait_for_answers(1)
        cluster.start(b)  # A's lease (3 s) runs out unrenewed: B takes over
        await watcher.alert_in("FW-FROZEN", "sent", timeout=30)
        before_thaw = len(hook.requests)
        a.process.send_signal(signal.SIGCONT)
        # How A's delivery ends: handed over, or (were the claim not checked) sent again.
        outcome = await logged(a, "delivery_taken_over", "delivery_delivered", "delivery_failed")
        after_thaw = len(hook.requests)
    finally:
        if a.process.poll() is None:
            a.process.send_signal(signal.SIGCONT)
        cluster.stop_all()
    assert outcome["event"] == "delivery_taken_over", cluster.logs()
    assert outcome["alert_id"] == "FW-FROZEN"
    assert outcome["channel"] == "hook_0"
    assert [r.status for r in hook.requests] == [503, 200]
    assert before_thaw == after_thaw == 2  # A sent nothing more once thawed
    assert len(hook.posts) == 1
    delivered = [e for e in b.events() if e.get("event") == "delivery_delivered"]
    assert [e["alert_id"] for e in delivered] == ["FW-FROZEN"]
    store = RedisStore(redis.url)
    await store.open()
    try:
        (delivery,) = await store.get_deliveries("FW-FROZEN")
        alert = await store.get_alert("FW-FROZEN")
    finally:
        await store.close()
    # A did not overwrite what B recorded.
    assert delivery.state == "delivered"
    assert delivery.remote_id is not None
    assert hook.post(delivery.remote_id) is hook.posts[0]
    assert alert is not None
    assert alert.state == "sent"
