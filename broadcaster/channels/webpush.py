"""Web Push to the browsers subscribed on the warning page (contract section 5, `type: webpush`).

One request per subscription (RFC 8030 section 5; CHANNELS.md section 10):

    POST <the subscription's endpoint>
    TTL: <seconds>                      the channel's `ttl` (24h by default; never 0)
    Urgency: high | normal              high for live warnings, normal for drills
    Topic: <32 base64url characters>    from the incident: a later push of the incident
                                        replaces one still queued for an offline phone
    Authorization: vapid t=<JWT ES256>, k=<application server key>   (RFC 8292)
    Content-Encoding: aes128gcm         (RFC 8291 / RFC 8188)
    <the payload, encrypted for the subscription's p256dh and auth>

The payload is JSON: `title`, `text`, `alert_id`, `incident`, `kind`, `mode`,
`language`, `tag` (= the Topic; the service worker shows the notification with this tag,
so a follow-up or a retraction replaces it on screen) and `url`, the warning page
(`<public_url>/warnings`, `?drill=1` for a drill). Push services must take 4,096 bytes
encrypted, 3,993 of plaintext: a longer text is shortened (ending in "…").

The encryption is pywebpush's (`WebPusher.encode`, http_ece underneath); the request is
this module's own, through HttpAdapter, so timeouts and the classification are ours.
The VAPID header is signed once per push service origin and kept (broadcaster/vapid.py).

Who gets it: a live alert (and its retraction) goes to every subscription made on the
live page (`drill` false); a drill only to those made on the page's drill view (`drill`
true: test devices). A drill reaches this adapter only when the channel is
`drill: send`; else the dispatcher ends it `dry_run` and nothing is pushed.

Answers, per subscription:

- 201 (also 200, 202): accepted by the push service. That is what `delivered` means: the
  push service holds it for `ttl`; whether the phone showed it is not reported back;
- 404, 410: the subscription is gone (unsubscribed, expired): it is deleted from the
  store and no longer counted, and it does not fail the delivery (`data["gone"]`);
- 429: transient, with Retry-After; no further push to that push service in this attempt;
- 5xx, 408, 425: transient for that subscription; the others are still pushed;
- no answer (timeout, refused connection): transient; no further push to that push
  service in this attempt (it is unreachable);
- 400, 401, 403: the VAPID key, subject or encryption is refused: permanent for that
  subscription (it may have been made with another application server key, by anyone:
  the page is public). When the same push service accepted another push in the attempt,
  our key is fine there and the subscription itself is broken: it is deleted as gone,
  so a stranger's subscription does not leave every live delivery failed. Only when a
  push service's first REFUSALS_TO_STOP answers in this attempt are all such refusals,
  none accepted, is our key or subject taken as wrong there: its remaining
  subscriptions get the error without a request (10,000 would get the same answer).
  The order is shuffled per attempt, so subscriptions made first by a stranger cannot
  be the first answers;
- 413: the payload is too large for that push service: permanent, and no further push
  to that push service in this attempt (its every subscription gets the same payload);
- any other status: permanent for that subscription.

Progress per subscription (its id) with RecipientProgress and Checkpoints, as SMS does:
a retry or a takeover after a crash pushes only to those not reached yet. Web Push has
no idempotency key and no way to ask whether a push arrived: a push whose answer was
lost (a timeout, a crash after the request) is pushed again; the notification has the
same tag, so the phone shows one, replaced.

Threads: none (`can_thread` False); a follow-up of the incident replaces the earlier
one by Topic (queued) and tag (on screen). Delete: impossible (`can_delete` False), a
shown notification cannot be recalled; a retraction is pushed as a correction with the
same Topic and tag, so it replaces the warning.

Sources: RFC 8030 (5, 5.2 TTL, 5.3 Urgency, 5.4 Topic, 6.2 413), RFC 8291, RFC 8292,
pywebpush 2.5 (`WebPusher.encode`), web.dev/articles/push-notifications-web-push-protocol.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import random
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import structlog
from aiolimiter import AsyncLimiter
from pywebpush import WebPusher

from broadcaster.channels.base import (
    ChannelError,
    OutgoingMessage,
    PermanentError,
    TransientError,
)
from broadcaster.channels.http import Answer, HttpAdapter, excerpt
from broadcaster.channels.recipients import Checkpoints, RecipientProgress, RecipientRun
from broadcaster.channels.settings import WebpushChannel
from broadcaster.limits import Measurement, utf8_length
from broadcaster.models import PushSubscription, Receipt
from broadcaster.store.base import Store
from broadcaster.vapid import VapidSigner
from broadcaster.warnings import page_url
from broadcaster.web.guard import origin_of

log = structlog.get_logger()

USER_AGENT = "broadcaster-webpush/1"
# RFC 8291 section 4 with one record: 4,096 bytes of body = 86 bytes of header (salt,
# record size, key id length, the 65-byte key), the plaintext, 1 delimiter, 16 tag.
MAX_BODY = 4096
MAX_PLAINTEXT = MAX_BODY - 86 - 1 - 16
TOPIC_LENGTH = 32  # RFC 8030 5.4: at most 32 characters of the base64url alphabet
GONE = frozenset({404, 410})
REFUSED = frozenset({400, 401, 403})  # the key, subject or encryption refused
# A push service's refusals in this attempt, before it accepted any push, after which
# our configuration (not one subscription's key) is taken as wrong there. Enough that a
# few subscriptions made with another key (the page is public) never stop the rest;
# few against the thousands of requests a wrong key would waste.
REFUSALS_TO_STOP = 20
ELLIPSIS = "…"
# UTF-8 bytes of title and text that fit with the payload's other fields (ids, the page's
# URL, the tag: a few hundred bytes); beyond it the text is shortened.
TEXT_BUDGET = 3400


def measure_payload(text: str, limit: int | None) -> Measurement:
    return Measurement(utf8_length(text), limit, "UTF-8 bytes")


def topic(incident: str, mode: str) -> str:
    """The Topic and tag of an incident's pushes: the same for its every stage and its
    retraction, never the same for a drill and a live incident."""
    digest = hashlib.sha256(f"{mode}:{incident}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")[:TOPIC_LENGTH]


def subscription_id(endpoint: str) -> str:
    """A subscription's id: from its endpoint, so the same browser subscribing twice is one."""
    return hashlib.sha256(endpoint.encode("utf-8")).hexdigest()[:32]


