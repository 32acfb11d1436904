"""The X API v2 post endpoints, with OAuth 1.0a checked, on a free 127.0.0.1 port.

    async with FakeX.start() as fake:
        config = XChannel(type="x", base_url=fake.base_url, **fake.credentials)
        fake.rate_limit(reset_in=90)        # the next answer: 429, x-rate-limit-reset now+90
        ...
        assert fake.posts[0]["text"] == "Großbrand"

What it does with each request, in this order (docs.x.com/x-api/posts/manage-tweets,
docs.x.com/x-api/fundamentals/rate-limits, RFC 5849 for the signature):

1. records it in `requests` (method, path, headers, body, parsed JSON, the OAuth
   parameters, whether the signature verified, time, later the answered status);
2. 404 `{"errors": [{"message": "Sorry, that page does not exist", "code": 34}]}` for any
   path but `/2/tweets` (POST) and `/2/tweets/:id` (DELETE);
3. waits while `hold()` is in force, then `delay(seconds)`;
4. a scripted answer, if one is queued (`script`, `rate_limit`, `daily_limit`,
   `usage_capped`): taken verbatim;
5. OAuth 1.0a, verified independently of oauthlib: the `Authorization: OAuth ...` header
   must name the consumer key and access token, use HMAC-SHA1, carry a timestamp within
   `clock_skew` seconds and a nonce not seen before, and its signature must equal
   HMAC-SHA1(key = consumer secret & token secret, base string = METHOD & URL & sorted
   query and oauth_* parameters), recomputed here; a JSON body is not part of it.
   Anything else: 401 `{"title": "Unauthorized", "type": "about:blank", "status": 401,
   "detail": "Unauthorized"}`;
6. POST /2/tweets (JSON): 400 invalid-request problem for a body that is not JSON, without
   `text`, or over 280 weighted characters (`weighted_length`, below); 403 "You attempted
   to reply to a Tweet that is deleted or not visible to you." for a reply to an unknown
   or deleted post; 403 "You are not allowed to create a Tweet with duplicate content."
   when a live post has the same text; else 201 `{"data": {"id", "text",
   "edit_history_tweet_ids"}}` (the text HTML-escaped, as X returns it), appended to
   `posts`;
7. DELETE /2/tweets/:id: 200 `{"data": {"deleted": true}}` for a live post; 404
   resource-not-found problem for one that never existed or is gone.

Every answer carries `x-rate-limit-limit`, `-remaining` and `-reset` (epoch seconds); a
429 has no Retry-After, as X's has none. The X API has no idempotency key.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import itertools
import json
import re
import time
import unicodedata
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

import regex  # type: ignore[import-untyped]  # no stubs; used through typed helpers
from aiohttp import web
from multidict import CIMultiDictProxy

from tests.fakes.base import FakeServer, serving
from tests.fakes.twitter_text import find_urls

API_KEY = "xvz1evFS4wEEPTGEFPHBog"
API_SECRET = "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw-Äß"
ACCESS_TOKEN = "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb"
ACCESS_SECRET = "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE"
MAX_WEIGHTED = 280
WINDOW = 900  # seconds of the 15-minute rate-limit window
_TWEET = re.compile(r"^/2/tweets(?:/(?P<id>[^/]+))?$")
_OAUTH_PARAM = re.compile(r'([A-Za-z_]+)="([^"]*)"')
PROBLEMS = "https://api.twitter.com/2/problems"


# How X weighs a post: twitter-text's config/v3.json and parseTweet, the fake's own
# reading of them (not broadcaster/limits.py). The text is NFC-normalized; every URL
# weighs transformedURLLength; an emoji found by twemoji-parser weighs defaultWeight
# whatever its code points; any other code point weighs 100 inside these ranges, else
# defaultWeight; the sum is divided by the scale.
SCALE = 100
DEFAULT_WEIGHT = 200
TRANSFORMED_URL_LENGTH = 23
LIGHT_RANGES = ((0x0000, 0x10FF), (0x2000, 0x200D), (0x2010, 0x201F), (0x2032, 0x2037))
# What twemoji-parser matches, in the shapes an emoji takes: a keycap, a flag (two
# regional indicators), or a pictograph with its modifiers, presentation selector,
# tag sequence and ZWJ-joined further pictographs.
_EMOJI = regex.compile(
    r"[#*0-9]\uFE0F?\u20E3"
    r"|\p{Regional_Indicator}{2}"
    r"|\p{Extended_Pictographic}\uFE0F?\p{Emoji_Modifier}?[\U000E0020-\U000E007F]*"
    r"(?:\u200D\p{Extended_Pictographic}\uFE0F?\p{Emoji_Modifier}?)*"
)


def _code_point_weight(char: str) -> int:
    code = ord(char)
    if any(low <= code <= high for low, high in LIGHT_RANGES):
        return SCALE
    return DEFAULT_WEIGHT


def weighted_length(text: str) -> int:
    """A post's weightedLength, as X measures it against its 280."""
    text = unicodedata.normalize("NFC", text)
    urls = {url.start: url.end for url in find_urls(text, without_protocol=True)}
    total, i = 0, 0
    while i < len(text):
        if i in urls:
            total += TRANSFORMED_URL_LENGTH * SCALE
            i = urls[i]
            continue
        emoji = _EMOJI.match(text, i)
        # A lone text-default symbol inside the light ranges (©, ®) is no emoji match.
        if emoji is not None and (emoji.end() - i > 1 or _code_point_weight(text[i]) > SCALE):
            total += DEFAULT_WEIGHT
            i = int(emoji.end())
            continue
        total += _code_point_weight(text[i])
        i += 1
    return total // SCALE


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: CIMultiDictProxy[str]
    body: bytes
    json: Any  # None when the body is not JSON
    oauth: dict[str, str]  # the Authorization header's parameters, decoded
    at: datetime
    signed: bool | None = None  # whether the OAuth signature verified (None: not checked)
    status: int | None = None


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


