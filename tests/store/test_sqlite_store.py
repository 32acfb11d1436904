"""What only the SQLite store promises: durable settings, an append-only audit table."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import pytest

from broadcaster.models import AuditEntry
from broadcaster.store.sqlite import SCHEMA_VERSION, SqliteStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "var" / "lib" / "broadcaster.db")
    await store.open()
    yield store
    await store.close()


async def pragma(store: SqliteStore, name: str) -> object:
    assert store._db is not None
    rows = list(await store._db.execute_fetchall(f"PRAGMA {name}"))
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
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            other.execute("DELETE FROM audit")
    assert len(await store.audit_trail("A")) == 1


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "broadcaster.db"
    with closing(sqlite3.connect(path)) as newer:
        newer.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    store = SqliteStore(path)
    with pytest.raises(RuntimeError, match="schema version"):
        await store.open()
    assert await store.ping() is False
