"""The shared store: one Redis that several daemons use at once.

Every write is one Lua script, so it is atomic against the other daemons: an alert
appears with all its deliveries or not at all, and a state change or a claim is a
compare and set on the exact JSON that was read (a read-check-write that lost the race
reads again and retries). Reads need no script.

A write that meets a connection error or timeout is sent again, by the client for a short
blip and by the store's outage handling for a Redis restart, and a resent script may
already have run, with only its answer lost. Each write therefore carries one token for
all its tries: the script records its result under the token for a while, and a resent
call gets that result back instead of running twice. Otherwise a lost answer would turn a
successful create_alert into "duplicate" and a successful compare and set into "someone
else acted", the same kind of mistake as Alertmanager's duplicate notifications.

Durability is Redis's: run it with `appendonly yes` and `appendfsync always` for the
writes that guard a promise (the inbox entry before the MQTT acknowledgement, a
provider's answer) to survive a crash of Redis itself. Behind Redis Sentinel
(`redis+sentinel://`, store/urls.py) a crash of the primary is a failover instead, and
the new primary has only what reached its replica: with `store.replicas_to_wait`, those
writes are followed by WAIT on the same connection, so the promise is made only once a
replica has them too (a replica that does not answer in time is logged, not fatal).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import structlog
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialWithJitterBackoff
from redis.commands.core import AsyncScript

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
)
from broadcaster.store import (
    BROKER_MESSAGE_MEMORY,
    DEFAULT_OUTAGE_LIMIT,
    NO_REPLICA_WAIT,
    ReplicaWait,
    apply_alert_changes,
    check_audit,
    check_claim,
    check_delivery,
    check_inbox_entry,
    check_new_alert,
    claimed,
    expecting,
    inbox_taken,
    login_recorded,
    payload_digest,
    timestamp_us,
    touched,
)
from broadcaster.store.base import AlertChange
from broadcaster.store.outage import Outage
from broadcaster.store.urls import is_sentinel_url, parse_sentinel_url, redacted

log = structlog.get_logger(__name__)

T = TypeVar("T")

# The client resends a command this often after a connection error or timeout (a short
# blip); longer outages are ridden out by Outage.
RETRIES = 3
# How long the result of a write is kept for a resent call (milliseconds); far longer than
# the retries of one call take, store.outage_limit included.
OP_RESULT_TTL_MS = 10 * 60 * 1000
# Errors of an unreachable, restarting or failing-over Redis: worth waiting for.
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError,  # BusyLoadingError (loading its file after a restart) too
    redis_errors.TimeoutError,
    redis_errors.ReadOnlyError,  # a replica that is not yet the new primary
    OSError,
)
PRUNE_CHUNK = 500
SOCKET_TIMEOUT = 5  # seconds, for the servers and the sentinels alike


@dataclass(frozen=True)
class Keys:
    """Every Redis key the store uses, in one place; all start with the prefix."""

    prefix: str

    @property
    def alerts(self) -> str:
        """Sorted set of alert ids by created_at (microseconds)."""
        return f"{self.prefix}:alerts"

    def alert(self, alert_id: str) -> str:
        """String: the alert's JSON."""
        return f"{self.prefix}:alert:{alert_id}"

    def state(self, state: str) -> str:
        """Sorted set of the ids of alerts in this state, by created_at."""
        return f"{self.prefix}:alerts:state:{state}"

    def incident(self, incident: str) -> str:
        """Sorted set of the ids of one incident's alerts, by created_at."""
        return f"{self.prefix}:alerts:incident:{incident}"

    def deliveries(self, alert_id: str) -> str:
        """Hash: channel_id -> the delivery's JSON."""
        return f"{self.prefix}:deliveries:{alert_id}"

    @property
    def unattached_audit(self) -> str:
        """List: the audit entries of no alert (refused input, daemon events), oldest first."""
        return f"{self.prefix}:audit:unattached"

    def alert_audit(self, alert_id: str) -> str:
        """List: one alert's audit entries, oldest first."""
        return f"{self.prefix}:audit:alert:{alert_id}"

    @property
    def inbox(self) -> str:
        """Hash: entry id -> the entry's JSON (payload in base64)."""
        return f"{self.prefix}:inbox"

    @property
    def inbox_pending(self) -> str:
        """Sorted set of inbox entry ids by received_at."""
        return f"{self.prefix}:inbox:pending"

    def broker_copies(self, session: str, digest: str) -> str:
        """Counter: copies of one payload an MQTT session has seen (expires)."""
        return f"{self.prefix}:broker:copies:{session}:{digest}"

    def broker_message(self, digest: str) -> str:
        """Prefix of a string per broker message of a payload, `<this><n>` (expires)."""
        return f"{self.prefix}:broker:message:{digest}:"

    @property
    def channel_states(self) -> str:
        """Hash: channel_id -> its ChannelState's JSON."""
        return f"{self.prefix}:channels:state"

    def status_reports(self, channel_id: str, message_id: str) -> str:
        """Hash: status -> the StatusReport's JSON, for one recipient's message."""
        return f"{self.prefix}:reports:{channel_id}:{message_id}"

    @property
    def subscriptions(self) -> str:
        """Hash: subscription id -> the PushSubscription's JSON."""
        return f"{self.prefix}:push:subscriptions"

    @property
    def accounts(self) -> str:
        """Hash: account name -> the console Account's JSON."""
        return f"{self.prefix}:accounts"

    @property
    def leases(self) -> str:
        """Hash: lease name -> {"owner", "until_us"}."""
        return f"{self.prefix}:leases"

    def op(self, token: str) -> str:
        """String: the result of one write, for a resent call (expires)."""
        return f"{self.prefix}:op:{token}"


