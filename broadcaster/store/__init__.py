"""Stores: SQLite (embedded default) and Redis (several daemons share it)."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from broadcaster.models import (
    Account,
    Alert,
    AlertState,
    AuditEntry,
    Delivery,
    InboxEntry,
    utcnow,
)
from broadcaster.store.base import AlertChange, Store
from broadcaster.store.outage import StoreUnavailable
from broadcaster.store.urls import SENTINEL_FORM, SENTINEL_SCHEME, redacted

__all__ = ["AlertChange", "ReplicaWait", "Store", "StoreUnavailable", "open_store"]

DEFAULT_OUTAGE_LIMIT = timedelta(seconds=60)
DEFAULT_REPLICA_TIMEOUT = timedelta(milliseconds=500)
# How long the record of a taken broker message is kept: far longer than a trigger may be
# old (security.max_trigger_age), so a copy that arrives late is still recognised.
BROKER_MESSAGE_MEMORY = timedelta(days=1)


@dataclass(frozen=True)
class ReplicaWait:
    """After the writes that guard a promise, wait until `replicas` replicas have them
    (Redis WAIT), at most `timeout`; 0 replicas: no waiting (store.replicas_to_wait)."""

    replicas: int = 0
    timeout: timedelta = DEFAULT_REPLICA_TIMEOUT


NO_REPLICA_WAIT = ReplicaWait()


def open_store(
    url: str,
    base_dir: Path,
    *,
    outage_limit: timedelta = DEFAULT_OUTAGE_LIMIT,
    replica_wait: ReplicaWait = NO_REPLICA_WAIT,
) -> Store:
    """The store that `store.url` names (contract section 2), not yet opened.

    `sqlite:///rel/path.db` is relative to `base_dir` (the config file's folder),
    `sqlite:////abs/path.db` is absolute; `redis://` and `rediss://` share a Redis,
    `redis+sentinel://` a Redis whose primary its sentinels name (store/urls.py).
    """
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite":
        return _open_sqlite(url, base_dir, outage_limit)
    if is_redis(url):
        from broadcaster.store.redis import RedisStore

        return RedisStore(url, outage_limit=outage_limit, replica_wait=replica_wait)
    raise ValueError(
        f"store.url {redacted(url)!r}: expected sqlite:///relative/path.db, "
        "sqlite:////absolute/path.db, redis://host:port/db, rediss://host:port/db "
        f"or {SENTINEL_FORM}"
    )


def _open_sqlite(url: str, base_dir: Path, outage_limit: timedelta) -> Store:
    from broadcaster.store.sqlite import SqliteStore

    return SqliteStore(sqlite_file(url, base_dir), outage_limit=outage_limit)


def is_redis(url: str) -> bool:
    """A Redis store, alone or behind Sentinel (backed up by Redis, not by us)."""
    return url.split(":", 1)[0].lower() in ("redis", "rediss", SENTINEL_SCHEME)


def sqlite_file(url: str, base_dir: Path) -> Path:
    """The file a `sqlite:///` store.url names (relative to `base_dir`); ValueError for
    any other URL."""
    head = "sqlite:///"
    rest = url[len(head) :] if url[: len(head)].lower() == head else None
    if not rest or "?" in rest or "#" in rest:
        raise ValueError(
            f"store.url {redacted(url)!r}: expected sqlite:///relative/path.db (three slashes) "
            "or sqlite:////absolute/path.db (four slashes), without query options"
        )
    path = Path(rest)
    return path if path.is_absolute() else base_dir / path


# -- rules shared by both implementations -------------------------------------------
# Pure functions: each store reads, calls these, and writes back atomically (a SQLite
# write transaction, or a Redis compare-and-set script), so both behave the same.

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STORE_SET_FIELDS = frozenset({"id", "updated_at"})


def timestamp_us(moment: datetime) -> int:
    """Microseconds since the Unix epoch, for ordering; naive datetimes are refused."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(
            f"naive datetime {moment.isoformat()}: the store keeps timezone-aware datetimes"
        )
    return (moment - _EPOCH) // timedelta(microseconds=1)


def expecting(expect: Collection[AlertState] | None, changes: Mapping[str, Any]) -> AlertChange:
    """The AlertChange of update_alert: `changes`, when the state is one of `expect`."""
    check_alert_changes(changes)

    def change(alert: Alert) -> Mapping[str, Any] | None:
        return None if expect is not None and alert.state not in expect else changes

    return change


def check_alert_changes(changes: Mapping[str, Any]) -> None:
    """Refuse changes that name no field of Alert, or a field only the store sets."""
    unknown = sorted(set(changes) - set(Alert.model_fields))
    if unknown:
        raise TypeError(f"Alert has no field {', '.join(unknown)}")
    fixed = sorted(set(changes) & _STORE_SET_FIELDS)
    if fixed:
        raise ValueError(f"{', '.join(fixed)} cannot be changed by update_alert")


