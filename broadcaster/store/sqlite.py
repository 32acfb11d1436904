"""The embedded default store: one SQLite file.

WAL journal with `synchronous=FULL`, so a commit is on disk before it returns: an
acknowledged trigger survives a power cut. Each record is kept as its model's JSON plus
the columns that queries need. Every write is one `BEGIN IMMEDIATE` transaction, so a
read-check-write (compare and set, claims) holds the write lock throughout, also against
another process on the same file; within this process an asyncio lock keeps coroutines
from interleaving statements on the one connection.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Collection, Iterable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiosqlite

from broadcaster.models import Alert, AlertState, AuditEntry, Delivery, InboxEntry
from broadcaster.store import (
    apply_alert_changes,
    check_alert_changes,
    check_claim,
    check_delivery,
    check_new_alert,
    claimed,
    timestamp_us,
    touched,
)

SCHEMA_VERSION = 1

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS inbox (
        id TEXT PRIMARY KEY,
        received_us INTEGER NOT NULL,
        payload BLOB NOT NULL,
        data TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS inbox_by_received ON inbox (received_us, id)",
    """CREATE TABLE IF NOT EXISTS alerts (
        id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        incident TEXT NOT NULL,
        created_us INTEGER NOT NULL,
        data TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS alerts_by_created ON alerts (created_us, id)",
    "CREATE INDEX IF NOT EXISTS alerts_by_state ON alerts (state, created_us, id)",
    "CREATE INDEX IF NOT EXISTS alerts_by_incident ON alerts (incident, created_us, id)",
    """CREATE TABLE IF NOT EXISTS deliveries (
        alert_id TEXT NOT NULL REFERENCES alerts (id),
        channel_id TEXT NOT NULL,
        state TEXT NOT NULL,
        claimed_by TEXT,
        claimed_until_us INTEGER,
        data TEXT NOT NULL,
        PRIMARY KEY (alert_id, channel_id)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        alert_id TEXT,
        data TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS audit_by_alert ON audit (alert_id, seq)",
    """CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END""",
)

_ALERT_COLUMNS = "id, state, incident, created_us, data"
_DELIVERY_COLUMNS = "alert_id, channel_id, state, claimed_by, claimed_until_us, data"


def _alert_row(alert: Alert) -> tuple[str, str, str, int, str]:
    return (
        alert.id,
        alert.state,
        alert.incident,
        timestamp_us(alert.created_at),
        alert.model_dump_json(),
    )


def _delivery_row(delivery: Delivery) -> tuple[str, str, str, str | None, int | None, str]:
    until = delivery.claimed_until
    return (
        delivery.alert_id,
        delivery.channel_id,
        delivery.state,
        delivery.claimed_by,
        None if until is None else timestamp_us(until),
        delivery.model_dump_json(),
    )


def _alerts(rows: Iterable[Any]) -> list[Alert]:
    return [Alert.model_validate_json(row[0]) for row in rows]


class SqliteStore:
    """The Store protocol on one SQLite file (created, with its folder, when missing)."""

    def __init__(self, path: Path, *, busy_timeout: timedelta = timedelta(seconds=10)) -> None:
        self.path = Path(path)
        self._busy_timeout_ms = int(busy_timeout / timedelta(milliseconds=1))
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        if self._db is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(self.path, isolation_level=None)
        try:
            await db.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
            rows = list(await db.execute_fetchall("PRAGMA journal_mode = WAL"))
            if not rows or str(rows[0][0]).lower() != "wal":
                raise RuntimeError(f"{self.path}: SQLite refused the WAL journal mode")
            await db.execute("PRAGMA synchronous = FULL")
            await db.execute("PRAGMA foreign_keys = ON")
            await db.execute("BEGIN IMMEDIATE")
            try:
                (version,) = next(iter(await db.execute_fetchall("PRAGMA user_version")))
                if version > SCHEMA_VERSION:
                    raise RuntimeError(
                        f"{self.path} has schema version {version}, newer than this "
                        f"broadcaster's {SCHEMA_VERSION}"
                    )
                for statement in _SCHEMA:
                    await db.execute(statement)
                await db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                await db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    await db.execute("ROLLBACK")
                raise
        except BaseException:
            await db.close()
            raise
        self._db = db

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            async with self._lock:
                await db.close()

    async def ping(self) -> bool:
        try:
            async with self._read() as db:
                rows = list(await db.execute_fetchall("SELECT 1"))
            return bool(rows) and rows[0][0] == 1
        except Exception:
            return False

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[aiosqlite.Connection]:
        """The connection, outside any transaction (so no half-written state is seen)."""
        async with self._lock:
            if self._db is None:
                raise RuntimeError(f"store {self.path} is not open")
            yield self._db

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction: committed when the block ends, rolled back on an error."""
        async with self._lock:
            db = self._db
            if db is None:
                raise RuntimeError(f"store {self.path} is not open")
            await db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                await db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    await db.execute("ROLLBACK")
                raise

    # -- inbox -----------------------------------------------------------------------
    async def inbox_add(self, entry: InboxEntry) -> None:
        """Keep a raw trigger; an id already waiting keeps its first entry."""
        row = (
            entry.id,
            timestamp_us(entry.received_at),
            entry.payload,
            entry.model_dump_json(exclude={"payload"}),
        )
        async with self._write() as db:
            await db.execute(
                "INSERT INTO inbox (id, received_us, payload, data) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (id) DO NOTHING",
                row,
            )

    async def inbox_done(self, entry_id: str) -> None:
        async with self._write() as db:
            await db.execute("DELETE FROM inbox WHERE id = ?", (entry_id,))

    async def inbox_pending(self) -> list[InboxEntry]:
        async with self._read() as db:
            rows = await db.execute_fetchall(
                "SELECT data, payload FROM inbox ORDER BY received_us, id"
            )
        return [
            InboxEntry.model_validate({**json.loads(data), "payload": bytes(payload)})
            for data, payload in rows
        ]

    # -- alerts and deliveries ---------------------------------------------------------
    async def create_alert(self, alert: Alert, deliveries: list[Delivery]) -> bool:
        check_new_alert(alert, deliveries)
        async with self._write() as db:
            cursor = await db.execute(
                f"INSERT INTO alerts ({_ALERT_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO NOTHING",
                _alert_row(alert),
            )
            if cursor.rowcount != 1:
                return False
            await db.executemany(
                f"INSERT INTO deliveries ({_DELIVERY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                [_delivery_row(d) for d in deliveries],
            )
        return True

    async def get_alert(self, alert_id: str) -> Alert | None:
        async with self._read() as db:
            rows = await db.execute_fetchall("SELECT data FROM alerts WHERE id = ?", (alert_id,))
        alerts = _alerts(rows)
        return alerts[0] if alerts else None

    async def list_alerts(self, limit: int = 50) -> list[Alert]:
        if limit <= 0:
            return []
        async with self._read() as db:
            rows = await db.execute_fetchall(
                "SELECT data FROM alerts ORDER BY created_us DESC, id DESC LIMIT ?", (limit,)
            )
        return _alerts(rows)

    async def alerts_in_state(self, *states: AlertState) -> list[Alert]:
        """Oldest first."""
        if not states:
            return []
        marks = ", ".join("?" for _ in states)
        async with self._read() as db:
            rows = await db.execute_fetchall(
                f"SELECT data FROM alerts WHERE state IN ({marks}) ORDER BY created_us, id",
                states,
            )
        return _alerts(rows)

    async def incident_alerts(self, incident: str) -> list[Alert]:
        async with self._read() as db:
            rows = await db.execute_fetchall(
                "SELECT data FROM alerts WHERE incident = ? ORDER BY created_us, id", (incident,)
            )
        return _alerts(rows)

    async def update_alert(
        self, alert_id: str, *, expect: Collection[AlertState] | None = None, **changes: Any
    ) -> Alert | None:
        check_alert_changes(changes)
        async with self._write() as db:
            rows = _alerts(
                await db.execute_fetchall("SELECT data FROM alerts WHERE id = ?", (alert_id,))
            )
            if not rows or (expect is not None and rows[0].state not in expect):
                return None
            alert = apply_alert_changes(rows[0], changes)
            await db.execute(
                "UPDATE alerts SET state = ?, incident = ?, created_us = ?, data = ? WHERE id = ?",
                (*_alert_row(alert)[1:], alert_id),
            )
        return alert

    async def get_deliveries(self, alert_id: str) -> list[Delivery]:
        async with self._read() as db:
            rows = await db.execute_fetchall(
                "SELECT data FROM deliveries WHERE alert_id = ? ORDER BY channel_id", (alert_id,)
            )
        return [Delivery.model_validate_json(row[0]) for row in rows]

    async def save_delivery(self, delivery: Delivery, *, owner: str | None = None) -> bool:
        """Insert or overwrite; KeyError when its alert does not exist."""
        check_delivery(delivery)
        row = _delivery_row(touched(delivery))
        async with self._write() as db:
            known = await db.execute_fetchall(
                "SELECT 1 FROM alerts WHERE id = ?", (delivery.alert_id,)
            )
            if not list(known):
                raise KeyError(f"no alert {delivery.alert_id}")
            if owner is not None:
                holder = list(
                    await db.execute_fetchall(
                        "SELECT claimed_by FROM deliveries WHERE alert_id = ? AND channel_id = ?",
                        (delivery.alert_id, delivery.channel_id),
                    )
                )
                if not holder or holder[0][0] != owner:
                    return False
            await db.execute(
                f"INSERT INTO deliveries ({_DELIVERY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (alert_id, channel_id) DO UPDATE SET state = excluded.state,"
                " claimed_by = excluded.claimed_by,"
                " claimed_until_us = excluded.claimed_until_us, data = excluded.data",
                row,
            )
        return True

    async def claim_delivery(
        self, alert_id: str, channel_id: str, owner: str, until: datetime, now: datetime
    ) -> Delivery | None:
        check_claim(until, now)
        async with self._write() as db:
            rows = list(
                await db.execute_fetchall(
                    "SELECT data FROM deliveries WHERE alert_id = ? AND channel_id = ?",
                    (alert_id, channel_id),
                )
            )
            if not rows:
                return None
            delivery = claimed(Delivery.model_validate_json(rows[0][0]), owner, until, now)
            if delivery is None:
                return None
            await db.execute(
                "UPDATE deliveries SET claimed_by = ?, claimed_until_us = ?, data = ?"
                " WHERE alert_id = ? AND channel_id = ?",
                (*_delivery_row(delivery)[3:], alert_id, channel_id),
            )
        return delivery

    # -- audit trail -----------------------------------------------------------------
    async def audit(self, entry: AuditEntry) -> None:
        async with self._write() as db:
            await db.execute(
                "INSERT INTO audit (alert_id, data) VALUES (?, ?)",
                (entry.alert_id, entry.model_dump_json()),
            )

    async def audit_trail(self, alert_id: str | None = None) -> list[AuditEntry]:
        async with self._read() as db:
            if alert_id is None:
                rows = await db.execute_fetchall("SELECT data FROM audit ORDER BY seq")
            else:
                rows = await db.execute_fetchall(
                    "SELECT data FROM audit WHERE alert_id = ? ORDER BY seq", (alert_id,)
                )
        return [AuditEntry.model_validate_json(row[0]) for row in rows]
