"""The Instagram Graph API's content publishing for one professional account, as far as
the Instagram adapter uses it.

    async with FakeInstagram.start() as fake:
        config = InstagramChannel(type="instagram", base_url=fake.base_url + "/v21.0",
                                  ig_user_id=fake.user_id, access_token=fake.token)
        fake.in_progress_polls = 2      # each container reads IN_PROGRESS twice first
        fake.used = 45                  # posts already published in the last 24 h
        ...
        assert fake.media[0]["caption"].startswith("Großbrand")

Like Meta's servers, it fetches each container's `image_url` itself, over HTTP, when the
container is made, and refuses the container when the image cannot be had:

- no answer, a refused connection or a status other than 200: 400 code 9004, subcode
  2207052, "Media download has failed. The media URI doesn't meet our requirements.";
- no answer within `fetch_timeout`: 400 code -2, subcode 2207003, `is_transient: true`;
- more than 8 MiB: 400 code 9004, subcode 2207004, "The image is too large to download";
- not a JPEG (magic bytes FF D8 FF, and Pillow must decode it as JPEG): 400 code 9004,
  subcode 2207052, "Only photo or video can be accepted as media type."

What else it answers (shapes from developers.facebook.com/docs/instagram-platform/
content-publishing and the IG User, IG Container and IG Media references; codes the
references do not give are marked [U] and can be changed through `fail`):

- any `/vNN.N/` prefix; the token from `Authorization: Bearer` or `access_token` (query
  or form); none: 400 code 104; another: 400 code 190;
- `GET /{ig-user-id}/content_publishing_limit?fields=quota_usage,config`:
  `{"data": [{"quota_usage": used + published in 24 h, "config": {"quota_total": 50,
  "quota_duration": 86400}}]}`;
- `POST /{ig-user-id}/media` (`image_url`, `caption`, `alt_text`): `{"id": container}`;
  a caption over 2 200 characters or with more than `hashtag_limit` hashtags (30): 400
  code 100 [U]; no image_url: 400 code 100;
- `GET /{container-id}?fields=status_code,status`: `IN_PROGRESS` for the first
  `in_progress_polls` reads of each container, then `FINISHED`; `PUBLISHED` once
  published; `EXPIRED` when `expire(container)` was called;
- `POST /{ig-user-id}/media_publish` (`creation_id`): `{"id": media}`; a container still
  in progress: 400 code 9007, subcode 2207027, "Media ID is not available"; expired: 400
  code -2 [U], subcode 2207020; published already: 400 code 9007 [U], subcode 2207008
  [U]; the quota spent: 400 code 9, subcode 2207042 (the real answer: "reached maximum
  number of posts");
- `GET /{ig-media-id}?fields=permalink`: `{"permalink": "https://www.instagram.com/p/
  <shortcode>/", "id"}` (or `permalink_error` when a test sets it: Meta's 100/33
  outages of object reads); `GET /{ig-user-id}/media`: the account's posts, newest first;
- `POST /{ig-media-id}/comments` (`message`): `{"id": comment}`;
- `DELETE /{ig-media-id}` and anything else: 400 code 100, subcode 33, "Unsupported
  <method> request" (the API cannot delete a post).

Levers: `used`, `quota_total`, `in_progress_polls`, `hashtag_limit`, `fetch_timeout`,
`publish_delay` (media_publish publishes, then answers late: a lost answer),
`permalink_error`, `fail(code, ...)` and `script(...)` (the next answers, whatever they
are), `fail_publish(code, ...)` (the next media_publish), `expire(container)`, and
FakeServer's `hold`/`release`/`delay`.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import secrets
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from io import BytesIO
from typing import Any

import aiohttp
from aiohttp import web
from PIL import Image

from tests.fakes.base import FakeServer, serving
from tests.fakes.facebook import Answer, RecordedRequest, _json, graph_record, graph_token

IG_USER_ID = "17841400000000001"
TOKEN = "IGQfakeAccessToken-ÄÖÜ-0123456789"
MAX_IMAGE = 8 * 1024 * 1024
QUOTA_TOTAL = 50
_HASHTAG = re.compile(r"(?<![\w#])#\w+")


@dataclass
class Fetch:
    """One fetch of an image_url, as Meta's crawler made it."""

    url: str
    status: int | None  # None: no answer
    content_type: str | None
    size: int
    refused: str | None  # why the container was refused, or None


def graph_error(
    code: int,
    *,
    message: str = "An unexpected error has occurred.",
    subcode: int | None = None,
    status: int = 400,
    is_transient: bool = False,
    user_msg: str | None = None,
) -> Answer:
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    error["is_transient"] = is_transient
    if user_msg is not None:
        error["error_user_msg"] = user_msg
    error["fbtrace_id"] = secrets.token_urlsafe(8)
    return _json(status, {"error": error})


def _unsupported(method: str, object_id: str) -> Answer:
    return graph_error(
        100,
        subcode=33,
        message=(
            f"Unsupported {method.lower()} request. Object with ID '{object_id}' does not "
            "exist, cannot be loaded due to missing permissions, or does not support this "
            "operation."
        ),
    )