def host_allowed(host: str, services: list[str]) -> bool:
    """Whether an endpoint's host is one of `services` (`*.example.com`: its subdomains)."""
    host = host.lower().rstrip(".")
    for entry in services:
        if entry.startswith("*."):
            if host.endswith(entry[1:]):
                return True
        elif host == entry:
            return True
    return False


def payload(message: OutgoingMessage, public_url: str) -> bytes:
    """The push's JSON, at most MAX_PLAINTEXT bytes: the text is shortened if need be."""
    data: dict[str, Any] = {
        "title": message.title,
        "text": message.text,
        "alert_id": message.alert_id,
        "incident": message.incident,
        "kind": message.kind,
        "mode": message.mode,
        "language": message.language,
        "tag": topic(message.incident, message.mode),
        "url": page_url(public_url, message.mode == "drill"),
    }

    def encoded(text: str) -> bytes:
        return json.dumps({**data, "text": text}, ensure_ascii=False).encode("utf-8")

    whole = encoded(message.text)
    if len(whole) <= MAX_PLAINTEXT:
        return whole
    # The longest prefix that fits, by bisection on characters.
    low, high = 0, len(message.text)
    while low < high:
        middle = (low + high + 1) // 2
        if len(encoded(message.text[:middle].rstrip() + ELLIPSIS)) <= MAX_PLAINTEXT:
            low = middle
        else:
            high = middle - 1
    return encoded(message.text[:low].rstrip() + ELLIPSIS)


def encrypt(subscription: PushSubscription, plaintext: bytes) -> bytes:
    """aes128gcm for the subscription's keys (pywebpush's encoding, RFC 8291)."""
    info = {
        "endpoint": subscription.endpoint,
        "keys": {"p256dh": subscription.p256dh, "auth": subscription.auth},
    }
    body: bytes = WebPusher(info).encode(plaintext, "aes128gcm")["body"]
    return body


@dataclass(frozen=True)
class _Answer:
    """One subscription's outcome."""

    error: ChannelError | None = None
    gone: int | None = None  # 404 or 410: the subscription no longer exists
    refused: int | None = None  # 400, 401, 403 (the status): towards REFUSALS_TO_STOP
    stop_origin: bool = False  # the error concerns every subscription at this push service


