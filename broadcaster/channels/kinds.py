"""Every channel kind in one table, keyed by the channel's `type`.

A kind is what the rest of the daemon needs to know about a type of channel: its settings
model, how to make its adapter, how its provider counts a text's length and the default
limit, its default rate limit and template variant, and what it can do (threads, delete,
edit, media, one outcome per recipient). Settings, limits, the registry, rendering,
`broadcaster validate` and the confirm page all read it here.

`_kind` is the table. It matches on `ChannelType` and ends in `assert_never`, so a type
added to `ChannelType` without an entry here fails `mypy` with
`Argument 1 to "assert_never" has incompatible type "Literal['<type>']"`; and
tests/unit/test_kinds.py checks that the table, `ChannelType` and the `ChannelConfig` union
name the same types. Adding a kind: docs/adding-a-channel-type.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, assert_never, get_args

import aiohttp

from broadcaster import limits
from broadcaster.channels.base import Channel
from broadcaster.channels.bluesky import BlueskyAdapter
from broadcaster.channels.cap_feed import CapFeedAdapter
from broadcaster.channels.email import EmailAdapter
from broadcaster.channels.facebook import FacebookAdapter
from broadcaster.channels.instagram import CAPTION_LIMIT, InstagramAdapter, measure_caption
from broadcaster.channels.log import LogAdapter
from broadcaster.channels.mastodon import MastodonAdapter
from broadcaster.channels.settings import (
    BlueskyChannel,
    CapFeedChannel,
    ChannelConfig,
    ChannelType,
    EmailChannel,
    FacebookChannel,
    InstagramChannel,
    LogChannel,
    MastodonChannel,
    SmsChannel,
    TelegramChannel,
    WebhookChannel,
    WebpushChannel,
    WhatsappChannel,
    XChannel,
)
from broadcaster.channels.sms import SmsAdapter
from broadcaster.channels.telegram import TelegramAdapter
from broadcaster.channels.webhook import WebhookAdapter
from broadcaster.channels.webpush import TEXT_BUDGET, WebpushAdapter, measure_payload
from broadcaster.channels.whatsapp import WhatsappAdapter
from broadcaster.channels.x import XAdapter
from broadcaster.limits import Measurement
from broadcaster.store.base import Store

Variant = Literal["short", "long"]
# How a provider counts a text: (text, limit) -> its count against the limit.
Measure = Callable[[str, int | None], Measurement]


@dataclass(frozen=True)
class Needs:
    """What the daemon hands an adapter beside its settings."""

    session: aiohttp.ClientSession  # the channel's own connection pool
    public_url: str  # the daemon's http.public_url (media, hooks, the warning page)
    store: Store | None = None  # for kinds whose recipients live in the store (Web Push)


# (channel id, its settings, what the daemon hands it) -> adapter.
AdapterFactory = Callable[[str, Any, Needs], Channel]
# What a text over the limit means, where nothing more particular is known.
REFUSED = "the provider refuses a longer post"


@dataclass(frozen=True)
class Capabilities:
    threads: bool  # a later stage posts under the incident's first post (reply_to)
    delete: bool  # a retraction removes the original post
    edit: bool = False  # a post can be changed in place
    media: bool = False  # a post can carry an image
    per_recipient: bool = False  # one request per recipient, each with its own outcome
    # Someone reads it: a duty officer's confirm link reaches a person this way.
    reaches_people: bool = True
    # A public post that stays up unless a person deletes it: when a retraction cannot
    # delete it (Instagram's API cannot; another's delete failed), a manual task says
    # "delete post <link> by hand". Not for messages nobody can take back (SMS, e-mail).
    deleted_by_hand: bool = False


@dataclass(frozen=True)
class Kind:
    channel_type: ChannelType
    settings: type[ChannelConfig]
    adapter: AdapterFactory
    capabilities: Capabilities
    measure: Measure = limits.measure_characters
    length_limit: int | None = None  # in measure's unit; None: no practical limit
    # Requests per account when the channel file sets none: a little under the provider's
    # published limit, so bursts of alerts and corrections are not refused.
    rate_limit: str | None = None
    variant: Variant = "long"  # the template a channel takes unless its file says `template`
    # The provider's limit covers the title too (Telegram posts it in bold above the text).
    counts_title: bool = False
    over_limit: str = REFUSED  # what a text over the limit means on this kind

    def measure_message(self, title: str, text: str, limit: int | None = None) -> Measurement:
        """A message's length as the provider counts it, against `limit` (the channel's
        own) or the kind's default."""
        counted = f"{title}\n\n{text}" if self.counts_title else text
        return self.measure(counted, self.length_limit if limit is None else limit)


