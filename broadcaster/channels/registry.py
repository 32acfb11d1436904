"""The adapter for a channel's settings: one place that knows which class serves which type."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from broadcaster.channels.base import Channel
from broadcaster.channels.bluesky import BlueskyAdapter
from broadcaster.channels.cap_feed import CapFeedAdapter
from broadcaster.channels.email import EmailAdapter
from broadcaster.channels.facebook import FacebookAdapter
from broadcaster.channels.log import LogAdapter
from broadcaster.channels.mastodon import MastodonAdapter
from broadcaster.channels.settings import (
    BlueskyChannel,
    CapFeedChannel,
    ChannelConfig,
    EmailChannel,
    FacebookChannel,
    LogChannel,
    MastodonChannel,
    SmsChannel,
    TelegramChannel,
    WebhookChannel,
    XChannel,
)
from broadcaster.channels.sms import SmsAdapter
from broadcaster.channels.telegram import TelegramAdapter
from broadcaster.channels.webhook import WebhookAdapter
from broadcaster.channels.x import XAdapter


def make_channel(
    channel_id: str, config: ChannelConfig, session: aiohttp.ClientSession, *, public_url: str
) -> Channel:
    """The adapter for one channels/<id>.yaml; made once per daemon and kept (Bluesky
    caches its session on the adapter)."""
    match config:
        case LogChannel():
            return LogAdapter(channel_id)
        case WebhookChannel():
            return WebhookAdapter(channel_id, config, session)
        case EmailChannel():
            return EmailAdapter(channel_id, config, session)
        case SmsChannel():
            return SmsAdapter(channel_id, config, session)
        case MastodonChannel():
            return MastodonAdapter(channel_id, config, session)
        case BlueskyChannel():
            return BlueskyAdapter(channel_id, config, session)
        case TelegramChannel():
            return TelegramAdapter(channel_id, config, session)
        case FacebookChannel():
            return FacebookAdapter(channel_id, config, session)
        case XChannel():
            return XAdapter(channel_id, config, session)
        case CapFeedChannel():
            return CapFeedAdapter(channel_id, public_url)
    raise NotImplementedError(f"channel type {config.channel_type} has no adapter yet")


class ChannelPool:
    """The adapters of a deployment's enabled channels, each with a connection pool of its
    own (at most `max_in_flight` connections): a hanging provider fills only its own pool.
    Whoever opens the pool closes it."""

    def __init__(self, configs: Mapping[str, ChannelConfig], *, public_url: str) -> None:
        self.configs = dict(configs)
        self.public_url = public_url
        self.adapters: dict[str, Channel] = {}
        self.sessions: dict[str, aiohttp.ClientSession] = {}

    async def open(self) -> dict[str, Channel]:
        for channel_id, config in self.configs.items():
            if not config.enabled:
                continue
            limit = config.max_in_flight
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=limit, limit_per_host=limit)
            )
            self.sessions[channel_id] = session
            self.adapters[channel_id] = make_channel(
                channel_id, config, session, public_url=self.public_url
            )
        return self.adapters

    async def close(self) -> None:
        sessions, self.sessions = self.sessions, {}
        self.adapters.clear()
        for session in sessions.values():
            await session.close()
