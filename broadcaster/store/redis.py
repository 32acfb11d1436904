"""The shared store: one Redis that several daemons use at once.

Every write is one Lua script, so it is atomic against the other daemons: an alert
appears with all its deliveries or not at all, and a state change or a claim is a
compare and set on the exact JSON that was read (a read-check-write that lost the race
reads again and retries). Reads need no script.

The client resends a command after a connection error or timeout (a short network blip
should not fail an alert), and a resent script may already have run, with only its answer
lost. Each write therefore carries a fresh token: the script records its result under the
token for a while, and a resent call gets that result back instead of running twice.
Otherwise a lost answer would turn a successful create_alert into "duplicate" and a
successful compare and set into "someone else acted", the same kind of mistake as
Alertmanager's duplicate notifications.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.commands.core import AsyncScript

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

# A command is resent this often after a connection error or timeout (see above).
RETRIES = 3
# How long the result of a write is kept for a resent call (milliseconds); far longer than
# the retries of one call take.
OP_RESULT_TTL_MS = 10 * 60 * 1000


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
    def audit(self) -> str:
        """List: every audit entry's JSON, oldest first."""
        return f"{self.prefix}:audit"

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

    def op(self, token: str) -> str:
        """String: the result of one write, for a resent call (expires)."""
        return f"{self.prefix}:op:{token}"


