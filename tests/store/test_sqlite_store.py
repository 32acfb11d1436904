"""What only the SQLite store promises: durable settings, an append-only audit table."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest

from broadcaster.models import AuditEntry
from broadcaster.store.sqlite import SCHEMA_VERSION, SqliteStore
from tests.store.helpers import T0


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "var" / "lib" / "broadcaster.db")
    await store.open()
    yield store
    await store.close()


async def pragma(store: SqliteStore, name: str) -> object:
    rows = await store._read(f"PRAGMA {name}")  # on the store's own connection
    return rows[0][0]


async def test_the_file_and_its_folders_are_created(store: SqliteStore) -> None:
    assert store.path.is_file()


async def test_commits_are_durable_wal_with_full_sync(store: SqliteStore) -> None:
    assert await pragma(store, "journal_mode") == "wal"
    assert await pragma(store, "synchronous") == 2  # FULL
    assert await pragma(store, "busy_timeout") == 10_000
    assert await pragma(store, "foreign_keys") == 1
    assert await pragma(store, "user_version") == SCHEMA_VERSION


async def test_the_audit_table_refuses_changes(store: SqliteStore) -> None:
    await store.audit(AuditEntry(alert_id="A", event="trigger_received"))
    with closing(sqlite3.connect(store.path)) as other:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            other.execute("UPDATE audit SET data = '{}'")
        with pytest.raises(sqlite3.IntegrityError, match="audit trail is kept"):
            other.execute("DELETE FROM audit")
    assert len(await store.audit_trail("A")) == 1


# The schema of version 1 (wave 1), as deployed files have it.
VERSION_1 = (
    "CREATE TABLE inbox (id TEXT PRIMARY KEY, received_us INTEGER NOT NULL,"
    " payload BLOB NOT NULL, data TEXT NOT NULL)",
    "CREATE TABLE alerts (id TEXT PRIMARY KEY, state TEXT NOT NULL, incident TEXT NOT NULL,"
    " created_us INTEGER NOT NULL, data TEXT NOT NULL)",
    "CREATE TABLE deliveries (alert_id TEXT NOT NULL REFERENCES alerts (id),"
    " channel_id TEXT NOT NULL, state TEXT NOT NULL, claimed_by TEXT, claimed_until_us INTEGER,"
    " data TEXT NOT NULL, PRIMARY KEY (alert_id, channel_id)) WITHOUT ROWID",
    "CREATE TABLE audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, alert_id TEXT, data TEXT NOT NULL)",
    "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
    " BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END",
    "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit"
    " BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END",
    "PRAGMA user_version = 1",
)


async def test_a_version_1_file_is_upgraded_and_keeps_its_trail(tmp_path: Path) -> None:
    path = tmp_path / "broadcaster.db"
    old = AuditEntry(at=T0, alert_id=None, event="refused", detail={"error": "stale"})
    kept = AuditEntry(at=T0, alert_id="A", event="trigger_received")
    with closing(sqlite3.connect(path)) as v1:
        for statement in VERSION_1:
            v1.execute(statement)
        for entry in (old, kept):
            v1.execute(
                "INSERT INTO audit (alert_id, data) VALUES (?, ?)",
                (entry.alert_id, entry.model_dump_json()),
            )
        v1.commit()
    store = SqliteStore(path)
    await store.open()
    try:
        assert await pragma(store, "user_version") == SCHEMA_VERSION
        assert await store.audit_trail() == [old]
        assert await store.audit_trail("A") == [kept]
        assert await store.prune(T0 + timedelta(days=1)) == 1
        assert await store.audit_trail() == []
        assert await store.audit_trail("A") == [kept]
    finally:
        await store.close()


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "broadcaster.db"
    with closing(sqlite3.connect(path)) as newer:
        newer.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    store = SqliteStore(path)
    with pytest.raises(RuntimeError, match="schema version"):
        await store.open()
    assert await store.ping() is False