class WebpushAdapter(HttpAdapter[WebpushChannel]):
    """One VAPID identity pushing to the warning page's subscribers (`type: webpush`)."""

    service = "webpush"
    can_thread: bool = False  # a follow-up replaces the earlier push by Topic and tag
    can_delete: bool = False  # a shown notification cannot be recalled
    checkpoint_every: int | None = None  # subscriptions per checkpoint (None: Checkpoints')
    checkpoint_interval: float | None = None  # seconds

    def __init__(
        self,
        channel_id: str,
        config: WebpushChannel,
        session: aiohttp.ClientSession,
        *,
        public_url: str,
        store: Store | None,
    ) -> None:
        self.public_url = public_url
        self.store = store
        super().__init__(channel_id, config, session)

    def setup(self) -> None:
        self.signer = VapidSigner(self._config.vapid_private_key, self._config.vapid_subject)
        self.slots = asyncio.Semaphore(self._config.max_in_flight)
        self.pacers: list[AsyncLimiter] = []
        if self._config.rate_limit is not None:
            limit = self._config.rate_limit
            self.pacers.append(AsyncLimiter(limit.count, limit.period))
        if self._config.messages_per_second is not None:
            rate = self._config.messages_per_second
            self.pacers.append(AsyncLimiter(rate, 1) if rate >= 1 else AsyncLimiter(1, 1 / rate))

    def secrets(self) -> tuple[tuple[str, str], ...]:
        return ((self._config.vapid_private_key, "<vapid_private_key>"),)

    async def send(self, message: OutgoingMessage) -> Receipt:
        if message.kind not in ("alert", "retraction"):
            # Anyone can subscribe: a confirm link or a refusal must never go there.
            raise PermanentError(f"{self._service}: only alerts and retractions are pushed")
        if self.store is None:
            raise PermanentError(f"{self._service}: no store to read the subscriptions from")
        drill = message.mode == "drill"
        subscriptions = {
            s.id: s
            for s in await self.store.subscriptions()
            if s.drill == drill and self.allowed(s.endpoint)
        }
        previous = message.previous.data if message.previous is not None else {}
        delivered = previous.get("delivered_to")
        earlier = (
            [r for r in delivered if isinstance(r, str)] if isinstance(delivered, list) else []
        )
        # Those reached before stay counted, even if they unsubscribed since.
        recipients = [*subscriptions, *(r for r in earlier if r not in subscriptions)]
        progress = RecipientProgress.resume(self._service, recipients, message.previous)
        known = previous.get("gone")
        gone: dict[str, int] = dict(known) if isinstance(known, dict) else {}
        progress.extra["gone"] = gone
        checkpoints = Checkpoints(
            progress,
            message.checkpoint,
            every=self.checkpoint_every,
            interval=self.checkpoint_interval,
        )
        plaintext = payload(message, self.public_url)
        headers = {
            "TTL": str(self._config.ttl_seconds),
            "Urgency": "normal" if drill else "high",
            "Topic": topic(message.incident, message.mode),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "User-Agent": USER_AGENT,
        }
        run = _Run(self, progress, checkpoints, subscriptions, plaintext, headers)
        await run.go()
        if run.gone_now:
            log.info("webpush_gone", channel=self.channel_id, removed=run.gone_now)
        return progress.outcome()

    async def delete(self, receipt: Receipt) -> None:
        raise PermanentError(f"{self._service}: a shown notification cannot be recalled")

    def allowed(self, endpoint: str) -> bool:
        """An endpoint this channel pushes to (the page checks the same on subscribing)."""
        parts = urlsplit(endpoint)
        return bool(parts.hostname) and host_allowed(
            parts.hostname or "", self._config.push_services
        )

    async def push(
        self, subscription: PushSubscription, plaintext: bytes, headers: dict[str, str]
    ) -> _Answer:
        try:
            body = encrypt(subscription, plaintext)
        except Exception as exc:  # pywebpush raises its own and http_ece's errors
            reason = f"cannot encrypt for this subscription: {type(exc).__name__}"
            return _Answer(error=PermanentError(reason))
        authorization = self.signer.header(origin_of(subscription.endpoint))
        try:
            answer = await self.request(
                "POST",
                subscription.endpoint,
                data=body,
                headers={**headers, "Authorization": authorization},
            )
        except ChannelError as error:
            reason = error.message.removeprefix(f"{self._service}: ")
            kind = TransientError if isinstance(error, TransientError) else PermanentError
            return _Answer(error=kind(reason), stop_origin=True)
        if answer.ok:
            return _Answer()
        return self.refusal(answer)

    def refusal(self, answer: Answer) -> _Answer:
        status = answer.status
        said = excerpt(answer.body)
        reason = f"HTTP {status}" + (f": {said}" if said else "")
        if status in GONE:
            return _Answer(gone=status)
        if status == 429:
            return _Answer(error=TransientError(reason, self.wait(answer)), stop_origin=True)
        if self.is_transient(status):
            return _Answer(error=TransientError(reason, self.wait(answer)))
        if status == 413:
            error = PermanentError(f"{reason} (the payload is too large for this push service)")
            return _Answer(error=self.scrub(error), stop_origin=True)
        if status in REFUSED:
            hint = "this subscription may have been made with another key"
            error = PermanentError(f"{reason} ({hint})")
            return _Answer(error=self.scrub(error), refused=status)
        return _Answer(error=PermanentError(reason))

    def misconfigured(self) -> PermanentError:
        """The error of a push service that refused our key or subject every time."""
        return PermanentError(
            f"the push service refused the first {REFUSALS_TO_STOP} pushes and took none: "
            "check vapid_private_key and vapid_subject; after a key change every browser "
            "has to subscribe again"
        )