def is_jpeg(data: bytes) -> bool:
    """The crawler's own check: JPEG magic bytes, and Pillow reads it as a JPEG."""
    if not data.startswith(b"\xff\xd8\xff"):
        return False
    try:
        with Image.open(BytesIO(data)) as image:
            image.load()
            return image.format == "JPEG"
    except Exception:
        return False


async def fetch_image(url: str, timeout: float) -> tuple[bytes | None, Fetch, Answer | None]:
    """GET `url` as Meta does: the image, the fetch, and the refusal (None: usable)."""
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as response,
        ):
            data = b""
            async for chunk in response.content.iter_chunked(64 * 1024):
                data += chunk
                if len(data) > MAX_IMAGE:
                    break  # too large: the rest is not read
            status, ctype = response.status, response.headers.get("Content-Type")
    except TimeoutError:
        fetch = Fetch(url, None, None, 0, "timeout")
        return (
            None,
            fetch,
            graph_error(
                -2,
                subcode=2207003,
                is_transient=True,
                message="Timeout",
                user_msg="It takes too long to download the media.",
            ),
        )
    except aiohttp.ClientError as exc:
        fetch = Fetch(url, None, None, 0, f"unreachable: {type(exc).__name__}")
        return None, fetch, _fetch_failed()
    if status != 200:
        return None, Fetch(url, status, ctype, len(data), f"HTTP {status}"), _fetch_failed()
    if len(data) > MAX_IMAGE:
        refusal = graph_error(
            9004,
            subcode=2207004,
            message="The image is too large to download",
            user_msg="The image is too large to download. It should be less than 8 MiB.",
        )
        return None, Fetch(url, status, ctype, len(data), "too large"), refusal
    if not is_jpeg(data):
        refusal = graph_error(
            9004,
            subcode=2207052,
            message="Only photo or video can be accepted as media type.",
            user_msg="The media could not be fetched from this URI: " + url,
        )
        return None, Fetch(url, status, ctype, len(data), "not a JPEG"), refusal
    return data, Fetch(url, status, ctype, len(data), None), None


def _fetch_failed() -> Answer:
    return graph_error(
        9004,
        subcode=2207052,
        message="Media download has failed. The media URI doesn't meet our requirements.",
        user_msg="The media could not be fetched from the URI.",
    )


