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
  retry may send that SMS twice;
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

Several recipients: see `broadcaster.channels.email.RecipientProgress` (`ids` are the
SIDs; `data["segments"]` holds `num_segments` per recipient). A sent SMS cannot be
recalled (DELETE only removes Twilio's log record): `can_delete` is False, and a
retraction is sent as a correction. SMS has no threads: `can_thread` is False.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from broadcaster.channels.base import (
    ChannelError,
    OutgoingMessage,
    PermanentError,
    TransientError,
)
from broadcaster.channels.http import (
    TRANSIENT_STATUSES,
    HttpAdapter,
    excerpt,
    read_body,
    retry_after_seconds,
    transport_error,
)
from broadcaster.channels.recipients import RecipientProgress
from broadcaster.channels.settings import SmsChannel
from broadcaster.limits import is_gsm7
from broadcaster.models import Receipt

USER_AGENT = "broadcaster-sms/1"
API_VERSION = "2010-04-01"
RATE_LIMITED = 20429
# Refusals that concern one recipient only (twilio.com/docs/api/errors/<code>).
RECIPIENT_CODES: frozenset[int] = frozenset({21211, 21408, 21610, 21612, 21614})
# Statuses that concern the whole message or account: no further recipient is tried.
_FOR_ALL_STATUSES = frozenset({401, 403, 404})
_FOR_ALL_CODES = frozenset({20003, 20404, 21602, 21603, 21604, 21606, 21617})

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


class SmsAdapter(HttpAdapter[SmsChannel]):
    """One sender number texting a list of numbers (channels/<id>.yaml, `type: sms`)."""

    service = "sms"

    can_thread: bool = False  # SMS has no threads
    can_delete: bool = False  # a sent SMS cannot be recalled

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

    async def send(self, message: OutgoingMessage) -> Receipt:
        progress = RecipientProgress.resume(self._service, self._config.to, message.previous)
        previous = message.previous.data if message.previous is not None else {}
        known = previous.get("segments")
        segments: dict[str, int] = {
            number: count
            for number, count in (known.items() if isinstance(known, dict) else [])
            if isinstance(count, int) and number in progress.ids
        }
        body = sms_body(message)
        pending = progress.pending()
        for index, number in enumerate(pending):
            answer = await self._send_one(number, body)
            if answer.error is None:
                progress.delivered(number, answer.sid)
                if answer.segments is not None:
                    segments[number] = answer.segments
                continue
            for affected in pending[index:] if answer.stop else [number]:
                progress.failed(affected, answer.error)
            if answer.stop:
                break
        progress.extra["segments"] = {n: segments[n] for n in progress.recipients if n in segments}
        return progress.outcome()

    async def delete(self, receipt: Receipt) -> None:
        raise PermanentError(f"{self._service}: a sent SMS cannot be recalled")

    async def _send_one(self, number: str, body: str) -> _Answer:
        if self._authorization is None:
            return _Answer(error=PermanentError("account_sid must not contain ':'"), stop=True)
        form = {"To": number, "From": self._config.sender, "Body": body}
        headers = {
            "Authorization": self._authorization,
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }
        try:
            async with self._session.post(
                self.url,
                data=form,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                allow_redirects=False,
            ) as response:
                raw = await read_body(response)
                status, retry_after = response.status, response.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = transport_error(self._service, exc, self._timeout)
            reason = error.message.removeprefix(f"{self._service}: ")
            kind = TransientError if isinstance(error, TransientError) else PermanentError
            return _Answer(error=kind(reason), stop=True)
        data = _json(raw)
        if 200 <= status < 300:
            return _Answer(sid=_text(data.get("sid")), segments=_count(data.get("num_segments")))
        return self._refusal(status, retry_after, data, raw)

    def _refusal(
        self, status: int, retry_after: str | None, data: dict[str, Any], raw: bytes
    ) -> _Answer:
        code = _count(data.get("code"))
        said = _text(data.get("message")) or excerpt(raw)
        reason = f"HTTP {status}" + (f" {code}" if code is not None else "")
        reason += f": {said}" if said else ""
        if status == 429 or code == RATE_LIMITED:
            wait = retry_after_seconds(retry_after)
            return _Answer(error=TransientError(reason, wait), stop=True)
        if status in TRANSIENT_STATUSES or 500 <= status < 600:
            return _Answer(error=TransientError(reason, retry_after_seconds(retry_after)))
        if code in RECIPIENT_CODES:
            return _Answer(error=PermanentError(reason))
        stop = (
            status in _FOR_ALL_STATUSES
            or code in _FOR_ALL_CODES
            or code is None
            or 300 <= status < 400
        )
        return _Answer(error=PermanentError(reason), stop=stop)


def _json(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw) if raw.strip() else None
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


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