def _kind(name: ChannelType) -> Kind:
    """The table: one entry per channel type (CHANNELS.md has the providers' figures)."""
    match name:
        case "mastodon":
            return Kind(
                name,
                MastodonChannel,
                lambda cid, config, needs: MastodonAdapter(cid, config, needs.session),
                Capabilities(threads=True, delete=True, deleted_by_hand=True),
                measure=limits.measure_mastodon,
                length_limit=500,  # per instance: /api/v2/instance ...statuses.max_characters
                rate_limit="50/min",  # 300 requests per 5 min per account
                variant="short",
            )
        case "bluesky":
            return Kind(
                name,
                BlueskyChannel,
                lambda cid, config, needs: BlueskyAdapter(cid, config, needs.session),
                Capabilities(threads=True, delete=True, deleted_by_hand=True),
                measure=limits.measure_bluesky,
                length_limit=limits.BLUESKY_MAX_GRAPHEMES,  # and BLUESKY_MAX_BYTES bytes
                rate_limit="25/min",  # 5000 write points per hour, a post costs 3
                variant="short",
            )
        case "telegram":
            return Kind(
                name,
                TelegramChannel,
                lambda cid, config, needs: TelegramAdapter(cid, config, needs.session),
                Capabilities(threads=True, delete=True, deleted_by_hand=True),
                measure=limits.measure_telegram,
                length_limit=4096,  # UTF-16 units (conservative)
                rate_limit="20/min",  # at most 20 messages per minute to one group or channel
                counts_title=True,
            )
        case "facebook":
            return Kind(
                name,
                FacebookChannel,
                lambda cid, config, needs: FacebookAdapter(
                    cid, config, needs.session, public_url=needs.public_url
                ),
                # media: a photo post of the share-pic card where the file says `media: card`
                Capabilities(threads=True, delete=True, media=True, deleted_by_hand=True),
                length_limit=63206,  # characters; never the binding constraint
                rate_limit="60/min",  # Page BUC quota; no fixed public figure
            )
        case "x":
            return Kind(
                name,
                XChannel,
                lambda cid, config, needs: XAdapter(cid, config, needs.session),
                Capabilities(threads=True, delete=True, deleted_by_hand=True),
                measure=limits.measure_x,
                length_limit=limits.X_MAX_WEIGHTED_LENGTH,
                rate_limit="6/min",  # POST /2/tweets: 100 per 15 min per user
                variant="short",
                over_limit="X refuses a longer post",
            )
        case "email":
            return Kind(
                name,
                EmailChannel,
                lambda cid, config, needs: EmailAdapter(cid, config, needs.session),
                Capabilities(threads=True, delete=False, per_recipient=True),
            )
        case "sms":
            return Kind(
                name,
                SmsChannel,
                lambda cid, config, needs: SmsAdapter(
                    cid, config, needs.session, public_url=needs.public_url
                ),
                Capabilities(threads=False, delete=False, per_recipient=True),
                measure=limits.measure_sms,
                length_limit=3,  # segments
                # No rate limit by default (it would count per recipient): Twilio queues and
                # paces each sender itself (SmsChannel.messages_per_second paces here).
                variant="short",
                over_limit="each extra segment is paid",
            )
        case "webhook":
            return Kind(
                name,
                WebhookChannel,
                lambda cid, config, needs: WebhookAdapter(cid, config, needs.session),
                Capabilities(threads=True, delete=True),
            )
        case "cap_feed":
            return Kind(
                name,
                CapFeedChannel,
                lambda cid, _config, needs: CapFeedAdapter(cid, needs.public_url),
                # CAP threads by <references>, which the document carries itself.
                Capabilities(threads=False, delete=True, reaches_people=False),
            )
        case "log":
            return Kind(
                name,
                LogChannel,
                lambda cid, _config, _needs: LogAdapter(cid),
                Capabilities(threads=True, delete=True, reaches_people=False),
            )
        case "webpush":
            return Kind(
                name,
                WebpushChannel,
                lambda cid, config, needs: WebpushAdapter(
                    cid, config, needs.session, public_url=needs.public_url, store=needs.store
                ),
                # No threads: a follow-up replaces the incident's earlier push (Topic while
                # queued, the notification's tag on screen). A shown one cannot be deleted.
                Capabilities(threads=False, delete=False, per_recipient=True),
                measure=measure_payload,
                length_limit=TEXT_BUDGET,  # UTF-8 bytes of title and text
                # No rate limit by default (it would count per subscription); the push
                # services take thousands a second (messages_per_second paces here).
                variant="short",
                counts_title=True,
                over_limit="the push is shortened to fit 4 KB (it ends in …)",
            )
        case "whatsapp":
            return Kind(
                name,
                WhatsappChannel,
                lambda cid, config, needs: WhatsappAdapter(cid, config, needs.session),
                # Threads: a follow-up quotes each subscriber's earlier message (context).
                Capabilities(threads=True, delete=False, per_recipient=True),
                length_limit=1024,  # characters of a template body, filled in (132005)
                # No rate limit by default (it would count per subscriber): the channel's
                # messages_per_second (80, Meta's default throughput) paces it.
                counts_title=True,  # the title is a body parameter too
                # A long text fills a template body past Meta's 1 024 characters.
                variant="short",
                over_limit="Meta refuses a template body over 1,024 characters (132005)",
            )
        case "instagram":
            return Kind(
                name,
                InstagramChannel,
                lambda cid, config, needs: InstagramAdapter(
                    cid, config, needs.session, public_url=needs.public_url
                ),
                # threads: a later stage is a post of its own, with a comment under the
                # incident's first post pointing to it. No delete through the API.
                Capabilities(threads=True, delete=False, media=True, deleted_by_hand=True),
                measure=measure_caption,  # characters, and at most 5 hashtags
                length_limit=CAPTION_LIMIT,
                rate_limit="10/min",  # 50 posts per 24 h are the real limit (the quota)
                counts_title=True,  # the caption is the title, a blank line, the text
                over_limit="Instagram refuses a longer caption (or more than 5 hashtags)",
            )
        case _:
            # mypy names here every ChannelType without an entry above.
            assert_never(name)


KINDS: dict[str, Kind] = {name: _kind(name) for name in get_args(ChannelType)}


def kind(channel_type: str) -> Kind:
    """The kind of a channel type; a clear error for one that does not exist."""
    found = KINDS.get(channel_type)
    if found is None:
        known = ", ".join(KINDS)
        raise ValueError(f"unknown channel type {channel_type!r} (known: {known})")
    return found
