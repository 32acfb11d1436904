"""Each channel's health, read from the store so that every daemon's sends count and a
restart forgets nothing: the last success and its post from the deliveries, the failures
of the last hour from the audit trail (each retry, each failed delivery or test message),
the circuit from the channel states the dispatchers save, the quota from the provider's
last answer. The console's Channels screen and `broadcaster status --watch` show it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo

from broadcaster.channel_test import EVENT as TEST_EVENT
from broadcaster.channels.settings import ChannelConfig
from broadcaster.models import AuditEntry, ChannelState
from broadcaster.status import SCAN_LIMIT
from broadcaster.store.base import Store

HOUR = timedelta(hours=1)
LOOKBACK = timedelta(days=7)  # how far back a last success is looked for
FAILURE_EVENTS = {"retry_scheduled", "failed"}


@dataclass
class Health:
    channel_id: str
    config: ChannelConfig | None  # None: set aside, its file is broken
    set_aside: str | None = None
    circuit: ChannelState | None = None
    last_success: datetime | None = None
    last_post: str | None = None
    failures: list[AuditEntry] = field(default_factory=list)  # in the last hour, newest first
    quota: tuple[int, int] | None = None  # left, total
    last_test: AuditEntry | None = None
    refusal: str | None = None  # why no test message may be sent

    @property
    def last_failure(self) -> AuditEntry | None:
        return self.failures[0] if self.failures else None


async def read_health(
    store: Store,
    channels: dict[str, ChannelConfig],
    set_aside: dict[str, str],
    now: datetime,
    refusal: Callable[[str], str | None] | None = None,
) -> tuple[list[Health], tzinfo | None]:
    """Every configured (or set-aside) channel's health, and the zone to show times in
    (the fire brigade's, from the newest alert, as on the board)."""
    found = {cid: Health(cid, config) for cid, config in sorted(channels.items())}
    for cid, why in sorted(set_aside.items()):
        found.setdefault(cid, Health(cid, None, set_aside=why))
    for cid, state in (await store.channel_states()).items():
        if cid in found:
            found[cid].circuit = state
    alerts = [a for a in await store.list_alerts(SCAN_LIMIT) if now - a.updated_at < LOOKBACK]
    for alert in alerts:  # newest first: the first success seen is the last one
        for d in await store.get_deliveries(alert.id):
            health = found.get(d.channel_id)
            if health is None or d.delivered_at is None:
                continue
            if health.last_success is None or d.delivered_at > health.last_success:
                health.last_success, health.last_post = d.delivered_at, d.url
                quota = d.receipt.data.get("quota") if d.receipt else None
                if isinstance(quota, dict) and isinstance(quota.get("total"), int):
                    total = quota["total"]
                    health.quota = (total - int(quota.get("used") or 0), total)
        if now - alert.updated_at < HOUR:
            for entry in await store.audit_trail(alert.id):
                _count_failure(found, entry, now)
    for entry in await store.audit_tail(SCAN_LIMIT):  # newest first
        if entry.event != TEST_EVENT:
            continue
        health = found.get(str(entry.detail.get("channel")))
        if health is None:
            continue
        health.last_test = health.last_test or entry
        if entry.detail.get("ok"):
            if health.last_success is None or entry.at > health.last_success:
                health.last_success, health.last_post = entry.at, entry.detail.get("url")
        else:
            _count_failure(found, entry, now)
    for health in found.values():
        health.failures.sort(key=lambda e: e.at, reverse=True)
        if health.config is not None and refusal is not None:
            health.refusal = refusal(health.channel_id)
    zone = alerts[0].issued_at.tzinfo if alerts else None
    return list(found.values()), zone


def _count_failure(found: dict[str, Health], entry: AuditEntry, now: datetime) -> None:
    if entry.event not in FAILURE_EVENTS and entry.event != TEST_EVENT:
        return
    health = found.get(str(entry.detail.get("channel")))
    if health is not None and now - entry.at < HOUR:
        health.failures.append(entry)