# Every write script runs inside this frame: KEYS[1] and ARGV[1] are the token's key and
# the time to keep the result; the body sees its own keys and arguments from index 2 on,
# and returns an integer or a string. The last argument counts the audit entries just
# before it; with any, the last key is their list. The frame takes them off before the
# body runs and appends them when the body wrote (returned 1): a state change and its
# trail in one round trip.
_FRAME = """
local done = redis.call('GET', KEYS[1])
if done then
  -- A write, so that a WAIT after this resent call also covers the first try's write.
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  return done
end
local count = tonumber(table.remove(ARGV))
local trail, trail_key = {}, nil
if count > 0 then
  trail_key = table.remove(KEYS)
  for i = #ARGV - count + 1, #ARGV do trail[#trail + 1] = ARGV[i] end
  for _ = 1, count do table.remove(ARGV) end
end
local function body()
%s
end
local result = body()
if trail_key and result == 1 then redis.call('RPUSH', trail_key, unpack(trail)) end
redis.call('SET', KEYS[1], result, 'PX', ARGV[1])
return result
"""

# KEYS: alert, deliveries, alerts, state, incident; ARGV: alert JSON, id, created_us,
# then channel_id and delivery JSON for each delivery.
_CREATE_ALERT = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('DEL', KEYS[3])
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1]) end
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[3])
redis.call('ZADD', KEYS[5], ARGV[4], ARGV[3])
redis.call('ZADD', KEYS[6], ARGV[4], ARGV[3])
return 1
"""

# KEYS: alert, alerts, old state, new state, old incident, new incident;
# ARGV: JSON as read, new JSON, id, new created_us.
_UPDATE_ALERT = """
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[2], ARGV[3])
redis.call('ZREM', KEYS[4], ARGV[4])
redis.call('ZREM', KEYS[6], ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[4])
redis.call('ZADD', KEYS[5], ARGV[5], ARGV[4])
redis.call('ZADD', KEYS[7], ARGV[5], ARGV[4])
return 1
"""

# KEYS: a hash; ARGV: field, JSON as read, new JSON.
_SWAP_FIELD = """
if redis.call('HGET', KEYS[2], ARGV[2]) ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
return 1
"""

# KEYS: deliveries, the index of retracted alerts; ARGV: alert id, then channel_id, JSON
# as read and new JSON of each delivery. All or none, and none once the alert is retracted.
_SWAP_DELIVERIES = """
if redis.call('ZSCORE', KEYS[3], ARGV[2]) then return 2 end
for i = 3, #ARGV, 3 do
  if redis.call('HGET', KEYS[2], ARGV[i]) ~= ARGV[i + 1] then return 0 end
