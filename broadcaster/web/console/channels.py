"""The console's Channels screen:

    GET  /console/channels               each channel's health (role viewer and up)
    POST /console/channels/{id}/test     a test message to its test account (role admin;
                                         only for `drill: send`, else 409)

The health is read from the store, so every daemon's sends count and a restart forgets
nothing: the last success and its post from the deliveries, the failures of the last hour
from the audit trail (each retry and each failed delivery or test), the circuit from the
channel states the dispatchers save, the quota from the provider's last answer, the rate
limit from the channel's file (or its kind's default).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

from aiohttp import web

from broadcaster.channel_test import EVENT as TEST_EVENT
from broadcaster.channel_test import ChannelTest, NotTestable
from broadcaster.channels.settings import ChannelConfig, RateLimit
from broadcaster.deployment import Deployment
from broadcaster.models import AuditEntry, ChannelState, utcnow
from broadcaster.report import PAGES
from broadcaster.store.base import Store
from broadcaster.web.api import STATE
from broadcaster.web.console.auth import account_of, csrf_token, requires
from broadcaster.web.console.board import SCAN_LIMIT, board_language, clock
from broadcaster.web.console.board_texts import BOARD_TEXTS
from broadcaster.web.console.channels_texts import CHANNELS_TEXTS
from broadcaster.web.console.new_alert import page

CHANNELS_PATH = "/console/channels"
TEST_PATH = CHANNELS_PATH + "/{channel_id}/test"
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
    store: Store, deployment: Deployment, tester: ChannelTest, now: datetime
) -> tuple[list[Health], tzinfo | None]:
    """Every configured (or set-aside) channel's health, and the zone to show times in
    (the fire brigade's, from the newest alert, as on the board)."""
    found = {cid: Health(cid, config) for cid, config in sorted(deployment.channels.items())}
    for cid, why in sorted(deployment.aside("channel").items()):
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
        if health.config is not None:
            health.refusal = tester.refusal(health.channel_id)
    zone = alerts[0].issued_at.tzinfo if alerts else None
    return list(found.values()), zone


def _count_failure(found: dict[str, Health], entry: AuditEntry, now: datetime) -> None:
    if entry.event not in FAILURE_EVENTS and entry.event != TEST_EVENT:
        return
    health = found.get(str(entry.detail.get("channel")))
    if health is not None and now - entry.at < HOUR:
        health.failures.append(entry)


def rate_words(rate: RateLimit | None, t: dict[str, str]) -> str:
    """`30 per minute`, `1 per second`, `100 per 900 seconds`."""
    if rate is None:
        return t["no_rate"]
    units = {1.0: t["seconds"], 60.0: t["minute"], 3600.0: t["hour"]}
    period = units.get(rate.period) or t["period_other"] % f"{rate.period:g}"
    return t["rate"] % (rate.count, period)


class ChannelsScreen:
    def __init__(self, deployment: Deployment, tester: ChannelTest) -> None:
        self.deployment = deployment
        self.tester = tester

    async def render(self, request: web.Request, status: int = 200, **extra: Any) -> web.Response:
        lang = board_language(request)
        t = BOARD_TEXTS[lang] | CHANNELS_TEXTS[lang]
        store = request.app[STATE].store
        healths, zone = await read_health(store, self.deployment, self.tester, utcnow())
        account = account_of(request)
        html = PAGES.get_template("console/channels.html.j2").render(
            lang=lang,
            other_lang={"de": "en", "en": "de"}[lang],
            t=t,
            account=account.name,
            csrf=csrf_token(request),
            healths=healths,
            may_test=account.may("admin"),
            when=lambda moment: clock(moment, zone, lang),
            rate=lambda config: rate_words(config.effective_rate_limit, t),
            **({"notice": None, "notice_ok": True} | extra),
        )
        return page(html, status)

    async def get(self, request: web.Request) -> web.Response:
        return await self.render(request)

    async def test(self, request: web.Request) -> web.Response:
        channel_id = request.match_info["channel_id"]
        lang = board_language(request)
        t = CHANNELS_TEXTS[lang]
        if channel_id not in self.deployment.channels:
            notice = t["unknown_channel"] % channel_id
            return await self.render(request, 404, notice=notice, notice_ok=False)
        try:
            outcome = await self.tester.send(channel_id, account_of(request).name)
        except NotTestable as exc:
            notice = t["not_testable"] % exc
            return await self.render(request, 409, notice=notice, notice_ok=False)
        if outcome.ok:
            notice = t["tested_ok"] % channel_id
        else:
            notice = t["tested_failed"] % (channel_id, outcome.error)
        return await self.render(request, notice=notice, notice_ok=outcome.ok)


def add_channel_routes(app: web.Application, deployment: Deployment, tester: ChannelTest) -> None:
    screen = ChannelsScreen(deployment, tester)
    app.router.add_get(CHANNELS_PATH, requires("viewer")(screen.get))
    app.router.add_post(TEST_PATH, requires("admin")(screen.test))


__all__ = ["CHANNELS_PATH", "add_channel_routes", "read_health"]
