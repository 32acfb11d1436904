"""`broadcaster backup` and `broadcaster restore`: a SQLite store copied whole, online.

Both copy with SQLite's backup API (`sqlite3.Connection.backup`), never the file's bytes:
the copy is one read transaction, so it is consistent while the daemon writes, WAL and
all. A Redis store is backed up by Redis itself (AOF and RDB files; docs/operations.md).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from broadcaster.daemon import CLIENT_ID_LEASE_PREFIX
from broadcaster.models import utcnow
from broadcaster.store import is_redis, sqlite_file, timestamp_us
from broadcaster.store.sqlite import SCHEMA_VERSION, TABLE_NAMES, release_claims
from broadcaster.supervision import same_host_and_dead

REDIS_ADVICE = (
    "store.url is a Redis: Redis backs itself up. Run it with `appendonly yes` (AOF) and "
    "RDB snapshots, and copy its appendonlydir/ and dump.rdb; "
    "docs/operations.md, 'Backup and restore', has the steps"
)


class BackupRefused(Exception):
    """Nothing was written; the message says why and what to do."""


@dataclass(frozen=True)
class Copied:
    path: Path
    alerts: int
    audit_entries: int
    size: int  # bytes
    released: int = 0  # deliveries whose claim a restore let go


def back_up(url: str, base: Path, target: Path, *, force: bool = False) -> Copied:
    """Copy the store that `url` names into `target` (a new file, or with `force` one
    that is replaced whole); the store may be in use meanwhile."""
    if is_redis(url):
        raise BackupRefused(f"cannot back up {REDIS_ADVICE}")
    source = sqlite_file(url, base)
    if not source.is_file():
        raise BackupRefused(f"there is no store at {source} (store.url {url})")
    if target.resolve() == source.resolve():
        raise BackupRefused(f"{target} is the store itself; choose another file")
    if target.exists() and not force:
        raise BackupRefused(f"{target} exists; choose another file, or --force to replace it")
    _copy(source, target)
    return _described(target)


def restore(backup: Path, url: str, base: Path, *, force: bool = False) -> Copied:
    """Copy a backup into the store that `url` names, when no daemon runs on it."""
    if is_redis(url):
        raise BackupRefused(f"cannot restore into {REDIS_ADVICE}")
    check_store_file(backup)
    target = sqlite_file(url, base)
    if target.exists():
        check_store_file(target, what="the store to replace")
        running = running_daemons(target)
        if running:
            raise BackupRefused(
                f"a daemon is running on {target} ({', '.join(running)}): "
                "stop the daemon first, then restore"
            )
        if not force:
            raise BackupRefused(
                f"{target} exists: stop the daemon first, then --force replaces the store "
                "with the backup"
            )
    target.parent.mkdir(parents=True, exist_ok=True)
    with closing(_readonly(backup)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)  # into the live file through SQLite: its WAL is dealt with too
        with dst:  # one transaction
            released = release_claims(dst, CLIENT_ID_LEASE_PREFIX)
    copied = _described(target)
    return Copied(copied.path, copied.alerts, copied.audit_entries, copied.size, released)


def check_store_file(path: Path, *, what: str = "the backup") -> None:
    """BackupRefused unless `path` is a broadcaster SQLite store this version can read."""
    if not path.is_file():
        raise BackupRefused(f"{what} {path} does not exist")
    try:
        with closing(_readonly(path)) as db:
            ((version,),) = db.execute("PRAGMA user_version").fetchall()
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
            ((check,),) = db.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        raise BackupRefused(f"{what} {path} is not a SQLite database ({exc})") from None
    missing = sorted(TABLE_NAMES - tables)
    if missing or version < 1:
        raise BackupRefused(
            f"{what} {path} is not a broadcaster store (no table {', '.join(missing)})"
            if missing
            else f"{what} {path} is not a broadcaster store (no schema version)"
        )
    if version > SCHEMA_VERSION:
        raise BackupRefused(
            f"{what} {path} has schema version {version}, newer than this broadcaster's "
            f"{SCHEMA_VERSION}: restore it with the broadcaster that wrote it"
        )
    if check != "ok":
        raise BackupRefused(f"{what} {path} is damaged (SQLite says: {check})")


def running_daemons(store: Path) -> list[str]:
    """The daemons holding their MQTT client id on this store now (a process that died
    on this host holds nothing)."""
    with closing(_readonly(store)) as db:
        rows = db.execute(
            "SELECT owner FROM leases WHERE substr(name, 1, ?) = ? AND until_us > ?",
            (len(CLIENT_ID_LEASE_PREFIX), CLIENT_ID_LEASE_PREFIX, timestamp_us(utcnow())),
        ).fetchall()
    return sorted({str(owner) for (owner,) in rows if not same_host_and_dead(str(owner))})


def _copy(source: Path, target: Path) -> None:
    """`source` into a new file next to `target`, renamed into place when complete: a
    failed backup leaves no half-written file, and an old one stays until replaced."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(fd)
    try:
        with closing(_readonly(source)) as src, closing(sqlite3.connect(partial)) as dst:
            src.backup(dst)  # all pages in one step: one consistent snapshot
            # One self-contained file (no -wal beside it); the daemon sets WAL again.
            dst.execute("PRAGMA journal_mode = DELETE")
        check_store_file(Path(partial), what="the copy")
        os.replace(partial, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)


def _described(path: Path) -> Copied:
    with closing(_readonly(path)) as db:
        ((alerts,),) = db.execute("SELECT count(*) FROM alerts").fetchall()
        ((entries,),) = db.execute("SELECT count(*) FROM audit").fetchall()
    return Copied(path, int(alerts), int(entries), path.stat().st_size)


def _readonly(path: Path) -> sqlite3.Connection:
    """Reads only, and never creates a missing file."""
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    db.execute("PRAGMA busy_timeout = 10000")  # a writer's checkpoint may hold it briefly
    return db
