"""Which adapter serves which channel type."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from broadcaster.channels.bluesky import BlueskyAdapter
from broadcaster.channels.cap_feed import CapFeedAdapter
from broadcaster.channels.email import EmailAdapter
from broadcaster.channels.facebook import FacebookAdapter
from broadcaster.channels.log import LogAdapter
from broadcaster.channels.mastodon import MastodonAdapter
from broadcaster.channels.registry import make_channel
from broadcaster.channels.settings import parse_channel
from broadcaster.channels.sms import SmsAdapter
from broadcaster.channels.telegram import TelegramAdapter
from broadcaster.channels.webhook import WebhookAdapter
from broadcaster.channels.x import XAdapter

CONFIGS: list[tuple[dict[str, Any], type]] = [
    ({"type": "log"}, LogAdapter),
    ({"type": "webhook", "url": "https://hooks.example/in"}, WebhookAdapter),
    (
        {"type": "email", "host": "smtp.example", "from": "a@example.org", "to": ["b@example.org"]},
        EmailAdapter,
    ),
    (
        {
            "type": "sms",
            "account_sid": "AC1",
            "auth_token": "t",
            "from": "+4915100000000",
            "to": ["+4915100000001"],
        },
        SmsAdapter,
    ),
    ({"type": "cap_feed"}, CapFeedAdapter),
    (
        {"type": "mastodon", "base_url": "https://social.example", "access_token": "t"},
        MastodonAdapter,
    ),
    ({"type": "bluesky", "identifier": "city.example", "app_password": "p"}, BlueskyAdapter),
    ({"type": "telegram", "bot_token": "1:x", "chat_id": "@city"}, TelegramAdapter),
    ({"type": "facebook", "page_id": "1", "page_access_token": "t"}, FacebookAdapter),
    (
        {"type": "x", "api_key": "k", "api_secret": "s", "access_token": "a", "access_secret": "b"},
        XAdapter,
    ),
]


@pytest.mark.parametrize(("config", "adapter"), CONFIGS)
async def test_each_type_gets_its_adapter(
    session: aiohttp.ClientSession, config: dict[str, Any], adapter: type
) -> None:
    channel = make_channel("c1", parse_channel(config), session, public_url="https://a.example")
    assert isinstance(channel, adapter)
    assert channel.channel_id == "c1"
