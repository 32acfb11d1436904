"""WhatsApp through Meta's Business Cloud API (contract section 5, `type: whatsapp`).

WhatsApp Channels have no API, so this kind runs an opt-in number: each subscriber gets a
template message Meta approved in advance (category UTILITY), one request each (there is
no broadcast call):

    POST {base_url}/{phone_number_id}/messages          (base_url: the Graph API, versioned)
    Authorization: Bearer <system-user access token>
    {"messaging_product": "whatsapp", "recipient_type": "individual", "to": "4915112345678",
     "type": "template",
     "template": {"name": "zivilschutz_warnung", "language": {"code": "de"},
                  "components": [{"type": "body",
                                  "parameters": [{"type": "text", "text": "..."}, ...]}]},
     "context": {"message_id": "wamid..."}}               (a follow-up: quotes the earlier one)

The answer is `{"messaging_product", "contacts": [{"input", "wa_id"}], "messages":
[{"id": "wamid...", "message_status": "accepted"}]}`: accepted, not delivered. The
`sent`, `delivered`, `read` and `failed` statuses arrive later on the webhook
(`broadcaster.web.hooks`). Each subscriber's wamid is kept in the receipt's `ids`, so a
later stage of the incident quotes that subscriber's own earlier message.

Body parameters are the rendered texts named in `parameters` (title and text by default).
Meta refuses a parameter with a line break, a tab or more than 4 spaces in a row (132018,
"Param text cannot have new-line/tab characters or more than 4 consecutive spaces"): every
run of whitespace becomes one space here. A body over 1 024 characters once filled in is
refused (132005): `broadcaster validate` measures the texts against `max_characters`.

Errors are Graph error objects `{"error": {"message", "type", "code", "error_data":
{"details"}, "fbtrace_id"}}`, classified by `code`
(developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes):

- 131056 pair rate limit (too many messages to one number, about 1 per 6 s): transient
  for that subscriber only, who is tried again after `pair_wait` in the next attempt
  (within the delivery's max_attempts and deadline, like any retry); busy (the provider
  is up) for the circuit breaker. The others are still tried;
- 130429 throughput (over `messages_per_second`): transient and busy; no new request
  starts, and the channel's pace halves from then on (down to 1 a second);
- 4, 80007 (application and account rate limits) and 2 (service unavailable): transient,
  no new request starts; 1 and 131000 ("something went wrong"): transient for that
  subscriber only;
- 131026 (undeliverable: not on WhatsApp, old app, terms not accepted), 131047, 131049,
  131050, 131021, 130472: permanent for that subscriber only;
- 190 (token), 10 and 200 (permissions), 368 (policy block), 100 (invalid parameter),
  131008/131009, 131031, 131042, 131045, 133010, and the template's 132000 (parameter
  count), 132001 (no such template in that language), 132005, 132007, 132012, 132015 and
  132016 (paused, disabled), 132018: permanent for the whole message: no further
  subscriber is tried (each would get the same answer: a bad token is one request, not
  10 000);
- no Graph code: 5xx, 408, 425 transient for that subscriber, 429 transient for all,
  anything else (401, a redirect) permanent for all.

Meta has no idempotency key and no way to look a message up: a subscriber whose answer was
lost (a timeout, a 5xx, a crash) is sent to again; a duplicate warning is better than a
missed one. The progress is saved in small batches (`checkpoint_every`) to keep that set
small. A sent message cannot be recalled: `can_delete` is False, and a retraction sends
the `_retraction` template to those who got the false alarm.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aiolimiter import AsyncLimiter

from broadcaster.channels.base import (
    ChannelError,
    OutgoingMessage,
    PermanentError,
    TransientError,
)
from broadcaster.channels.http import Answer, HttpAdapter, excerpt
from broadcaster.channels.recipients import Checkpoints, RecipientProgress, RecipientRun
from broadcaster.channels.settings import WhatsappChannel, WhatsappTemplate
from broadcaster.models import Receipt
from broadcaster.receipts import message_ids

USER_AGENT = "broadcaster-whatsapp/1"
PAIR_RATE_LIMITED = 131056
THROUGHPUT = 130429
THROUGHPUT_WAIT = 1.0  # seconds; Meta names none
SLOWEST = 1.0  # messages a second the pace never halves below
# Transient for the one subscriber.
_TRANSIENT_ONE = frozenset({1, 131000})
# Transient for all: the application or account is throttled, or the service is away.
_TRANSIENT_ALL = frozenset({2, 4, 80007, 133004})
# Permanent for the one subscriber.
_PERMANENT_ONE = frozenset({131026, 131047, 131049, 131050, 131021, 130472})
# Permanent for the whole message: the token, permissions, the account or the template.
_PERMANENT_ALL = frozenset(
    {
        *(10, 100, 190, 200, 368),
        *(131008, 131009, 131031, 131042, 131045, 133010),
        *(132000, 132001, 132005, 132007, 132012, 132015, 132016, 132018),
    }
)
_WHITESPACE = re.compile(r"\s+")


def parameter_text(text: str) -> str:
    """A body parameter as Meta takes it: no line break or tab, no run of spaces (132018)."""
    return _WHITESPACE.sub(" ", text).strip()


def template_key(message: OutgoingMessage) -> str:
    """Which of the channel's `templates` a message takes."""
    if message.kind == "alert":
        return message.stage
    return f"_{message.kind}"


