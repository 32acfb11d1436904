"""A Bluesky PDS's XRPC endpoints for one account, on a free 127.0.0.1 port.

    async with FakePds.start() as fake:
        config = BlueskyChannel(type="bluesky", base_url=fake.base_url,
                                identifier=IDENTIFIER, app_password=APP_PASSWORD)
        fake.expire_access_tokens()             # the next call with one: 400 ExpiredToken
        fake.script(CREATE_RECORD, 503)         # the next createRecord: 503
        ...
        assert fake.logins == 1

Imitated from the atproto lexicons (com.atproto.server.createSession / refreshSession,
com.atproto.repo.createRecord / getRecord / deleteRecord, app.bsky.feed.post) and the
PDS and xrpc-server code in github.com/bluesky-social/atproto (auth-verifier.ts,
repo/prepare.ts, api/com/atproto/*, rate-limiter-http.ts; the 500 for an existing record
key: atproto issue #3718). What it does with each request, in this order:

1. records it in `requests` (method, NSID, headers, body, JSON, query, time, later the
   answered status, body and headers);
2. `404` for a path outside `/xrpc/`, 501 `MethodNotImplemented` for an NSID it does not
   serve, 400 `InvalidRequest` for the wrong HTTP method;
3. waits while `hold()` is in force, then `delay(seconds)`;
4. a scripted answer for this NSID, if one is queued (`script`, `rate_limit`): taken
   verbatim, not processed;
5. the method:
   - createSession: 429 `RateLimitExceeded` after 30 attempts per 5 minutes (with
     RateLimit-* and Retry-After); 401 `AuthenticationRequired` "Invalid identifier or
     password" unless the identifier (handle, DID or e-mail) and app password match; else
     a new session `{did, handle, email, emailConfirmed, accessJwt, refreshJwt, active}`,
     counted in `logins`;
   - refreshSession (Bearer refreshJwt): 400 `ExpiredToken` for an expired or already
     rotated refresh token, 400 `InvalidToken` for an unknown one; else a new token pair
     (the old refresh token is spent), counted in `refreshes`;
   - createRecord, deleteRecord (Bearer accessJwt): 401 `AuthMissing` without a token,
     400 `ExpiredToken` "Token has expired" for an expired one, 400 `InvalidToken` "Token
     could not be verified" for an unknown one (`revoke_sessions()`); 401
     `AuthenticationRequired` when `repo` is not the account; then 400 `InvalidRequest`
     for a record the lexicon refuses (text over 300 graphemes or 3000 UTF-8 bytes, no
     createdAt, more than 3 langs, malformed facets or reply refs, an rkey that is not a
     TID); **500 `InternalServerError` "Internal Server Error" when the rkey exists**;
     else the record is stored: `{uri, cid, commit: {cid, rev}, validationStatus}`.
     deleteRecord answers 200 whether or not the record exists;
   - getRecord (no auth needed): `{uri, cid, value}`, or 400 `RecordNotFound` "Could not
     locate record: at://...".
   `answer_after_commit(nsid, ...)` lets the next call be processed and then answers it
   with an error instead (an answer lost after the commit).

Writes carry `RateLimit-Limit/-Remaining/-Reset/-Policy` (reset in epoch seconds) of the
hourly repo-write budget (5000 points; create 3, delete 1). Errors are
`{"error": "<Name>", "message": "..."}`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import re
import secrets
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import regex  # type: ignore[import-untyped]  # no stubs; used through typed helpers
from aiohttp import web
from multidict import CIMultiDictProxy

from tests.fakes.base import (
    Answer,
    FakeServer,
    ScriptedAnswer,
    json_answer,
    scripted,
    serving,
)

IDENTIFIER = "feuerwehr-duesseldorf.bsky.social"
APP_PASSWORD = "x7kq-2m4p-vz9d-hw3c"
DID = "did:plc:u5cwb2mwiv2bfq53cjufe6yn"
EMAIL = "presse@feuerwehr-duesseldorf.example"
POST = "app.bsky.feed.post"
CREATE_SESSION = "com.atproto.server.createSession"
REFRESH_SESSION = "com.atproto.server.refreshSession"
CREATE_RECORD = "com.atproto.repo.createRecord"
GET_RECORD = "com.atproto.repo.getRecord"
DELETE_RECORD = "com.atproto.repo.deleteRecord"
_PROCEDURES = {CREATE_SESSION, REFRESH_SESSION, CREATE_RECORD, DELETE_RECORD}
_QUERIES = {GET_RECORD}
LOGIN_LIMIT, LOGIN_WINDOW = 30, 300  # createSession: 30 per 5 minutes
WRITE_POINTS, WRITE_WINDOW = 5000, 3600  # repo-write-hour
TID = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")
RECORD_KEY = re.compile(r"^[a-zA-Z0-9_~.:-]{1,512}$")
_DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
_S32 = "234567abcdefghijklmnopqrstuvwxyz"

# Lexicon app.bsky.feed.post, `text`: maxGraphemes 300, maxLength 3000 (UTF-8 bytes,
# which the lexicon validator measures with utf8Len).
MAX_GRAPHEMES = 300
MAX_BYTES = 3000
_GRAPHEME = regex.compile(r"\X")


def graphemes(text: str) -> int:
    """Extended grapheme clusters (UAX #29), as atproto's graphemeLen counts them."""
    return len(_GRAPHEME.findall(text))


def utf8_bytes(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


# xrpc ResponseType names and strings (packages/xrpc/src/types.ts).
ERROR_NAMES = {
    400: ("InvalidRequest", "Invalid Request"),
    401: ("AuthenticationRequired", "Authentication Required"),
    403: ("Forbidden", "Forbidden"),
    404: ("XRPCNotSupported", "XRPC Not Supported"),
    413: ("PayloadTooLarge", "Payload Too Large"),
    429: ("RateLimitExceeded", "Rate Limit Exceeded"),
    500: ("InternalServerError", "Internal Server Error"),
    501: ("MethodNotImplemented", "Method Not Implemented"),
    502: ("UpstreamFailure", "Upstream Failure"),
    503: ("NotEnoughResources", "Not Enough Resources"),
    504: ("UpstreamTimeout", "Upstream Timeout"),
}


@dataclass
class RecordedRequest:
    method: str
    nsid: str
    headers: CIMultiDictProxy[str]
    body: bytes
    json: Any
    query: dict[str, str]
    at: datetime
    status: int | None = None
    answer: bytes | None = None  # the body it was answered with
    answer_headers: dict[str, str] | None = None  # the headers it was answered with


def xrpc_error(
    status: int,
    error: str | None = None,
    message: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    name, text = ERROR_NAMES.get(status, ("InternalServerError", "Internal Server Error"))
    return json_answer(status, {"error": error or name, "message": message or text}, headers)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _jwt(scope: str, did: str, lifetime: int) -> str:
    """A token shaped like the PDS's (the fake knows its tokens; it checks no signature)."""
    now = int(time.time())
    header = {"typ": "refresh+jwt" if scope == "com.atproto.refresh" else "at+jwt", "alg": "HS256"}
    claims = {"scope": scope, "sub": did, "aud": "did:web:pds.example", "iat": now}
    claims["exp"] = now + lifetime
    if scope == "com.atproto.refresh":
        claims["jti"] = secrets.token_urlsafe(24)
    parts = [json.dumps(header).encode(), json.dumps(claims).encode(), secrets.token_bytes(32)]
    return ".".join(_b64(part) for part in parts)


def fake_cid(data: Any) -> str:
    """A CIDv1 string shaped like the PDS's (`bafyrei` + base32 of a sha256)."""
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode("utf-8")).digest()
    return "bafyrei" + base64.b32encode(digest).decode("ascii").rstrip("=").lower()


def clock_tid(clock_id: int = 0) -> str:
    """A TID from the clock, as the PDS makes record keys and revisions."""
    value = (time.time_ns() // 1000) << 10 | (clock_id & 0x3FF)
    return "".join(_S32[(value >> (5 * i)) & 31] for i in reversed(range(13)))


def _scripted(item: ScriptedAnswer) -> Answer:
    return scripted(item, lambda status, headers: xrpc_error(status, headers=headers))


class FakePds(FakeServer):
    def __init__(
        self,
        *,
        identifier: str = IDENTIFIER,
        password: str = APP_PASSWORD,
        did: str = DID,
        email: str = EMAIL,
        login_limit: int = LOGIN_LIMIT,
    ) -> None:
        super().__init__()
        self.handle = identifier
        self.password = password
        self.did = did
        self.email = email
        self.login_limit = login_limit
        self.records: dict[str, dict[str, Any]] = {}  # rkey -> {"uri", "cid", "value"}
        self.created: list[dict[str, Any]] = []  # every record stored, in order
        self.deleted: set[str] = set()  # rkeys removed
        self.logins = 0  # sessions created
        self.refreshes = 0  # sessions refreshed
        self._access: dict[str, bool] = {}  # access token -> still valid (else expired)
        self._refresh: dict[str, str] = {}  # refresh token -> "valid" | "expired" | "spent"
        self._login_attempts: dict[tuple[str, int], int] = defaultdict(int)
        self._write_points: dict[int, int] = defaultdict(int)
        self._script: dict[str, deque[Answer]] = defaultdict(deque)
        self._after_commit: dict[str, deque[Answer]] = defaultdict(deque)
        self._clock = itertools.count()

    @classmethod
    @asynccontextmanager
    async def start(cls, **options: Any) -> AsyncIterator[FakePds]:
        fake = cls(**options)
        async with serving(fake):
            yield fake

    # -- scripting and inspection ------------------------------------------------------

    def script(self, nsid: str, *answers: ScriptedAnswer) -> None:
        """Answer the next calls of this method with these, one each."""
        self._script[nsid].extend(_scripted(answer) for answer in answers)

    def answer_after_commit(self, nsid: str, *answers: ScriptedAnswer) -> None:
        """Process the next calls of this method, then answer them with these instead."""
        self._after_commit[nsid].extend(_scripted(answer) for answer in answers)

    def rate_limit(
        self, nsid: str, reset_in: int, *, retry_after: bool = True, limit: int = WRITE_POINTS
    ) -> None:
        """The next call of this method: 429 RateLimitExceeded, resetting in `reset_in` s."""
        headers = self._limit_headers(limit, 0, int(time.time()) + reset_in, WRITE_WINDOW)
        if retry_after:
            headers["Retry-After"] = str(reset_in)
        self._script[nsid].append(xrpc_error(429, headers=headers))

    def expire_access_tokens(self) -> None:
        self._access = dict.fromkeys(self._access, False)

    def expire_refresh_tokens(self) -> None:
        self._refresh = {token: "expired" for token in self._refresh}

    def revoke_sessions(self) -> None:
        """Forget every token (as after a signing key rotation): InvalidToken from now on."""
        self._access.clear()
        self._refresh.clear()

    def calls(self, nsid: str) -> list[RecordedRequest]:
        return [request for request in self.requests if request.nsid == nsid]

    def uri(self, rkey: str) -> str:
        return f"at://{self.did}/{POST}/{rkey}"

    # -- serving -----------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            parsed: Any = json.loads(body) if body else None
        except ValueError:
            parsed = None
        nsid = request.path.removeprefix("/xrpc/") if request.path.startswith("/xrpc/") else ""
        record = RecordedRequest(
            request.method,
            nsid,
            request.headers,
            body,
            parsed,
            dict(request.query),
            datetime.now(UTC),
        )
        self.requests.append(record)
        await self._notify()
        try:
            response = await self._answer(request, record)
            record.status = response.status
            record.answer = response.body if isinstance(response.body, bytes) else None
            record.answer_headers = dict(response.headers)
            return response
        finally:
            await self._notify()

    async def _answer(self, request: web.Request, record: RecordedRequest) -> web.Response:
        nsid = record.nsid
        if not nsid:
            return web.Response(status=404, text="Not Found")
        if nsid not in _PROCEDURES | _QUERIES:
            return xrpc_error(501).response()
        expected = "POST" if nsid in _PROCEDURES else "GET"
        if request.method != expected:
            message = f"Incorrect HTTP method ({request.method}) expected {expected}"
            return xrpc_error(400, message=message).response()
        await self._gate.wait()
        if self._delay:
            await asyncio.sleep(self._delay)  # the fake's latency, not test synchronisation
        if self._script[nsid]:
            return self._script[nsid].popleft().response()
        answer, headers = self._method(nsid, record)
        if 200 <= answer.status < 300 and self._after_commit[nsid]:
            answer = self._after_commit[nsid].popleft()
        return answer.response(headers)

    def _method(self, nsid: str, record: RecordedRequest) -> tuple[Answer, dict[str, str]]:
        if nsid == CREATE_SESSION:
            return self._create_session(record), {}
        if nsid == REFRESH_SESSION:
            return self._refresh_session(record), {}
        if nsid == GET_RECORD:
            return self._get_record(record.query), {}
        refused = self._check_access(record)
        if refused is not None:
            return refused, {}
        data = record.json if isinstance(record.json, dict) else None
        if data is None:
            return xrpc_error(400, message="Request body must be a JSON object"), {}
        if data.get("repo") not in (self.did, self.handle):
            return xrpc_error(401), {}
        points = 3 if nsid == CREATE_RECORD else 1
        limited, headers = self._spend(points)
        if limited is not None:
            return limited, headers
        if nsid == CREATE_RECORD:
            return self._create_record(data), headers
        return self._delete_record(data), headers

    # -- sessions ----------------------------------------------------------------------

    def _create_session(self, record: RecordedRequest) -> Answer:
        data = record.json if isinstance(record.json, dict) else {}
        identifier, password = data.get("identifier"), data.get("password")
        if not isinstance(identifier, str):
            return xrpc_error(400, message='Input must have the property "identifier"')
        if not isinstance(password, str):
            return xrpc_error(400, message='Input must have the property "password"')
        now = int(time.time())
        window = (identifier.lower(), now // LOGIN_WINDOW)
        self._login_attempts[window] += 1
        if self._login_attempts[window] > self.login_limit:
            reset = (now // LOGIN_WINDOW + 1) * LOGIN_WINDOW
            headers = self._limit_headers(self.login_limit, 0, reset, LOGIN_WINDOW)
            headers["Retry-After"] = str(reset - now)
            return xrpc_error(429, headers=headers)
        known = identifier.lower() in (self.handle.lower(), self.email.lower()) or (
            identifier == self.did
        )
        if not known or password != self.password:
            return xrpc_error(401, message="Invalid identifier or password")
        self.logins += 1
        return json_answer(
            200,
            {
                "did": self.did,
                "handle": self.handle,
                "email": self.email,
                "emailConfirmed": True,
                "emailAuthFactor": False,
                **self._new_tokens(),
                "active": True,
            },
        )

    def _refresh_session(self, record: RecordedRequest) -> Answer:
        token = _bearer(record.headers)
        if token is None:
            return xrpc_error(401, "AuthMissing")
        state = self._refresh.get(token)
        if state is None:
            return xrpc_error(400, "InvalidToken", "Token could not be verified")
        if state == "expired":
            return xrpc_error(400, "ExpiredToken", "Token has expired")
        if state == "spent":
            return xrpc_error(400, "ExpiredToken", "Token has been revoked")
        self._refresh[token] = "spent"
        self.refreshes += 1
        return json_answer(
            200,
            {"did": self.did, "handle": self.handle, **self._new_tokens(), "active": True},
        )

    def _new_tokens(self) -> dict[str, str]:
        access = _jwt("com.atproto.appPass", self.did, 2 * 3600)
        refresh = _jwt("com.atproto.refresh", self.did, 90 * 86400)
        self._access[access] = True
        self._refresh[refresh] = "valid"
        return {"accessJwt": access, "refreshJwt": refresh}

    def _check_access(self, record: RecordedRequest) -> Answer | None:
        token = _bearer(record.headers)
        if token is None:
            return xrpc_error(401, "AuthMissing")
        valid = self._access.get(token)
        if valid is None:
            return xrpc_error(400, "InvalidToken", "Token could not be verified")
        if not valid:
            return xrpc_error(400, "ExpiredToken", "Token has expired")
        return None

    # -- rate limits -------------------------------------------------------------------

    @staticmethod
    def _limit_headers(limit: int, remaining: int, reset: int, window: int) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(limit),
            "RateLimit-Remaining": str(remaining),
            "RateLimit-Reset": str(reset),
            "RateLimit-Policy": f"{limit};w={window}",
        }

    def _spend(self, points: int) -> tuple[Answer | None, dict[str, str]]:
        now = int(time.time())
        window = now // WRITE_WINDOW
        reset = (window + 1) * WRITE_WINDOW
        if self._write_points[window] + points > WRITE_POINTS:
            headers = self._limit_headers(WRITE_POINTS, 0, reset, WRITE_WINDOW)
            headers["Retry-After"] = str(reset - now)
            return xrpc_error(429, headers=headers), headers
        self._write_points[window] += points
        remaining = WRITE_POINTS - self._write_points[window]
        return None, self._limit_headers(WRITE_POINTS, remaining, reset, WRITE_WINDOW)

    # -- records -----------------------------------------------------------------------

    def _create_record(self, data: dict[str, Any]) -> Answer:
        if data.get("collection") != POST:
            return xrpc_error(400, message=f"Unknown lexicon type: {data.get('collection')}")
        value = data.get("record")
        if not isinstance(value, dict):
            return xrpc_error(400, message='Input must have the property "record"')
        if value.get("$type", POST) != POST:
            return xrpc_error(
                400, message=f"Invalid $type: expected {POST}, got {value.get('$type')}"
            )
        value = {"$type": POST, **value}
        rkey = data.get("rkey")
        if rkey is None:
            rkey = clock_tid(next(self._clock))
        if not isinstance(rkey, str) or not RECORD_KEY.match(rkey) or rkey in (".", ".."):
            return xrpc_error(400, message=f"Invalid record key: {rkey}")
        if not TID.match(rkey):
            return xrpc_error(
                400, message=f"Invalid record key for {POST}: Invalid TID format: {rkey}"
            )
        problem = _post_problem(value)
        if problem is not None:
            return xrpc_error(400, message=f"Invalid {POST} record: {problem}")
        if rkey in self.records:
            return xrpc_error(500)  # the unique constraint fails deep inside: atproto#3718
        stored = {"uri": self.uri(rkey), "cid": fake_cid(value), "value": value}
        self.records[rkey] = stored
        self.created.append(stored)
        commit = {"cid": fake_cid({"commit": rkey, "at": time.time_ns()}), "rev": clock_tid()}
        body = {"uri": stored["uri"], "cid": stored["cid"], "commit": commit}
        return json_answer(200, {**body, "validationStatus": "valid"})

    def _delete_record(self, data: dict[str, Any]) -> Answer:
        rkey = data.get("rkey")
        if data.get("collection") != POST or not isinstance(rkey, str):
            return xrpc_error(400, message='Input must have the properties "collection", "rkey"')
        if self.records.pop(rkey, None) is None:
            return json_answer(200, {})  # no-op if the record already doesn't exist
        self.deleted.add(rkey)
        return json_answer(200, {"commit": {"cid": fake_cid({"del": rkey}), "rev": clock_tid()}})

    def _get_record(self, query: dict[str, str]) -> Answer:
        for name in ("repo", "collection", "rkey"):
            if name not in query:
                return xrpc_error(400, message=f'Error: Params must have the property "{name}"')
        uri = f"at://{self.did}/{query['collection']}/{query['rkey']}"
        found = self.records.get(query["rkey"]) if query["collection"] == POST else None
        if query["repo"] not in (self.did, self.handle) or found is None:
            return xrpc_error(400, "RecordNotFound", f"Could not locate record: {uri}")
        return json_answer(200, found)


def _bearer(headers: Mapping[str, str]) -> str | None:
    value = headers.get("Authorization", "")
    kind, _, token = value.partition(" ")
    return token if kind.lower() == "bearer" and token else None


def _strong_ref_problem(ref: Any, path: str) -> str | None:
    if not isinstance(ref, dict):
        return f"{path} must be an object"
    uri, cid = ref.get("uri"), ref.get("cid")
    if not isinstance(uri, str) or not uri.startswith("at://"):
        return f"{path}/uri must be a valid at-uri"
    if not isinstance(cid, str) or not cid:
        return f'{path} must have the property "cid"'
    return None


def _post_problem(value: dict[str, Any]) -> str | None:
    """Why app.bsky.feed.post refuses this record, or None."""
    text = value.get("text")
    if not isinstance(text, str):
        return 'Record must have the property "text"'
    if utf8_bytes(text) > MAX_BYTES:
        return f"Record/text must not be longer than {MAX_BYTES} characters"
    if graphemes(text) > MAX_GRAPHEMES:
        return f"Record/text must not be longer than {MAX_GRAPHEMES} graphemes"
    created = value.get("createdAt")
    if not isinstance(created, str):
        return 'Record must have the property "createdAt"'
    if not _DATETIME.match(created):
        return "Record/createdAt must be an valid atproto datetime"
    langs = value.get("langs", [])
    if not isinstance(langs, list) or len(langs) > 3:
        return "Record/langs must not have more than 3 elements"
    if not all(isinstance(lang, str) and re.match(r"^[a-zA-Z]{2,3}(-|$)", lang) for lang in langs):
        return "Record/langs must be well-formed BCP 47 language tags"
    facets = value.get("facets", [])
    if not isinstance(facets, list):
        return "Record/facets must be an array"
    for number, facet in enumerate(facets):
        index = facet.get("index") if isinstance(facet, dict) else None
        features = facet.get("features") if isinstance(facet, dict) else None
        if not isinstance(index, dict) or not isinstance(features, list):
            return f'Record/facets/{number} must have the properties "index" and "features"'
        start, end = index.get("byteStart"), index.get("byteEnd")
        if not isinstance(start, int) or not isinstance(end, int) or start < 0 or end < 0:
            return f"Record/facets/{number}/index must hold non-negative byteStart and byteEnd"
    reply = value.get("reply")
    if reply is not None:
        for part in ("root", "parent"):
            problem = _strong_ref_problem(
                reply.get(part) if isinstance(reply, dict) else None, f"Record/reply/{part}"
            )
            if problem is not None:
                return problem
    return None
