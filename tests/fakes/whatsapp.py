"""Meta's WhatsApp Business Cloud API as far as the whatsapp adapter uses it, on a free
127.0.0.1 port, and the status webhooks Meta sends back.

    async with FakeWhatsapp.start(templates={("zivilschutz_warnung", "de"): 2}) as fake:
        config = {"base_url": fake.graph_url, "phone_number_id": fake.phone_number_id,
                  "access_token": fake.access_token, "app_secret": fake.app_secret, ...}
        fake.undeliverable("+4915100000002")          # 131026 for that number
        fake.webhook_url = "http://127.0.0.1:8080/hooks/whatsapp/wa"
        ...
        assert fake.sent_to("+4915100000001") == 1

What it does with each request, in this order (shapes from
developers.facebook.com/docs/whatsapp/cloud-api/reference/messages and the error-codes
page; Graph errors are `{"error": {"message", "type", "code", "error_data": {
"messaging_product", "details"}, "fbtrace_id"}}`):

1. records it in `requests` (method, path, headers, body, JSON, and later its status);
2. 400 code 100 for any path but `/v{NN}.0/{phone_number_id}/messages`, or a method
   other than POST;
3. a scripted answer, if one is queued with `script(...)`;
4. 401 code 190 unless `Authorization: Bearer <access_token>` exactly;
5. the body, checked with its own code: JSON with messaging_product `whatsapp`,
   recipient_type `individual`, `to` (digits, an optional +), type `template`, the
   template's name and language among `templates` (else 132001), as many body parameters
   as that template has (else 132000), each of type text without a line break, tab or
   more than 4 spaces in a row (else 132018); a `context.message_id` must be a wamid it
   gave out (else 131009);
6. a failure set for the number with `fail_number(number, code, ...)` or
   `undeliverable(number)` (131026);
7. the throughput: more than `throughput` messages within one second of its clock: 429
   code 130429;
8. the pair rate limit: a message to a number that got one less than `pair_window`
   seconds ago (its clock): 429 code 131056; nothing is created;
9. otherwise 200 `{"messaging_product", "contacts": [{"input", "wa_id"}], "messages":
   [{"id": "wamid.…", "message_status": "accepted"}]}`, appended to `messages`.

Its clock is `time.monotonic()` plus what `advance(seconds)` added, so a test can step
past the pair window without sleeping.

Status webhooks: with `webhook_url` set, each accepted message's statuses (`sent`,
`delivered`, `read` by default; `fate(number, [...], error=...)` for others, `failed`
with an `errors` entry) are POSTed there one by one, in the real webhook shape
(`object: whatsapp_business_account`, `entry[].changes[].value.statuses[]` with id,
status, timestamp, recipient_id, errors), signed `X-Hub-Signature-256: sha256=<hex
HMAC-SHA256(raw body, app_secret)>` with its own code. `webhook_order = "reversed"` sends
them last first, `webhook_repeat = True` each twice. `webhook_answers` records what the
receiver answered.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

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

ACCESS_TOKEN = "EAAG-fake-system-user-token"
APP_SECRET = "fake-app-secret-ÄÖ"
PHONE_NUMBER_ID = "106540352242922"
WABA_ID = "102290129340398"
DISPLAY_NUMBER = "4921155550000"
GRAPH_VERSION = "v21.0"
_PATH = re.compile(r"^/v\d+\.\d+/(?P<number>[^/]+)/messages$")
_TO = re.compile(r"^\+?[1-9]\d{6,14}$")
_BAD_PARAMETER = re.compile(r"[\n\t]| {5,}")

# Code -> (HTTP status, title), as Meta words them.
ERRORS: dict[int, tuple[int, str]] = {
    1: (500, "API Unknown"),
    2: (503, "API Service"),
    4: (400, "Application request limit reached"),
    100: (400, "Invalid parameter"),
    190: (401, "Invalid OAuth access token - Cannot parse access token"),
    200: (403, "Permission error"),
    368: (403, "Temporarily blocked for policies violations"),
    130429: (429, "Rate limit hit"),
    131000: (500, "Something went wrong"),
    131009: (400, "Parameter value is not valid"),
    131026: (400, "Message undeliverable"),
    131047: (400, "Re-engagement message"),
    131056: (429, "(Business Account, Consumer Account) pair rate limit hit"),
    132000: (400, "Number of parameters does not match the expected number of params"),
    132001: (404, "Template name does not exist in the translation"),
    132018: (400, "There was an issue with the parameters in your template."),
}


def meta_error(code: int, *, status: int | None = None, details: str | None = None) -> Answer:
    known_status, title = ERRORS.get(code, (400, f"Error {code}"))
    body = {
        "error": {
            "message": f"(#{code}) {title}",
            "type": "OAuthException",
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": details or title},
            "fbtrace_id": "A" + secrets.token_hex(10),
        }
    }
    return json_answer(status or known_status, body)


_BY_STATUS = {400: 100, 401: 190, 403: 200, 429: 130429, 500: 131000, 503: 2}


def _scripted(item: ScriptedAnswer) -> Answer:
    return scripted(item, lambda status, headers: meta_error(_BY_STATUS.get(status, 131000)))


def sign(app_secret: str, body: bytes) -> str:
    """What Meta puts in X-Hub-Signature-256 (its own code, not the daemon's)."""
    return "sha256=" + hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: CIMultiDictProxy[str]
    body: bytes
    json: Any
    status: int | None = None


@dataclass
class _Failure:
    code: int
    status: int | None
    times: int | None

    def take(self) -> bool:
        if self.times is None:
            return True
        if self.times <= 0:
            return False
        self.times -= 1
        return True


@dataclass
class _Fate:
    statuses: list[str]
    error: int | None


# A channel's templates for every stage of the repository's playbooks and the correction,
# and what the fake's business account has approved: (name, language) -> body parameters.
STAGES = ["warning", "update", "all_clear", "announcement", "evacuation", "defusal"]
TEMPLATES: dict[str, dict[str, str]] = {
    stage: {"name": f"warnung_{stage}", "language": "de"} for stage in STAGES
}
TEMPLATES["_retraction"] = {"name": "warnung_korrektur", "language": "de"}
APPROVED = {(t["name"], "de"): 2 for t in TEMPLATES.values()}


class FakeWhatsapp(FakeServer):
    def __init__(
        self,
        *,
        access_token: str,
        app_secret: str,
        phone_number_id: str,
        templates: Mapping[tuple[str, str], int],
        pair_window: float,
    ) -> None:
        super().__init__()
        self.access_token = access_token
        self.app_secret = app_secret
        self.phone_number_id = phone_number_id
        # (name, language) -> how many body parameters the approved template has.
        self.templates = dict(templates)
        self.pair_window = pair_window  # seconds between two messages to one number
        self.throughput: float | None = None  # messages a second; None: no limit
        self.messages: list[dict[str, Any]] = []  # accepted messages
        self.offset = 0.0
        self._last: dict[str, float] = {}  # number -> when its last message was accepted
        self._recent: deque[float] = deque()  # when messages were accepted (throughput)
        self._failures: dict[str, _Failure] = {}
        self._fates: dict[str, _Fate] = {}
        self._script: deque[Answer] = deque()
        self.refusals: list[int] = []  # the code of every refusal, in order
        # Webhooks.
        self.webhook_url: str | None = None
        self.webhook_order: Literal["in_order", "reversed"] = "in_order"
        self.webhook_repeat = False
        self.webhook_answers: list[tuple[str, str, int]] = []  # (wamid, status, HTTP status)

    @classmethod
    @asynccontextmanager
    async def start(
        cls,
        *,
        templates: Mapping[tuple[str, str], int],
        access_token: str = ACCESS_TOKEN,
        app_secret: str = APP_SECRET,
        phone_number_id: str = PHONE_NUMBER_ID,
        pair_window: float = 6.0,
    ) -> AsyncIterator[FakeWhatsapp]:
        fake = cls(
            access_token=access_token,
            app_secret=app_secret,
            phone_number_id=phone_number_id,
            templates=templates,
            pair_window=pair_window,
        )
        async with calling_back(fake):
            yield fake

    @property
    def graph_url(self) -> str:
        """The channel's base_url: the Graph API with its version."""
        return f"{self.base_url}/{GRAPH_VERSION}"

    # -- levers --------------------------------------------------------------------------

    def now(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        """Move its clock on (past the pair window) without anyone sleeping."""
        self.offset += seconds

    def script(self, *answers: ScriptedAnswer) -> None:
        """Answer the next requests with these, one each (3: after the path check)."""
        self._script.extend(_scripted(answer) for answer in answers)

    def fail_number(
        self, number: str, code: int, *, status: int | None = None, times: int | None = None
    ) -> None:
        """Refuse messages to this number with Meta's `code` (`times`, or always)."""
        self._failures[_digits(number)] = _Failure(code, status, times)

    def undeliverable(self, number: str) -> None:
        """Not a WhatsApp user: 131026 for every message to it."""
        self.fail_number(number, 131026)

    def fate(self, number: str, statuses: list[str], *, error: int | None = None) -> None:
        """The statuses the webhook reports for messages to this number."""
        self._fates[_digits(number)] = _Fate(statuses, error)

    def sent_to(self, number: str) -> int:
        return sum(1 for m in self.messages if m["to"] == _digits(number))

    def message(self, wamid: str) -> dict[str, Any]:
        return next(m for m in self.messages if m["id"] == wamid)

    async def wait_for_refusals(self, code: int, count: int = 1, timeout: float = 20.0) -> None:
        """Return once `count` requests have been refused with `code`."""
        await self._wait(lambda: self.refusals.count(code) >= count, timeout)

    async def wait_for_webhooks(self, count: int, timeout: float = 20.0) -> None:
        """Return once `count` webhook posts have been answered."""
        await self._wait(lambda: len(self.webhook_answers) >= count, timeout)

    # -- serving -------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            data = json.loads(body) if body else None
        except ValueError:
            data = None
        record = RecordedRequest(request.method, request.path, request.headers, body, data)
        self.requests.append(record)
        await self._notify()
        answer = self._answer(request, record)
        if answer.status >= 400:
            try:
                error = json.loads(answer.body).get("error", {})
            except (ValueError, AttributeError):
                error = {}  # a scripted answer that is not a Graph error
            self.refusals.append(int(error.get("code", 0)))
        record.status = answer.status
        await self._notify()
        return answer.response()

    def _answer(self, request: web.Request, record: RecordedRequest) -> Answer:
        match = _PATH.match(request.path)
        if match is None or request.method != "POST":
            return meta_error(100, details=f"Unsupported request {request.method} {request.path}")
        if self._script:
            return self._script.popleft()
        if request.headers.get("Authorization") != f"Bearer {self.access_token}":
            return meta_error(190)
        if match["number"] != self.phone_number_id:
            return meta_error(100, details=f"Object with ID '{match['number']}' does not exist")
        problem = self._check(record.json)
        if problem is not None:
            return problem
        data = record.json
        to = _digits(data["to"])
        failure = self._failures.get(to)
        if failure is not None and failure.take():
            return meta_error(failure.code, status=failure.status)
        now = self.now()
        while self._recent and self._recent[0] <= now - 1.0:
            self._recent.popleft()
        if self.throughput is not None and len(self._recent) >= self.throughput:
            return meta_error(130429)
        last = self._last.get(to)
        if last is not None and now - last < self.pair_window:
            return meta_error(131056)
        self._last[to] = now
        self._recent.append(now)
        wamid = "wamid.HBgN" + secrets.token_hex(16).upper()
        context = data.get("context") or {}
        self.messages.append(
            {
                "id": wamid,
                "to": to,
                "template": data["template"],
                "context": context.get("message_id"),
            }
        )
        self._webhooks(wamid, to)
        return json_answer(
            200,
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": data["to"], "wa_id": to}],
                "messages": [{"id": wamid, "message_status": "accepted"}],
            },
        )

    def _check(self, data: Any) -> Answer | None:
        if not isinstance(data, dict):
            return meta_error(100, details="The request body is not JSON")
        if data.get("messaging_product") != "whatsapp":
            return meta_error(100, details="The parameter messaging_product is required.")
        if data.get("recipient_type", "individual") != "individual":
            return meta_error(100, details="recipient_type must be individual")
        to = data.get("to")
        if not isinstance(to, str) or not _TO.match(to):
            return meta_error(100, details="The parameter to is not a phone number")
        if data.get("type") != "template":
            return meta_error(131047)  # free text outside the 24-hour window
        template = data.get("template")
        if not isinstance(template, dict):
            return meta_error(100, details="The parameter template is required.")
        name = template.get("name")
        language = template.get("language")
        code = language.get("code") if isinstance(language, dict) else None
        count = self.templates.get((str(name), str(code)))
        if count is None:
            return meta_error(132001, details=f"template name ({name}) does not exist in {code}")
        parameters: list[Any] = []
        for component in template.get("components") or []:
            if isinstance(component, dict) and component.get("type") == "body":
                parameters += component.get("parameters") or []
        if len(parameters) != count:
            return meta_error(
                132000,
                details=f"body: number of localizable_params ({len(parameters)}) "
                f"does not match the expected number of params ({count})",
            )
        for parameter in parameters:
            text = parameter.get("text") if isinstance(parameter, dict) else None
            if not isinstance(text, str) or parameter.get("type") != "text":
                return meta_error(100, details="A body parameter must be {type: text, text}")
            if _BAD_PARAMETER.search(text):
                return meta_error(
                    132018,
                    details="Param text cannot have new-line/tab characters or more than "
                    "4 consecutive spaces",
                )
        context = data.get("context")
        if context is not None:
            quoted = context.get("message_id") if isinstance(context, dict) else None
            if not any(m["id"] == quoted for m in self.messages):
                return meta_error(131009, details="context.message_id is not a known message")
        return None

    # -- webhooks ------------------------------------------------------------------------

    def _webhooks(self, wamid: str, to: str) -> None:
        if self.webhook_url is None:
            return
        fate = self._fates.get(to, _Fate(["sent", "delivered", "read"], None))
        statuses = list(fate.statuses)
        if self.webhook_order == "reversed":
            statuses.reverse()
        if self.webhook_repeat:
            statuses = [s for status in statuses for s in (status, status)]
        self.in_background(self._post_all(self.webhook_url, wamid, to, statuses, fate))

    async def _post_all(
        self, url: str, wamid: str, to: str, statuses: list[str], fate: _Fate
    ) -> None:
        for status in statuses:
            body = json.dumps(self.status_body(wamid, to, status, fate.error)).encode("utf-8")
            try:
                answered = await self.post_webhook(url, body)
            except aiohttp.ClientError:
                answered = 0  # the receiver is away (Meta would retry later)
            self.webhook_answers.append((wamid, status, answered))
            await self._notify()

    async def post_webhook(self, url: str, body: bytes, signature: str | None = None) -> int:
        """POST one webhook body, signed with the app secret unless told otherwise."""
        assert self.client is not None
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": signature or sign(self.app_secret, body),
            "User-Agent": "facebookexternalua",
        }
        async with self.client.post(url, data=body, headers=headers) as response:
            await response.read()
            return response.status

    def status_body(
        self, wamid: str, to: str, status: str, error: int | None = None
    ) -> dict[str, Any]:
        """A status webhook's body as Meta sends it."""
        entry: dict[str, Any] = {
            "id": wamid,
            "status": status,
            "timestamp": str(int(time.time() + self.offset)),
            "recipient_id": to,
        }
        if status != "failed":
            entry["conversation"] = {
                "id": secrets.token_hex(16),
                "origin": {"type": "utility"},
            }
            entry["pricing"] = {"billable": True, "pricing_model": "PMP", "category": "utility"}
        else:
            code = error or 131000
            title = ERRORS.get(code, (400, f"Error {code}"))[1]
            entry["errors"] = [
                {
                    "code": code,
                    "title": title,
                    "message": title,
                    "error_data": {"details": title},
                    "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
                }
            ]
        return {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": WABA_ID,
                    "changes": [
                        {
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": DISPLAY_NUMBER,
                                    "phone_number_id": self.phone_number_id,
                                },
                                "statuses": [entry],
                            },
                            "field": "messages",
                        }
                    ],
                }
            ],
        }


def _digits(number: str) -> str:
    return number.removeprefix("+")
