"""The console's Channels screen:

    GET  /console/channels               each channel's health (role viewer and up)
    POST /console/channels/{id}/test     a test message to its test account (role admin;
                                         only for `drill: send`, else 409)

The health comes from the store (broadcaster/health.py); the rate limit from the
channel's file, else its kind's default.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from broadcaster.channel_test import ChannelTest, NotTestable
from broadcaster.channels.settings import RateLimit
from broadcaster.deployment import Deployment
from broadcaster.health import read_health
from broadcaster.models import utcnow
from broadcaster.report import PAGES
from broadcaster.web.api import STATE
from broadcaster.web.console.auth import account_of, csrf_token, requires
from broadcaster.web.console.board import board_language, clock
from broadcaster.web.console.board_texts import BOARD_TEXTS
from broadcaster.web.console.channels_texts import CHANNELS_TEXTS
from broadcaster.web.console.new_alert import page

CHANNELS_PATH = "/console/channels"
TEST_PATH = CHANNELS_PATH + "/{channel_id}/test"


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
        healths, zone = await read_health(
            store,
            self.deployment.channels,
            self.deployment.aside("channel"),
            utcnow(),
            self.tester.refusal,
        )
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


__all__ = ["CHANNELS_PATH", "add_channel_routes"]
