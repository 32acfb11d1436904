"""SMS through a Twilio-compatible Messages API (contract section 5, `type: sms`).

One request per recipient (Twilio has no broadcast call):

    POST {base_url}/2010-04-01/Accounts/{account_sid}/Messages.json
    Authorization: Basic base64(account_sid:auth_token)
    Content-Type: application/x-www-form-urlencoded
    To=<E.164>&From=<from>&Body=<text>

Success is `201` with the Message resource; its `sid` (`SM` + 32 hex) is kept per
recipient, with `num_segments`. Errors are `{"code", "message", "more_info", "status"}`
(twilio.com/docs/messaging/api/message-resource; twilio-python `base/version.py` reads
`code` and `message` the same way). Classified per recipient:

- 429 or code 20429 ("Too many requests": concurrency limit, safe to retry after backing
  off, twilio.com/docs/api/errors/20429): transient; Twilio sends no Retry-After, one is
  honoured if present. The account is throttled, so the other recipients of this attempt
  are not tried either (transient too);
- 5xx (and 408, 425): transient for that recipient; the next one is still tried. A 5xx or
  timeout after the request was sent is ambiguous (Twilio has no idempotency key): the
  number stays in flight, and the retry looks it up in the Messages list before it
  sends again (as after a crash, below);
- 21211 (invalid To), 21408 (region not enabled), 21610 (recipient replied STOP),
  21612 (To not reachable by SMS), 21614 (not a mobile number): permanent for that
  recipient only (twilio.com/docs/api/errors/<code>); the next one is still tried;
- 401/403/404 (20003 bad credentials, 20404 unknown account), 21617 (body too long),
  21606 (From not usable), 21602-21604 (a field missing), redirects and an error without
  a Twilio code: permanent for the whole message, so no further
  recipient is tried (each would get the same answer);
- any other 4xx with a code: permanent for that recipient only;
- connection errors and timeouts: transient, no further recipient is tried.

Text: typographic quotes, dashes, ellipsis and special spaces are replaced by their GSM-7
equivalents (`„“”` -> `"`, `‚‘’` -> `'`, `–—` -> `-`, `…` -> `...`) when that makes the
whole text GSM-7 (`broadcaster.limits.is_gsm7`; 160 characters a segment instead of 70,
CHANNELS.md section 8); umlauts and ß are GSM-7 already and stay. A text that is UCS-2
anyway (an emoji, a Cyrillic name) is sent unchanged. A confirmation request whose text
lacks its link gets the link appended.

Several recipients: see `broadcaster.channels.recipients.RecipientProgress` (`ids` are
the SIDs; `data["segments"]` holds `num_segments` per recipient). Up to `max_in_flight`
requests at once, shared by every delivery of the channel; each message waits for the
channel's `rate_limit` and `messages_per_second` when set (Twilio queues and paces each
sender itself: 1 segment/s for a US long code, 3 toll-free, 100+ a short code; a queue
over 10 hours fails with 21611/30001). A stop-error (20429, one for the whole message)
starts no new request; those not started get it. Progress is checkpointed through
`OutgoingMessage.checkpoint` every 200 numbers or second, and each batch of numbers is
saved as `in_flight` before it is started. After a crash those are looked up with
`GET .../Messages.json?To=&From=` (newest first; not DateSent, which a queued message
lacks): a message with this body created since the reservation counts as delivered with
its sid, else the number is sent; a failed look-up leaves it in flight, never sent blindly.
Delivery receipts: each message carries `StatusCallback=<http.public_url>/hooks/sms/<id>`
(unless `status_callback: false`, or unset with a loopback public URL), and Twilio posts
its fate there (broadcaster.receipts, broadcaster.web.hooks). A sent SMS cannot be
recalled (DELETE only removes Twilio's log record): `can_delete` is False, and a
retraction is sent as a correction. SMS has no threads: `can_thread` is False.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from aiolimiter import AsyncLimiter

from broadcaster.channels.base import (
    ChannelError,
    OutgoingMessage,
    PermanentError,
    TransientError,
)
from broadcaster.channels.http import DEFAULT_TIMEOUT, Answer, HttpAdapter, excerpt
from broadcaster.channels.recipients import Checkpoints, RecipientProgress, RecipientRun
from broadcaster.channels.settings import SmsChannel
from broadcaster.limits import is_gsm7
from broadcaster.models import Receipt
from broadcaster.receipts import sms_status_callback

USER_AGENT = "broadcaster-sms/1"
API_VERSION = "2010-04-01"
RATE_LIMITED = 20429
# Refusals that concern one recipient only (twilio.com/docs/api/errors/<code>).
RECIPIENT_CODES: frozenset[int] = frozenset({21211, 21408, 21610, 21612, 21614})
# Statuses that concern the whole message or account: no further recipient is tried.
_FOR_ALL_STATUSES = frozenset({401, 403, 404})
_FOR_ALL_CODES = frozenset({20003, 20404, 21602, 21603, 21604, 21606, 21617})
# Looking up a message whose answer was lost (`_look_up`).
LIST_PAGE = 50  # messages per page (Twilio: 50 by default, 1 000 at most)
LIST_PAGES = 5  # pages followed at most
LIST_BODY_LIMIT = 1024 * 1024  # bytes of one page read at most
CLOCK_SKEW = timedelta(minutes=5)  # between our clock and Twilio's date_created

# Characters outside GSM 03.38 that German texts often carry, and their GSM-7 stand-ins
# (CHANNELS.md section 8; 3GPP TS 23.038).
GSM7_REPLACEMENTS: dict[str, str] = {
    "„": '"',
    "“": '"',
    "”": '"',
    "‟": '"',
    "«": '"',
    "»": '"',
    "″": '"',
    "‚": "'",
    "‘": "'",
    "’": "'",
    "‛": "'",
    "‹": "'",
    "›": "'",
    "′": "'",
    "´": "'",
    "`": "'",
    "‐": "-",
    "‑": "-",
    "‒": "-",
    "–": "-",
    "—": "-",
    "―": "-",
    "−": "-",
    "…": "...",
    "\u00a0": " ",  # no-break space
    "\u2002": " ",
    "\u2003": " ",
    "\u2007": " ",
    "\u2009": " ",  # thin space
    "\u200a": " ",
    "\u202f": " ",  # narrow no-break space
    "\t": " ",
    "\u00ad": "",  # soft hyphen
    "\u200b": "",  # zero-width space
}
_TRANSLATION = str.maketrans(GSM7_REPLACEMENTS)


def gsm7_text(text: str) -> str:
    """The text with GSM-7 stand-ins, if that makes it GSM-7; else the text unchanged."""
    if is_gsm7(text):
        return text
    replaced = text.translate(_TRANSLATION)
    return replaced if is_gsm7(replaced) else text


def sms_body(message: OutgoingMessage) -> str:
    text = message.text
    if message.confirm_url and message.confirm_url not in text:
        text = f"{text.rstrip()}\n{message.confirm_url}"
    return gsm7_text(text)


@dataclass(frozen=True)
class _Answer:
    """One recipient's outcome."""

    sid: str | None = None
    segments: int | None = None
    error: ChannelError | None = None
    stop: bool = False  # the error concerns every recipient: try no more
    unsure: bool = False  # Twilio may have created the message all the same