end
for i = 3, #ARGV, 3 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 2]) end
return 1
"""

# KEYS: alert, deliveries; ARGV: channel_id, owner, JSON. Only while the stored delivery
# is claimed by owner (2: there is no such delivery, 3: nor such alert).
_SAVE_CLAIMED = """
local current = redis.call('HGET', KEYS[3], ARGV[2])
if not current then
  if redis.call('EXISTS', KEYS[2]) == 0 then return 3 end
  return 2
end
if cjson.decode(current).claimed_by ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[3], ARGV[2], ARGV[4])
return 1
"""

# KEYS: alert, deliveries; ARGV: channel_id, JSON.
_SAVE_DELIVERY = """
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
return 1
"""

# KEYS: a hash; ARGV: field, JSON; with ARGV[4] = "new", only when the field is absent.
_PUT_FIELD = """
if ARGV[4] == 'new' then return redis.call('HSETNX', KEYS[2], ARGV[2], ARGV[3]) end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1
"""

# Nothing but the frame's audit entries.
_AUDIT = """
return 1
"""

# KEYS: inbox, inbox_pending, then (for a broker message) the session's copy counter;
# ARGV: id, JSON, received_us, then the message key prefix and how long to remember (ms).
# The n-th copy on every session is the same broker message: only one daemon takes it.
_INBOX_ADD = """
if KEYS[4] then
  local n = redis.call('INCR', KEYS[4])
  redis.call('PEXPIRE', KEYS[4], ARGV[6])
  if not redis.call('SET', ARGV[5] .. n, ARGV[2], 'NX', 'PX', ARGV[6]) then return 0 end
end
if redis.call('HSETNX', KEYS[2], ARGV[2], ARGV[3]) == 1 then
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2])
end
return 1
"""

# KEYS: inbox, inbox_pending; ARGV: id.
_INBOX_DONE = """
redis.call('HDEL', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[2])
return 1
"""

# KEYS: leases; ARGV: name, owner, now_us, the new lease's JSON (encoded by the caller:
# cjson would round microseconds), then holders known to be dead. Returns the holder
# afterwards.
_TAKE_LEASE = """
local current = redis.call('HGET', KEYS[2], ARGV[2])
if current then
  local held = cjson.decode(current)
  local dead = false
  for i = 6, #ARGV do if ARGV[i] == held.owner then dead = true end end
  if held.owner ~= ARGV[3] and held.until_us > tonumber(ARGV[4]) and not dead then
    return held.owner
  end
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[5])
return ARGV[3]
"""

# KEYS: leases; ARGV: name, owner.
_DROP_LEASE = """
local current = redis.call('HGET', KEYS[2], ARGV[2])
if current and cjson.decode(current).owner == ARGV[3] then redis.call('HDEL', KEYS[2], ARGV[2]) end
return 1
"""

# KEYS: a list; ARGV: how many entries to cut from its head, and the first and the last
# of them as read. Only when the head is still as read.
_PRUNE_HEAD = """
local n = tonumber(ARGV[2])
if redis.call('LINDEX', KEYS[2], 0) ~= ARGV[3] then return 0 end
if redis.call('LINDEX', KEYS[2], n - 1) ~= ARGV[4] then return 0 end
redis.call('LTRIM', KEYS[2], n, -1)
return 1
"""


_SCRIPTS = {
    "create_alert": _CREATE_ALERT,
    "update_alert": _UPDATE_ALERT,
    "swap_field": _SWAP_FIELD,
    "put_field": _PUT_FIELD,
    "save_delivery": _SAVE_DELIVERY,
    "save_claimed": _SAVE_CLAIMED,
    "swap_deliveries": _SWAP_DELIVERIES,
    "audit": _AUDIT,
    "inbox_add": _INBOX_ADD,
    "inbox_done": _INBOX_DONE,
    "take_lease": _TAKE_LEASE,
    "drop_lease": _DROP_LEASE,
    "prune_head": _PRUNE_HEAD,
}


def _str(value: bytes | str) -> str:
    """A reply as text (the client decodes replies; its types cannot say so)."""
    return value.decode() if isinstance(value, bytes) else value


def _glob_escaped(text: str) -> str:
    """`text` matched literally in a SCAN pattern."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def _strs(values: Iterable[Any]) -> list[str]:
    return [_str(value) for value in values]


