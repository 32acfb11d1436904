"""What every fake HTTP provider shares: a free loopback port, the requests it received,
and the levers tests pull (delay, hold/release) and wait on (requests, answers)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, TypeVar

import aiohttp
from aiohttp import web


class FakeServer:
    def __init__(self) -> None:
        self.base_url = ""  # set once listening
        self.requests: list[Any] = []
        self._delay = 0.0
        self._gate = asyncio.Event()
        self._gate.set()
        self._changed = asyncio.Condition()
        # A fake that calls the daemon back (status callbacks, webhooks): its client, and
        # the tasks that call (see `calling_back`).
        self.client: aiohttp.ClientSession | None = None
        self.background: set[asyncio.Task[None]] = set()

    def in_background(self, call: Coroutine[Any, Any, None]) -> None:
        """Run a call to the daemon on its own, as the provider does after answering."""
        task = asyncio.create_task(call)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError

    def delay(self, seconds: float) -> None:
        """Wait this long before answering each request (a slow provider)."""
        self._delay = seconds

    def hold(self) -> None:
        """Keep every request open, unanswered, until `release()`."""
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    async def wait_for_requests(self, count: int, timeout: float = 20.0) -> None:
        """Return once `count` requests have arrived (answered or not)."""
        await self._wait(lambda: len(self.requests) >= count, timeout)

    async def wait_for_answers(self, count: int, timeout: float = 20.0) -> None:
        """Return once `count` requests have been answered."""
        await self._wait(lambda: sum(r.status is not None for r in self.requests) >= count, timeout)

    async def _wait(self, predicate: Callable[[], bool], timeout: float) -> None:
        # The timeout is a safety net for a broken test, not a way to synchronise.
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()


F = TypeVar("F", bound=FakeServer)


@asynccontextmanager
async def serving(fake: F) -> AsyncIterator[F]:
    """Listen on a free 127.0.0.1 port until the block ends; every path goes to `_handle`."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake._handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        fake.base_url = f"http://{host}:{port}"
        yield fake
    finally:
        fake.release()
        fake._delay = 0.0
        await runner.cleanup()


@asynccontextmanager
async def calling_back(fake: F) -> AsyncIterator[F]:
    """`serving`, with a client for the fake's calls back; they end with the block."""
    async with aiohttp.ClientSession() as client, serving(fake):
        fake.client = client
        try:
            yield fake
        finally:
            for task in list(fake.background):
                task.cancel()
            await asyncio.gather(*fake.background, return_exceptions=True)


# A test scripts an answer as a status, (status, headers) or (status, headers, body):
# the status alone becomes the provider's own error body for it.
ScriptedAnswer = int | tuple[int, Mapping[str, str]] | tuple[int, Mapping[str, str], Any]


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    def response(self, extra: Mapping[str, str] | None = None) -> web.Response:
        """The answer, with `extra` headers the server adds (the answer's own win)."""
        return web.Response(
            status=self.status, body=self.body, headers={**(extra or {}), **self.headers}
        )


def json_answer(status: int, data: Any, headers: Mapping[str, str] | None = None) -> Answer:
    body = json.dumps(data, ensure_ascii=False).encode("utf-8")
    return Answer(
        status, body, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
    )


def phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def scripted(
    item: ScriptedAnswer, error: Callable[[int, Mapping[str, str] | None], Answer]
) -> Answer:
    """A scripted answer; `error(status, headers)` makes the provider's error body."""
    if isinstance(item, int):
        return error(item, None)
    status, headers = item[0], item[1]
    if len(item) == 2:
        return error(status, headers)
    body = item[2]
    if isinstance(body, bytes | str):
        raw = body.encode("utf-8") if isinstance(body, str) else body
        return Answer(status, raw, dict(headers))
    return json_answer(status, body, headers)
