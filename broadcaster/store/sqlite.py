"""The embedded default store: one SQLite file.

WAL journal with `synchronous=FULL`, so a commit is on disk before it returns: an
acknowledged trigger survives a power cut. Each record is kept as its model's JSON plus
the columns that queries need. Every write runs inside a `BEGIN IMMEDIATE` transaction,
so a read-check-write (compare and set, claims) holds the write lock throughout, also
against another process on the same file. A transaction that meets a busy or failing
disk is rolled back and run again (store/outage.py).

The connection lives in one thread of the store's own, which runs every statement, one
query or one whole transaction per hop from the event loop (with aiosqlite, every
statement was a hop of its own: four to six for a write).

Group commit: the writes that wait while one transaction runs (ten deliveries answering
together) run one after the other in the next transaction and share its commit, so each
is still durable before its caller goes on, for one disk flush instead of ten. A write
that raises rolls its batch back, and each write of that batch then runs alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sqlite3
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Generic, TypeVar

from broadcaster.models import (
    Account,
    Alert,
    AlertState,
    AuditEntry,
    ChannelState,
    Delivery,
    InboxEntry,
    PushSubscription,
    StatusReport,
    utcnow,
)
from broadcaster.store import (
    BROKER_MESSAGE_MEMORY,
    DEFAULT_OUTAGE_LIMIT,
    apply_alert_changes,
    check_audit,
    check_claim,
    check_delivery,
    check_inbox_entry,
    check_new_alert,
    claimed,
    expecting,
    inbox_taken,
    lease_free,
    login_recorded,
    payload_digest,
    timestamp_us,
    touched,
)
from broadcaster.store.base import AlertChange
from broadcaster.store.outage import Outage

T = TypeVar("T")
SCHEMA_VERSION = 2

_TABLES = (
    """CREATE TABLE IF NOT EXISTS inbox (
        id TEXT PRIMARY KEY,
        received_us INTEGER NOT NULL,
        payload BLOB NOT NULL,
        data TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS alerts (
        id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        incident TEXT NOT NULL,
        created_us INTEGER NOT NULL,
        data TEXT NOT NULL
    )""",
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
        data TEXT NOT NULL,
        at_us INTEGER
    )""",
    # How many copies of a payload each MQTT session has seen, and which daemon took the
    # n-th broker message of that payload (Store.inbox_add).
    """CREATE TABLE IF NOT EXISTS broker_copies (
        session TEXT NOT NULL,
        digest TEXT NOT NULL,
        seen INTEGER NOT NULL,
        at_us INTEGER NOT NULL,
        PRIMARY KEY (session, digest)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS broker_messages (
        digest TEXT NOT NULL,
        n INTEGER NOT NULL,
        entry_id TEXT NOT NULL,
        at_us INTEGER NOT NULL,
        PRIMARY KEY (digest, n)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS channel_states (
        channel_id TEXT PRIMARY KEY,
        data TEXT NOT NULL
    ) WITHOUT ROWID""",
    # Providers' reports on each recipient's message (Twilio callbacks, WhatsApp webhooks).
    """CREATE TABLE IF NOT EXISTS status_reports (
        channel_id TEXT NOT NULL,
        message_id TEXT NOT NULL,
        status TEXT NOT NULL,
        at_us INTEGER NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (channel_id, message_id, status)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS push_subscriptions (
        id TEXT PRIMARY KEY,
        created_us INTEGER NOT NULL,
        data TEXT NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS accounts (
        name TEXT PRIMARY KEY,
        data TEXT NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS leases (
        name TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        until_us INTEGER NOT NULL
    ) WITHOUT ROWID""",
)
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS inbox_by_received ON inbox (received_us, id)",
    "CREATE INDEX IF NOT EXISTS alerts_by_created ON alerts (created_us, id)",
    "CREATE INDEX IF NOT EXISTS alerts_by_state ON alerts (state, created_us, id)",
    "CREATE INDEX IF NOT EXISTS alerts_by_incident ON alerts (incident, created_us, id)",
    "CREATE INDEX IF NOT EXISTS audit_by_alert ON audit (alert_id, seq)",
    "CREATE INDEX IF NOT EXISTS audit_unattached_by_time ON audit (at_us) WHERE alert_id IS NULL",
    "CREATE INDEX IF NOT EXISTS broker_copies_by_time ON broker_copies (at_us)",
    "CREATE INDEX IF NOT EXISTS broker_messages_by_time ON broker_messages (at_us)",
    """CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END""",
    # Refused input is kept for audit.retention only; an alert's own trail for good.
    """CREATE TRIGGER IF NOT EXISTS audit_keeps_alerts BEFORE DELETE ON audit
    WHEN old.alert_id IS NOT NULL
    BEGIN SELECT RAISE(ABORT, 'an alert''s audit trail is kept'); END""",
)
# Version 1 had no audit time column and refused every deletion.
_FROM_VERSION_1 = (
    "DROP TRIGGER IF EXISTS audit_no_delete",
    "DROP TRIGGER IF EXISTS audit_no_update",
    "ALTER TABLE audit ADD COLUMN at_us INTEGER",
)

