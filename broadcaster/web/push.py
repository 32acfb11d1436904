"""Web Push on the warning page: the key, subscribing and unsubscribing, the service worker.

Public, no token (the page's visitors use them):

- `GET /warnings/push/key`: `{"key": <application server key>}` of the deployment's
  webpush channel (the first enabled one by id); 404 when there is none.
- `POST /warnings/subscriptions`: the browser's `PushSubscription.toJSON()`, plus
  `language` and `drill` (true when made on the page's drill view: a test device, which
  gets drills and never live warnings). Checked: JSON of at most 4 KiB; `endpoint` an
  https URL on one of the channel's `push_services` (http only to a loopback address,
  for trials with a local push service, and only when such an address is listed);
  `keys.p256dh` base64url of a 65-byte uncompressed P-256 point, `keys.auth` of 16
  bytes. The id is derived from the endpoint, so subscribing twice keeps one. 201.
- `DELETE /warnings/subscriptions`: `{"endpoint": ...}`; 204, or 404 when unknown.
- `GET /warnings/sw.js`: the service worker (`Service-Worker-Allowed: /warnings`).

Bounded against abuse: the channel's `max_subscriptions` (then 503 with a clear error),
at most SUBSCRIBE_RATE subscription changes a second across all visitors (then 429 with
Retry-After: a page behind a proxy shows one address for everyone, so not per address),
a browser's POST or DELETE must come from our own pages (Origin / Sec-Fetch-Site), and
the endpoint must be a known push service (the daemon POSTs to it later: a stranger must
not make it POST elsewhere).

The page includes `push_subscribe.html` (with `language` and `drill` in its context);
the texts come from `PUSH_TEXTS` in web/i18n.py, a global of the page's environment
(web/warnings.py's PAGES). `push.js` (under /static) does the subscribing.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import structlog
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec

from broadcaster.channels.settings import ChannelConfig, WebpushChannel
from broadcaster.channels.webpush import host_allowed, subscription_id
from broadcaster.models import PushSubscription
from broadcaster.receipts import is_loopback
from broadcaster.store.base import Store
from broadcaster.vapid import b64url_decode, load_private_key, public_key
from broadcaster.web.api import STATE
from broadcaster.web.guard import read_body, same_origin

log = structlog.get_logger()

STATIC = Path(__file__).parent / "static"
BODY_LIMIT = 4096  # bytes of a subscription's JSON (a real one is about 400)
ENDPOINT_LIMIT = 1024  # characters (FCM's are about 200)
SUBSCRIBE_RATE = 50  # subscription changes per second, all visitors together
COUNT_FOR = 60.0  # seconds the number of subscriptions is taken as known
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,3}$")
SCOPE = "/warnings"


def push_channel(channels: Mapping[str, ChannelConfig]) -> tuple[str, WebpushChannel] | None:
    """The deployment's webpush channel: the first enabled one by id."""
    for channel_id in sorted(channels):
        config = channels[channel_id]
        if isinstance(config, WebpushChannel) and config.enabled:
            return channel_id, config
    return None


