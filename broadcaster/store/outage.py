"""Riding out a store outage: retry with backoff, give up for good past a limit.

A Redis restart takes seconds; a warning must not be lost for that. Every store call
goes through `Outage.call`, which retries the connection errors of its backend (a write
with the same token, so a call whose answer was lost never runs twice). While it retries,
the caller simply waits: the MQTT intake holds its acknowledgement (the broker keeps the
trigger), and a provider's answer waits in memory until it is written. Past `limit` the
store is given up for good: every call raises `StoreUnavailable`, and the daemon exits
non-zero so that its supervisor (systemd, the container runtime) restarts it cleanly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

import structlog

log = structlog.get_logger(__name__)

T = TypeVar("T")

FIRST_WAIT = 0.05  # seconds before the first retry, doubling
MAX_WAIT = 1.0


class StoreUnavailable(Exception):
    """The store stayed unreachable past `store.outage_limit`."""


class Outage:
    def __init__(
        self, limit: timedelta, errors: tuple[type[BaseException], ...], *, store: str
    ) -> None:
        self.limit = limit.total_seconds()
        self.errors = errors
        self.store = store
        self.since: float | None = None  # monotonic start of the current outage
        self.unreachable = asyncio.Event()  # set while an outage lasts
        self.given_up: str | None = None
        self.on_give_up: list[Callable[[str], None]] = []

    @property
    def available(self) -> bool:
        return self.since is None and self.given_up is None

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        wait = FIRST_WAIT
        while True:
            if self.given_up is not None:
                raise StoreUnavailable(self.given_up)
            try:
                result = await fn()
            except self.errors as exc:
                await self._failed(exc, wait)
                wait = min(wait * 2, MAX_WAIT)
                continue
            if self.since is not None:
                log.warning(
                    "store_reachable_again",
                    store=self.store,
                    outage_seconds=round(time.monotonic() - self.since, 3),
                )
                self.since = None
                self.unreachable.clear()
            return result

    async def _failed(self, exc: BaseException, wait: float) -> None:
        now = time.monotonic()
        if self.since is None:
            self.since = now
            self.unreachable.set()
            log.warning("store_unreachable", store=self.store, error=_describe(exc))
        elapsed = now - self.since
        if elapsed >= self.limit:
            self.give_up(
                f"the {self.store} store has been unreachable for {elapsed:.0f}s "
                f"(store.outage_limit {self.limit:g}s): {_describe(exc)}"
            )
            raise StoreUnavailable(self.given_up) from exc
        await asyncio.sleep(min(wait, self.limit - elapsed))

    def give_up(self, reason: str) -> None:
        if self.given_up is not None:
            return
        self.given_up = reason
        log.error("store_given_up", store=self.store, reason=reason)
        for callback in self.on_give_up:
            callback(reason)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
