"""What only the Redis store promises: its keys stay under its prefix, and a script that
redis-py resends after a lost answer does not run twice."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from redis.asyncio import Redis

from broadcaster.models import AuditEntry, InboxEntry
from broadcaster.store.outage import StoreUnavailable
from broadcaster.store.redis import RedisStore
from tests.servers import RedisServer, start_redis
from tests.store.helpers import T0, make_alert, make_deliveries

A = "FW-DUS-2026-000123"


class LosingProxy:
    """A TCP proxy to Redis that can lose the answer to the next script call.

    The script runs in Redis, then the proxy cuts the connection instead of passing the
    answer on, as a network failure would; redis-py reconnects and sends the call again.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.lose_next_script_answer = False
        self.lost = 0
        self.refuse_after_loss = 0  # connections to refuse after losing an answer
        self.refused = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def close(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _handle(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter):
        if self.lost and self.refused < self.refuse_after_loss:
            self.refused += 1  # Redis still away: the connection is cut at once
            client_out.transport.abort()
            return
        server_in, server_out = await asyncio.open_connection("127.0.0.1", self.target_port)
        script_waiting = False

        async def upstream() -> None:
            nonlocal script_waiting
            while data := await client_in.read(65536):
                if b"EVALSHA" in data.upper():
                    script_waiting = True
                server_out.write(data)
                await server_out.drain()
            server_out.close()

        async def downstream() -> None:
            nonlocal script_waiting
            while data := await server_in.read(65536):
                if script_waiting and self.lose_next_script_answer and data.startswith(b":"):
                    self.lose_next_script_answer = False
                    self.lost += 1
                    client_out.transport.abort()
                    server_out.close()
                    return
                script_waiting = False
                client_out.write(data)
                await client_out.drain()
            client_out.close()

        await asyncio.gather(upstream(), downstream(), return_exceptions=True)


@pytest.fixture
async def proxy(redis_server: RedisServer) -> AsyncIterator[LosingProxy]:
    proxy = LosingProxy(redis_server.port)
    await proxy.start()
    yield proxy
    proxy.close()


@pytest.fixture
async def store(proxy: LosingProxy) -> AsyncIterator[RedisStore]:
    store = RedisStore(f"redis://127.0.0.1:{proxy.port}/0", prefix=f"test-{uuid.uuid4().hex}")
    await store.open()
    yield store
    await store.close()


async def test_a_resent_create_alert_still_reports_its_success(
    store: RedisStore, proxy: LosingProxy
) -> None:
    proxy.lose_next_script_answer = True
    assert await store.create_alert(make_alert(A), make_deliveries(A, "sms")) is True
    assert proxy.lost == 1
    assert await store.create_alert(make_alert(A), make_deliveries(A, "sms")) is False


async def test_a_resent_compare_and_set_still_reports_its_success(
    store: RedisStore, proxy: LosingProxy
) -> None:
    await store.create_alert(make_alert(A, state="awaiting_confirmation"), [])
    proxy.lose_next_script_answer = True
    updated = await store.update_alert(A, expect={"awaiting_confirmation"}, state="sending")
    assert proxy.lost == 1
    assert updated is not None
    assert updated.state == "sending"
    assert await store.get_alert(A) == updated


async def test_a_resent_claim_still_reports_its_success(
    store: RedisStore, proxy: LosingProxy
) -> None:
    await store.create_alert(make_alert(A), make_deliveries(A, "sms"))
    proxy.lose_next_script_answer = True
    claim = await store.claim_delivery(A, "sms", "daemon-1", T0 + timedelta(minutes=2), T0)
    assert proxy.lost == 1
    assert claim is not None
    assert claim.claimed_by == "daemon-1"


async def test_a_resent_audit_entry_is_kept_once(store: RedisStore, proxy: LosingProxy) -> None:
    proxy.lose_next_script_answer = True
    entry = AuditEntry(at=T0, alert_id=A, event="released")
    await store.audit(entry)
    assert proxy.lost == 1
    assert await store.audit_trail(A) == [entry]


async def test_every_key_starts_with_the_prefix(redis_server: RedisServer) -> None:
    url = f"redis://127.0.0.1:{redis_server.port}/7"  # a database no other test uses
    raw = Redis.from_url(url, decode_responses=True)
    await raw.flushdb()
    store = RedisStore(url, prefix="fire-brigade")
    await store.open()
    try:
        await store.create_alert(make_alert(A), make_deliveries(A, "sms"))
        await store.update_alert(A, state="sending")
        await store.claim_delivery(A, "sms", "d-1", T0 + timedelta(minutes=2), T0)
        await store.audit(AuditEntry(alert_id=A, event="released"))
        await store.inbox_add(
            InboxEntry(id="m-1", kind="trigger", source="mqtt", payload=b"{}", received_at=T0)
        )
        keys = [k if isinstance(k, str) else k.decode() for k in await raw.keys("*")]
        assert keys
        assert all(key.startswith("fire-brigade:") for key in keys)
        assert "fire-brigade:alert:" + A in keys
    finally:
        await store.close()
        await raw.flushdb()
        await raw.aclose()


async def outage_started(store: RedisStore) -> None:
    """Until the store has met the outage (polling a flag, as wait_for_port polls a port)."""
    while store.outage.since is None:
        await asyncio.sleep(0.01)


async def test_a_write_waits_out_a_redis_restart_and_runs_once(tmp_path) -> None:
    server = start_redis(tmp_path, durable=True)
    store = RedisStore(server.url, prefix="outage", outage_limit=timedelta(seconds=30))
    await store.open()
    try:
        server.process.kill()  # SIGKILL: Redis is gone mid-incident
        server.process.wait()
        write = asyncio.create_task(store.create_alert(make_alert(A), make_deliveries(A, "sms")))
        await asyncio.wait_for(outage_started(store), 10)
        assert not write.done()
        assert not store.outage.available
        server = start_redis(tmp_path, server.port, durable=True)  # same file, same port
        assert await asyncio.wait_for(write, 30) is True
        assert store.outage.since is None  # the outage is over
        assert (await store.get_alert(A)) is not None
        assert await store.create_alert(make_alert(A), []) is False
    finally:
        await store.close()
        server.stop()


async def test_a_lost_answer_during_an_outage_is_not_run_twice(proxy: LosingProxy) -> None:
    """The answer is lost and Redis stays away longer than the client's own retries: the
    store's outage retries send the same token, so the create still reports success."""
    store = RedisStore(f"redis://127.0.0.1:{proxy.port}/0", prefix=f"t-{uuid.uuid4().hex}")
    await store.open()
    try:
        proxy.lose_next_script_answer = True
        proxy.refuse_after_loss = 6  # more refusals than redis-py's own RETRIES
        assert await store.create_alert(make_alert(A), make_deliveries(A, "sms")) is True
        assert proxy.lost == 1
        assert proxy.refused == 6
    finally:
        await store.close()


async def test_past_the_outage_limit_the_store_gives_up_for_good(tmp_path) -> None:
    server = start_redis(tmp_path)
    store = RedisStore(server.url, prefix="gone", outage_limit=timedelta(milliseconds=300))
    reasons: list[str] = []
    store.outage.on_give_up.append(reasons.append)
    await store.open()
    try:
        server.stop()
        with pytest.raises(StoreUnavailable, match="unreachable"):
            await store.get_alert(A)
        with pytest.raises(StoreUnavailable):
            await store.audit(AuditEntry(alert_id=A, event="released"))
        assert len(reasons) == 1
        assert "outage_limit" in reasons[0]
    finally:
        await store.close()
