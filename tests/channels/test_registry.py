"""Which adapter serves which channel type."""

from __future__ import annotations

import aiohttp
import pytest

from broadcaster.channels.base import Channel
from broadcaster.channels.log import LogAdapter
from broadcaster.channels.registry import make_channel
from broadcaster.channels.settings import parse_channel
from broadcaster.channels.webhook import WebhookAdapter


async def test_log_and_webhook_have_adapters(session: aiohttp.ClientSession) -> None:
    log: Channel = make_channel("trial", parse_channel({"type": "log"}), session)
    hook: Channel = make_channel(
        "hook", parse_channel({"type": "webhook", "url": "https://hooks.example/in"}), session
    )

    assert isinstance(log, LogAdapter)
    assert log.channel_id == "trial"
    assert isinstance(hook, WebhookAdapter)
    assert hook.channel_id == "hook"


async def test_other_types_have_none_yet(session: aiohttp.ClientSession) -> None:
    config = parse_channel(
        {"type": "mastodon", "base_url": "https://social.example", "access_token": "t"}
    )

    with pytest.raises(NotImplementedError, match="channel type mastodon has no adapter yet"):
        make_channel("toot", config, session)