def _json(status: int, data: Any, headers: Mapping[str, str] | None = None) -> Answer:
    body = json.dumps(data, ensure_ascii=False).encode("utf-8")
    return Answer(
        status, body, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
    )


def problem(
    status: int,
    title: str,
    detail: str,
    type_: str = "about:blank",
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Answer:
    """An X API v2 problem answer."""
    data = {"title": title, "detail": detail, "type": type_, "status": status, **extra}
    return _json(status, data, headers)


def unauthorized() -> Answer:
    return problem(401, "Unauthorized", "Unauthorized")


def forbidden(detail: str) -> Answer:
    return problem(403, "Forbidden", detail)


def invalid_request(message: str) -> Answer:
    return _json(
        400,
        {
            "errors": [{"message": message}],
            "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.",
            "type": f"{PROBLEMS}/invalid-request",
        },
    )


def not_found(post_id: str) -> Answer:
    return problem(
        404,
        "Not Found Error",
        f"Could not find tweet with id: [{post_id}].",
        f"{PROBLEMS}/resource-not-found",
        resource_type="tweet",
        resource_id=post_id,
        parameter="id",
        value=post_id,
    )


_BY_STATUS = {
    400: ("Invalid Request", "One or more parameters to your request was invalid."),
    401: ("Unauthorized", "Unauthorized"),
    403: ("Forbidden", "You are not permitted to perform this action."),
    404: ("Not Found Error", "Not Found"),
    429: ("Too Many Requests", "Too Many Requests"),
    500: ("Internal Server Error", "Internal Server Error"),
    503: ("Service Unavailable", "Service Unavailable"),
}


def percent(value: str) -> str:
    """RFC 5849 section 3.6: UTF-8, then every byte but the unreserved ones as %XX."""
    return quote(value.encode("utf-8"), safe="~")


def signature_base_string(method: str, base_uri: str, params: list[tuple[str, str]]) -> str:
    """RFC 5849 section 3.4.1, written out here independently of oauthlib."""
    encoded = sorted((percent(name), percent(value)) for name, value in params)
    normalized = "&".join(f"{name}={value}" for name, value in encoded)
    return "&".join([method.upper(), percent(base_uri), percent(normalized)])


def hmac_sha1(base_string: str, consumer_secret: str, token_secret: str) -> str:
    key = f"{percent(consumer_secret)}&{percent(token_secret)}".encode()
    digest = hmac.new(key, base_string.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def base_uri(request: web.Request) -> str:
    """RFC 5849 section 3.4.1.2: scheme and host in lower case, default port left out."""
    scheme = request.scheme.lower()
    host = request.host.lower()
    default = {"http": ":80", "https": ":443"}[scheme]
    host = host.removesuffix(default)
    return f"{scheme}://{host}{request.rel_url.raw_path}"


def parse_oauth_header(value: str) -> dict[str, str]:
    if not value.startswith("OAuth "):
        return {}
    return {name: unquote(raw) for name, raw in _OAUTH_PARAM.findall(value[6:])}


class FakeX(FakeServer):
    def __init__(
        self,
        *,
        api_key: str,
        api_secret: str,
        access_token: str,
        access_secret: str,
        clock_skew: float,
    ) -> None:
        super().__init__()
        self.credentials = {
            "api_key": api_key,
            "api_secret": api_secret,
            "access_token": access_token,
            "access_secret": access_secret,
        }
        self.clock_skew = clock_skew
        self.posts: list[dict[str, Any]] = []  # every post created: id, text, reply_to
        self.deleted: set[str] = set()
        self._live: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1445880548472328192)
        self._nonces: set[tuple[str, str]] = set()
        self._remaining = 100
        self._reset = int(time.time()) + WINDOW
        self._script: deque[Answer] = deque()

    @classmethod
    @asynccontextmanager
    async def start(
        cls,
        *,
        api_key: str = API_KEY,
        api_secret: str = API_SECRET,
        access_token: str = ACCESS_TOKEN,
        access_secret: str = ACCESS_SECRET,
        clock_skew: float = 300.0,
    ) -> AsyncIterator[FakeX]:
        fake = cls(
            api_key=api_key,
            api_secret=api_secret,
            access_token=access_token,
            access_secret=access_secret,
            clock_skew=clock_skew,
        )
        async with serving(fake):
            yield fake

    # -- scripting ---------------------------------------------------------------------

    def script(self, *answers: Answer | int) -> None:
        """Answer the next requests with these (a bare status: X's problem for it)."""
        for answer in answers:
            if isinstance(answer, int):
                title, detail = _BY_STATUS.get(answer, ("Error", f"HTTP {answer}"))
                answer = problem(answer, title, detail)
            self._script.append(answer)

    def rate_limit(self, reset_in: int = 60) -> None:
        """The 15-minute window is spent: 429, `x-rate-limit-reset` = now + reset_in."""
        headers = {
            "x-rate-limit-limit": "100",
            "x-rate-limit-remaining": "0",
            "x-rate-limit-reset": str(int(time.time()) + reset_in),
        }
        self.script(problem(429, "Too Many Requests", "Too Many Requests", headers=headers))

    def daily_limit(self, reset_in: int = 3600, window_reset_in: int = 60) -> None:
        """The user's 24-hour limit is spent, while the 15-minute window is not."""
        now = int(time.time())
        headers = {
            "x-rate-limit-limit": "100",
            "x-rate-limit-remaining": "57",
            "x-rate-limit-reset": str(now + window_reset_in),
            "x-user-limit-24hour-limit": "100",
            "x-user-limit-24hour-remaining": "0",
            "x-user-limit-24hour-reset": str(now + reset_in),
        }
        self.script(problem(429, "Too Many Requests", "Too Many Requests", headers=headers))

    def usage_capped(self) -> None:
        """The app's monthly usage cap is spent: 429 of type usage-capped."""
        self.script(
            _json(
                429,
                {
                    "title": "UsageCapExceeded",
                    "detail": "Usage cap exceeded: Monthly product cap",
                    "type": "https://api.x.com/2/problems/usage-capped",
                    "period": "Monthly",
                    "scope": "Product",
                },
                {"x-rate-limit-reset": str(int(time.time()) + 60)},
            )
        )

    def remove(self, post_id: str) -> None:
        """The account owner deleted the post on x.com."""
        if self._live.pop(post_id, None) is not None:
            self.deleted.add(post_id)

    def live(self, post_id: str) -> dict[str, Any] | None:
        return self._live.get(post_id)

    # -- serving -----------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            parsed: Any = json.loads(body) if body else None
        except ValueError:
            parsed = None
        record = RecordedRequest(
            request.method,
            request.path,
            request.headers,
            body,
            parsed,
            parse_oauth_header(request.headers.get("Authorization", "")),
            datetime.now(UTC),
        )
        self.requests.append(record)
        await self._notify()
        try:
            answer = await self._answer(request, record)
            headers = {
                "x-rate-limit-limit": "100",
                "x-rate-limit-remaining": str(max(0, self._remaining)),
                "x-rate-limit-reset": str(self._reset),
            }
            headers.update(answer.headers)
            record.status = answer.status
            return web.Response(status=answer.status, body=answer.body, headers=headers)
        finally:
            await self._notify()

    async def _answer(self, request: web.Request, record: RecordedRequest) -> Answer:
        route = _TWEET.match(request.path)
        post_id = route["id"] if route else None
        if route is None or (request.method, post_id is None) not in {
            ("POST", True),
            ("DELETE", False),
        }:
            return _json(
                404, {"errors": [{"message": "Sorry, that page does not exist", "code": 34}]}
            )
        await self._gate.wait()
        if self._delay:
            await asyncio.sleep(self._delay)  # the fake's latency, not test synchronisation
        if self._script:
            return self._script.popleft()
        record.signed = self._verify(request, record)
        if not record.signed:
            return unauthorized()
        self._remaining -= 1
        if post_id is None:
            return self._create(record)
        return self._delete(post_id)

    def _verify(self, request: web.Request, record: RecordedRequest) -> bool:
        oauth = record.oauth
        required = (
            "oauth_consumer_key",
            "oauth_token",
            "oauth_signature_method",
            "oauth_timestamp",
            "oauth_nonce",
            "oauth_signature",
        )
        if any(name not in oauth for name in required):
            return False
        if oauth["oauth_consumer_key"] != self.credentials["api_key"]:
            return False
        if oauth["oauth_token"] != self.credentials["access_token"]:
            return False
        if oauth["oauth_signature_method"] != "HMAC-SHA1":
            return False
        if oauth.get("oauth_version", "1.0") != "1.0":
            return False
        try:
            skew = abs(time.time() - int(oauth["oauth_timestamp"]))
        except ValueError:
            return False
        if skew > self.clock_skew:
            return False
        nonce = (oauth["oauth_timestamp"], oauth["oauth_nonce"])
        if nonce in self._nonces:
            return False  # a replayed request
        params = [(k, v) for k, v in request.query.items()]
        params += [(k, v) for k, v in oauth.items() if k not in ("oauth_signature", "realm")]
        base = signature_base_string(request.method, base_uri(request), params)
        expected = hmac_sha1(
            base, self.credentials["api_secret"], self.credentials["access_secret"]
        )
        if not hmac.compare_digest(expected, oauth["oauth_signature"]):
            return False
        self._nonces.add(nonce)
        return True

    def _create(self, record: RecordedRequest) -> Answer:
        data = record.json
        if not isinstance(data, dict):
            return invalid_request("The request body is not valid JSON.")
        text = data.get("text")
        if not isinstance(text, str) or not text:
            return invalid_request("$.text: must be a non-empty string")
        if weighted_length(text) > MAX_WEIGHTED:
            return invalid_request("$.text: Tweet text is too long")
        parent: str | None = None
        reply = data.get("reply")
        if reply is not None:
            parent = reply.get("in_reply_to_tweet_id") if isinstance(reply, dict) else None
            if not isinstance(parent, str) or parent not in self._live:
                return forbidden(
                    "You attempted to reply to a Tweet that is deleted or not visible to you."
                )
        if any(post["text"] == text for post in self._live.values()):
            return forbidden("You are not allowed to create a Tweet with duplicate content.")
        post_id = str(next(self._ids))
        post = {"id": post_id, "text": text, "reply_to": parent}
        self._live[post_id] = post
        self.posts.append(post)
        escaped = html.escape(text, quote=False)  # X returns &, < and > as entities
        return _json(
            201, {"data": {"id": post_id, "text": escaped, "edit_history_tweet_ids": [post_id]}}
        )

    def _delete(self, post_id: str) -> Answer:
        if not re.fullmatch(r"\d{1,19}", post_id):
            return invalid_request(f"The `id` query parameter value [{post_id}] is not valid")
        if post_id not in self._live:
            return not_found(post_id)
        del self._live[post_id]
        self.deleted.add(post_id)
        return _json(200, {"data": {"deleted": True}})