# What a broadcaster store holds, by name (`broadcaster restore` checks a file for them).
TABLE_NAMES = frozenset(
    found.group(1)
    for statement in _TABLES
    if (found := re.search(r"CREATE TABLE IF NOT EXISTS (\w+)", statement))
)

_ALERT_COLUMNS = "id, state, incident, created_us, data"
_DELIVERY_COLUMNS = "alert_id, channel_id, state, claimed_by, claimed_until_us, data"
_IN_CHUNK = 500  # ids per `IN (...)` query: well under SQLite's limit of bound variables
# Errors of a busy or failing disk, worth another try; anything else is a bug.
_TRANSIENT = ("locked", "busy", "disk i/o", "unable to open", "disk is full")


class _Busy(Exception):
    """An OperationalError of a busy or failing disk (retried by the outage)."""


class _Failed(Exception):
    """A write of a batch raised: the batch was rolled back."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass
class _Write(Generic[T]):
    """One caller's write, waiting for its transaction's commit."""

    work: Callable[[sqlite3.Connection], T]
    done: asyncio.Future[T]

    def fail(self, exc: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(exc)


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


def _inbox_entry(data: str, payload: bytes) -> InboxEntry:
    return InboxEntry.model_validate({**json.loads(data), "payload": bytes(payload)})


class SqliteStore:
    """The Store protocol on one SQLite file (created, with its folder, when missing)."""

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout: timedelta = timedelta(seconds=10),
        outage_limit: timedelta = DEFAULT_OUTAGE_LIMIT,
    ) -> None:
        self.path = Path(path)
        self._busy_timeout_ms = int(busy_timeout / timedelta(milliseconds=1))
        self._db: sqlite3.Connection | None = None
        self._thread = _one_thread()
        self._waiting: list[_Write[Any]] = []  # writes for the next transaction
        self._writer: asyncio.Task[None] | None = None
        self.outage = Outage(outage_limit, (_Busy,), store="sqlite")

    async def open(self) -> None:
        if self._db is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread = _one_thread()  # a closed store's thread is gone
        try:
            self._db = await self._in_thread(self._connect)
        except BaseException:
            self._thread.shutdown(wait=False)
            raise

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
            rows = db.execute("PRAGMA journal_mode = WAL").fetchall()
            if not rows or str(rows[0][0]).lower() != "wal":
                raise RuntimeError(f"{self.path}: SQLite refused the WAL journal mode")
            db.execute("PRAGMA synchronous = FULL")
            db.execute("PRAGMA foreign_keys = ON")
            db.execute("BEGIN IMMEDIATE")
            try:
                self._create_schema(db)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except BaseException:
            db.close()
            raise
        return db

    def _create_schema(self, db: sqlite3.Connection) -> None:
        ((version,),) = db.execute("PRAGMA user_version").fetchall()
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"{self.path} has schema version {version}, newer than this "
                f"broadcaster's {SCHEMA_VERSION}"
            )
        for statement in _TABLES:
            db.execute(statement)
        if version == 1:
            for statement in _FROM_VERSION_1:
                db.execute(statement)
            for seq, data in db.execute("SELECT seq, data FROM audit").fetchall():
                at = AuditEntry.model_validate_json(data).at
                db.execute("UPDATE audit SET at_us = ? WHERE seq = ?", (timestamp_us(at), seq))
        for statement in _INDEXES:
            db.execute(statement)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    async def _in_thread(self, fn: Callable[[], T]) -> T:
        """Run `fn` in the store's thread: every statement runs there, one after another,
        and a whole transaction is one hop from the event loop, not one per statement."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn)

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await self._in_thread(db.close)  # after what is queued before it
            self._thread.shutdown(wait=False)

    async def ping(self) -> bool:
        db = self._db
        if db is None:
            return False
        try:
            rows = await self._in_thread(lambda: db.execute("SELECT 1").fetchall())
            return bool(rows) and rows[0][0] == 1
        except Exception:
            return False

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError(f"store {self.path} is not open")
        return self._db

    async def _read(self, sql: str, args: Iterable[Any] = ()) -> list[Any]:
        """Rows of one query, outside any transaction (so no half-written state is seen)."""
        values = tuple(args)
        self._connection()  # a closed store refuses at once

        def query() -> list[Any]:
            try:
                return self._connection().execute(sql, values).fetchall()
            except sqlite3.OperationalError as exc:
                _raise_busy(exc)
                raise

        return await self.outage.call(partial(self._in_thread, query))

    async def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` in a write transaction: committed before this returns, rolled back
        on an error; run again from the start when the disk was busy or failing.

        A task of the store's own hands the transactions to the thread, so a cancelled
        caller gives up waiting while the write ends whole, or not at all.
        """
        self._connection()  # a closed store refuses at once
        write: _Write[T] = _Write(work, asyncio.get_running_loop().create_future())
        self._waiting.append(write)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all(), name="sqlite-writer")
        return await asyncio.shield(write.done)

    async def _write_all(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                await self._commit(batch)
            except _Failed:
                if len(batch) > 1:
                    for write in batch:  # each alone, to give each its own answer
                        with contextlib.suppress(_Failed):
                            await self._commit([write])

    async def _commit(self, group: list[_Write[Any]]) -> None:
        """`group` in one transaction, waiting out an outage; a store that gave up (or was
        closed) is every write's answer. _Failed when one of them raised (rolled back),
        with that error given to it when it was alone."""
        try:
            results = await self.outage.call(
                partial(self._in_thread, partial(self._transaction, group))
            )
        except BaseException as exc:
            for write in group:
                write.fail(exc)
            if not isinstance(exc, Exception):
                raise  # cancelled: the loop is closing
            return
        if isinstance(results, _Failed):
            if len(group) == 1:
                group[0].fail(results.error)
            raise results
        for write, result in zip(group, results, strict=True):
            if not write.done.done():
                write.done.set_result(result)

    def _transaction(self, batch: list[_Write[Any]]) -> list[Any] | _Failed:
        """In the thread: `batch` in one transaction, committed; or rolled back, and the
        first error, when one of them raised."""
        db = self._connection()
        results: list[Any] = []
        failed: _Failed | None = None
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                for write in batch:
                    try:
                        results.append(write.work(db))
                    except sqlite3.OperationalError as exc:
                        if _transient(exc):
                            raise  # a busy or failing disk: the whole batch again, later
                        failed = _Failed(exc)
                        break
                    except Exception as exc:
                        failed = _Failed(exc)
                        break
                db.execute("ROLLBACK" if failed else "COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            _raise_busy(exc)
            raise
        return failed or results

    # -- inbox -----------------------------------------------------------------------
    async def inbox_add(self, entry: InboxEntry, *, broker_session: str | None = None) -> bool:
        check_inbox_entry(entry)
        now_us = timestamp_us(utcnow())
        row = (
            entry.id,
            timestamp_us(entry.received_at),
            entry.payload,
            entry.model_dump_json(exclude={"payload"}),
        )

        def work(db: sqlite3.Connection) -> bool:
            if broker_session is not None and not _first_copy(
                db, broker_session, payload_digest(entry.payload), entry.id, now_us
            ):
                return False
            db.execute(
                "INSERT INTO inbox (id, received_us, payload, data) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (id) DO NOTHING",
                row,
            )
            return True

        return await self._write(work)

    async def inbox_take(
        self,
        entry_id: str,
        owner: str,
        until: datetime,
        now: datetime,
        dead: Collection[str] = (),
    ) -> InboxEntry | None:
        check_claim(until, now)

        def work(db: sqlite3.Connection) -> InboxEntry | None:
            rows = list(_all(db, "SELECT data, payload FROM inbox WHERE id = ?", (entry_id,)))
            if not rows:
                return None
            taken = inbox_taken(_inbox_entry(*rows[0]), owner, until, now, dead)
            if taken is not None:
                db.execute(
                    "UPDATE inbox SET data = ? WHERE id = ?",
                    (taken.model_dump_json(exclude={"payload"}), entry_id),
                )
            return taken

        return await self._write(work)

    async def inbox_done(self, entry_id: str) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM inbox WHERE id = ?", (entry_id,))

        await self._write(work)

    async def inbox_pending(self) -> list[InboxEntry]:
        rows = await self._read("SELECT data, payload FROM inbox ORDER BY received_us, id")
        return [_inbox_entry(data, payload) for data, payload in rows]

    # -- alerts and deliveries ---------------------------------------------------------
    async def create_alert(
        self, alert: Alert, deliveries: list[Delivery], *, audit: Sequence[AuditEntry] = ()
    ) -> bool:
        check_new_alert(alert, deliveries)
        trail = _audit_rows(audit)

        def work(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                f"INSERT INTO alerts ({_ALERT_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO NOTHING",
                _alert_row(alert),
            )
            if cursor.rowcount != 1:
                return False
            db.executemany(
                f"INSERT INTO deliveries ({_DELIVERY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                [_delivery_row(d) for d in deliveries],
            )
            _append(db, trail)
            return True

        return await self._write(work)

    async def get_alert(self, alert_id: str) -> Alert | None:
        alerts = _alerts(await self._read("SELECT data FROM alerts WHERE id = ?", (alert_id,)))
        return alerts[0] if alerts else None

    async def list_alerts(self, limit: int = 50) -> list[Alert]:
        if limit <= 0:
            return []
        rows = await self._read(
            "SELECT data FROM alerts ORDER BY created_us DESC, id DESC LIMIT ?", (limit,)
        )
        return _alerts(rows)

    async def alerts_in_state(self, *states: AlertState) -> list[Alert]:
        if not states:
            return []
        marks = ", ".join("?" for _ in states)
        rows = await self._read(
            f"SELECT data FROM alerts WHERE state IN ({marks}) ORDER BY created_us, id", states
        )
        return _alerts(rows)

    async def incident_alerts(self, incident: str) -> list[Alert]:
        rows = await self._read(
            "SELECT data FROM alerts WHERE incident = ? ORDER BY created_us, id", (incident,)
        )
        return _alerts(rows)

    async def modify_alert(
        self, alert_id: str, change: AlertChange, *, audit: Sequence[AuditEntry] = ()
    ) -> Alert | None:
        trail = _audit_rows(audit)

        def work(db: sqlite3.Connection) -> Alert | None:
            rows = _alerts(_all(db, "SELECT data FROM alerts WHERE id = ?", (alert_id,)))
            changes = change(rows[0]) if rows else None
            if changes is None:
                return None
            alert = apply_alert_changes(rows[0], changes)
            db.execute(
                "UPDATE alerts SET state = ?, incident = ?, created_us = ?, data = ? WHERE id = ?",
                (*_alert_row(alert)[1:], alert_id),
            )
            _append(db, trail)
            return alert

        return await self._write(work)

    async def update_alert(
        self,
        alert_id: str,
        *,
        expect: Collection[AlertState] | None = None,
        audit: Sequence[AuditEntry] = (),
        **changes: Any,
    ) -> Alert | None:
        return await self.modify_alert(alert_id, expecting(expect, changes), audit=audit)

    async def get_deliveries(self, alert_id: str) -> list[Delivery]:
        rows = await self._read(
            "SELECT data FROM deliveries WHERE alert_id = ? ORDER BY channel_id", (alert_id,)
        )
        return [Delivery.model_validate_json(row[0]) for row in rows]

    async def save_delivery(
        self, delivery: Delivery, *, owner: str | None = None, audit: Sequence[AuditEntry] = ()
    ) -> bool:
        """Insert or overwrite; KeyError when its alert does not exist."""
        check_delivery(delivery)
        row = _delivery_row(touched(delivery))
        trail = _audit_rows(audit)

        def work(db: sqlite3.Connection) -> bool:
            known = _all(db, "SELECT 1 FROM alerts WHERE id = ?", (delivery.alert_id,))
            if not list(known):
                raise KeyError(f"no alert {delivery.alert_id}")
            if owner is not None:
                holder = list(
                    _all(
                        db,
                        "SELECT claimed_by FROM deliveries WHERE alert_id = ? AND channel_id = ?",
                        (delivery.alert_id, delivery.channel_id),
                    )
                )
                if not holder or holder[0][0] != owner:
                    return False
            db.execute(
                f"INSERT INTO deliveries ({_DELIVERY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (alert_id, channel_id) DO UPDATE SET state = excluded.state,"
                " claimed_by = excluded.claimed_by,"
                " claimed_until_us = excluded.claimed_until_us, data = excluded.data",
                row,
            )
            _append(db, trail)
            return True

        return await self._write(work)

    async def claim_delivery(
        self,
        alert_id: str,
        channel_id: str,
        owner: str,
        until: datetime,
        now: datetime,
        dead: Collection[str] = (),
    ) -> Delivery | None:
        check_claim(until, now)

        def work(db: sqlite3.Connection) -> Delivery | None:
            rows = list(
                _all(
                    db,
                    "SELECT data FROM deliveries WHERE alert_id = ? AND channel_id = ?",
                    (alert_id, channel_id),
                )
            )
            if not rows:
                return None
            delivery = claimed(Delivery.model_validate_json(rows[0][0]), owner, until, now, dead)
            if delivery is None:
                return None
            db.execute(
                "UPDATE deliveries SET claimed_by = ?, claimed_until_us = ?, data = ?"
                " WHERE alert_id = ? AND channel_id = ?",
                (*_delivery_row(delivery)[3:], alert_id, channel_id),
            )
            return delivery

        return await self._write(work)

    async def start_deliveries(
        self,
        alert_id: str,
        channel_ids: Collection[str],
        owner: str,
        until: datetime,
        now: datetime,
        dead: Collection[str] = (),
    ) -> list[Delivery]:
        check_claim(until, now)
        wanted = set(channel_ids)

        def work(db: sqlite3.Connection) -> list[Delivery]:
            state = list(_all(db, "SELECT state FROM alerts WHERE id = ?", (alert_id,)))
            if not state or state[0][0] == "retracted":
                return []
            rows = _all(
                db,
                "SELECT data FROM deliveries WHERE alert_id = ? ORDER BY channel_id",
                (alert_id,),
            )
            taken = [
                delivery
                for row in rows
                if (found := Delivery.model_validate_json(row[0])).channel_id in wanted
                and (delivery := claimed(found, owner, until, now, dead, start=True))
            ]
            db.executemany(
                "UPDATE deliveries SET state = ?, claimed_by = ?, claimed_until_us = ?, data = ?"
                " WHERE alert_id = ? AND channel_id = ?",
                [(*_delivery_row(d)[2:], alert_id, d.channel_id) for d in taken],
            )
            return taken

        return await self._write(work)

    # -- leases ----------------------------------------------------------------------
    async def take_lease(
        self, name: str, owner: str, until: datetime, now: datetime, dead: Collection[str] = ()
    ) -> str:
        check_claim(until, now)

        def work(db: sqlite3.Connection) -> str:
            rows = list(_all(db, "SELECT owner, until_us FROM leases WHERE name = ?", (name,)))
            holder, until_us = rows[0] if rows else (None, None)
            if not lease_free(holder, until_us, owner, now, dead):
                return str(holder)
            db.execute(
                "INSERT INTO leases (name, owner, until_us) VALUES (?, ?, ?) ON CONFLICT (name)"
                " DO UPDATE SET owner = excluded.owner, until_us = excluded.until_us",
                (name, owner, timestamp_us(until)),
            )
            return owner

        return await self._write(work)

    async def lease_holder(self, name: str, now: datetime) -> str | None:
        rows = await self._read(
            "SELECT owner FROM leases WHERE name = ? AND until_us > ?", (name, timestamp_us(now))
        )
        return str(rows[0][0]) if rows else None

    async def drop_lease(self, name: str, owner: str) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM leases WHERE name = ? AND owner = ?", (name, owner))

        await self._write(work)

    # -- channels' circuits ----------------------------------------------------------
    async def save_channel_state(self, channel_id: str, state: ChannelState) -> None:
        row = (channel_id, state.model_dump_json())

        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO channel_states (channel_id, data) VALUES (?, ?)"
                " ON CONFLICT (channel_id) DO UPDATE SET data = excluded.data",
                row,
            )

        await self._write(work)

    async def channel_states(self) -> dict[str, ChannelState]:
        rows = await self._read("SELECT channel_id, data FROM channel_states ORDER BY channel_id")
        return {cid: ChannelState.model_validate_json(data) for cid, data in rows}

    # -- status reports ------------------------------------------------------------
    async def add_status_report(self, report: StatusReport) -> bool:
        row = (
            report.channel_id,
            report.message_id,
            report.status,
            timestamp_us(report.at),
            report.model_dump_json(),
        )

        def work(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "INSERT OR IGNORE INTO status_reports"
                " (channel_id, message_id, status, at_us, data) VALUES (?, ?, ?, ?, ?)",
                row,
            )
            return cursor.rowcount == 1

        return await self._write(work)

    async def status_reports(
        self, channel_id: str, message_ids: Collection[str]
    ) -> dict[str, list[StatusReport]]:
        found: dict[str, list[StatusReport]] = {}
        wanted = list(dict.fromkeys(message_ids))
        for start in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[start : start + _IN_CHUNK]
            rows = await self._read(
                "SELECT data FROM status_reports WHERE channel_id = ? AND message_id IN"
                f" ({', '.join('?' * len(chunk))}) ORDER BY message_id, at_us, status",
                (channel_id, *chunk),
            )
            for (data,) in rows:
                report = StatusReport.model_validate_json(data)
                found.setdefault(report.message_id, []).append(report)
        return found

    # -- Web Push subscriptions --------------------------------------------------------
    async def save_subscription(self, subscription: PushSubscription) -> None:
        row = (
            subscription.id,
            timestamp_us(subscription.created_at),
            subscription.model_dump_json(),
        )

        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO push_subscriptions (id, created_us, data) VALUES (?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET created_us = excluded.created_us,"
                " data = excluded.data",
                row,
            )

        await self._write(work)

    async def subscriptions(self) -> list[PushSubscription]:
        rows = await self._read("SELECT data FROM push_subscriptions ORDER BY created_us, id")
        return [PushSubscription.model_validate_json(data) for (data,) in rows]

    async def remove_subscription(self, subscription_id: str) -> bool:
        def work(db: sqlite3.Connection) -> bool:
            cursor = db.execute("DELETE FROM push_subscriptions WHERE id = ?", (subscription_id,))
            return cursor.rowcount == 1

        return await self._write(work)

    # -- console accounts --------------------------------------------------------------
    async def save_account(self, account: Account, *, new: bool = False) -> bool:
        row = (account.name, account.model_dump_json())
        verb = "INSERT OR IGNORE" if new else "INSERT OR REPLACE"

        def work(db: sqlite3.Connection) -> bool:
            cursor = db.execute(f"{verb} INTO accounts (name, data) VALUES (?, ?)", row)
            return cursor.rowcount == 1

        return await self._write(work)

    async def get_account(self, name: str) -> Account | None:
        rows = await self._read("SELECT data FROM accounts WHERE name = ?", (name,))
        return Account.model_validate_json(rows[0][0]) if rows else None

    async def list_accounts(self) -> list[Account]:
        rows = await self._read("SELECT data FROM accounts ORDER BY name")
        return [Account.model_validate_json(data) for (data,) in rows]

    async def record_login(
        self, name: str, ok: bool, now: datetime, lock_after: int, lock_for: timedelta
    ) -> Account | None:
        def work(db: sqlite3.Connection) -> Account | None:
            rows = _all(db, "SELECT data FROM accounts WHERE name = ?", (name,))
            if not rows:
                return None
            old = Account.model_validate_json(rows[0][0])
            new = login_recorded(old, ok, now, lock_after, lock_for)
            if new != old:
                db.execute(
                    "UPDATE accounts SET data = ? WHERE name = ?", (new.model_dump_json(), name)
                )
            return new

        return await self._write(work)

    # -- audit trail -----------------------------------------------------------------
    async def audit(self, entry: AuditEntry) -> None:
        trail = _audit_rows([entry])

        def work(db: sqlite3.Connection) -> None:
            _append(db, trail)

        await self._write(work)

    async def audit_trail(self, alert_id: str | None = None) -> list[AuditEntry]:
        if alert_id is None:
            rows = await self._read("SELECT data FROM audit WHERE alert_id IS NULL ORDER BY seq")
        else:
            rows = await self._read(
                "SELECT data FROM audit WHERE alert_id = ? ORDER BY seq", (alert_id,)
            )
        return [AuditEntry.model_validate_json(row[0]) for row in rows]

    async def audit_all(self) -> list[AuditEntry]:
        rows = await self._read("SELECT data FROM audit ORDER BY at_us, seq")
        return [AuditEntry.model_validate_json(row[0]) for row in rows]

    async def audit_tail(self, limit: int) -> list[AuditEntry]:
        rows = await self._read(
            "SELECT data FROM audit WHERE alert_id IS NULL ORDER BY seq DESC LIMIT ?",
            (max(0, limit),),
        )
        return [AuditEntry.model_validate_json(row[0]) for row in rows]

    async def prune(self, before: datetime) -> int:
        cutoff = timestamp_us(before)
        memory = timestamp_us(utcnow() - BROKER_MESSAGE_MEMORY)

        def work(db: sqlite3.Connection) -> int:
            cursor = db.execute("DELETE FROM audit WHERE alert_id IS NULL AND at_us < ?", (cutoff,))
            db.execute("DELETE FROM broker_copies WHERE at_us < ?", (memory,))
            db.execute("DELETE FROM broker_messages WHERE at_us < ?", (memory,))
            return int(cursor.rowcount)

        return await self._write(work)


def release_claims(db: sqlite3.Connection, lease_prefix: str) -> int:
    """Let go of every delivery's and inbox entry's claim, and of the leases whose names
    start with `lease_prefix`, in a restored copy: their holders worked on another file
    and never come back to this one, so the next daemon carries on at once instead of
    after their leases. How many deliveries were held."""
    unclaimed = "json_set(data, '$.claimed_by', json('null'), '$.claimed_until', json('null'))"
    cursor = db.execute(
        f"UPDATE deliveries SET claimed_by = NULL, claimed_until_us = NULL, data = {unclaimed}"
        " WHERE claimed_by IS NOT NULL"
    )
    held = int(cursor.rowcount)
    db.execute(f"UPDATE inbox SET data = {unclaimed}")
    db.execute("DELETE FROM leases WHERE substr(name, 1, ?) = ?", (len(lease_prefix), lease_prefix))
    return held


def _audit_rows(entries: Sequence[AuditEntry]) -> list[tuple[str | None, str, int]]:
    check_audit(entries)
    return [(e.alert_id, e.model_dump_json(), timestamp_us(e.at)) for e in entries]


def _append(db: sqlite3.Connection, rows: list[tuple[str | None, str, int]]) -> None:
    if rows:
        db.executemany("INSERT INTO audit (alert_id, data, at_us) VALUES (?, ?, ?)", rows)


def _first_copy(
    db: sqlite3.Connection, session: str, digest: str, entry_id: str, now_us: int
) -> bool:
    """Count this copy on its session; True when no daemon took that broker message yet."""
    db.execute(
        "INSERT INTO broker_copies (session, digest, seen, at_us) VALUES (?, ?, 1, ?)"
        " ON CONFLICT (session, digest) DO UPDATE SET seen = seen + 1, at_us = excluded.at_us",
        (session, digest, now_us),
    )
    ((n,),) = _all(
        db, "SELECT seen FROM broker_copies WHERE session = ? AND digest = ?", (session, digest)
    )
    cursor = db.execute(
        "INSERT INTO broker_messages (digest, n, entry_id, at_us) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (digest, n) DO NOTHING",
        (digest, n, entry_id, now_us),
    )
    return cursor.rowcount == 1


def _one_thread() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")


def _all(db: sqlite3.Connection, sql: str, args: Iterable[Any] = ()) -> list[Any]:
    return db.execute(sql, tuple(args)).fetchall()


def _transient(exc: sqlite3.OperationalError) -> bool:
    return any(word in str(exc).lower() for word in _TRANSIENT)


def _raise_busy(exc: sqlite3.OperationalError) -> None:
    """A busy or failing disk is raised as _Busy (retried); any other error returns."""
    if _transient(exc):
        raise _Busy(str(exc)) from exc
