"""A circuit breaker per channel: a provider that keeps failing is given a rest.

Closed, every request goes out. After `failures` transient failures in a row the circuit
opens: deliveries to that channel wait (spending none of their attempts) instead of each
hammering a provider that is down. After `cooldown` one waiting delivery goes out as the
probe (half open): its success closes the circuit and releases the others, its failure
opens it again. An answer of the provider, even a refusal, shows the service is up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Literal

import structlog

log = structlog.get_logger(__name__)

BreakerState = Literal["closed", "open", "half_open"]
STATE_VALUE: dict[BreakerState, int] = {"closed": 0, "half_open": 1, "open": 2}


class CircuitOpen(Exception):
    """The wait for the circuit ended (deadline or retraction) before it let us through."""


class Breaker:
    def __init__(
        self,
        channel_id: str,
        *,
        failures: int,
        cooldown: timedelta,
        on_change: Callable[[str, BreakerState], None] | None = None,
    ) -> None:
        self.channel_id = channel_id
        self.threshold = failures
        self.cooldown = cooldown.total_seconds()
        self.on_change = on_change
        self.state: BreakerState = "closed"
        self.failures = 0  # transient failures in a row
        self.opened_at = 0.0
        self._changed = asyncio.Event()

    async def admit(self, stop: asyncio.Event | None = None, within: float | None = None) -> None:
        """Return when a request may go out; CircuitOpen when `stop` is set or `within`
        seconds (what is left of the delivery's deadline) pass first."""
        loop = asyncio.get_running_loop()
        deadline = None if within is None else loop.time() + within
        while True:
            if stop is not None and stop.is_set():
                raise CircuitOpen(f"{self.channel_id}: stopped while its circuit was open")
            if self.state == "closed":
                return
            now = loop.time()
            if self.state == "open" and now >= self.opened_at + self.cooldown:
                self._set("half_open")  # this caller is the probe
                return
            waits = [] if deadline is None else [deadline - now]
            if self.state == "open":
                waits.append(self.opened_at + self.cooldown - now)
            if deadline is not None and now >= deadline:
                raise CircuitOpen(
                    f"{self.channel_id}: circuit open after {self.failures} failures in a row"
                )
            await self._wait_change(stop, min(waits) if waits else None)

    def succeeded(self) -> None:
        self.failures = 0
        if self.state != "closed":
            self._set("closed")

    def failed(self) -> None:
        self.failures += 1
        if self.state == "half_open" or (
            self.state == "closed" and self.failures >= self.threshold
        ):
            self.opened_at = asyncio.get_running_loop().time()
            self._set("open")

    def abandoned(self) -> None:
        """The request ended without a verdict (cancelled): let another probe go."""
        if self.state == "half_open":
            self.opened_at = asyncio.get_running_loop().time() - self.cooldown
            self._set("open")

    def _set(self, state: BreakerState) -> None:
        before, self.state = self.state, state
        log.warning(
            "circuit_" + state, channel=self.channel_id, before=before, failures=self.failures
        )
        if self.on_change is not None:
            self.on_change(self.channel_id, state)
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_change(self, stop: asyncio.Event | None, at_most: float | None) -> None:
        waiters = [asyncio.ensure_future(self._changed.wait())]
        if stop is not None:
            waiters.append(asyncio.ensure_future(stop.wait()))
        try:
            await asyncio.wait(waiters, timeout=at_most, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