# Every write script runs inside this frame: KEYS[1] and ARGV[1] are the token's key and
# the time to keep the result; the body sees its own keys and arguments from index 2 on,
# and returns an integer.
_FRAME = """
local done = redis.call('GET', KEYS[1])
if done then return tonumber(done) end
local function body()
%s
end
local result = body()
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

# KEYS: deliveries; ARGV: channel_id, JSON as read, new JSON.
_SWAP_DELIVERY = """
if redis.call('HGET', KEYS[2], ARGV[2]) ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
return 1
"""

# KEYS: alert, deliveries; ARGV: channel_id, JSON.
_SAVE_DELIVERY = """
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
return 1
"""

# KEYS: audit, then the alert's audit when the entry names one; ARGV: JSON.
_AUDIT = """
for i = 2, #KEYS do redis.call('RPUSH', KEYS[i], ARGV[2]) end
return 1
"""

# KEYS: inbox, inbox_pending; ARGV: id, JSON, received_us.
_INBOX_ADD = """
if redis.call('HSETNX', KEYS[2], ARGV[2], ARGV[3]) == 0 then return 0 end
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2])
return 1
"""

# KEYS: inbox, inbox_pending; ARGV: id.
_INBOX_DONE = """
redis.call('HDEL', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[2])
return 1
"""


_SCRIPTS = {
    "create_alert": _CREATE_ALERT,
    "update_alert": _UPDATE_ALERT,
    "swap_delivery": _SWAP_DELIVERY,
    "save_delivery": _SAVE_DELIVERY,
    "audit": _AUDIT,
    "inbox_add": _INBOX_ADD,
    "inbox_done": _INBOX_DONE,
}


def _str(value: bytes | str) -> str:
    """A reply as text (the client decodes replies; its types cannot say so)."""
    return value.decode() if isinstance(value, bytes) else value


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

    def __init__(self, url: str, prefix: str = "broadcaster") -> None:
        self.url = url
        self.prefix = prefix
        self.keys = Keys(prefix)
        self._redis: Redis | None = None
        self._scripts: dict[str, AsyncScript] = {}

    async def open(self) -> None:
        if self._redis is not None:
            return
        # Options written in the URL's query take precedence over these defaults.
        client = Redis.from_url(
            self.url,
            decode_responses=True,
            socket_timeout=5,
            socket_connect_timeout=5,
            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=1), RETRIES),
        )
        try:
            await client.ping()
        except BaseException:
            await client.aclose()
            raise
        self._scripts = {
            name: client.register_script(_FRAME % body) for name, body in _SCRIPTS.items()
        }
        self._redis = client

    async def close(self) -> None:
        client, self._redis = self._redis, None
        if client is not None:
            await client.aclose()

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

    async def _write(self, script: str, keys: Sequence[str], args: Sequence[str | int]) -> int:
        """Run one write script with a fresh token; a resent call gets the first result."""
        if self._redis is None:
            raise RuntimeError(f"store {self.prefix} is not open")
        token = uuid.uuid4().hex
        result = await self._scripts[script](
            keys=[self.keys.op(token), *keys], args=[OP_RESULT_TTL_MS, *args]
        )
        return int(result)

    # -- inbox -----------------------------------------------------------------------
    async def inbox_add(self, entry: InboxEntry) -> None:
        """Keep a raw trigger; an id already waiting keeps its first entry."""
        await self._write(
            "inbox_add",
            [self.keys.inbox, self.keys.inbox_pending],
            [entry.id, _inbox_json(entry), timestamp_us(entry.received_at)],
        )

    async def inbox_done(self, entry_id: str) -> None:
        await self._write("inbox_done", [self.keys.inbox, self.keys.inbox_pending], [entry_id])

    async def inbox_pending(self) -> list[InboxEntry]:
        ids = _strs(await self._client.zrange(self.keys.inbox_pending, 0, -1))
        if not ids:
            return []
        texts = await self._client.hmget(self.keys.inbox, ids)
        return [_inbox_entry(_str(text)) for text in texts if text is not None]

    # -- alerts and deliveries ---------------------------------------------------------
    async def create_alert(self, alert: Alert, deliveries: list[Delivery]) -> bool:
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
        return await self._write("create_alert", keys, args) == 1

    async def _alerts(self, ids: Sequence[str]) -> list[Alert]:
        if not ids:
            return []
        texts = await self._client.mget([self.keys.alert(i) for i in ids])
        return [Alert.model_validate_json(text) for text in texts if text is not None]

    async def get_alert(self, alert_id: str) -> Alert | None:
        text = await self._client.get(self.keys.alert(alert_id))
        return None if text is None else Alert.model_validate_json(text)

    async def list_alerts(self, limit: int = 50) -> list[Alert]:
        if limit <= 0:
            return []
        # Ties in created_at come in reverse id order, as in SQLite's ORDER BY.
        ids = await self._client.zrevrange(self.keys.alerts, 0, limit - 1)
        return await self._alerts(_strs(ids))

    async def alerts_in_state(self, *states: AlertState) -> list[Alert]:
        """Oldest first."""
        ids: set[str] = set()
        for state in set(states):
            ids.update(_strs(await self._client.zrange(self.keys.state(state), 0, -1)))
        # Read after the index: keep only alerts still in one of the states.
        alerts = [a for a in await self._alerts(sorted(ids)) if a.state in states]
        return sorted(alerts, key=lambda a: (timestamp_us(a.created_at), a.id))

    async def incident_alerts(self, incident: str) -> list[Alert]:
        ids = _strs(await self._client.zrange(self.keys.incident(incident), 0, -1))
        return [a for a in await self._alerts(ids) if a.incident == incident]

    async def update_alert(
        self, alert_id: str, *, expect: Collection[AlertState] | None = None, **changes: Any
    ) -> Alert | None:
        check_alert_changes(changes)
        while True:
            reply = await self._client.get(self.keys.alert(alert_id))
            if reply is None:
                return None
            text = _str(reply)
            old = Alert.model_validate_json(text)
            if expect is not None and old.state not in expect:
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
            if await self._write("update_alert", keys, args) == 1:
                return new
            # Someone changed it since we read it: read again and decide again.

    async def get_deliveries(self, alert_id: str) -> list[Delivery]:
        replies = await self._client.hgetall(self.keys.deliveries(alert_id))
        texts = {_str(channel): _str(text) for channel, text in replies.items()}
        return [Delivery.model_validate_json(texts[channel]) for channel in sorted(texts)]

    async def save_delivery(self, delivery: Delivery, *, owner: str | None = None) -> bool:
        """Insert or overwrite; KeyError when its alert does not exist."""
        check_delivery(delivery)
        if owner is None:
            keys = [self.keys.alert(delivery.alert_id), self.keys.deliveries(delivery.alert_id)]
            args = [delivery.channel_id, touched(delivery).model_dump_json()]
            if await self._write("save_delivery", keys, args) != 1:
                raise KeyError(f"no alert {delivery.alert_id}")
            return True
        key = self.keys.deliveries(delivery.alert_id)
        while True:
            reply = await self._client.hget(key, delivery.channel_id)
            if reply is None:
                if not await self._client.exists(self.keys.alert(delivery.alert_id)):
                    raise KeyError(f"no alert {delivery.alert_id}")
                return False
            text = _str(reply)
            if Delivery.model_validate_json(text).claimed_by != owner:
                return False
            args = [delivery.channel_id, text, touched(delivery).model_dump_json()]
            if await self._write("swap_delivery", [key], args) == 1:
                return True
            # Changed since we read it: read again and decide again.

    async def claim_delivery(
        self, alert_id: str, channel_id: str, owner: str, until: datetime, now: datetime
    ) -> Delivery | None:
        check_claim(until, now)
        key = self.keys.deliveries(alert_id)
        while True:
            reply = await self._client.hget(key, channel_id)
            if reply is None:
                return None
            text = _str(reply)
            delivery = claimed(Delivery.model_validate_json(text), owner, until, now)
            if delivery is None:
                return None
            args = [channel_id, text, delivery.model_dump_json()]
            if await self._write("swap_delivery", [key], args) == 1:
                return delivery
            # Someone changed it since we read it: read again and decide again.

    # -- audit trail -----------------------------------------------------------------
    async def audit(self, entry: AuditEntry) -> None:
        keys = [self.keys.audit]
        if entry.alert_id is not None:
            keys.append(self.keys.alert_audit(entry.alert_id))
        await self._write("audit", keys, [entry.model_dump_json()])

    async def audit_trail(self, alert_id: str | None = None) -> list[AuditEntry]:
        key = self.keys.audit if alert_id is None else self.keys.alert_audit(alert_id)
        texts = await self._client.lrange(key, 0, -1)
        return [AuditEntry.model_validate_json(text) for text in texts]
