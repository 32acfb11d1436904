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
from broadcaster.store.redis import RedisStore
from tests.servers import RedisServer
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
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def close(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _handle(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter):
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
    assert updated is not None and updated.state == "sending"
    assert await store.get_alert(A) == updated


async def test_a_resent_claim_still_reports_its_success(
    store: RedisStore, proxy: LosingProxy
) -> None:
    await store.create_alert(make_alert(A), make_deliveries(A, "sms"))
    proxy.lose_next_script_answer = True
    claim = await store.claim_delivery(A, "sms", "daemon-1", T0 + timedelta(minutes=2), T0)
    assert proxy.lost == 1
    assert claim is not None and claim.claimed_by == "daemon-1"


async def test_a_resent_audit_entry_is_kept_once(store: RedisStore, proxy: LosingProxy) -> None:
    proxy.lose_next_script_answer = True
    entry = AuditEntry(at=T0, alert_id=A, event="released")
    await store.audit(entry)
    assert proxy.lost == 1
    assert await store.audit_trail() == [entry]
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
        assert keys and all(key.startswith("fire-brigade:") for key in keys)
        assert "fire-brigade:alert:" + A in keys
    finally:
        await store.close()
        await raw.flushdb()
        await raw.aclose()
