"""Bluesky: posts of one account through its PDS's XRPC API (contract section 5, `type: bluesky`).

    POST {base_url}/xrpc/com.atproto.server.createSession   {"identifier", "password"}
      -> {"did", "handle", "accessJwt", "refreshJwt", ...}       (once; then cached)
    POST {base_url}/xrpc/com.atproto.repo.createRecord
    Authorization: Bearer <accessJwt>
    {"repo": did, "collection": "app.bsky.feed.post", "rkey": "<TID>",
     "record": {"$type": "app.bsky.feed.post", "text", "createdAt", "langs": ["de"],
                "facets": [...], "reply": {"root": {uri, cid}, "parent": {uri, cid}}}}
      -> {"uri": "at://did:plc:.../app.bsky.feed.post/<rkey>", "cid": "bafyrei...", ...}

Sources: lexicons com/atproto/server/{createSession,refreshSession}.json,
com/atproto/repo/{createRecord,getRecord,deleteRecord}.json and app/bsky/feed/post.json in
github.com/bluesky-social/atproto, its PDS (packages/pds/src/auth-verifier.ts,
repo/prepare.ts, api/com/atproto/repo/*.ts) and xrpc-server (rate-limiter-http.ts);
docs.bsky.app/docs/advanced-guides/{posts,post-richtext,rate-limits}.

Session: createSession is limited to 30 per 5 minutes and 300 per day, so the adapter
logs in once and keeps the session for every later post. An expired access token is
`400 {"error": "ExpiredToken"}`: the adapter calls refreshSession (Bearer refreshJwt) and
repeats the request once; when the refresh token is spent too, it logs in again. A 401
(or a `400 InvalidToken`: the PDS could not verify the token) means the session is no
longer any good: one new login, one repeat. This renewal is part of making one request,
not a retry in the dispatcher's sense; a request still refused after it is permanent.

Idempotency: there is no header for it. The record key is a TID derived from the
message's idempotency key, so a retry targets the same record. A PDS answers a create
of an existing key with `500 InternalServerError` (bluesky-social/atproto#3718; #4728
would add a proper error), so after a 500 the adapter asks getRecord: a record with
this key and the same text is the post an earlier attempt made (success); no record
means the 500 was a real failure (transient); another text under the key is permanent.

Text: plain, no escaping. Every http(s) URL gets a link facet, or Bluesky shows it as
plain text; facet offsets are UTF-8 byte offsets (start inclusive, end exclusive), found
much as the official client does (`@atproto/api` rich-text detection: a URL starts the
text or follows white space or `(`; one trailing `.,;:!?` is left out, and a closing `)`
that has no partner in the URL; the client drops one only when the URL has no `(` at all).

Threading: `record.reply` with strong refs (uri + cid): root = the thread's first post,
parent = the post replied to; both come from the receipt of the incident's first post.

Answers are `{"error": "<Name>", "message": "..."}`. 429 `RateLimitExceeded` is
transient, the wait from `RateLimit-Reset` (epoch seconds) or `Retry-After` (the later of
the two when both come); 500, 502, 503, 504 (and 408, 425) are transient; 501 and every
other 4xx (400 InvalidRequest, 413, ...) are permanent, keeping the PDS's words.

Delete: deleteRecord is idempotent (the PDS does nothing for a record that is not there).

Receipt: `remote_id` is the post's at:// URI, `url`
`https://bsky.app/profile/{did}/post/{rkey}`, `data` `{"uri", "cid", "did", "rkey"}` plus
`"root": {"uri", "cid"}` for a reply.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from broadcaster.channels.base import OutgoingMessage, PermanentError, TransientError
from broadcaster.channels.http import Answer, HttpAdapter, excerpt, retry_after_seconds
from broadcaster.channels.settings import BlueskyChannel
from broadcaster.models import Receipt

USER_AGENT = "broadcaster-bluesky/1"
POST_COLLECTION = "app.bsky.feed.post"
CREATE_SESSION = "com.atproto.server.createSession"
REFRESH_SESSION = "com.atproto.server.refreshSession"
CREATE_RECORD = "com.atproto.repo.createRecord"
GET_RECORD = "com.atproto.repo.getRecord"
DELETE_RECORD = "com.atproto.repo.deleteRecord"

# atproto.com/specs/tid: 13 characters of base32-sortable; the first stands for the top
# bits, which the 64-bit integer keeps at 0. Reference regex from packages/syntax/src/tid.ts.
TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
TID_PATTERN = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")
# A TID is (microseconds since 1970 << 10) | a 10-bit clock id. The derived timestamps fall
# in 2023-2024: plausible, and never in the future (syncers are told to ignore TIDs from
# the future, bluesky-social/proposals#103).
_TID_EPOCH_US = 1_672_531_200_000_000  # 2023-01-01T00:00:00Z
_TID_SPAN_US = 731 * 86_400 * 1_000_000  # two years

# @atproto/api packages/api/src/rich-text/util.ts URL_REGEX, http(s) URLs only.
_URL = re.compile(r"(?:^|(?<=[\s(]))(https?://\S+)", re.IGNORECASE)
_TRAILING = ".,;:!?"

_AuthProblem = Literal["expired", "invalid"]


def record_key(idempotency_key: str) -> str:
    """The record key (a TID) of the post made for this idempotency key, always the same."""
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).digest()
    number = int.from_bytes(digest[:8], "big")
    micros = _TID_EPOCH_US + (number >> 10) % _TID_SPAN_US
    value = (micros << 10) | (number & 0x3FF)
    return "".join(TID_ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(13)))


def link_facets(text: str) -> list[dict[str, Any]]:
    """A link facet for every http(s) URL in `text`, with UTF-8 byte offsets."""
    facets: list[dict[str, Any]] = []
    for match in _URL.finditer(text):
        uri = match.group(1)
        if uri[-1] in _TRAILING:
            uri = uri[:-1]
        if uri.endswith(")") and uri.count(")") > uri.count("("):
            uri = uri[:-1]
        if uri.lower() in ("http://", "https://"):
            continue
        start = len(text[: match.start(1)].encode("utf-8"))
        facets.append(
            {
                "index": {"byteStart": start, "byteEnd": start + len(uri.encode("utf-8"))},
                "features": [{"$type": "app.bsky.richtext.facet#link", "uri": uri}],
            }
        )
    return facets


def created_at(moment: datetime | None = None) -> str:
    """`2026-11-23T10:15:00.123Z`: the datetime format the lexicon and the app use."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def rate_limit_wait(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait after a 429: RateLimit-Reset (epoch seconds) or Retry-After."""
    waits: list[float] = []
    reset = headers.get("RateLimit-Reset", "").strip()
    if reset.isascii() and reset.isdigit():
        now = time.time() if now is None else now
        waits.append(max(0.0, min(int(reset), 10**11) - now))
    retry_after = retry_after_seconds(headers.get("Retry-After"))
    if retry_after is not None:
        waits.append(retry_after)
    return max(waits) if waits else None


