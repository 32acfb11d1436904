"""A Mastodon instance's statuses API, on a free 127.0.0.1 port.

    async with FakeMastodon.start() as fake:
        config = MastodonChannel(type="mastodon", base_url=fake.base_url, access_token=TOKEN)
        fake.rate_limit(reset_in=90)        # the next answer: 429, X-RateLimit-Reset now+90 s
        ...
        assert fake.posts[0]["text"] == "Großbrand"

Imitated from docs.joinmastodon.org (methods/statuses, api/rate-limits, entities/Error)
and Mastodon's own code (Api::V1::StatusesController, PostStatusService,
config/initializers/rack_attack.rb). What it does with each request, in this order:

1. records it in `requests` (method, path, headers, body, the parameters, time, later the
   answered status and whether it was an idempotent replay);
2. 404 `{"error": "Record not found"}` for anything but POST /api/v1/statuses and
   GET or DELETE /api/v1/statuses/:id;
3. for a POST with an Idempotency-Key that another request is still processing: 503
   `{"error": "There was a temporary problem serving your request, please try again"}`
   (the key's Redis lock is taken; Mastodon::RaceConditionError);
4. waits while `hold()` is in force, then `delay(seconds)`;
5. a scripted answer, if one is queued (`script`, `rate_limit`): an outage in front of
   the application, taken verbatim, not processed;
6. the `fail_permanently(status, message)` answer, if set;
7. for POST and DELETE: 401 `{"error": "The access token is invalid"}` unless
   `Authorization: Bearer <token>` names the account's token; 403
   `{"error": "Your login is currently disabled"}` after `disable_account()`;
8. the rate limits: 300 API requests per 5 minutes per token, and DELETE of a status 30
   per 30 minutes per account; over a limit: 429 `{"error": "Too many requests"}`;
9. POST /api/v1/statuses, form data or JSON: a repeated Idempotency-Key (kept one hour
   per account) answers the original status again, whatever the body, and posts
   nothing; else 422 `{"error": "Validation failed: Text can't be blank"}` without
   `status`, 422 for an unknown visibility, 404 `{"error": "The post you are trying to
   reply to does not appear to exist."}` for a reply to an unknown or deleted status, 422
   `{"error": "Validation failed: Text character limit of 500 exceeded"}` over
   `max_characters` (`countable_length`: StatusLengthValidator); otherwise 200
   with the new Status (`content` is the text HTML-escaped, as Mastodon renders it),
   appended to `posts`. `answer_after_commit(...)` lets the next POST be processed and
   then answers it with an error instead (an answer lost after the status was made);
10. DELETE /api/v1/statuses/:id: 200 with the Status and its source `text`; 404
    `{"error": "Record not found"}` for an unknown or deleted one.

Every API answer carries `X-RateLimit-Limit`, `-Remaining` and `-Reset` (ISO 8601 with
microseconds, as Ruby's `iso8601(6)` writes it); a 429 has no Retry-After.
"""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import regex  # type: ignore[import-untyped]  # no stubs; used through typed helpers
from aiohttp import web
from multidict import CIMultiDictProxy

from tests.fakes.base import (
    Answer,
    FakeServer,
    ScriptedAnswer,
    json_answer,
    phrase,
    scripted,
    serving,
)
from tests.fakes.twitter_text import find_urls

TOKEN = "ZA-Yj3aBD8U8Cm7lKUp-lm9O9BmDgdhHzDeqsY8tlL0"
USERNAME = "feuerwehr_dus"
DOMAIN = "social.example"
VISIBILITIES = ("public", "unlisted", "private", "direct")
IDEMPOTENCY_TTL = 3600.0  # seconds Mastodon keeps an Idempotency-Key (redis setex 3_600)
API_LIMIT, API_PERIOD = 300, 300  # throttle_per_token_api
DELETE_LIMIT, DELETE_PERIOD = 30, 1800  # throttle_api_delete
_STATUS = re.compile(r"^/api/v1/statuses/(?P<id>[^/]+)$")

TOKEN_INVALID = "The access token is invalid"
LOGIN_DISABLED = "Your login is currently disabled"
NOT_FOUND = "Record not found"
REPLY_NOT_FOUND = "The post you are trying to reply to does not appear to exist."
TEMPORARY = "There was a temporary problem serving your request, please try again"
TOO_MANY = "Too many requests"


