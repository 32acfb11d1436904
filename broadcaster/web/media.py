"""GET /media/{alert_id}/{channel_id}.jpg: the share-pic card that an Instagram channel
(or a Facebook channel with `media: card`) posts, for Meta's crawler to fetch.

Public, no token: Meta fetches it from the internet (so `http.public_url` must be
reachable there, and a robots.txt in front of the daemon must allow /media/; the daemon
serves none). Served only for an alert that was released (sending, sent, partially
failed, failed, or retracted after its release) to a channel that posts cards and has a
delivery of that alert that went out or is going out; anything else is 404, so an alert
awaiting its duty officer never leaks. Rendered on demand and kept in a small in-memory
cache; the same alert gives the same bytes (sharepic.py), with a strong ETag.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict

from aiohttp import web

from broadcaster.channels.settings import ChannelConfig, FacebookChannel, InstagramChannel
from broadcaster.config import drill_word
from broadcaster.deployment import Deployment
from broadcaster.models import RELEASED_STATES, Alert, Delivery
from broadcaster.sharepic import Card, card_for, render_card, sender_name
from broadcaster.web.api import STATE

CACHE_SIZE = 64  # cards kept (about 200 KB each)
# Deliveries whose card Meta may fetch: being sent, or sent (and retracted since).
SERVED_DELIVERY_STATES = frozenset({"pending", "sending", "delivered", "retracted"})
CACHE_CONTROL = "public, max-age=86400"


def posts_card(config: ChannelConfig | None) -> bool:
    """Whether a channel's posts carry the card."""
    if isinstance(config, InstagramChannel):
        return True
    return isinstance(config, FacebookChannel) and config.media == "card"


def released(alert: Alert) -> bool:
    return alert.state in RELEASED_STATES or (
        alert.state == "retracted" and alert.released_at is not None
    )


def carries(delivery: Delivery) -> bool:
    if delivery.state == "retracted":
        return delivery.delivered_at is not None  # went out, then was retracted
    return delivery.state in SERVED_DELIVERY_STATES


class CardCache:
    """Rendered cards by what they show, the least recently served dropped first."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self.cards: OrderedDict[Card, bytes] = OrderedDict()
        self.renders = 0  # how often a card was drawn (tests)

    async def get(self, card: Card) -> bytes:
        found = self.cards.get(card)
        if found is not None:
            self.cards.move_to_end(card)
            return found
        self.renders += 1
        # Drawing takes tens of milliseconds: not on the event loop, which sends.
        data = await asyncio.to_thread(render_card, card)
        self.cards[card] = data
        while len(self.cards) > self.size:
            self.cards.popitem(last=False)
        return data


CARDS = web.AppKey("cards", CardCache)


def add_media_routes(app: web.Application, deployment: Deployment) -> None:
    """Serve cards from `app[STATE].store`; the deployment is read at each request (its
    channels, drill prefix and cap.sender_name as a reload left them)."""
    app[CARDS] = cache = CardCache()

    async def card(request: web.Request) -> web.Response:
        alert_id = request.match_info["alert_id"]
        channel_id = request.match_info["channel_id"]
        store = request.app[STATE].store
        alert = await store.get_alert(alert_id)
        if alert is None or not released(alert) or not alert.texts:
            return _not_found()
        if not posts_card(deployment.channels.get(channel_id)):
            return _not_found()
        delivery = next(
            (d for d in await store.get_deliveries(alert_id) if d.channel_id == channel_id), None
        )
        if delivery is None or not carries(delivery):
            return _not_found()
        settings = deployment.settings
        shown = card_for(
            alert,
            delivery.language,
            sender=sender_name(settings.cap.sender_name, settings.http.public_url),
            drill_prefix=drill_word(settings.drill.prefix, delivery.language),
        )
        body = await cache.get(shown)
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        headers = {"Cache-Control": CACHE_CONTROL, "ETag": etag}
        if etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=headers)
        return web.Response(body=body, content_type="image/jpeg", headers=headers)

    app.router.add_get("/media/{alert_id}/{channel_id}.jpg", card)


def _not_found() -> web.Response:
    # Never cached: the same URL serves the card once its alert is released.
    return web.json_response(
        {"error": "not_found", "detail": "no such card"},
        status=404,
        headers={"Cache-Control": "no-store"},
    )
