"""Twilio's Messages API as far as the SMS adapter uses it, on a free 127.0.0.1 port.

    async with FakeTwilio.start() as fake:
        config = SmsChannel(type="sms", base_url=fake.base_url, account_sid=fake.account_sid,
                            auth_token=fake.auth_token, ...)
        fake.fail_number("+4915100000002", 21610)          # that number replied STOP
        fake.fail_number("+4915100000003", 20503, times=1)  # one 503, then fine
        ...
        assert fake.sent_to("+4915100000001") == 1

What it does with each request, in this order (shapes from
twilio.com/docs/messaging/api/message-resource and twilio.com/docs/api/errors/<code>):

1. records it in `requests` (method, path, headers, body, parsed form, time, and later the
   status it was answered with);
2. 404 `20404` for any path but `/2010-04-01/Accounts/{sid}/Messages.json`, 405 `20004`
   for any method but POST and GET; a GET is the Messages list (below);
3. waits while `hold()` is in force (except for numbers `let_through(number)`), then
   `delay(seconds)`;
4. a scripted answer, if one is queued with `script(...)` (an outage in front of the API:
   taken verbatim);
5. 401 `20003` ("Authenticate", with `WWW-Authenticate: Basic realm="Twilio API"`) unless
   HTTP Basic auth is exactly account_sid:auth_token; 404 `20404` when the path names
   another account;
6. the form (application/x-www-form-urlencoded; a JSON body is not read, as with Twilio):
   400 `21604` without To, `21603` without From, `21602` without Body, `21211` when To is
   not E.164, `21606` when From is not one of `senders` (when given), `21617` when Body is
   over 1 600 characters;
7. a failure set for the To number with `fail_number(number, code, ...)`;
8. otherwise 201 with the Message resource (`sid` "SM" + 32 hex, `status` "queued",
   `num_segments` as a string (`num_segments`, below), `date_created` in RFC 2822, ...),
   appended to `messages`.
9. after `hold_answers(after=n)`: every message past the first n is created, but its
   answer waits until `release()` (a daemon killed then never hears it).

The list, `GET .../Messages.json` (twilio.com/docs/messaging/api/message-resource, "Read
multiple Message resources"): the messages newest first, filtered by `To`, `From` and
`DateSent` (`YYYY-MM-DD`, or `DateSent<` / `DateSent>` for on-or-before / on-or-after;
a message not yet sent has no `date_sent` and never matches), `PageSize` per page (50 by
default, 1 000 at most) and `Page`/`PageToken` to page on; the answer is
`{"messages", "page", "page_size", "start", "end", "uri", "first_page_uri",
"next_page_uri", "previous_page_uri"}`. Created messages stay `queued` (none is "sent").
A scripted answer is taken by a list request too.

`in_flight` and `max_in_flight` count the POSTs being answered at once, with its own code.

Errors are `{"code", "message", "more_info", "status"}`. A 429 (`20429`) carries no
Retry-After, as Twilio's does not; `rate_limit(retry_after=...)` adds one for a test.

Status callbacks (twilio.com/docs/messaging/guides/outbound-message-status-in-status-callbacks):
a message created with `StatusCallback` gets its later statuses POSTed there, one each,
form-encoded (`MessageSid`, `SmsSid`, `MessageStatus`, `SmsStatus`, `AccountSid`, `From`,
`To`, `ApiVersion`, and `ErrorCode` for undelivered and failed), signed
`X-Twilio-Signature` = Base64(HMAC-SHA1(auth_token, URL + each parameter sorted by name,
name and value run together)) with its own code. The initial `queued` is not called back.
By default `sent` then `delivered`; `callback_statuses(number, [...], error_code=...)` for
others; `callback_order = "reversed"` and `callback_repeat = True` for disorder and
repeats. `callbacks` records (sid, status, the receiver's HTTP status).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode

import aiohttp
from aiohttp import web
from multidict import CIMultiDictProxy

from tests.fakes.base import (
    Answer,
    FakeServer,
    ScriptedAnswer,
    calling_back,
    json_answer,
    scripted,
)

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "fake-auth-token-Äß"
API_PREFIX = "/2010-04-01/Accounts/"
BODY_LIMIT = 1600  # characters
_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages\.json$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")

# GSM 03.38 (3GPP TS 23.038 6.2.1; unicode.org Public/MAPPINGS/ETSI/GSM0338.TXT), by
# septet value, 16 a row; 0x1B is the escape to the extension table, no character. 0x09
# is the capital Ç of TS 23.038's figure (GSM0338.TXT maps it to ç; Twilio's segment
# calculator sends ç as UCS-2, and so does this fake).
GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
# The extension table (TS 23.038 6.2.1.1): ESC + this septet, so 2 septets each.
GSM7_EXTENSION = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}
_SEPTETS = {char: 1 for i, char in enumerate(GSM7_BASIC) if i != 0x1B}
_SEPTETS.update({char: 2 for char in GSM7_EXTENSION.values()})
# One SMS carries 140 octets: 160 septets or 70 UTF-16 units; a part of a concatenated
# one loses 6 octets to the UDH, leaving 153 septets or 67 units. An escape pair or a
# surrogate pair is never split between parts.
SINGLE = {"GSM-7": 160, "UCS-2": 70}
PART = {"GSM-7": 153, "UCS-2": 67}


def encoding(body: str) -> str:
    return "GSM-7" if all(char in _SEPTETS for char in body) else "UCS-2"


def num_segments(body: str) -> int:
    """How many SMS Twilio sends for this body (its Message resource's `num_segments`)."""
    name = encoding(body)
    if name == "GSM-7":
        units = [_SEPTETS[char] for char in body]
    else:
        units = [len(char.encode("utf-16-le", "surrogatepass")) // 2 for char in body]
    if sum(units) <= SINGLE[name]:
        return 1
    segments, used = 1, 0
    for size in units:
        if used + size > PART[name]:
            segments, used = segments + 1, 0
        used += size
    return segments


# Code -> (HTTP status, message template), as Twilio words them. {to} and {from_} are filled in.
ERRORS: dict[int, tuple[int, str]] = {
    20003: (401, "Authenticate"),
    20004: (405, "Method not allowed"),
    20404: (404, "The requested resource {path} was not found"),
    20429: (429, "Too Many Requests"),
    20500: (500, "An internal server error has occurred"),
    20503: (503, "Service is unavailable. Please try again"),
    21211: (400, "Invalid 'To' Phone Number: {to}"),
    21408: (
        400,
        "Permission to send an SMS has not been enabled for the region indicated by the "
        "'To' number: {to}",
    ),
    21602: (400, "Message body is required."),
    21603: (400, "A 'From' phone number is required."),
    21604: (400, "A 'To' phone number is required."),
    21606: (
        400,
        "The 'From' phone number provided ({from_}) is not a valid message-capable Twilio "
        "phone number for this destination/account.",
    ),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21612: (
        400,
        "The 'To' phone number: {to}, is not currently reachable using the 'From' phone "
        "number: {from_} via SMS.",
    ),
    21614: (400, "'To' number {to} is not a valid mobile number"),
    21617: (400, "The concatenated message body exceeds the 1600 character limit."),
}


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: CIMultiDictProxy[str]
    body: bytes
    form: dict[str, str]  # the first value of each form field
    at: datetime
    status: int | None = None


@dataclass
class _NumberFailure:
    code: int
    status: int
    message: str | None
    times: int | None
    headers: Mapping[str, str]

    def take(self) -> bool:
        if self.times is None:
            return True
        if self.times <= 0:
            return False
        self.times -= 1
        return True


def _sent_matches(message: dict[str, Any], query: Mapping[str, str]) -> bool:
    """The DateSent filters: on a day, on or before (`DateSent<`), on or after (`DateSent>`)."""
    filters = {k: v for k, v in query.items() if k.startswith("DateSent")}
    if not filters:
        return True
    sent = message.get("date_sent")
    if sent is None:
        return False  # queued: not sent yet
    day = parsedate_to_datetime(sent).date().isoformat()
    for name, value in filters.items():
        wanted = value.lstrip("=")
        if name == "DateSent" and day != wanted:
            return False
        if name == "DateSent<" and day > wanted:
            return False
        if name == "DateSent>" and day < wanted:
            return False
    return True


def twilio_error(
    code: int,
    *,
    status: int | None = None,
    message: str | None = None,
    headers: Mapping[str, str] | None = None,
    **values: str,
) -> Answer:
    """Twilio's error body for a code."""
    known_status, template = ERRORS.get(code, (400, "Error {code}"))
    text = message or template.format(code=code, **{"to": "", "from_": "", "path": "", **values})
    data: dict[str, Any] = {
        "code": code,
        "message": text,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status or known_status,
    }
    if code == 20003:
        data["detail"] = "Your AccountSid or AuthToken was incorrect."
        headers = {"WWW-Authenticate": 'Basic realm="Twilio API"', **(headers or {})}
    return json_answer(status or known_status, data, headers)


_BY_STATUS = {401: 20003, 404: 20404, 405: 20004, 429: 20429, 500: 20500, 503: 20503}


def _scripted(item: ScriptedAnswer) -> Answer:
    return scripted(
        item,
        lambda status, headers: twilio_error(
            _BY_STATUS.get(status, 20500), status=status, headers=headers
        ),
    )


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """What Twilio puts in X-Twilio-Signature (its own code, not the daemon's)."""
    signed = url + "".join(f"{name}{params[name]}" for name in sorted(params))
    mac = hmac.new(auth_token.encode("utf-8"), signed.encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


class FakeTwilio(FakeServer):
    def __init__(self, *, account_sid: str, auth_token: str, senders: set[str] | None) -> None:
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.senders = senders  # None: any From is accepted
        self.messages: list[dict[str, Any]] = []  # created Message resources
        self._failures: dict[str, _NumberFailure] = {}
        self._script: deque[Answer] = deque()
        self.in_flight = 0  # POSTs arrived and not yet answered
        self.max_in_flight = 0  # the most at once
        self.lists: list[dict[str, str]] = []  # the query of every list request
        self._let_through: dict[str, asyncio.Event] = {}
        self._hold_answers_after: int | None = None
        self._answers = asyncio.Event()
        self._answers.set()
        # Status callbacks.
        self._fates: dict[str, tuple[list[str], int | None]] = {}
        self.callback_order: Literal["in_order", "reversed"] = "in_order"
        self.callback_repeat = False
        self.callbacks: list[tuple[str, str, int]] = []  # (sid, status, receiver's status)

    @classmethod
    @asynccontextmanager
    async def start(
        cls,
        *,
        account_sid: str = ACCOUNT_SID,
        auth_token: str = AUTH_TOKEN,
        senders: set[str] | None = None,
    ) -> AsyncIterator[FakeTwilio]:
        fake = cls(account_sid=account_sid, auth_token=auth_token, senders=senders)
        async with calling_back(fake):
            yield fake

    @property
    def messages_path(self) -> str:
        return f"{API_PREFIX}{self.account_sid}/Messages.json"

    # -- scripting ---------------------------------------------------------------------

    def script(self, *answers: ScriptedAnswer) -> None:
        """Answer the next requests with these, one each, then behave normally again."""
        self._script.extend(_scripted(answer) for answer in answers)

    def rate_limit(self, times: int = 1, retry_after: str | None = None) -> None:
        """The next `times` requests get 429 / 20429 (with Retry-After only if given)."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self._script.extend(twilio_error(20429, headers=headers) for _ in range(times))

    def fail_number(
        self,
        number: str,
        code: int,
        *,
        status: int | None = None,
        message: str | None = None,
        times: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Refuse messages to this number with Twilio's error `code` (`times`, or always)."""
        known_status = ERRORS.get(code, (400, ""))[0]
        self._failures[number] = _NumberFailure(
            code, status or known_status, message, times, headers or {}
        )

    def let_through(self, number: str) -> None:
        """Answer messages to this number even while `hold()` is in force (held ones too)."""
        self._let_through.setdefault(number, asyncio.Event()).set()

    async def _gated(self, number: str) -> None:
        if self._gate.is_set():
            return
        through = self._let_through.setdefault(number, asyncio.Event())
        waits = [asyncio.ensure_future(self._gate.wait()), asyncio.ensure_future(through.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    def hold_answers(self, after: int = 0) -> None:
        """Create every message past the first `after`, but answer only on `release()`."""
        self._hold_answers_after = after
        self._answers.clear()

    def release(self) -> None:
        self._hold_answers_after = None
        self._answers.set()
        super().release()

    def callback_statuses(
        self, number: str, statuses: list[str], *, error_code: int | None = None
    ) -> None:
        """The statuses called back for messages to this number (ErrorCode on the
        undelivered and failed ones)."""
        self._fates[number] = (statuses, error_code)

    async def wait_for_callbacks(self, count: int, timeout: float = 20.0) -> None:
        """Return once `count` status callbacks have been answered."""
        await self._wait(lambda: len(self.callbacks) >= count, timeout)

    def _call_back(self, url: str, resource: dict[str, Any]) -> None:
        statuses, error_code = self._fates.get(resource["to"], (["sent", "delivered"], None))
        statuses = list(statuses)
        if self.callback_order == "reversed":
            statuses.reverse()
        if self.callback_repeat:
            statuses = [s for status in statuses for s in (status, status)]
        self.in_background(self._post_callbacks(url, resource, statuses, error_code))

    async def _post_callbacks(
        self, url: str, resource: dict[str, Any], statuses: list[str], error_code: int | None
    ) -> None:
        for status in statuses:
            params = self.callback_params(resource, status, error_code)
            try:
                answered = await self.post_callback(url, params)
            except aiohttp.ClientError:
                answered = 0  # the receiver is away
            self.callbacks.append((resource["sid"], status, answered))
            await self._notify()

    def callback_params(
        self, resource: dict[str, Any], status: str, error_code: int | None = None
    ) -> dict[str, str]:
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "From": resource["from"] or "",
            "MessageSid": resource["sid"],
            "MessageStatus": status,
            "SmsSid": resource["sid"],
            "SmsStatus": status,
            "To": resource["to"],
        }
        if status in ("undelivered", "failed"):
            params["ErrorCode"] = str(error_code or 30008)
        return params

    async def post_callback(
        self, url: str, params: dict[str, str], signature: str | None = None
    ) -> int:
        """POST one status callback, signed with the auth token unless told otherwise."""
        assert self.client is not None
        headers = {
            "X-Twilio-Signature": signature or twilio_signature(self.auth_token, url, params),
            "User-Agent": "TwilioProxy/1.1",
        }
        async with self.client.post(url, data=params, headers=headers) as response:
            await response.read()
            return response.status

    def sent_to(self, number: str) -> int:
        """How many messages were created for this number."""
        return sum(1 for m in self.messages if m["to"] == number)

    def message(self, sid: str) -> dict[str, Any]:
        return next(m for m in self.messages if m["sid"] == sid)

    # -- serving -----------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        form: dict[str, str] = {}
        if request.content_type == "application/x-www-form-urlencoded":
            parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
            form = {name: values[0] for name, values in parsed.items()}
        record = RecordedRequest(
            request.method, request.path, request.headers, body, form, datetime.now(UTC)
        )
        self.requests.append(record)
        posting = request.method == "POST"
        if posting:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        await self._notify()
        try:
            response = (await self._answer(request, record)).response()
            record.status = response.status
            return response
        finally:
            if posting:
                self.in_flight -= 1
            await self._notify()

    async def _answer(self, request: web.Request, record: RecordedRequest) -> Answer:
        match = _PATH.match(request.path)
        if match is None:
            return twilio_error(20404, path=request.path)
        if request.method == "GET":
            if self._script:
                return self._script.popleft()
            if not self._authorised(request.headers.get("Authorization", "")):
                return twilio_error(20003)
            if match["account"] != self.account_sid:
                return twilio_error(20404, path=request.path)
            return self._list(request)
        if request.method != "POST":
            return twilio_error(20004, headers={"Allow": "GET, POST"})
        await self._gated(record.form.get("To", ""))
        if self._delay:
            await asyncio.sleep(self._delay)  # the fake's latency, not test synchronisation
        if self._script:
            return self._script.popleft()
        if not self._authorised(request.headers.get("Authorization", "")):
            return twilio_error(20003)
        if match["account"] != self.account_sid:
            return twilio_error(20404, path=request.path)
        answer = self._create(record.form)
        held = self._hold_answers_after
        if held is not None and answer.status == 201 and len(self.messages) > held:
            await self._answers.wait()
        return answer

    def _list(self, request: web.Request) -> Answer:
        query = {name: request.query[name] for name in request.query}
        self.lists.append(query)
        to, from_ = query.get("To"), query.get("From")
        found = [
            m
            for m in reversed(self.messages)  # newest first
            if (to is None or m["to"] == to)
            and (from_ is None or m["from"] == from_)
            and _sent_matches(m, query)
        ]
        try:
            size = min(max(int(query.get("PageSize", "50")), 1), 1000)
            page = max(int(query.get("Page", "0")), 0)
        except ValueError:
            return twilio_error(20001, status=400, message="Invalid paging parameter")
        chunk = found[page * size : (page + 1) * size]
        base = self.messages_path
        keep = {k: v for k, v in query.items() if k not in {"Page", "PageToken", "PageSize"}}

        def uri(number: int) -> str:
            params = {**keep, "PageSize": str(size), "Page": str(number)}
            if number:
                params["PageToken"] = f"PA{number * size}"
            return f"{base}?{urlencode(params)}"

        more = (page + 1) * size < len(found)
        return json_answer(
            200,
            {
                "messages": chunk,
                "page": page,
                "page_size": size,
                "start": page * size,
                "end": page * size + max(len(chunk) - 1, 0),
                "uri": uri(page),
                "first_page_uri": uri(0),
                "next_page_uri": uri(page + 1) if more else None,
                "previous_page_uri": uri(page - 1) if page else None,
            },
        )

    def _authorised(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
        except ValueError:
            return False
        user, _, password = decoded.partition(":")
        return user == self.account_sid and password == self.auth_token

    def _create(self, form: dict[str, str]) -> Answer:
        to, from_, body = form.get("To"), form.get("From"), form.get("Body")
        if not to:
            return twilio_error(21604)
        if not from_ and not form.get("MessagingServiceSid"):
            return twilio_error(21603)
        if not body:
            return twilio_error(21602)
        if not _E164.match(to):
            return twilio_error(21211, to=to)
        if self.senders is not None and from_ not in self.senders:
            return twilio_error(21606, from_=from_ or "")
        if len(body) > BODY_LIMIT:
            return twilio_error(21617)
        failure = self._failures.get(to)
        if failure is not None and failure.take():
            return twilio_error(
                failure.code,
                status=failure.status,
                message=failure.message,
                headers=failure.headers,
                to=to,
                from_=from_ or "",
            )
        sid = "SM" + secrets.token_hex(16)
        now = format_datetime(datetime.now(UTC), usegmt=False)
        uri = f"{API_PREFIX}{self.account_sid}/Messages/{sid}"
        resource: dict[str, Any] = {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": from_,
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "num_media": "0",
            "num_segments": str(num_segments(body)),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": to,
            "uri": f"{uri}.json",
        }
        self.messages.append(resource)
        callback = form.get("StatusCallback")
        if callback:
            self._call_back(callback, resource)
        return json_answer(201, resource)
