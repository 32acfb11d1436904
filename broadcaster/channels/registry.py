"""The adapter for a channel's settings: one place that knows which class serves which type."""

from __future__ import annotations

import aiohttp

from broadcaster.channels.base import Channel
from broadcaster.channels.log import LogAdapter
from broadcaster.channels.settings import ChannelConfig, LogChannel, WebhookChannel
from broadcaster.channels.webhook import WebhookAdapter


def make_channel(channel_id: str, config: ChannelConfig, session: aiohttp.ClientSession) -> Channel:
    """The adapter for one channels/<id>.yaml; NotImplementedError for types without one.

    `cap_feed` never gets an adapter: the daemon serves the feed itself.
    """
    if isinstance(config, LogChannel):
        return LogAdapter(channel_id)
    if isinstance(config, WebhookChannel):
        return WebhookAdapter(channel_id, config, session)
    raise NotImplementedError(f"channel type {config.channel_type} has no adapter yet")