def apply_alert_changes(alert: Alert, changes: Mapping[str, Any]) -> Alert:
    """A validated copy of `alert` with `changes` applied and updated_at bumped."""
    check_alert_changes(changes)
    data = alert.model_dump()
    data.update(changes)
    data["updated_at"] = utcnow()
    updated = Alert.model_validate(data)
    timestamp_us(updated.created_at)
    return updated


def check_audit(entries: Sequence[AuditEntry]) -> None:
    """Refuse a write's audit entries of several alerts (they go to one trail), or with
    naive datetimes."""
    if len({entry.alert_id for entry in entries}) > 1:
        raise ValueError("one write's audit entries must belong to one alert")
    for entry in entries:
        timestamp_us(entry.at)


def check_delivery(delivery: Delivery) -> None:
    if delivery.claimed_until is not None:
        timestamp_us(delivery.claimed_until)


def check_new_alert(alert: Alert, deliveries: list[Delivery]) -> None:
    """Refuse deliveries of another alert, a channel twice, or naive datetimes."""
    timestamp_us(alert.created_at)
    channels: set[str] = set()
    for delivery in deliveries:
        if delivery.alert_id != alert.id:
            raise ValueError(
                f"delivery {delivery.idempotency_key} does not belong to alert {alert.id}"
            )
        if delivery.channel_id in channels:
            raise ValueError(f"alert {alert.id} has two deliveries to {delivery.channel_id}")
        channels.add(delivery.channel_id)
        check_delivery(delivery)


def touched(delivery: Delivery) -> Delivery:
    """A copy with updated_at bumped."""
    return delivery.model_copy(update={"updated_at": utcnow()})


def check_claim(until: datetime, now: datetime) -> None:
    if timestamp_us(until) <= timestamp_us(now):
        raise ValueError(f"a claim until {until.isoformat()} has expired at {now.isoformat()}")


def held_by_other(
    holder: str | None,
    until: datetime | None,
    owner: str,
    now: datetime,
    dead: Collection[str] = (),
) -> bool:
    """A claim keeps `owner` out while someone else holds it, its lease has not ended at
    `now`, and that someone is not known to be dead (a process on this host that ended)."""
    return (
        holder is not None
        and holder != owner
        and holder not in dead
        and until is not None
        and until > now
    )


def claimed(
    delivery: Delivery,
    owner: str,
    until: datetime,
    now: datetime,
    dead: Collection[str] = (),
    *,
    start: bool = False,
) -> Delivery | None:
    """`delivery` taken by `owner` until `until`, or None when it may not be taken.

    It may be taken when it is not final and unclaimed, already claimed by `owner`, or
    claimed by someone whose lease ended at or before `now` or who is in `dead`. With
    `start`, it is `sending` from the claim on (the attempt is counted by whoever makes it).
    """
    if delivery.final:
        return None
    if held_by_other(delivery.claimed_by, delivery.claimed_until, owner, now, dead):
        return None
    update: dict[str, Any] = {"claimed_by": owner, "claimed_until": until, "updated_at": utcnow()}
    if start:
        update["state"] = "sending"
    return delivery.model_copy(update=update)


def inbox_taken(
    entry: InboxEntry, owner: str, until: datetime, now: datetime, dead: Collection[str] = ()
) -> InboxEntry | None:
    """`entry` claimed by `owner` with one more attempt, or None when another holds it."""
    if held_by_other(entry.claimed_by, entry.claimed_until, owner, now, dead):
        return None
    return entry.model_copy(
        update={"claimed_by": owner, "claimed_until": until, "attempts": entry.attempts + 1}
    )


def check_inbox_entry(entry: InboxEntry) -> None:
    timestamp_us(entry.received_at)
    if entry.claimed_until is not None:
        timestamp_us(entry.claimed_until)


def payload_digest(payload: bytes) -> str:
    """What identifies a broker message's copies: the hash of its exact bytes."""
    return hashlib.sha256(payload).hexdigest()


def lease_free(
    holder: str | None, until_us: int | None, owner: str, now: datetime, dead: Collection[str] = ()
) -> bool:
    """A lease may be taken by `owner` when nobody holds it, `owner` does, it expired, or
    its holder is in `dead`."""
    return (
        holder is None
        or holder == owner
        or holder in dead
        or until_us is None
        or until_us <= timestamp_us(now)
    )


def login_recorded(
    account: Account, ok: bool, now: datetime, lock_after: int, lock_for: timedelta
) -> Account:
    """The account after one checked sign-in attempt (Store.record_login)."""
    if account.locked(now):
        return account
    if ok:
        return account.model_copy(update={"failed_logins": 0, "locked_until": None})
    failed = account.failed_logins + 1
    if failed >= lock_after:
        return account.model_copy(update={"failed_logins": 0, "locked_until": now + lock_for})
    return account.model_copy(update={"failed_logins": failed})