class Bucket:
    """At most `rate` a second on average, `rate` at once: refused, never waited for."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.level = rate
        self.clock = clock
        self.at = clock()

    def take(self) -> bool:
        now = self.clock()
        self.level = min(self.rate, self.level + max(0.0, now - self.at) * self.rate)
        self.at = now
        if self.level < 1:
            return False
        self.level -= 1
        return True


class Refused(Exception):
    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail


def check_endpoint(endpoint: Any, config: WebpushChannel) -> str:
    if not isinstance(endpoint, str) or not endpoint:
        raise Refused(400, "invalid_subscription", "endpoint is missing")
    if len(endpoint) > ENDPOINT_LIMIT:
        raise Refused(400, "invalid_subscription", f"endpoint: at most {ENDPOINT_LIMIT} characters")
    try:
        parts = urlsplit(endpoint)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError:
        raise Refused(400, "invalid_subscription", "endpoint is not a URL") from None
    if parts.scheme != "https" and not (parts.scheme == "http" and is_loopback(endpoint)):
        raise Refused(400, "invalid_subscription", "endpoint must be an https:// URL")
    if parts.username or parts.password or not host:
        raise Refused(400, "invalid_subscription", "endpoint must be an https:// URL with a host")
    if not host_allowed(host, config.push_services):
        raise Refused(
            400,
            "unknown_push_service",
            f"endpoint's host {host} is not a push service this channel pushes to",
        )
    return endpoint


def check_keys(keys: Any) -> tuple[str, str]:
    if not isinstance(keys, dict):
        raise Refused(400, "invalid_subscription", "keys (p256dh and auth) are missing")
    p256dh, auth = keys.get("p256dh"), keys.get("auth")
    if not isinstance(p256dh, str) or not _point(p256dh):
        raise Refused(
            400,
            "invalid_subscription",
            "keys.p256dh must be base64url of a 65-byte uncompressed P-256 point",
        )
    if not isinstance(auth, str) or len(_bytes(auth)) != 16:
        raise Refused(400, "invalid_subscription", "keys.auth must be base64url of 16 bytes")
    return p256dh, auth


def _bytes(text: str) -> bytes:
    try:
        return b64url_decode(text)
    except ValueError:
        return b""


def _point(text: str) -> bool:
    """Base64url of an uncompressed point on P-256 (the browser's ECDH public key)."""
    point = _bytes(text)
    if len(point) != 65 or point[0] != 4:
        return False
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        return False
    return True


def parse_subscription(data: Any, config: WebpushChannel) -> PushSubscription:
    """The browser's PushSubscription.toJSON() with `language` and `drill`, checked."""
    if not isinstance(data, dict):
        raise Refused(400, "invalid_subscription", "expected a JSON object")
    endpoint = check_endpoint(data.get("endpoint"), config)
    p256dh, auth = check_keys(data.get("keys"))
    language = data.get("language")
    if language is not None and (not isinstance(language, str) or not _LANGUAGE.match(language)):
        raise Refused(400, "invalid_subscription", "language must be a language tag such as de")
    drill = data.get("drill", False)
    if not isinstance(drill, bool):
        raise Refused(400, "invalid_subscription", "drill must be true or false")
    return PushSubscription(
        id=subscription_id(endpoint),
        endpoint=endpoint,
        p256dh=p256dh,
        auth=auth,
        language=language.lower() if language else None,
        drill=drill,
    )


def _json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response(
        data,
        status=status,
        dumps=lambda d: json.dumps(d, ensure_ascii=False),
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


class PushRoutes:
    def __init__(self, channels: Mapping[str, ChannelConfig], public_url: str) -> None:
        self.channels = channels  # the deployment's, read at each request (a reload)
        self.public_url = public_url
        self.changes = Bucket(SUBSCRIBE_RATE)
        self.count: int | None = None
        self.counted_at = 0.0
        self.ids: set[str] | None = None  # those counted, kept only while at the cap
        self.keys: dict[str, str] = {}  # private key -> public key (derived once)
        self.lock = asyncio.Lock()

    def channel(self) -> WebpushChannel:
        found = push_channel(self.channels)
        if found is None:
            raise Refused(404, "no_push", "this warning service offers no push notifications")
        return found[1]

    def application_server_key(self, config: WebpushChannel) -> str:
        known = self.keys.get(config.vapid_private_key)
        if known is None:
            known = public_key(load_private_key(config.vapid_private_key))
            self.keys = {config.vapid_private_key: known}
        return known

    async def key(self, request: web.Request) -> web.Response:
        try:
            config = self.channel()
        except Refused as refused:
            return self.refusal(refused)
        return _json({"key": self.application_server_key(config)})

    async def subscribe(self, request: web.Request) -> web.Response:
        try:
            config = self.channel()
            data = await self.body(request)
            subscription = parse_subscription(data, config)
            store = request.app[STATE].store
            await self.admit(store, config, subscription.id)
            await store.save_subscription(subscription)
        except Refused as refused:
            return self.refusal(refused)
        log.info("push_subscribed", subscription=subscription.id, drill=subscription.drill)
        return _json({"id": subscription.id, "drill": subscription.drill}, 201)

    async def unsubscribe(self, request: web.Request) -> web.Response:
        try:
            self.channel()
            data = await self.body(request)
            endpoint = data.get("endpoint") if isinstance(data, dict) else None
            if not isinstance(endpoint, str) or not endpoint:
                raise Refused(400, "invalid_subscription", "endpoint is missing")
            self.rate()
        except Refused as refused:
            return self.refusal(refused)
        removed = await request.app[STATE].store.remove_subscription(subscription_id(endpoint))
        if not removed:
            return _json({"error": "not_found", "detail": "no such subscription"}, 404)
        if self.count is not None:
            self.count -= 1
        if self.ids is not None:
            self.ids.discard(subscription_id(endpoint))
        log.info("push_unsubscribed", subscription=subscription_id(endpoint))
        return web.Response(status=204, headers={"Cache-Control": "no-store"})

    async def worker(self, request: web.Request) -> web.Response:
        return web.Response(
            body=(STATIC / "sw.js").read_bytes(),
            content_type="text/javascript",
            charset="utf-8",
            headers={
                "Service-Worker-Allowed": SCOPE,
                "Cache-Control": "no-cache",
                "Content-Security-Policy": "default-src 'self'",
            },
        )

    # -- the checks --------------------------------------------------------------------

    async def body(self, request: web.Request) -> Any:
        if not same_origin(request, self.public_url):
            raise Refused(403, "foreign_origin", "send this from the warning page itself")
        if request.content_type != "application/json":
            raise Refused(415, "invalid_subscription", "send JSON (Content-Type: application/json)")
        raw = await read_body(request, BODY_LIMIT)
        if raw is None:
            raise Refused(413, "too_large", f"at most {BODY_LIMIT} bytes")
        try:
            return json.loads(raw)
        except ValueError:
            raise Refused(400, "invalid_json", "the body is not JSON") from None

    def rate(self) -> None:
        if not self.changes.take():
            raise Refused(429, "busy", "too many subscriptions at once; try again in a moment")

    async def admit(self, store: Store, config: WebpushChannel, new_id: str) -> None:
        """Within the rate and below `max_subscriptions`. The store is read at most every
        COUNT_FOR seconds (a flood of attempts at the cap must not read the whole table
        each time), the count kept in step here in between. At the cap the ids read are
        kept too, so a renewal (an id already stored) is still let in without a read."""
        self.rate()
        cap = config.max_subscriptions
        async with self.lock:
            now = time.monotonic()
            stale = self.count is None or now - self.counted_at > COUNT_FOR
            if stale or (self.count is not None and self.count >= cap and self.ids is None):
                ids = {s.id for s in await store.subscriptions()}
                self.count, self.counted_at = len(ids), now
                self.ids = ids if len(ids) >= cap else None
            assert self.count is not None
            if self.ids is not None and new_id in self.ids:
                return  # a renewal: counted already
            if self.count >= cap:
                raise Refused(
                    503,
                    "subscriptions_full",
                    "this warning service takes no more push subscriptions "
                    f"({cap} reached); follow the warning page instead",
                )
            self.count += 1  # a resubscription counts once too many until the recount
            if self.ids is not None:
                self.ids.add(new_id)

    @staticmethod
    def refusal(refused: Refused) -> web.Response:
        headers = {"Retry-After": "1"} if refused.status == 429 else None
        return _json({"error": refused.error, "detail": refused.detail}, refused.status, headers)


PUSH = web.AppKey("push", PushRoutes)


def add_push_routes(
    app: web.Application, channels: Mapping[str, ChannelConfig], public_url: str
) -> None:
    """The routes above; `channels` is the deployment's mapping, read at each request."""
    routes = app[PUSH] = PushRoutes(channels, public_url)
    app.router.add_get("/warnings/push/key", routes.key)
    app.router.add_post("/warnings/subscriptions", routes.subscribe)
    app.router.add_delete("/warnings/subscriptions", routes.unsubscribe)
    app.router.add_get("/warnings/sw.js", routes.worker)