@dataclass(frozen=True)
class _Answer:
    """One subscriber's outcome."""

    wamid: str | None = None
    error: ChannelError | None = None
    stop: bool = False  # the error concerns every subscriber: try no more
    slow: bool = False  # over the throughput: halve the pace


class WhatsappAdapter(HttpAdapter[WhatsappChannel]):
    """One business number messaging its subscribers (channels/<id>.yaml, `type: whatsapp`)."""

    service = "whatsapp"

    can_thread: bool = True  # context.message_id quotes the subscriber's earlier message
    can_delete: bool = False  # a sent message cannot be recalled
    checkpoint_every: int | None = 50  # subscribers per checkpoint: few resent after a crash
    checkpoint_interval: float | None = None  # seconds (None: Checkpoints')

    def setup(self) -> None:
        number = quote(self._config.phone_number_id, safe="")
        self.url = f"{self._config.base_url.rstrip('/')}/{number}/messages"
        # Shared by every delivery of this channel: at most max_in_flight requests at once.
        self.slots = asyncio.Semaphore(self._config.max_in_flight)
        self.rate = self._config.messages_per_second
        self.pace = _limiter(self.rate)
        limit = self._config.rate_limit
        self.limit = AsyncLimiter(limit.count, limit.period) if limit is not None else None

    def secrets(self) -> tuple[tuple[str, str], ...]:
        return ((self._config.access_token, "<access_token>"),)

    def slow_down(self) -> None:
        """Over Meta's throughput (130429): half the pace from now on."""
        slower = max(SLOWEST, self.rate / 2)
        if slower < self.rate:
            self.rate = slower
            self.pace = _limiter(slower)

    async def send(self, message: OutgoingMessage) -> Receipt:
        key = template_key(message)
        template = (
            self._config.template_for(message.scenario, message.stage)
            if message.kind == "alert"
            else self._config.templates.get(key)
        )
        if template is None:
            raise PermanentError(
                f"{self._service}: no template for {key!r}: add templates.{key} "
                "(a template Meta approved) to the channel file"
            )
        progress = RecipientProgress.resume(
            self._service, self.recipients(message), message.previous
        )
        checkpoints = Checkpoints(
            progress,
            message.checkpoint,
            every=self.checkpoint_every,
            interval=self.checkpoint_interval,
        )
        body = self.template_body(message, template)
        earlier = message_ids(message.reply_to)
        run = _Run(self, progress, checkpoints, body, earlier)
        await run.go()
        return progress.outcome()

    async def delete(self, receipt: Receipt) -> None:
        raise PermanentError(f"{self._service}: a sent WhatsApp message cannot be recalled")

    def recipients(self, message: OutgoingMessage) -> list[str]:
        """Every subscriber; a correction only those the false alarm may have reached."""
        everyone = self._config.recipients
        original = message.reply_to
        if message.kind != "retraction" or original is None:
            return everyone
        reached = {*_strings(original.data.get("delivered_to")), *message_ids(original)}
        reached.update(_strings(original.data.get("in_flight")))
        return [number for number in everyone if number in reached]

    def template_body(self, message: OutgoingMessage, template: WhatsappTemplate) -> dict[str, Any]:
        text = message.text
        if message.confirm_url and message.confirm_url not in text:
            text = f"{text.rstrip()} {message.confirm_url}"
        values = {
            "title": message.title,
            "text": text,
            "incident": message.incident,
            "alert_id": message.alert_id,
        }
        names = template.parameters or self._config.parameters
        return {
            "name": template.name,
            "language": {"code": template.language or message.language},
            "components": [
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": parameter_text(values[name])} for name in names
                    ],
                }
            ],
        }

    async def send_one(self, number: str, template: dict[str, Any], quoted: str | None) -> _Answer:
        payload: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": number.removeprefix("+"),
            "type": "template",
            "template": template,
        }
        if quoted is not None:
            payload["context"] = {"message_id": quoted}
        headers = {
            "Authorization": f"Bearer {self._config.access_token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        try:
            answer = await self.request("POST", self.url, data=data, headers=headers)
        except ChannelError as error:
            # No answer: try no further subscriber now; this one is sent to again.
            reason = error.message.removeprefix(f"{self._service}: ")
            kind = TransientError if isinstance(error, TransientError) else PermanentError
            return _Answer(error=kind(reason), stop=True)
        if answer.ok:
            wamid = _wamid(answer.fields)
            if wamid is None:
                return _Answer(error=TransientError(f"no message id in {excerpt(answer.body)}"))
            return _Answer(wamid=wamid)
        return self.refusal(answer)

    def refusal(self, answer: Answer) -> _Answer:
        """One subscriber's refusal, classified by the Graph error's code (module doc)."""
        error = answer.fields.get("error")
        error = error if isinstance(error, dict) else {}
        code = error.get("code") if isinstance(error.get("code"), int) else None
        said = _words(error) or excerpt(answer.body)
        reason = f"HTTP {answer.status}" + (f" {code}" if code is not None else "")
        reason = self.scrub(PermanentError(reason + (f": {said}" if said else ""))).message
        if code == PAIR_RATE_LIMITED:
            return _Answer(error=TransientError(reason, self._config.pair_wait, busy=True))
        if code == THROUGHPUT:
            return _Answer(
                error=TransientError(reason, THROUGHPUT_WAIT, busy=True), stop=True, slow=True
            )
        if code in _TRANSIENT_ONE:
            return _Answer(error=TransientError(reason))
        if code in _TRANSIENT_ALL:
            return _Answer(error=TransientError(reason), stop=True)
        if code in _PERMANENT_ONE:
            return _Answer(error=PermanentError(reason))
        if code in _PERMANENT_ALL:
            return _Answer(error=PermanentError(reason + _hint(code)), stop=True)
        if answer.status == 429:
            return _Answer(error=TransientError(reason, self.wait(answer), busy=True), stop=True)
        if self.is_transient(answer.status):
            return _Answer(error=TransientError(reason, self.wait(answer)))
        if code is not None and 400 <= answer.status < 500 and answer.status not in (401, 403):
            return _Answer(error=PermanentError(reason))  # an unknown code: this number only
        return _Answer(error=PermanentError(reason), stop=True)


def _limiter(rate: float) -> AsyncLimiter:
    # A bucket of at least one message: below 1/s, one every 1/rate seconds.
    return AsyncLimiter(rate, 1) if rate >= 1 else AsyncLimiter(1, 1 / rate)


def _hint(code: int) -> str:
    if code == 190:
        return " (the access token is invalid or expired: renew access_token)"
    if code in (132000, 132001, 132015, 132016, 132012):
        return " (check the template's name, language and parameters in WhatsApp Manager)"
    return ""


def _words(error: dict[str, Any]) -> str:
    message = error.get("message")
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    parts = [p for p in (message, details) if isinstance(p, str) and p]
    if len(parts) == 2 and parts[1] in parts[0]:
        parts.pop()  # Meta often repeats the title as the details
    return " ".join(" ".join(p.split()) for p in parts)[:300]


def _wamid(data: dict[str, Any]) -> str | None:
    messages = data.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        found = messages[0].get("id")
        return found if isinstance(found, str) and found else None
    return None


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


class _Run(RecipientRun):
    """One attempt (RecipientRun): up to `max_in_flight` workers, each request paced.
    Those in flight when an earlier attempt died are sent again (Meta has no look-up)."""

    def __init__(
        self,
        adapter: WhatsappAdapter,
        progress: RecipientProgress,
        checkpoints: Checkpoints,
        template: dict[str, Any],
        earlier: dict[str, str],
    ) -> None:
        super().__init__(progress, checkpoints, adapter._config.max_in_flight)
        self.adapter = adapter
        self.template = template
        self.earlier = earlier

    async def work(self) -> None:
        adapter = self.adapter
        while (number := await self.next()) is not None:
            if adapter.limit is not None:
                await adapter.limit.acquire()
            await adapter.pace.acquire()
            async with adapter.slots:
                if self.stop is not None:
                    self.unstarted.append(number)
                    return
                answer = await adapter.send_one(number, self.template, self.earlier.get(number))
            await self.record(number, answer)

    async def record(self, number: str, answer: _Answer) -> None:
        if answer.error is None:
            self.progress.delivered(number, answer.wamid)
        else:
            self.progress.failed(number, answer.error)
            if answer.slow:
                self.adapter.slow_down()
            if answer.stop and self.stop is None:
                self.stop = answer.error
        await self.checkpoints.settle()