@dataclass(frozen=True)
class _Session:
    did: str
    handle: str
    access_jwt: str
    refresh_jwt: str


class _Answer(Answer):
    """An XRPC answer: `{"error": "<Name>", "message": "..."}` when refused."""

    @property
    def error(self) -> str | None:
        data = self.data
        found = data.get("error") if isinstance(data, dict) else None
        return found if isinstance(found, str) else None

    def describe(self) -> str:
        """`HTTP 400: InvalidRequest: <message>`."""
        return f"HTTP {self.status}: {_said(self)}"


def _said(answer: Answer) -> str:
    """`InvalidRequest: <message>`, or the start of a body that is not XRPC's."""
    data = answer.data
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        detail = str(data["error"])
        message = data.get("message")
        if isinstance(message, str) and message:
            detail += f": {message}"
        return detail
    return excerpt(answer.body) or "(no body)"


def _auth_problem(answer: _Answer) -> _AuthProblem | None:
    """What is wrong with the session, judging by an answer to a request that used it."""
    if answer.status == 400 and answer.error == "ExpiredToken":
        return "expired"
    if answer.status == 401 or (answer.status == 400 and answer.error == "InvalidToken"):
        return "invalid"
    return None


class BlueskyAdapter(HttpAdapter[BlueskyChannel]):
    """One Bluesky account (channels/<id>.yaml with `type: bluesky`)."""

    service = "bluesky"
    permanent_statuses = frozenset({501})  # "not implemented" will not change
    redirect_fix = "fix base_url"

    can_thread: bool = True  # record.reply = {root, parent}: the incident's first post
    can_delete: bool = True  # com.atproto.repo.deleteRecord, idempotent

    def setup(self) -> None:
        self._base = self._config.base_url.rstrip("/")
        self._auth: _Session | None = None
        self._auth_lock = asyncio.Lock()

    # -- the record ----------------------------------------------------------------------

    def record(self, message: OutgoingMessage, *, now: datetime | None = None) -> dict[str, Any]:
        """The app.bsky.feed.post record for this message."""
        record: dict[str, Any] = {
            "$type": POST_COLLECTION,
            "text": message.text,
            "createdAt": created_at(now),
            "langs": [message.language],
        }
        facets = link_facets(message.text)
        if facets:
            record["facets"] = facets
        if message.reply_to is not None:
            record["reply"] = self._reply(message.reply_to)
        return record

    def _reply(self, first: Receipt) -> dict[str, Any]:
        parent = _strong_ref(first.data)
        if parent is None:
            raise PermanentError(
                f"{self._service}: cannot reply: the earlier receipt has no uri and cid"
            )
        root = _strong_ref(first.data.get("root")) or parent
        return {"root": root, "parent": parent}

    # -- the channel ---------------------------------------------------------------------

    async def send(self, message: OutgoingMessage) -> Receipt:
        record = self.record(message)
        auth = await self._current()
        rkey = record_key(message.idempotency_key)
        body = {"repo": auth.did, "collection": POST_COLLECTION, "rkey": rkey, "record": record}
        answer = await self._call("POST", CREATE_RECORD, body=body)
        if answer.status == 500:
            return await self._made_before(answer, auth.did, rkey, record)
        self.check(answer)
        data = answer.data if isinstance(answer.data, dict) else {}
        ref = _strong_ref(data)
        if ref is None:
            raise PermanentError(
                f"{self._service}: no uri and cid in the answer: {excerpt(answer.body)}"
            )
        return self._receipt(ref, auth.did, rkey, record)

    async def delete(self, receipt: Receipt) -> None:
        found = _record_of(receipt)
        if found is None:
            raise PermanentError(f"{self._service}: the receipt names no post to delete")
        did, rkey = found
        body = {"repo": did, "collection": POST_COLLECTION, "rkey": rkey}
        self.check(await self._call("POST", DELETE_RECORD, body=body))

    def _receipt(self, ref: dict[str, str], did: str, rkey: str, record: dict[str, Any]) -> Receipt:
        data: dict[str, Any] = {"uri": ref["uri"], "cid": ref["cid"], "did": did, "rkey": rkey}
        if "reply" in record:
            data["root"] = record["reply"]["root"]
        return Receipt(
            remote_id=ref["uri"], url=f"https://bsky.app/profile/{did}/post/{rkey}", data=data
        )

    async def _made_before(
        self, failed: _Answer, did: str, rkey: str, record: dict[str, Any]
    ) -> Receipt:
        """After a 500: is the post there already, made by an earlier attempt?"""
        params = {"repo": did, "collection": POST_COLLECTION, "rkey": rkey}
        answer = await self._request("GET", GET_RECORD, params=params)
        if answer.status == 400 and answer.error == "RecordNotFound":
            raise TransientError(f"{self._service}: {failed.describe()}")
        self.check(answer)
        data = answer.data if isinstance(answer.data, dict) else {}
        ref = _strong_ref(data)
        value = data.get("value")
        if ref is None or not isinstance(value, dict):
            raise TransientError(f"{self._service}: {failed.describe()}")
        if value.get("text") != record["text"]:
            raise PermanentError(
                f"{self._service}: the record key {rkey} already holds another post ({ref['uri']})"
            )
        return self._receipt(ref, did, rkey, record)

    # -- the session ---------------------------------------------------------------------

    async def _current(self) -> _Session:
        """The cached session; the one login happens here."""
        if self._auth is not None:
            return self._auth
        async with self._auth_lock:
            if self._auth is None:
                self._auth = await self._login()
            return self._auth

    async def _renew(self, stale: _Session, problem: _AuthProblem) -> _Session:
        """A session that works again: refreshed when expired, else a new login."""
        async with self._auth_lock:
            if self._auth is not None and self._auth is not stale:
                return self._auth  # a concurrent request renewed it meanwhile
            self._auth = None
            renewed = await self._refresh(stale) if problem == "expired" else None
            self._auth = renewed or await self._login()
            return self._auth

    async def _login(self) -> _Session:
        body = {"identifier": self._config.identifier, "password": self._config.app_password}
        answer = await self._request("POST", CREATE_SESSION, body=body)
        if answer.status != 200:
            self.check(answer, doing=f"login as {self._config.identifier}")
        return self._session_from(answer)

    async def _refresh(self, stale: _Session) -> _Session | None:
        """The refreshed session; None when the refresh token is no good any more."""
        answer = await self._request("POST", REFRESH_SESSION, token=stale.refresh_jwt)
        if _auth_problem(answer) is not None:
            return None
        self.check(answer, doing="session refresh")
        return self._session_from(answer)

    def _session_from(self, answer: _Answer) -> _Session:
        data = answer.data if isinstance(answer.data, dict) else {}
        fields = [data.get(name) for name in ("did", "handle", "accessJwt", "refreshJwt")]
        if not all(isinstance(value, str) and value for value in fields):
            raise PermanentError(
                f"{self._service}: no session in the answer: {excerpt(answer.body)}"
            )
        did, handle, access, refresh = (str(value) for value in fields)
        return _Session(did=did, handle=handle, access_jwt=access, refresh_jwt=refresh)

    # -- HTTP ----------------------------------------------------------------------------

    async def _call(
        self, method: Literal["GET", "POST"], nsid: str, *, body: dict[str, Any] | None = None
    ) -> _Answer:
        """One request with the session; renewed once when the PDS refuses the token."""
        auth = await self._current()
        answer = await self._request(method, nsid, body=body, token=auth.access_jwt)
        problem = _auth_problem(answer)
        if problem is None:
            return answer
        renewed = await self._renew(auth, problem)
        answer = await self._request(method, nsid, body=body, token=renewed.access_jwt)
        if _auth_problem(answer) is not None:
            raise PermanentError(
                f"{self._service}: {answer.describe()} (refused again with a new session)"
            )
        return answer

    async def _request(
        self,
        method: Literal["GET", "POST"],
        nsid: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        token: str | None = None,
    ) -> _Answer:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data: bytes | None = None
        if body is not None:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        answer = await self.request(
            method, f"{self._base}/xrpc/{nsid}", params=params, data=data, headers=headers
        )
        return _Answer(answer.status, answer.headers, answer.body)

    def wait(self, answer: Answer) -> float | None:
        if answer.status == 429:
            return rate_limit_wait(answer.headers)
        return super().wait(answer)

    def describe(self, answer: Answer) -> str:
        return _said(answer)


def _strong_ref(data: Any) -> dict[str, str] | None:
    """`{"uri", "cid"}` (com.atproto.repo.strongRef) from a mapping that holds both."""
    if not isinstance(data, Mapping):
        return None
    uri, cid = data.get("uri"), data.get("cid")
    if isinstance(uri, str) and uri.startswith("at://") and isinstance(cid, str) and cid:
        return {"uri": uri, "cid": cid}
    return None


def _record_of(receipt: Receipt) -> tuple[str, str] | None:
    """(did, rkey) of the post a receipt names: from its data, else from its at:// URI."""
    did, rkey = receipt.data.get("did"), receipt.data.get("rkey")
    if isinstance(did, str) and did and isinstance(rkey, str) and rkey:
        return did, rkey
    uri = receipt.data.get("uri") or receipt.remote_id
    if isinstance(uri, str):
        parts = uri.removeprefix("at://").split("/")
        if uri.startswith("at://") and len(parts) == 3 and parts[1] == POST_COLLECTION:
            return parts[0], parts[2]
    return None