# StatusLengthValidator (app/validators/status_length_validator.rb), read by the fake
# itself: the grapheme clusters of spoiler_text + the text, where the text (unless blank)
# has every URL replaced by URL_PLACEHOLDER_CHARS "x" and every mention by "@username".
# URLs come from twitter-text's extractor without protocol-less ones; mentions from
# Account::MENTION_RE, not followed by @, a Latin accent or :// (twitter-text's
# end_mention_match), with a domain of at most Extractor::MAX_DOMAIN_LENGTH characters;
# where a URL and a mention overlap the earlier one wins (remove_overlapping_entities).
URL_PLACEHOLDER_CHARS = 23
MAX_DOMAIN_LENGTH = 253
_MENTION = regex.compile(
    r"(?<![=/\w])@(?P<name>[a-z0-9_]+(?:[.-]+[a-z0-9_]+)*)(?:@(?P<domain>\w+(?:[.-]+\w+)*))?",
    regex.IGNORECASE,
)
_END_MENTION = regex.compile(
    r"[@＠\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u0300-\u036f\u1e00-\u1eff]|://"
)
_GRAPHEME = regex.compile(r"\X")


def countable_length(text: str, spoiler_text: str = "") -> int:
    """The length Mastodon holds against `max_characters`."""
    if text.strip():
        entities: list[tuple[int, int, str]] = [
            (url.start, url.end, "x" * URL_PLACEHOLDER_CHARS)
            for url in find_urls(text, without_protocol=False)
        ]
        for match in _MENTION.finditer(text):
            domain = match.group("domain")
            if _END_MENTION.match(text, match.end()) or (
                domain and len(domain) > MAX_DOMAIN_LENGTH
            ):
                continue
            entities.append((int(match.start()), int(match.end()), "@" + match.group("name")))
        rewritten, position = [], 0
        for start, end, replacement in sorted(entities):
            if start < position:
                continue  # overlaps an earlier entity
            rewritten += [text[position:start], replacement]
            position = end
        text = "".join([*rewritten, text[position:]])
    else:
        text = ""
    return len(_GRAPHEME.findall(spoiler_text + text))


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: CIMultiDictProxy[str]
    body: bytes
    params: dict[str, Any]  # form fields or JSON object, as Rails would see them
    at: datetime
    status: int | None = None
    replayed: bool = False  # answered from the Idempotency-Key store


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Answer:
    return json_answer(status, {"error": message}, headers)


