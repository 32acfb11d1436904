"""SQLite group commit: writes that wait while a transaction runs share the next one's
commit, each still on disk before its caller goes on, and one that fails fails alone."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from broadcaster.models import AuditEntry
from broadcaster.store.sqlite import SqliteStore
from tests.store.helpers import make_alert, make_deliveries, make_delivery

A = "FW-GROUP"
CHANNELS = [f"c{n}" for n in range(10)]


async def counted_commits(store: SqliteStore) -> list[str]:
    statements: list[str] = []
    store._connection().set_trace_callback(statements.append)
    return statements


async def test_answers_that_arrive_together_share_one_commit(tmp_path: Path) -> None:
    store, reader = SqliteStore(tmp_path / "b.db"), SqliteStore(tmp_path / "b.db")
    await store.open()
    await reader.open()
    try:
        deliveries = make_deliveries(A, *CHANNELS)
        assert await store.create_alert(make_alert(A), deliveries)
        statements = await counted_commits(store)
        for delivery in deliveries:
            delivery.state = "delivered"
        saved = await asyncio.gather(*(store.save_delivery(d) for d in deliveries))
        # Each is durable when its call returns: another connection sees all of them.
        seen = await reader.get_deliveries(A)
    finally:
        await store.close()
        await reader.close()
    assert saved == [True] * 10
    assert [d.state for d in seen] == ["delivered"] * 10
    # All ten were waiting when the writer began: one transaction, one commit.
    assert statements.count("BEGIN IMMEDIATE") == 1
    assert statements.count("COMMIT") == 1


async def test_a_write_that_fails_in_a_batch_fails_alone(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "b.db")
    await store.open()
    try:
        deliveries = make_deliveries(A, *CHANNELS)
        assert await store.create_alert(make_alert(A), deliveries)
        orphan = make_delivery("FW-NO-SUCH-ALERT", "c0")
        batch = [*deliveries[:5], orphan, *deliveries[5:]]
        for delivery in deliveries:
            delivery.state = "delivered"
        results = await asyncio.gather(
            *(store.save_delivery(d) for d in batch), return_exceptions=True
        )
        stored = await store.get_deliveries(A)
    finally:
        await store.close()
    assert isinstance(results[5], KeyError)
    assert [r for i, r in enumerate(results) if i != 5] == [True] * 10
    assert [d.state for d in stored] == ["delivered"] * 10


async def test_a_cancelled_caller_does_not_cut_its_write(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "b.db")
    await store.open()
    started, proceed = threading.Event(), threading.Event()

    def slow(db: sqlite3.Connection) -> None:  # runs in the store's thread
        started.set()
        proceed.wait(30)
        db.execute("UPDATE alerts SET state = 'sent' WHERE id = ?", (A,))

    try:
        assert await store.create_alert(make_alert(A), make_deliveries(A, "c0"))
        caller = asyncio.create_task(store._write(slow))
        await asyncio.to_thread(started.wait, 30)  # the write is under way
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        proceed.set()
        await store.audit(AuditEntry(alert_id=A, event="noted"))  # runs after it
        rows = await store._read("SELECT state FROM alerts WHERE id = ?", (A,))
    finally:
        await store.close()
    assert rows == [("sent",)]  # the write went on without its caller


async def test_a_locked_file_is_waited_out_not_failed(tmp_path: Path) -> None:
    """Another process holds the write lock longer than the busy timeout: the write is
    run again until it gets through, and its caller only waits."""
    path = tmp_path / "b.db"
    store = SqliteStore(path, busy_timeout=timedelta(milliseconds=20))
    await store.open()
    other = sqlite3.connect(path, isolation_level=None)
    try:
        assert await store.create_alert(make_alert(A), make_deliveries(A, "c0"))
        (delivery,) = await store.get_deliveries(A)
        delivery.state = "delivered"
        other.execute("BEGIN IMMEDIATE")  # another process writing
        saving = asyncio.create_task(store.save_delivery(delivery))
        await store.outage.unreachable.wait()  # the write met the lock and waits
        other.execute("COMMIT")
        assert await saving
        (stored,) = await store.get_deliveries(A)
    finally:
        other.close()
        await store.close()
    assert stored.state == "delivered"