def _inbox_json(entry: InboxEntry) -> str:
    data = entry.model_dump(mode="json", exclude={"payload"})
    data["payload"] = base64.b64encode(entry.payload).decode("ascii")
    return json.dumps(data, separators=(",", ":"))


def _inbox_entry(text: str) -> InboxEntry:
    data = json.loads(text)
    data["payload"] = base64.b64decode(data["payload"], validate=True)
    return InboxEntry.model_validate(data)


class RedisStore:
    """The Store protocol on a Redis shared by several daemons; keys start with `prefix`."""

    def __init__(
        self,
        url: str,
        prefix: str = "broadcaster",
        *,
        outage_limit: timedelta = DEFAULT_OUTAGE_LIMIT,
        replica_wait: ReplicaWait = NO_REPLICA_WAIT,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.keys = Keys(prefix)
        self.outage = Outage(outage_limit, OUTAGE_ERRORS, store="redis")
        self.replica_wait = replica_wait
        # A malformed sentinel URL is refused here, before anything connects.
        self._sentinel_url = parse_sentinel_url(url) if is_sentinel_url(url) else None
        self._sentinel: Sentinel | None = None
        self._redis: Redis | None = None
        self._scripts: dict[str, AsyncScript] = {}

    async def open(self) -> None:
        if self._redis is not None:
            return
        client = self._connect()
        try:
            await self.outage.call(client.ping)
        except BaseException:
            await self._close(client)
            raise
        self._scripts = {
            name: client.register_script(_FRAME % body) for name, body in _SCRIPTS.items()
        }
        self._redis = client

    def _connect(self) -> Redis:
        """A client of the URL's Redis, or of the primary its sentinels name (asked again
        after every connection error, so a failover is followed)."""
        # A WAIT may take replica_timeout without the server being any less alive.
        waiting = self.replica_wait.timeout.total_seconds() if self.replica_wait.replicas else 0
        options: dict[str, Any] = {
            "decode_responses": True,
            "socket_timeout": SOCKET_TIMEOUT + waiting,
            "socket_connect_timeout": SOCKET_TIMEOUT,
            "retry": Retry(ExponentialWithJitterBackoff(base=0.05, cap=1), RETRIES),
        }
        parts = self._sentinel_url
        if parts is None:
            # Options written in the URL's query take precedence over these defaults.
            return Redis.from_url(self.url, **options)
        self._sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(parts.sentinels),
            sentinel_kwargs={
                "socket_timeout": SOCKET_TIMEOUT,
                "socket_connect_timeout": SOCKET_TIMEOUT,
                "password": parts.sentinel_password,
            },
        )
        client: Redis = self._sentinel.master_for(
            parts.service,
            db=parts.db,
            username=parts.username,
            password=parts.password,
            **options,
        )
        return client

    async def close(self) -> None:
        client, self._redis = self._redis, None
        if client is not None:
            await self._close(client)

    async def _close(self, client: Redis) -> None:
        await client.aclose()
        sentinel, self._sentinel = self._sentinel, None
        if sentinel is not None:
            await sentinel.aclose()

    def __repr__(self) -> str:
        return f"RedisStore({redacted(self.url)!r}, prefix={self.prefix!r})"

    async def ping(self) -> bool:
        if self._redis is None:
            return False
        try:
            return bool(await self._redis.ping())
        except Exception:
            return False

    @property
    def _client(self) -> Redis:
        if self._redis is None:
            raise RuntimeError(f"store {self.prefix} is not open")
        return self._redis

    async def _read(self, command: Callable[[Redis], Awaitable[T]]) -> T:
        """One read command, waiting out an outage (reads are safe to repeat)."""
        client = self._client
        return await self.outage.call(lambda: command(client))

    async def _write(
        self,
        script: str,
        keys: Sequence[str],
        args: Sequence[str | int],
        audit: Sequence[AuditEntry] = (),
        *,
        promise: bool = False,
    ) -> str:
        """Run one write script with one token for all its tries: a resent call gets the
        first result back. `audit` entries (all of one alert, or all of none) are appended
        when the script wrote. A `promise` (a write the daemon vouches for to others) is
        followed by WAIT when store.replicas_to_wait asks for it."""
        client = self._client
        token = uuid.uuid4().hex
        call = self._scripts[script]
        check_audit(audit)
        trail_keys = {self._audit_key(entry.alert_id) for entry in audit}
        keys = [self.keys.op(token), *keys, *trail_keys]
        args = [OP_RESULT_TTL_MS, *args, *(e.model_dump_json() for e in audit), len(audit)]
        if promise and self.replica_wait.replicas > 0:
            result = await self.outage.call(
                lambda: self._replicated(client, call, keys, args, script)
            )
        else:
            result = await self.outage.call(lambda: call(keys=keys, args=args, client=client))
        return _str(result) if isinstance(result, bytes | str) else str(result)

    async def _replicated(
        self,
        client: Redis,
        call: AsyncScript,
        keys: Sequence[str],
        args: Sequence[str | int],
        script: str,
    ) -> Any:
        """The script, then WAIT on the same connection (WAIT counts the replicas that
        have this connection's writes); fewer replicas than asked is a warning only: the
        write stands on the primary, and refusing it would lose the trigger for sure."""
        wanted = self.replica_wait.replicas
        timeout_ms = max(1, int(self.replica_wait.timeout / timedelta(milliseconds=1)))
        async with client.pipeline(transaction=False) as pipe:
            await call(keys=keys, args=args, client=pipe)
            pipe.wait(wanted, timeout_ms)
            result, acknowledged = await pipe.execute()
        if int(acknowledged) < wanted:
            log.warning(
                "store_replicas_behind",
                write=script,
                replicas=int(acknowledged),
                wanted=wanted,
                timeout_ms=timeout_ms,
            )
        return result

    # -- inbox -----------------------------------------------------------------------
    async def inbox_add(self, entry: InboxEntry, *, broker_session: str | None = None) -> bool:
        check_inbox_entry(entry)
        keys = [self.keys.inbox, self.keys.inbox_pending]
        args: list[str | int] = [entry.id, _inbox_json(entry), timestamp_us(entry.received_at)]
        if broker_session is not None:
            digest = payload_digest(entry.payload)
            keys.append(self.keys.broker_copies(broker_session, digest))
            memory_ms = int(BROKER_MESSAGE_MEMORY / timedelta(milliseconds=1))
            args += [self.keys.broker_message(digest), memory_ms]
        # The promise behind the MQTT acknowledgement: the broker forgets the trigger.
        return await self._write("inbox_add", keys, args, promise=True) == "1"

    async def inbox_take(
        self,
        entry_id: str,
        owner: str,
        until: datetime,
        now: datetime,
        dead: Collection[str] = (),
    ) -> InboxEntry | None:
        check_claim(until, now)
        while True:
            reply = await self._read(lambda r: r.hget(self.keys.inbox, entry_id))
            if reply is None:
                return None
            text = _str(reply)
            taken = inbox_taken(_inbox_entry(text), owner, until, now, dead)
            if taken is None:
                return None
            args = [entry_id, text, _inbox_json(taken)]
            if await self._write("swap_field", [self.keys.inbox], args) == "1":
                return taken
            # Changed since we read it: read again and decide again.

    async def inbox_done(self, entry_id: str) -> None:
        await self._write("inbox_done", [self.keys.inbox, self.keys.inbox_pending], [entry_id])

    async def inbox_pending(self) -> list[InboxEntry]:
        ids = _strs(await self._read(lambda r: r.zrange(self.keys.inbox_pending, 0, -1)))
        if not ids:
            return []
        texts = await self._read(lambda r: r.hmget(self.keys.inbox, ids))
        return [_inbox_entry(_str(text)) for text in texts if text is not None]

    # -- alerts and deliveries ---------------------------------------------------------
    async def create_alert(
        self, alert: Alert, deliveries: list[Delivery], *, audit: Sequence[AuditEntry] = ()
    ) -> bool:
        check_new_alert(alert, deliveries)
        args: list[str | int] = [alert.model_dump_json(), alert.id, timestamp_us(alert.created_at)]
        for delivery in deliveries:
            args += [delivery.channel_id, delivery.model_dump_json()]
        keys = [
            self.keys.alert(alert.id),
            self.keys.deliveries(alert.id),
            self.keys.alerts,
            self.keys.state(alert.state),
            self.keys.incident(alert.incident),
        ]
        return await self._write("create_alert", keys, args, audit) == "1"

    async def _zrange(self, key: str) -> list[Any]:
        return list(await self._read(lambda r: r.zrange(key, 0, -1)))

    async def _alerts(self, ids: Sequence[str]) -> list[Alert]:
        if not ids:
            return []
        texts = await self._read(lambda r: r.mget([self.keys.alert(i) for i in ids]))
        return [Alert.model_validate_json(text) for text in texts if text is not None]

    async def get_alert(self, alert_id: str) -> Alert | None:
        text = await self._read(lambda r: r.get(self.keys.alert(alert_id)))
        return None if text is None else Alert.model_validate_json(text)

    async def list_alerts(self, limit: int = 50) -> list[Alert]:
        if limit <= 0:
            return []
        # Ties in created_at come in reverse id order, as in SQLite's ORDER BY.
        ids = await self._read(lambda r: r.zrevrange(self.keys.alerts, 0, limit - 1))
        return await self._alerts(_strs(ids))

    async def alerts_in_state(self, *states: AlertState) -> list[Alert]:
        ids: set[str] = set()
        for state in set(states):
            ids.update(_strs(await self._zrange(self.keys.state(state))))
        # Read after the index: keep only alerts still in one of the states.
        alerts = [a for a in await self._alerts(sorted(ids)) if a.state in states]
        return sorted(alerts, key=lambda a: (timestamp_us(a.created_at), a.id))

    async def incident_alerts(self, incident: str) -> list[Alert]:
        ids = _strs(await self._read(lambda r: r.zrange(self.keys.incident(incident), 0, -1)))
        return [a for a in await self._alerts(ids) if a.incident == incident]

    async def modify_alert(
        self, alert_id: str, change: AlertChange, *, audit: Sequence[AuditEntry] = ()
    ) -> Alert | None:
        while True:
            reply = await self._read(lambda r: r.get(self.keys.alert(alert_id)))
            if reply is None:
                return None
            text = _str(reply)
            old = Alert.model_validate_json(text)
            changes = change(old)
            if changes is None:
                return None
            new = apply_alert_changes(old, changes)
            keys = [
                self.keys.alert(alert_id),
                self.keys.alerts,
                self.keys.state(old.state),
                self.keys.state(new.state),
                self.keys.incident(old.incident),
                self.keys.incident(new.incident),
            ]
            args: list[str | int] = [
                text,
                new.model_dump_json(),
                alert_id,
                timestamp_us(new.created_at),
            ]
            if await self._write("update_alert", keys, args, audit) == "1":
                return new
            # Someone changed it since we read it: read again and decide again.

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
        replies = await self._read(lambda r: r.hgetall(self.keys.deliveries(alert_id)))
        texts = {_str(channel): _str(text) for channel, text in replies.items()}
        return [Delivery.model_validate_json(texts[channel]) for channel in sorted(texts)]

    async def save_delivery(
        self, delivery: Delivery, *, owner: str | None = None, audit: Sequence[AuditEntry] = ()
    ) -> bool:
        """Insert or overwrite; KeyError when its alert does not exist."""
        check_delivery(delivery)
        if owner is None:
            keys = [self.keys.alert(delivery.alert_id), self.keys.deliveries(delivery.alert_id)]
            args = [delivery.channel_id, touched(delivery).model_dump_json()]
            if await self._write("save_delivery", keys, args, audit, promise=True) != "1":
                raise KeyError(f"no alert {delivery.alert_id}")
            return True
        # The claim is checked in the script: one round trip for a delivery's every save.
        # A provider's answer is a promise: lost, the post would be sent again.
        keys = [self.keys.alert(delivery.alert_id), self.keys.deliveries(delivery.alert_id)]
        args = [delivery.channel_id, owner, touched(delivery).model_dump_json()]
        result = await self._write("save_claimed", keys, args, audit, promise=True)
        if result == "3":
            raise KeyError(f"no alert {delivery.alert_id}")
        return result == "1"

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
        key = self.keys.deliveries(alert_id)
        while True:
            reply = await self._read(lambda r: r.hget(key, channel_id))
            if reply is None:
                return None
            text = _str(reply)
            delivery = claimed(Delivery.model_validate_json(text), owner, until, now, dead)
            if delivery is None:
                return None
            args = [channel_id, text, delivery.model_dump_json()]
            if await self._write("swap_field", [key], args) == "1":
                return delivery
            # Someone changed it since we read it: read again and decide again.

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
        key = self.keys.deliveries(alert_id)
        keys = [key, self.keys.state("retracted")]
        while True:
            replies = await self._read(lambda r: r.hmget(key, sorted(channel_ids)))
            args: list[str | int] = [alert_id]
            taken: list[Delivery] = []
            for reply in replies:
                if reply is None:
                    continue
                text = _str(reply)
                delivery = claimed(
                    Delivery.model_validate_json(text), owner, until, now, dead, start=True
                )
                if delivery is not None:
                    taken.append(delivery)
                    args += [delivery.channel_id, text, delivery.model_dump_json()]
            if not taken:
                return []
            result = await self._write("swap_deliveries", keys, args)
            if result == "1":
                return taken
            if result == "2":
                return []  # retracted
            # One of them changed since we read it: read again and decide again.

    # -- leases ----------------------------------------------------------------------
    async def take_lease(
        self, name: str, owner: str, until: datetime, now: datetime, dead: Collection[str] = ()
    ) -> str:
        check_claim(until, now)
        lease = json.dumps({"owner": owner, "until_us": timestamp_us(until)})
        args: list[str | int] = [name, owner, timestamp_us(now), lease, *dead]
        return await self._write("take_lease", [self.keys.leases], args)

    async def lease_holder(self, name: str, now: datetime) -> str | None:
        reply = await self._read(lambda r: r.hget(self.keys.leases, name))
        if reply is None:
            return None
        held = json.loads(_str(reply))
        return str(held["owner"]) if int(held["until_us"]) > timestamp_us(now) else None

    async def drop_lease(self, name: str, owner: str) -> None:
        await self._write("drop_lease", [self.keys.leases], [name, owner])

    # -- channels' circuits ----------------------------------------------------------
    async def save_channel_state(self, channel_id: str, state: ChannelState) -> None:
        # One field of a hash, written whole: a plain HSET is atomic and safe to repeat.
        text = state.model_dump_json()
        await self._read(lambda r: r.hset(self.keys.channel_states, channel_id, text))

    async def channel_states(self) -> dict[str, ChannelState]:
        replies = await self._read(lambda r: r.hgetall(self.keys.channel_states))
        return {
            _str(cid): ChannelState.model_validate_json(_str(text))
            for cid, text in sorted(replies.items())
        }

    # -- status reports ------------------------------------------------------------
    # Single commands, atomic and safe to repeat: no write script needed.
    async def add_status_report(self, report: StatusReport) -> bool:
        key = self.keys.status_reports(report.channel_id, report.message_id)
        text = report.model_dump_json()
        return bool(await self._read(lambda r: r.hsetnx(key, report.status, text)))

    async def status_reports(
        self, channel_id: str, message_ids: Collection[str]
    ) -> dict[str, list[StatusReport]]:
        wanted = list(dict.fromkeys(message_ids))

        async def read(r: Redis) -> list[Any]:
            pipe = r.pipeline(transaction=False)
            for message_id in wanted:
                pipe.hvals(self.keys.status_reports(channel_id, message_id))
            return list(await pipe.execute())

        found: dict[str, list[StatusReport]] = {}
        for message_id, texts in zip(wanted, await self._read(read), strict=True):
            reports = [StatusReport.model_validate_json(_str(t)) for t in texts]
            if reports:
                found[message_id] = sorted(reports, key=lambda rep: (rep.at, rep.status))
        return found

    # -- Web Push subscriptions --------------------------------------------------------
    async def save_subscription(self, subscription: PushSubscription) -> None:
        text = subscription.model_dump_json()
        await self._read(lambda r: r.hset(self.keys.subscriptions, subscription.id, text))

    async def subscriptions(self) -> list[PushSubscription]:
        texts = await self._read(lambda r: r.hvals(self.keys.subscriptions))
        found = [PushSubscription.model_validate_json(_str(text)) for text in texts]
        return sorted(found, key=lambda sub: (sub.created_at, sub.id))

    async def remove_subscription(self, subscription_id: str) -> bool:
        return bool(await self._read(lambda r: r.hdel(self.keys.subscriptions, subscription_id)))

    # -- console accounts --------------------------------------------------------------
    async def save_account(self, account: Account, *, new: bool = False) -> bool:
        args = [account.name, account.model_dump_json(), "new" if new else "replace"]
        return await self._write("put_field", [self.keys.accounts], args) == "1"

    async def get_account(self, name: str) -> Account | None:
        text = await self._read(lambda r: r.hget(self.keys.accounts, name))
        return None if text is None else Account.model_validate_json(_str(text))

    async def list_accounts(self) -> list[Account]:
        texts = await self._read(lambda r: r.hvals(self.keys.accounts))
        found = [Account.model_validate_json(_str(text)) for text in texts]
        return sorted(found, key=lambda a: a.name)

    async def record_login(
        self, name: str, ok: bool, now: datetime, lock_after: int, lock_for: timedelta
    ) -> Account | None:
        while True:
            reply = await self._read(lambda r: r.hget(self.keys.accounts, name))
            if reply is None:
                return None
            text = _str(reply)
            old = Account.model_validate_json(text)
            new = login_recorded(old, ok, now, lock_after, lock_for)
            if new == old:
                return old
            args = [name, text, new.model_dump_json()]
            if await self._write("swap_field", [self.keys.accounts], args) == "1":
                return new
            # Another attempt (another daemon) counted first: count ours on top of it.

    # -- audit trail -----------------------------------------------------------------
    async def audit(self, entry: AuditEntry) -> None:
        await self._write("audit", [], [], [entry])

    def _audit_key(self, alert_id: str | None) -> str:
        return self.keys.unattached_audit if alert_id is None else self.keys.alert_audit(alert_id)

    async def audit_trail(self, alert_id: str | None = None) -> list[AuditEntry]:
        return await self._trail(self._audit_key(alert_id))

    async def _trail(self, key: str) -> list[AuditEntry]:
        texts = await self._read(lambda r: r.lrange(key, 0, -1))
        return [AuditEntry.model_validate_json(text) for text in texts]

    async def audit_all(self) -> list[AuditEntry]:
        # Every alert trail's key, found by its name: entries may name an alert that was
        # never stored (a refusal's), which the alerts index does not list.
        head = self.keys.alert_audit("")
        pattern = _glob_escaped(head) + "*"

        async def trail_keys(r: Redis) -> list[str]:
            return [_str(key) async for key in r.scan_iter(match=pattern, count=1000)]

        keys = [self.keys.unattached_audit, *sorted(await self._read(trail_keys))]
        entries: list[AuditEntry] = []
        for key in keys:
            entries.extend(await self._trail(key))
        return sorted(entries, key=lambda e: timestamp_us(e.at))  # stable: each trail's order

    async def audit_tail(self, limit: int) -> list[AuditEntry]:
        if limit <= 0:
            return []
        key = self.keys.unattached_audit
        texts = await self._read(lambda r: r.lrange(key, -limit, -1))
        return [AuditEntry.model_validate_json(text) for text in reversed(texts)]

    async def prune(self, before: datetime) -> int:
        """Cut refused input older than `before` from the head of its list (the oldest
        entries come first); broker messages expire by themselves."""
        pruned = 0
        key = self.keys.unattached_audit
        while True:
            head = _strs(await self._read(lambda r: r.lrange(key, 0, PRUNE_CHUNK - 1)))
            old = 0
            while old < len(head) and AuditEntry.model_validate_json(head[old]).at < before:
                old += 1
            if old == 0:
                return pruned
            if await self._write("prune_head", [key], [old, head[0], head[old - 1]]) == "1":
                pruned += old
                if old < PRUNE_CHUNK:
                    return pruned
            # Otherwise the head changed under us (another pruner): read again.