def iso_reset(moment: datetime) -> str:
    """A time the way Mastodon writes X-RateLimit-Reset: `2026-11-23T10:25:00.019685Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _created_at(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def render_content(text: str) -> str:
    """The HTML `content` Mastodon makes of a plain-text status (escaped, paragraphs)."""
    paragraphs = [p for p in re.split(r"\n{2,}", text.strip()) if p]
    return "".join(
        "<p>" + html.escape(p, quote=True).replace("\n", "<br />") + "</p>" for p in paragraphs
    )


def _scripted(item: ScriptedAnswer) -> Answer:
    return scripted(item, lambda status, headers: _error(status, phrase(status), headers))


class FakeMastodon(FakeServer):
    def __init__(
        self,
        *,
        token: str = TOKEN,
        max_characters: int = 500,
        delete_limit: int = DELETE_LIMIT,
        api_limit: int = API_LIMIT,
    ) -> None:
        super().__init__()
        self.token = token
        self.max_characters = max_characters
        self.delete_limit = delete_limit
        self.api_limit = api_limit
        self.posts: list[dict[str, Any]] = []  # every status made, in order (with "text")
        self.statuses: dict[str, dict[str, Any]] = {}  # live statuses by id
        self.deleted: set[str] = set()
        self.disabled = False
        self._keys: dict[str, tuple[str, float]] = {}  # Idempotency-Key -> (id, stored at)
        self._locked: set[str] = set()
        self._windows: dict[tuple[str, int], int] = {}  # (throttle, window) -> count
        self._ids = itertools.count(1)
        self._script: deque[Answer] = deque()
        self._after_commit: deque[Answer] = deque()
        self._permanent: Answer | None = None

    @classmethod
    @asynccontextmanager
    async def start(cls, **options: Any) -> AsyncIterator[FakeMastodon]:
        fake = cls(**options)
        async with serving(fake):
            yield fake

    # -- scripting ---------------------------------------------------------------------

    def script(self, *answers: ScriptedAnswer) -> None:
        """Answer the next requests with these, one each, then behave normally again."""
        self._script.extend(_scripted(answer) for answer in answers)

    def rate_limit(self, reset_in: float, *, limit: int = API_LIMIT) -> None:
        """The next answer: 429 as rack-attack gives it, resetting `reset_in` seconds on."""
        reset = datetime.now(UTC) + timedelta(seconds=reset_in)
        headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": iso_reset(reset),
        }
        self._script.append(_error(429, TOO_MANY, headers))

    def answer_after_commit(self, *answers: ScriptedAnswer) -> None:
        """Process the next POSTs normally, then answer them with these instead."""
        self._after_commit.extend(_scripted(answer) for answer in answers)

    def fail_permanently(self, status: int, message: str) -> None:
        """Answer every request with `{"error": message}` until `recover()`."""
        self._permanent = _error(status, message)

    def recover(self) -> None:
        self._permanent = None

    def remove(self, status_id: str) -> None:
        """The account's owner deleted the status by hand (not through the API, so it is
        not in `deleted`): a reply to it is now 404."""
        self.statuses.pop(status_id, None)

    def disable_account(self) -> None:
        self.disabled = True

    def forget_keys(self) -> None:
        """Let every Idempotency-Key expire (as after Mastodon's hour)."""
        self._keys.clear()

    # -- serving -----------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        record = RecordedRequest(
            request.method,
            request.path,
            request.headers,
            body,
            await _params(request, body),
            datetime.now(UTC),
        )
        self.requests.append(record)
        await self._notify()
        try:
            response = await self._answer(request, record)
            record.status = response.status
            return response
        finally:
            await self._notify()

    async def _answer(self, request: web.Request, record: RecordedRequest) -> web.Response:
        status_match = _STATUS.match(request.path)
        posting = request.path == "/api/v1/statuses" and request.method == "POST"
        if not posting and not (status_match and request.method in ("GET", "DELETE")):
            return _error(404, NOT_FOUND).response()
        key = request.headers.get("Idempotency-Key") if posting else None
        if key:
            if key in self._locked:
                return _error(503, TEMPORARY).response()
            self._locked.add(key)
        try:
            await self._gate.wait()
            if self._delay:
                await asyncio.sleep(self._delay)  # the fake's latency, not test synchronisation
            if self._script:
                return self._script.popleft().response()
            if self._permanent is not None:
                return self._permanent.response()
            public = request.method == "GET"  # a public status needs no token
            if not public and request.headers.get("Authorization") != f"Bearer {self.token}":
                challenge = (
                    'Bearer realm="Doorkeeper", error="invalid_token", '
                    f'error_description="{TOKEN_INVALID}"'
                )
                return _error(401, TOKEN_INVALID, {"WWW-Authenticate": challenge}).response()
            if self.disabled and not public:
                return _error(403, LOGIN_DISABLED).response()
            limited, limit_headers = self._throttle(request)
            if limited is not None:
                return limited.response()
            if posting:
                answer = self._post(record, key)
                if 200 <= answer.status < 300 and not record.replayed and self._after_commit:
                    answer = self._after_commit.popleft()
            elif request.method == "DELETE":
                assert status_match is not None
                answer = self._delete(status_match["id"])
            else:
                assert status_match is not None
                answer = self._show(status_match["id"])
            return answer.response(limit_headers)
        finally:
            if key:
                self._locked.discard(key)

    def _throttle(self, request: web.Request) -> tuple[Answer | None, dict[str, str]]:
        """rack-attack's fixed windows; the headers of the tightest throttle."""
        now = time.time()
        throttles = [("api", self.api_limit, API_PERIOD)]
        if request.method == "DELETE":
            throttles.append(("delete", self.delete_limit, DELETE_PERIOD))
        headers: dict[str, str] = {}
        tightest: int | None = None
        for name, limit, period in throttles:
            window = int(now) // period
            count = self._windows.get((name, window), 0) + 1
            self._windows[(name, window)] = count
            reset = datetime.fromtimestamp(now + (period - int(now) % period), UTC)
            remaining = max(0, limit - count)
            if tightest is None or remaining <= tightest:
                tightest = remaining
                headers = {
                    "X-RateLimit-Limit": str(limit),
                    "X-RateLimit-Remaining": str(remaining),
                    "X-RateLimit-Reset": iso_reset(reset),
                }
            if count > limit:
                return _error(429, TOO_MANY, headers), headers
        return None, headers

    def _post(self, record: RecordedRequest, key: str | None) -> Answer:
        if key:
            stored = self._keys.get(key)
            if stored is not None and time.monotonic() - stored[1] < IDEMPOTENCY_TTL:
                record.replayed = True
                original = self.statuses.get(stored[0])
                if original is None:  # deleted since: `@account.statuses.find` fails
                    return _error(404, NOT_FOUND)
                return json_answer(200, self._entity(original))
        params = record.params
        text = params.get("status")
        text = text if isinstance(text, str) else ""
        if not text.strip():
            return _error(422, "Validation failed: Text can't be blank")
        visibility = params.get("visibility") or "public"
        if visibility not in VISIBILITIES:
            return _error(422, f"'{visibility}' is not a valid visibility")
        parent_id = params.get("in_reply_to_id") or None
        parent = self.statuses.get(str(parent_id)) if parent_id is not None else None
        if parent_id is not None and parent is None:
            return _error(404, REPLY_NOT_FOUND)
        spoiler = params.get("spoiler_text")
        spoiler = spoiler if isinstance(spoiler, str) else ""
        if countable_length(text, spoiler) > self.max_characters:
            return _error(
                422, f"Validation failed: Text character limit of {self.max_characters} exceeded"
            )
        now = datetime.now(UTC)
        status_id = str((int(now.timestamp() * 1000) << 16) + next(self._ids))
        language = params.get("language")
        status: dict[str, Any] = {
            "id": status_id,
            "created_at": _created_at(now),
            "in_reply_to_id": parent["id"] if parent else None,
            "in_reply_to_account_id": "109302" if parent else None,
            "sensitive": False,
            "spoiler_text": spoiler,
            "visibility": visibility,
            "language": language if isinstance(language, str) and language else None,
            "uri": f"https://{DOMAIN}/users/{USERNAME}/statuses/{status_id}",
            "url": f"https://{DOMAIN}/@{USERNAME}/{status_id}",
            "replies_count": 0,
            "reblogs_count": 0,
            "favourites_count": 0,
            "edited_at": None,
            "content": render_content(text),
            "reblog": None,
            "application": {"name": "broadcaster", "website": None},
            "account": {
                "id": "109302",
                "username": USERNAME,
                "acct": USERNAME,
                "display_name": "Feuerwehr Düsseldorf",
                "url": f"https://{DOMAIN}/@{USERNAME}",
            },
            "media_attachments": [],
            "mentions": [],
            "tags": [],
            "emojis": [],
            "card": None,
            "poll": None,
            "text": text,  # source text: shown only by DELETE (delete and redraft)
        }
        self.statuses[status_id] = status
        self.posts.append(status)
        if key:
            self._keys[key] = (status_id, time.monotonic())
        return json_answer(200, self._entity(status))

    def _delete(self, status_id: str) -> Answer:
        status = self.statuses.pop(status_id, None)
        if status is None:
            return _error(404, NOT_FOUND)
        self.deleted.add(status_id)
        return json_answer(200, status)

    def _show(self, status_id: str) -> Answer:
        status = self.statuses.get(status_id)
        return json_answer(200, self._entity(status)) if status else _error(404, NOT_FOUND)

    @staticmethod
    def _entity(status: dict[str, Any]) -> dict[str, Any]:
        return {name: value for name, value in status.items() if name != "text"}


async def _params(request: web.Request, body: bytes) -> dict[str, Any]:
    """The parameters as Rails reads them: query, then a form or JSON body."""
    params: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            data = {}
        if isinstance(data, dict):
            params.update(data)
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        params.update({name: value for name, value in form.items() if isinstance(value, str)})
    return params