class _Run(RecipientRun):
    """One attempt: up to `max_in_flight` workers take the pending subscriptions, in an
    order shuffled per attempt (RecipientRun). Once an answer concerns a push service
    (`stopped`: a 429, 413, no answer, or REFUSALS_TO_STOP refusals before any accepted
    push), its remaining subscriptions get it without a request."""

    def __init__(
        self,
        adapter: WebpushAdapter,
        progress: RecipientProgress,
        checkpoints: Checkpoints,
        subscriptions: dict[str, PushSubscription],
        plaintext: bytes,
        headers: dict[str, str],
    ) -> None:
        # Those reached before that have no subscription now cannot be pending: they
        # are delivered. Anyone else pending is in `subscriptions`.
        pending = [r for r in progress.pending() if r in subscriptions]
        # Not the store's order (oldest first): a stranger's subscriptions with a key of
        # their own must not be every push service's first answers (REFUSALS_TO_STOP).
        random.SystemRandom().shuffle(pending)
        super().__init__(progress, checkpoints, adapter._config.max_in_flight, pending)
        self.adapter = adapter
        self.subscriptions = subscriptions
        self.plaintext = plaintext
        self.headers = headers
        self.stopped: dict[str, ChannelError] = {}  # push service origin -> its error
        self.refusals: dict[str, int] = {}  # origin -> refusals while none was accepted
        self.accepted: set[str] = set()  # origins that accepted a push in this attempt
        self.refused: dict[str, tuple[str, int]] = {}  # subscription -> (origin, status)
        self.gone_now = 0

    async def go(self) -> None:
        await super().go()
        # Refused by a push service that took our other pushes: broken on its own.
        for recipient, (where, status) in self.refused.items():
            if where in self.accepted:
                self.progress.permanent.pop(recipient, None)
                await self.forget(recipient, status)

    async def work(self) -> None:
        adapter = self.adapter
        while (recipient := await self.next()) is not None:
            subscription = self.subscriptions[recipient]
            where = origin_of(subscription.endpoint)
            if where in self.stopped:
                await self.record(recipient, _Answer(error=self.stopped[where]))
                continue
            for pacer in adapter.pacers:
                await pacer.acquire()
            async with adapter.slots:
                if where in self.stopped:
                    answer = _Answer(error=self.stopped[where])
                else:
                    answer = await adapter.push(subscription, self.plaintext, self.headers)
            self.judge(where, answer)
            await self.record(recipient, answer)

    def judge(self, where: str, answer: _Answer) -> None:
        """Whether this answer stops its push service for the rest of the attempt."""
        if answer.stop_origin and answer.error is not None:
            self.stopped.setdefault(where, answer.error)
        elif answer.error is None and answer.gone is None:
            self.accepted.add(where)
        elif answer.refused is not None and where not in self.accepted:
            self.refusals[where] = self.refusals.get(where, 0) + 1
            if self.refusals[where] >= REFUSALS_TO_STOP:
                self.stopped.setdefault(where, self.adapter.misconfigured())

    async def forget(self, recipient: str, status: int) -> None:
        """The subscription no longer counts: deleted, and kept in `data["gone"]`."""
        store = self.adapter.store
        assert store is not None
        await store.remove_subscription(recipient)
        self.progress.extra["gone"][recipient] = status
        self.progress.in_flight.pop(recipient, None)
        self.progress.recipients.remove(recipient)
        self.gone_now += 1

    async def record(self, recipient: str, answer: _Answer) -> None:
        if answer.gone is not None:
            await self.forget(recipient, answer.gone)
        elif answer.error is None:
            self.progress.delivered(recipient, None)
        else:
            self.progress.failed(recipient, answer.error)
            if answer.refused is not None:
                self.refused[recipient] = (
                    origin_of(self.subscriptions[recipient].endpoint),
                    answer.refused,
                )
        await self.checkpoints.settle()