class SmsAdapter(HttpAdapter[SmsChannel]):
    """One sender number texting a list of numbers (channels/<id>.yaml, `type: sms`)."""

    service = "sms"

    can_thread: bool = False  # SMS has no threads
    can_delete: bool = False  # a sent SMS cannot be recalled
    checkpoint_every: int | None = None  # recipients per checkpoint (None: Checkpoints')
    checkpoint_interval: float | None = None  # seconds

    def __init__(
        self,
        channel_id: str,
        config: SmsChannel,
        session: aiohttp.ClientSession,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        public_url: str | None = None,
    ) -> None:
        # Where Twilio reports each message's fate (broadcaster.receipts), or None.
        self.status_callback = sms_status_callback(channel_id, config.status_callback, public_url)
        super().__init__(channel_id, config, session, timeout=timeout)

    def setup(self) -> None:
        account = quote(self._config.account_sid, safe="")
        try:  # RFC 7617, UTF-8
            self._authorization: str | None = aiohttp.encode_basic_auth(
                self._config.account_sid, self._config.auth_token
            )
        except ValueError:  # a ":" in the account sid
            self._authorization = None
        self.url = (
            f"{self._config.base_url.rstrip('/')}/{API_VERSION}/Accounts/{account}/Messages.json"
        )
        # Shared by every delivery of this channel: at most max_in_flight requests at once.
        self.slots = asyncio.Semaphore(self._config.max_in_flight)
        self.pacers: list[AsyncLimiter] = []
        if self._config.rate_limit is not None:
            limit = self._config.rate_limit
            self.pacers.append(AsyncLimiter(limit.count, limit.period))
        if self._config.messages_per_second is not None:
            rate = self._config.messages_per_second
            # A bucket of at least one message: below 1/s, one every 1/rate seconds.
            self.pacers.append(AsyncLimiter(rate, 1) if rate >= 1 else AsyncLimiter(1, 1 / rate))

    async def send(self, message: OutgoingMessage) -> Receipt:
        progress = RecipientProgress.resume(self._service, self._config.to, message.previous)
        previous = message.previous.data if message.previous is not None else {}
        known = previous.get("segments")
        segments: dict[str, int] = {
            number: count
            for number, count in (known.items() if isinstance(known, dict) else [])
            if isinstance(count, int) and number in progress.ids
        }
        checkpoints = Checkpoints(
            progress,
            message.checkpoint,
            every=self.checkpoint_every,
            interval=self.checkpoint_interval,
        )
        progress.extra["segments"] = segments  # checkpoints carry them too
        run = _Run(self, progress, checkpoints, sms_body(message), segments)
        await run.go()
        progress.extra["segments"] = {n: segments[n] for n in progress.recipients if n in segments}
        return progress.outcome()

    async def delete(self, receipt: Receipt) -> None:
        raise PermanentError(f"{self._service}: a sent SMS cannot be recalled")

    def _headers(self) -> dict[str, str]:
        assert self._authorization is not None
        return {
            "Authorization": self._authorization,
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }

    async def _send_one(self, number: str, body: str) -> _Answer:
        if self._authorization is None:
            return _Answer(error=PermanentError("account_sid must not contain ':'"), stop=True)
        form = {"To": number, "From": self._config.sender, "Body": body}
        if self.status_callback is not None:
            form["StatusCallback"] = self.status_callback
        try:
            answer = await self.request("POST", self.url, data=form, headers=self._headers())
        except ChannelError as error:
            # No answer (a timeout, a dropped connection): it may have been created, so
            # the next attempt looks it up before it sends again.
            return replace(self._no_answer(error), unsure=True)
        data = answer.fields
        if answer.ok:
            return _Answer(sid=_text(data.get("sid")), segments=_count(data.get("num_segments")))
        refusal = self._refusal(answer)
        # A 5xx after the request arrived is as unsure as no answer at all.
        return replace(refusal, unsure=answer.status >= 500)

    async def _look_up(self, number: str, body: str, since: datetime | None) -> _Answer | None:
        """The message an earlier attempt may have created for this number (its answer was
        lost in a crash): GET the Messages list filtered by To and From, newest first, and
        take one with this body created since the reservation. None: not found, send it.

        Not filtered by DateSent: a queued message has no date_sent yet."""
        if self._authorization is None:
            return _Answer(error=PermanentError("account_sid must not contain ':'"), stop=True)
        oldest = (since or datetime.now(UTC)) - CLOCK_SKEW
        query = urlencode({"To": number, "From": self._config.sender, "PageSize": LIST_PAGE})
        url: str | None = f"{self.url}?{query}"
        for _ in range(LIST_PAGES):
            if url is None:
                break
            try:
                answer = await self.request(
                    "GET", url, headers=self._headers(), body_limit=LIST_BODY_LIMIT
                )
            except ChannelError as error:
                return self._no_answer(error)
            data = answer.fields
            if not answer.ok:
                return self._refusal(answer)
            found, older = _match(data.get("messages"), number, body, oldest)
            if found is not None:
                return _Answer(
                    sid=_text(found.get("sid")), segments=_count(found.get("num_segments"))
                )
            following = _text(data.get("next_page_uri"))
            url = None if older or following is None else self._absolute(following)
        return None

    def _absolute(self, uri: str) -> str:
        return self._config.base_url.rstrip("/") + "/" + uri.lstrip("/")

    def _no_answer(self, error: ChannelError) -> _Answer:
        """A request that got no answer: no further recipient is tried."""
        reason = error.message.removeprefix(f"{self._service}: ")
        kind = TransientError if isinstance(error, TransientError) else PermanentError
        return _Answer(error=kind(reason), stop=True)

    def _refusal(self, answer: Answer) -> _Answer:
        """One recipient's refusal, classified by Twilio's code as well as the status."""
        status, data = answer.status, answer.fields
        code = _count(data.get("code"))
        said = _text(data.get("message")) or excerpt(answer.body)
        reason = f"HTTP {status}" + (f" {code}" if code is not None else "")
        reason += f": {said}" if said else ""
        if status == 429 or code == RATE_LIMITED:
            return _Answer(error=TransientError(reason, self.wait(answer)), stop=True)
        if self.is_transient(status):
            return _Answer(error=TransientError(reason, self.wait(answer)))
        if code in RECIPIENT_CODES:
            return _Answer(error=PermanentError(reason))
        stop = (
            status in _FOR_ALL_STATUSES
            or code in _FOR_ALL_CODES
            or code is None
            or 300 <= status < 400
        )
        return _Answer(error=PermanentError(reason), stop=stop)