class FakeInstagram(FakeServer):
    def __init__(self, *, user_id: str, token: str) -> None:
        super().__init__()
        self.user_id = user_id
        self.token = token
        self.used = 0  # posts published in the last 24 h before the test began
        self.quota_total = QUOTA_TOTAL
        self.in_progress_polls = 0  # reads of each new container that say IN_PROGRESS
        self.hashtag_limit = 30
        self.fetch_timeout = 5.0
        self.publish_delay = 0.0  # seconds media_publish waits after publishing (a lost answer)
        # What a post's permalink read answers instead (Meta's code 100/33 outages).
        self.permalink_error: Answer | None = None
        self.containers: dict[str, dict[str, Any]] = {}
        self.media: list[dict[str, Any]] = []  # published posts, in order
        self.comments: list[dict[str, Any]] = []
        self.fetches: list[Fetch] = []
        self.images: dict[str, bytes] = {}  # container id -> the image Meta fetched
        self._ids = itertools.count(17900000000000001)
        self._script: deque[Answer] = deque()
        self._publish_script: deque[Answer] = deque()

    @classmethod
    @asynccontextmanager
    async def start(
        cls, *, user_id: str = IG_USER_ID, token: str = TOKEN
    ) -> AsyncIterator[FakeInstagram]:
        fake = cls(user_id=user_id, token=token)
        async with serving(fake):
            yield fake

    # -- levers --------------------------------------------------------------------------

    def fail(self, code: int, *, times: int = 1, **details: Any) -> None:
        """The next `times` answers: a Graph error (see `graph_error`)."""
        for _ in range(times):
            self._script.append(graph_error(code, **details))

    def script(self, *answers: Answer) -> None:
        self._script.extend(answers)

    def fail_publish(self, code: int, **details: Any) -> None:
        """The next media_publish (only) answers this Graph error."""
        self._publish_script.append(graph_error(code, **details))

    def expire(self, container_id: str) -> None:
        """24 h passed: the container can no longer be published."""
        self.containers[container_id]["status_code"] = "EXPIRED"

    def requests_to(self, method: str, suffix: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and r.path.endswith(suffix)]

    # -- serving -------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        record, path = await graph_record(request)
        self.requests.append(record)
        await self._notify()
        try:
            answer = await self._answer(record, path)
            record.status = answer.status
            return web.Response(status=answer.status, body=answer.body, headers=answer.headers)
        finally:
            await self._notify()

    async def _answer(self, record: RecordedRequest, path: str) -> Answer:
        token = graph_token(record)
        if not token:
            return graph_error(104, message="An access token is required to request this resource.")
        if token != self.token:
            return graph_error(
                190, message="Invalid OAuth access token - Cannot parse access token"
            )
        await self._gate.wait()
        if self._delay:
            await asyncio.sleep(self._delay)  # the fake's latency, not test synchronisation
        if self._script:
            return self._script.popleft()
        parts = path.strip("/").split("/")
        method, p = record.method, record.params
        if parts == [self.user_id, "content_publishing_limit"] and method == "GET":
            return self._limit()
        if parts == [self.user_id, "media"] and method == "POST":
            return await self._create(p)
        if parts == [self.user_id, "media"] and method == "GET":
            return _json(200, {"data": [self._public(m) for m in reversed(self.media)]})
        if parts == [self.user_id, "media_publish"] and method == "POST":
            return await self._publish(p.get("creation_id", ""))
        if len(parts) == 1 and method == "GET" and parts[0] in self.containers:
            container = self.containers[parts[0]]
            if container["status_code"] == "IN_PROGRESS":
                container["polls"] += 1
                if container["polls"] > self.in_progress_polls:
                    container["status_code"] = "FINISHED"
            status = container["status_code"]
            return _json(200, {"status_code": status, "status": status, "id": parts[0]})
        if len(parts) == 1 and method == "GET" and self.permalink_error is not None:
            return self.permalink_error
        if len(parts) == 1 and method == "GET":
            found = self._find(parts[0])
            return _json(200, self._public(found)) if found else _unsupported(method, parts[0])
        if len(parts) == 2 and parts[1] == "comments" and method == "POST":
            return self._comment(parts[0], p.get("message", ""))
        return _unsupported(method, parts[0] if parts else "")

    def _limit(self) -> Answer:
        usage = self.used + len(self.media)
        config = {"quota_total": self.quota_total, "quota_duration": 86400}
        return _json(200, {"data": [{"quota_usage": usage, "config": config}]})

    async def _create(self, params: dict[str, str]) -> Answer:
        url = params.get("image_url")
        if not url:
            return graph_error(100, message="(#100) The parameter image_url is required")
        caption = params.get("caption", "")
        if len(caption) > 2200:
            return graph_error(100, message="(#100) Param caption must be at most 2200 characters")
        if len(_HASHTAG.findall(caption)) > self.hashtag_limit:
            return graph_error(100, message="(#100) The caption has too many hashtags")
        image, fetch, refusal = await fetch_image(url, self.fetch_timeout)
        self.fetches.append(fetch)
        if refusal is not None:
            return refusal
        container_id = str(next(self._ids))
        assert image is not None
        self.images[container_id] = image
        self.containers[container_id] = {
            "id": container_id,
            "image_url": url,
            "caption": caption,
            "alt_text": params.get("alt_text"),
            "status_code": "IN_PROGRESS",
            "polls": 0,
            "created": datetime.now(UTC),
        }
        return _json(200, {"id": container_id})

    async def _publish(self, creation_id: str) -> Answer:
        if self._publish_script:
            return self._publish_script.popleft()
        container = self.containers.get(creation_id)
        if container is None:
            return _unsupported("POST", creation_id)
        status = container["status_code"]
        if status == "IN_PROGRESS" and container["polls"] < self.in_progress_polls:
            return graph_error(
                9007,
                subcode=2207027,
                message="Media ID is not available",
                user_msg="The media is not ready for publishing, please wait for a moment",
            )
        if status == "EXPIRED":
            return graph_error(
                -2, subcode=2207020, message="The media you are trying to access has expired."
            )
        if status == "PUBLISHED":
            return graph_error(9007, subcode=2207008, message="The media was published already.")
        if self.used + len(self.media) >= self.quota_total:
            return graph_error(
                9,
                subcode=2207042,
                message="Application request limit reached",
                user_msg="You reached maximum number of posts that is allowed to be published "
                "by Content Publishing API.",
            )
        media_id = str(next(self._ids))
        shortcode = secrets.token_urlsafe(8).replace("-", "A").replace("_", "B")
        post = {
            "id": media_id,
            "caption": container["caption"],
            "alt_text": container["alt_text"],
            "image_url": container["image_url"],
            "container": creation_id,
            "permalink": f"https://www.instagram.com/p/{shortcode}/",
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000"),
            "comments": [],
        }
        container["status_code"] = "PUBLISHED"
        self.media.append(post)
        if self.publish_delay:
            await asyncio.sleep(self.publish_delay)  # published, but the answer comes late
        return _json(200, {"id": media_id})

    def _find(self, media_id: str) -> dict[str, Any] | None:
        return next((m for m in self.media if m["id"] == media_id), None)

    @staticmethod
    def _public(post: dict[str, Any]) -> dict[str, Any]:
        return {k: post[k] for k in ("id", "caption", "permalink", "timestamp")}

    def _comment(self, media_id: str, message: str) -> Answer:
        post = self._find(media_id)
        if post is None:
            return _unsupported("POST", media_id)
        if not message.strip():
            return graph_error(100, message="(#100) The parameter message is required")
        comment = {"id": str(next(self._ids)), "message": message, "media": media_id}
        post["comments"].append(comment["id"])
        self.comments.append(comment)
        return _json(200, {"id": comment["id"]})
