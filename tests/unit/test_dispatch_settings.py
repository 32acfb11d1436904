"""Per-channel rate limits: the channel's own, else its type's default."""

from typing import cast

from broadcaster.channels.kinds import KINDS
from broadcaster.channels.settings import RateLimit, parse_channel
from broadcaster.config import DeliverySettings
from broadcaster.dispatch import Dispatcher
from broadcaster.events import Events
from broadcaster.metrics import Metrics
from broadcaster.store.base import Store


def test_rate_limits_parse():
    assert RateLimit.parse("30/min") == RateLimit(count=30, period=60)
    assert RateLimit.parse("100/15min") == RateLimit(count=100, period=900)
    assert RateLimit.parse("1/s") == RateLimit(count=1, period=1)


def test_every_type_has_a_default_and_a_file_overrides_it():
    mastodon = parse_channel(
        {"type": "mastodon", "base_url": "https://s.example", "access_token": "t"}
    )
    assert mastodon.effective_rate_limit == RateLimit(count=50, period=60)
    own = parse_channel(
        {
            "type": "mastodon",
            "base_url": "https://s.example",
            "access_token": "t",
            "rate_limit": "5/min",
        }
    )
    assert own.effective_rate_limit == RateLimit(count=5, period=60)
    assert parse_channel({"type": "log"}).effective_rate_limit is None
    defaults = {t: k.rate_limit for t, k in KINDS.items() if k.rate_limit is not None}
    assert {t: RateLimit.parse(rate) for t, rate in defaults.items()}["x"] == RateLimit(
        count=6, period=60
    )
    assert "sms" not in defaults  # Twilio paces each sender itself


def test_the_dispatcher_gives_each_limited_channel_its_own_limiter():
    configs = {
        "toot": parse_channel(
            {"type": "mastodon", "base_url": "https://s.example", "access_token": "t"}
        ),
        "hook": parse_channel({"type": "webhook", "url": "https://h.example", "rate_limit": "2/s"}),
        "log": parse_channel({"type": "log"}),
    }
    no_store = cast(Store, None)  # building limiters touches no store
    dispatcher = Dispatcher(
        no_store, Events(), Metrics(), {}, configs, DeliverySettings(), owner="t"
    )
    limiters = {cid: lane.limiter for cid, lane in dispatcher.lanes.items() if lane.limiter}
    assert set(limiters) == {"toot", "hook"}
    assert limiters["hook"].max_rate == 2
    assert limiters["hook"].time_period == 1
    assert limiters["toot"] is not limiters["hook"]
    # A reload that changes the channel's file gives it a new limit, and keeps its circuit.
    breaker = dispatcher.lane("hook").breaker
    configs["hook"] = parse_channel(
        {"type": "webhook", "url": "https://h.example", "rate_limit": "5/s"}
    )
    assert dispatcher.lane("hook").limiter.max_rate == 5  # type: ignore[union-attr]
    assert dispatcher.lane("hook").breaker is breaker