class _Run(RecipientRun):
    """One attempt (RecipientRun): up to `max_in_flight` workers; a recipient in flight at
    an earlier attempt that ended without its answer (a crash) is looked up at Twilio
    first."""

    def __init__(
        self,
        adapter: SmsAdapter,
        progress: RecipientProgress,
        checkpoints: Checkpoints,
        body: str,
        segments: dict[str, int],
    ) -> None:
        super().__init__(progress, checkpoints, adapter._config.max_in_flight)
        self.adapter = adapter
        self.body = body
        self.segments = segments
        self.since = progress.since_time()

    def give_up(self, recipient: str, error: ChannelError) -> None:
        self.progress.failed(recipient, error, unsure=recipient in self.unsure)

    async def work(self) -> None:
        adapter = self.adapter
        while (number := await self.next()) is not None:
            if number in self.unsure:
                async with adapter.slots:
                    found = await adapter._look_up(number, self.body, self.since)
                if found is not None:
                    await self.record(number, found, unsure=True)
                    continue
            for pacer in adapter.pacers:
                await pacer.acquire()
            async with adapter.slots:
                if self.stop is not None:
                    self.unstarted.append(number)
                    return
                answer = await adapter._send_one(number, self.body)
            await self.record(number, answer, unsure=answer.unsure)

    async def record(self, number: str, answer: _Answer, *, unsure: bool = False) -> None:
        if answer.error is None:
            self.progress.delivered(number, answer.sid)
            if answer.segments is not None:
                self.segments[number] = answer.segments
        else:
            # A failed look-up leaves the number in flight: the next attempt asks again.
            self.progress.failed(number, answer.error, unsure=unsure)
            if answer.stop and self.stop is None:
                self.stop = answer.error
        await self.checkpoints.settle()


def _match(
    messages: Any, number: str, body: str, oldest: datetime
) -> tuple[dict[str, Any] | None, bool]:
    """The message to `number` with `body` created since `oldest`, if on this page; and
    whether the page reached messages older than that (no need to read on)."""
    if not isinstance(messages, list):
        return None, True
    older = False
    for item in messages:
        if not isinstance(item, dict):
            continue
        created = _when(item.get("date_created"))
        if created is not None and created < oldest:
            older = True
            continue
        if item.get("to") == number and item.get("body") == body:
            return item, older
    return None, older


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _count(value: Any) -> int | None:
    """An integer that Twilio may send as a number or as a string ("num_segments": "1")."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None
