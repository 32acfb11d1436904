"""What every fake HTTP provider shares: a free loopback port, the requests it received,
and the levers tests pull (delay, hold/release) and wait on (requests, answers)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from aiohttp import web


class FakeServer:
    def __init__(self) -> None:
        self.base_url = ""  # set once listening
        self.requests: list[Any] = []
        self._delay = 0.0
        self._gate = asyncio.Event()
        self._gate.set()
        self._changed = asyncio.Condition()

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
