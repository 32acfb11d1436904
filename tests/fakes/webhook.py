"""A webhook receiver like a careful provider runs, on a free 127.0.0.1 port.

    async with FakeWebhook.start(secret="s3cret") as fake:
        adapter = WebhookAdapter("hook", WebhookChannel(type="webhook", url=fake.url, ...), session)
        fake.script(503, (429, {"Retry-After": "2"}))   # the next two answers, then normal
        ...
        assert len(fake.posts) == 1

What it does with each request, in this order:

1. records it in `requests` (method, path, headers, body bytes, parsed JSON, time, and
   later the status it was answered with);
2. 404 for any path but `path`, 405 for any method but POST;
3. 409 while an earlier request with the same Idempotency-Key is still being processed
   (draft-ietf-httpapi-idempotency-key-header);
4. waits while `hold()` is in force, then `delay(seconds)` (a slow provider);
5. a scripted answer, if one is queued (an outage in front of the application: taken
   verbatim, not processed, not remembered for the key);
6. the `fail_permanently(status)` answer, if set;
7. 401 when a secret is set and X-Broadcaster-Signature is missing or wrong;
8. 415 unless the Content-Type is JSON; 400 unless the body is a message the contract
   describes (or a deletion);
9. a repeated Idempotency-Key: the original answer again, with `Idempotent-Replayed: true`,
   not a new post (422 when the body differs from the original's);
10. otherwise accepts it: 200 with `{"id": "<uuid>", "url": "https://hooks.example/<id>"}`,
    appended to `posts`; a deletion of a known post is 200 `{"id", "deleted": true}`,
    of an unknown one 404.

Error bodies are JSON `{"error": "..."}` as most providers send them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import uuid
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

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

PATH = "/hooks/broadcaster"
MESSAGE_KINDS = frozenset({"alert", "confirmation_request", "retraction", "refusal"})
MESSAGE_FIELDS = ("alert_id", "incident", "scenario", "stage", "mode", "title", "text", "language")
# A refused trigger may be unreadable: what it could not say is null.
MAYBE_UNKNOWN = frozenset({"alert_id", "incident", "scenario", "stage"})


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: CIMultiDictProxy[str]  # case-insensitive, as received
    body: bytes
    json: Any  # None when the body is not JSON
    at: datetime
    status: int | None = None  # the status it was answered with, once answered
    replayed: bool = False  # answered from the Idempotency-Key store


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Answer:
    return json_answer(status, {"error": message}, headers)


def _scripted(item: ScriptedAnswer) -> Answer:
    return scripted(item, lambda status, headers: _error(status, phrase(status), headers))


class FakeWebhook(FakeServer):
    def __init__(self, *, secret: str | None = None, path: str = PATH) -> None:
        super().__init__()
        self.secret = secret
        self.path = path
        self.posts: list[RecordedRequest] = []  # accepted, distinct (replays not counted)
        self.deleted: set[str] = set()  # remote ids removed by a deletion
        self._published: dict[str, RecordedRequest] = {}  # remote id -> its post
        self._answers: dict[str, tuple[bytes, Answer]] = {}  # key -> (body, first answer)
        self._in_flight: set[str] = set()
        self._script: deque[Answer] = deque()
        self._permanent: Answer | None = None

    @property
    def url(self) -> str:
        return self.base_url + self.path

    @classmethod
    @asynccontextmanager
    async def start(
        cls, *, secret: str | None = None, path: str = PATH
    ) -> AsyncIterator[FakeWebhook]:
        fake = cls(secret=secret, path=path)
        async with serving(fake):
            yield fake

    # -- scripting ---------------------------------------------------------------------

    def script(self, *answers: ScriptedAnswer) -> None:
        """Answer the next requests with these, one each, then behave normally again."""
        self._script.extend(_scripted(answer) for answer in answers)

    def fail_permanently(self, status: int = 400, message: str | None = None) -> None:
        """Answer every request with this error until `recover()`."""
        self._permanent = _error(status, message or phrase(status))

    def recover(self) -> None:
        self._permanent = None

    def post(self, remote_id: str) -> RecordedRequest:
        """The accepted post that got this remote id."""
        return self._published[remote_id]

    # -- serving -----------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            parsed: Any = json.loads(body) if body else None
        except ValueError:
            parsed = None
        record = RecordedRequest(
            request.method, request.path, request.headers, body, parsed, datetime.now(UTC)
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
        if request.path != self.path:
            return _error(404, f"no webhook at {request.path}").response()
        if request.method != "POST":
            return _error(405, "POST only").response({"Allow": "POST"})
        key = request.headers.get("Idempotency-Key")
        if key is not None and key in self._in_flight:
            return _error(409, "a request with this Idempotency-Key is in progress").response()
        if key is not None:
            self._in_flight.add(key)
        try:
            await self._gate.wait()
            if self._delay:
                await asyncio.sleep(self._delay)  # the fake's latency, not test synchronisation
            if self._script:
                return self._script.popleft().response()
            if self._permanent is not None:
                return self._permanent.response()
            if not self._signed(request, record.body):
                return _error(401, "missing or wrong X-Broadcaster-Signature").response()
            if request.content_type != "application/json":
                return _error(415, "expected Content-Type: application/json").response()
            if key is not None and key in self._answers:
                first_body, answer = self._answers[key]
                if record.body != first_body:
                    return _error(422, "Idempotency-Key reused with a different body").response()
                record.replayed = True
                return answer.response({"Idempotent-Replayed": "true"})
            answer = self._accept(record)
            if key is not None and 200 <= answer.status < 300:
                self._answers[key] = (record.body, answer)
            return answer.response()
        finally:
            if key is not None:
                self._in_flight.discard(key)

    def _signed(self, request: web.Request, body: bytes) -> bool:
        if self.secret is None:
            return True
        expected = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        given = request.headers.get("X-Broadcaster-Signature", "")
        return hmac.compare_digest(given.encode(), expected.encode())

    def _accept(self, record: RecordedRequest) -> Answer:
        data = record.json
        if not isinstance(data, dict):
            return _error(400, "body must be a JSON object")
        kind = data.get("kind")
        if kind == "deletion":
            return self._delete(record, data)
        if kind not in MESSAGE_KINDS:
            return _error(400, f"unknown kind {kind!r}")
        for name in MESSAGE_FIELDS:
            value = data.get(name)
            unknown_ok = kind == "refusal" and name in MAYBE_UNKNOWN and value is None
            if not isinstance(value, str) and not unknown_ok:
                return _error(400, f"{name} must be a string")
        if data["mode"] not in ("live", "drill"):
            return _error(400, "mode must be live or drill")
        if "expires_at" not in data:
            return _error(400, "expires_at is missing")
        if kind == "confirmation_request" and not isinstance(data.get("confirm_url"), str):
            return _error(400, "confirm_url must be a string")
        if kind == "retraction" and not isinstance(data.get("correction_id"), str):
            return _error(400, "correction_id must be a string")
        if kind == "refusal" and not all(isinstance(data.get(k), str) for k in ("error", "detail")):
            return _error(400, "a refusal needs error and detail")
        remote_id = str(uuid.uuid4())
        self.posts.append(record)
        self._published[remote_id] = record
        return json_answer(200, {"id": remote_id, "url": f"https://hooks.example/{remote_id}"})

    def _delete(self, record: RecordedRequest, data: dict[str, Any]) -> Answer:
        remote_id = data.get("remote_id")
        if not isinstance(remote_id, str) or remote_id not in self._published:
            return _error(404, f"no post with id {remote_id!r}")
        self.posts.append(record)
        self.deleted.add(remote_id)
        return json_answer(200, {"id": remote_id, "deleted": True})
