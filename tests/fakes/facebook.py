"""The Graph API of one Facebook Page, as far as the Facebook adapter uses it.

    async with FakeGraph.start() as fake:
        config = FacebookChannel(type="facebook", base_url=fake.base_url + "/v21.0",
                                 page_id=fake.page_id, page_access_token=fake.page_token)
        fake.throttle(80001, minutes=7)     # the next answer: BUC limit, 7 min to regain access
        ...
        assert fake.posts[0]["message"] == "Großbrand"

What it does with each request, in this order (shapes from developers.facebook.com/docs/
pages-api/posts, .../graph-api/guides/error-handling, .../graph-api/overview/rate-limiting):

1. records it in `requests` (method, path, the version prefix, headers, body, parameters
   from query string and form body, time, and later the status it was answered with);
2. any `/vNN.N/` prefix is accepted (and none: unversioned calls go to the oldest
   version); the token is read from `access_token` (query or form) or
   `Authorization: Bearer`: none is 400 code 104, another than the Page token 400 code
   190 "Invalid OAuth access token" with a WWW-Authenticate header, as Graph sends;
3. waits while `hold()` is in force, then `delay(seconds)`;
4. a scripted answer, if one is queued with `script(...)`, `fail(...)` or `throttle(...)`;
5. `POST /{page-id}/feed`: 400 code 100 without `message`; 400 code 506 "Duplicate
   status message" when the text equals the Page's latest post; else
   `{"id": "{page-id}_{post-id}"}`, appended to `posts`;
   `POST /{page-id}/photos` (`url`, `caption` or `message`): fetches `url` itself, as
   Facebook does (not a JPEG or PNG, or not reachable: 400 code 324 "Missing or invalid
   image file" [U]), then a photo post: `{"id": "<photo-id>", "post_id":
   "{page-id}_{post-id}"}`, appended to `posts` with `photo_id` and `image`;
   deleting the photo deletes its post and comments;
   `POST /{post-id}/comments`: a comment by the Page, `{"id": "{post}_{comment}"}`,
   appended to `comments`;
   `DELETE /{id}`: `{"success": true}`; deleting a post deletes its comments;
   an id that does not exist (or no longer): 400 code 100, subcode 33, "Unsupported
   <method> request. Object with ID '...' does not exist, ...";
   any other path or method: the same code 100 answer.

Every answer carries `X-Business-Use-Case-Usage` (`{"<page-id>": [{"type": "pages",
"call_count", "total_cputime", "total_time", "estimated_time_to_regain_access"}]}`,
percentages and minutes) as Graph does for calls with a Page token. Errors are
`{"error": {"message", "type", "code", "error_subcode"?, "is_transient"?, "fbtrace_id"}}`
with HTTP 400, 403 or 5xx: classify by code, never by status. The Graph API has no
idempotency key: the same text twice in a row is refused with 506, other repeats post
again.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import secrets
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from multidict import CIMultiDictProxy

from tests.fakes.base import FakeServer, serving

PAGE_ID = "104928371234567"
PAGE_TOKEN = "EAAGfakePageToken-ÄÖÜ-0123456789"
USAGE_HEADER = "X-Business-Use-Case-Usage"
_VERSIONED = re.compile(r"^/(?P<version>v\d+\.\d+)(?P<rest>/.*)$")

# Code -> (HTTP status, message), as Graph words them (error-handling guide and answers
# seen from the API). The status is what Graph usually sends; code decides, not status.
ERRORS: dict[int, tuple[int, str]] = {
    1: (500, "An unknown error has occurred."),
    2: (503, "An unexpected error has occurred. Please retry your request later."),
    3: (400, "(#3) Application does not have the capability to make this API call."),
    4: (403, "(#4) Application request limit reached"),
    10: (403, "(#10) Application does not have permission for this action"),
    17: (403, "(#17) User request limit reached"),
    32: (403, "(#32) Page request limit reached"),
    100: (400, "(#100) Invalid parameter"),
    104: (400, "An access token is required to request this resource."),
    190: (400, "Invalid OAuth access token - Cannot parse access token"),
    200: (
        403,
        "(#200) If posting to a page, requires both pages_read_engagement and "
        "pages_manage_posts as an admin with sufficient administrative permission",
    ),
    341: (400, "(#341) Application limit reached"),
    368: (
        400,
        "It looks like you were misusing this feature by going too fast. You’ve been "
        "temporarily blocked from using it.",
    ),
    506: (400, "(#506) Duplicate status message"),
    613: (400, "(#613) Calls to this api have exceeded the rate limit."),
    80001: (
        400,
        "(#80001) There have been too many calls to this Page account. Wait a bit and try "
        "again. For more info, please refer to "
        "https://developers.facebook.com/docs/graph-api/overview/rate-limiting.",
    ),
}


@dataclass
class RecordedRequest:
    method: str
    path: str  # as received, version prefix included
    version: str | None  # "v21.0", or None for an unversioned call
    headers: CIMultiDictProxy[str]
    body: bytes
    params: dict[str, str]  # query string and form body, merged (first value each)
    at: datetime
    status: int | None = None


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


def _json(status: int, data: Any, headers: Mapping[str, str] | None = None) -> Answer:
    body = json.dumps(data, ensure_ascii=False).encode("utf-8")
    return Answer(
        status, body, {"Content-Type": "application/json; charset=UTF-8", **(headers or {})}
    )


def graph_error(
    code: int,
    *,
    message: str | None = None,
    subcode: int | None = None,
    status: int | None = None,
    is_transient: bool | None = None,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """Graph's error object for a code."""
    known_status, known_message = ERRORS.get(code, (400, f"(#{code}) Error"))
    error: dict[str, Any] = {
        "message": message or known_message,
        "type": "OAuthException",
        "code": code,
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    if is_transient is not None:
        error["is_transient"] = is_transient
    error["fbtrace_id"] = secrets.token_urlsafe(8)
    extra = dict(headers or {})
    if code == 190:
        extra.setdefault(
            "WWW-Authenticate",
            f'OAuth "Facebook Platform" "invalid_token" "{error["message"]}"',
        )
    return _json(status or known_status, {"error": error}, extra)


def _not_there(method: str, object_id: str) -> Answer:
    return graph_error(
        100,
        subcode=33,
        message=(
            f"Unsupported {method.lower()} request. Object with ID '{object_id}' does not "
            "exist, cannot be loaded due to missing permissions, or does not support this "
            "operation. Please read the Graph API documentation at "
            "https://developers.facebook.com/docs/graph-api"
        ),
    )


async def graph_record(request: web.Request) -> tuple[RecordedRequest, str]:
    """A Graph API request as recorded (query and form parameters merged), and its path
    without the version prefix."""
    body = await request.read()
    params = {key: request.query[key] for key in request.query}
    if request.content_type == "application/x-www-form-urlencoded":
        form = await request.post()
        params.update({key: str(form[key]) for key in form})
    versioned = _VERSIONED.match(request.path)
    record = RecordedRequest(
        request.method,
        request.path,
        versioned["version"] if versioned else None,
        request.headers,
        body,
        params,
        datetime.now(UTC),
    )
    return record, versioned["rest"] if versioned else request.path


def graph_token(record: RecordedRequest) -> str | None:
    """The access token: the `access_token` parameter, or `Authorization: Bearer`."""
    if "access_token" in record.params:
        return record.params["access_token"]
    authorization = record.headers.get("Authorization", "")
    return authorization[7:] if authorization.startswith("Bearer ") else None


def usage(page_id: str, *, call_count: int = 1, minutes: int = 0) -> str:
    """An `X-Business-Use-Case-Usage` value for the Page."""
    entry = {
        "type": "pages",
        "call_count": call_count,
        "total_cputime": 1,
        "total_time": 1,
        "estimated_time_to_regain_access": minutes,
    }
    return json.dumps({page_id: [entry]}, separators=(",", ":"))


class FakeGraph(FakeServer):
    def __init__(self, *, page_id: str, page_token: str) -> None:
        super().__init__()
        self.page_id = page_id
        self.page_token = page_token
        self.posts: list[dict[str, Any]] = []  # every Page post created, in order
        self.comments: list[dict[str, Any]] = []  # every comment created, in order
        self.deleted: set[str] = set()
        self._objects: dict[str, dict[str, Any]] = {}  # id -> live post or comment
        self._ids = itertools.count(860000000000001)
        self._calls = 0
        self._script: deque[Answer] = deque()

    @classmethod
    @asynccontextmanager
    async def start(
        cls, *, page_id: str = PAGE_ID, page_token: str = PAGE_TOKEN
    ) -> AsyncIterator[FakeGraph]:
        fake = cls(page_id=page_id, page_token=page_token)
        async with serving(fake):
            yield fake

    # -- scripting ---------------------------------------------------------------------

    def script(self, *answers: Answer | int) -> None:
        """Answer the next requests with these, one each (a bare int is a Graph error code)."""
        for answer in answers:
            self._script.append(graph_error(answer) if isinstance(answer, int) else answer)

    def fail(self, code: int, *, times: int = 1, **details: Any) -> None:
        """The next `times` answers: Graph's error with this code (see `graph_error`)."""
        for _ in range(times):
            self.script(graph_error(code, **details))

    def throttle(self, code: int = 80001, *, minutes: int = 5, times: int = 1) -> None:
        """A rate-limit error with the usage header saying when access returns."""
        header = {USAGE_HEADER: usage(self.page_id, call_count=100, minutes=minutes)}
        for _ in range(times):
            self.script(graph_error(code, headers=header))

    def remove(self, object_id: str) -> None:
        """Someone deleted the post (or comment) on facebook.com."""
        self._drop(object_id)

    def live(self, object_id: str) -> dict[str, Any] | None:
        """The post or comment with this id, if it exists now."""
        return self._objects.get(object_id)

    # -- serving -----------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        record, path = await graph_record(request)
        self.requests.append(record)
        await self._notify()
        try:
            answer = await self._answer(record, path)
            self._calls += 1
            headers = {USAGE_HEADER: usage(self.page_id, call_count=min(self._calls, 99))}
            headers.update(answer.headers)
            record.status = answer.status
            return web.Response(status=answer.status, body=answer.body, headers=headers)
        finally:
            await self._notify()

    async def _answer(self, record: RecordedRequest, path: str) -> Answer:
        token = graph_token(record)
        if not token:
            return graph_error(104)
        if token != self.page_token:
            return graph_error(190)
        await self._gate.wait()
        if self._delay:
            await asyncio.sleep(self._delay)  # the fake's latency, not test synchronisation
        if self._script:
            return self._script.popleft()
        parts = path.strip("/").split("/")
        if record.method == "POST" and parts == [self.page_id, "feed"]:
            return self._post(record.params)
        if record.method == "POST" and parts == [self.page_id, "photos"]:
            return await self._photo(record.params)
        if record.method == "POST" and len(parts) == 2 and parts[1] == "comments":
            return self._comment(parts[0], record.params)
        if record.method == "DELETE" and len(parts) == 1:
            if parts[0] not in self._objects:
                return _not_there(record.method, parts[0])
            self._drop(parts[0])
            return _json(200, {"success": True})
        return _not_there(record.method, parts[0] if parts else "")

    def _post(self, params: dict[str, str]) -> Answer:
        text = params.get("message", "")
        if not text.strip() and not params.get("link"):
            return graph_error(100, message="(#100) Missing message or attachment")
        latest = next((p for p in reversed(self.posts) if p["id"] in self._objects), None)
        if latest is not None and latest["message"] == text:
            return graph_error(506)
        post_id = f"{self.page_id}_{next(self._ids)}"
        post = {
            "id": post_id,
            "message": text,
            "created_time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000"),
            "comments": [],
        }
        self._objects[post_id] = post
        self.posts.append(post)
        return _json(200, {"id": post_id})

    async def _photo(self, params: dict[str, str]) -> Answer:
        # Imported here: the crawler's fetch is the Instagram fake's (the same at Meta).
        from tests.fakes.instagram import fetch_image

        url = params.get("url")
        if not url:
            return graph_error(324, message="(#324) Requires upload file")
        image, _, refusal = await fetch_image(url, 5.0)
        if refusal is not None or image is None:
            return graph_error(324, message="(#324) Missing or invalid image file")
        photo_id = str(next(self._ids))
        post_id = f"{self.page_id}_{next(self._ids)}"
        post = {
            "id": post_id,
            "photo_id": photo_id,
            "message": params.get("caption", params.get("message", "")),
            "image": image,
            "url": url,
            "created_time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000"),
            "comments": [],
        }
        self._objects[post_id] = post
        self._objects[photo_id] = {"id": photo_id, "post": post_id}
        self.posts.append(post)
        return _json(200, {"id": photo_id, "post_id": post_id})

    def _comment(self, post_id: str, params: dict[str, str]) -> Answer:
        post = self._objects.get(post_id)
        if post is None or "comments" not in post:
            return _not_there("POST", post_id)
        text = params.get("message", "")
        if not text.strip():
            return graph_error(100, message="(#100) Missing message or attachment")
        comment_id = f"{post_id.split('_')[-1]}_{next(self._ids)}"
        comment = {"id": comment_id, "message": text, "parent": post_id, "from": self.page_id}
        self._objects[comment_id] = comment
        post["comments"].append(comment_id)
        self.comments.append(comment)
        return _json(200, {"id": comment_id})

    def _drop(self, object_id: str) -> None:
        gone = self._objects.pop(object_id, None)
        if gone is None:
            return
        self.deleted.add(object_id)
        for linked in (gone.get("post"), gone.get("photo_id")):  # a photo and its post
            if isinstance(linked, str) and linked in self._objects:
                self._drop(linked)
        for comment_id in gone.get("comments", []):
            if self._objects.pop(comment_id, None) is not None:
                self.deleted.add(comment_id)
