"""How hard the broadcaster tries: one retry policy for sends, deletions and the duty
officers' notifications (`delivery` in broadcaster.yaml)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
)

from broadcaster.channels.base import TransientError
from broadcaster.config import DeliverySettings

Sleep = Callable[[float], Awaitable[None]]


class RetryPolicy:
    def __init__(self, settings: DeliverySettings) -> None:
        self.settings = settings

    def retrying(self, *, sleep: Sleep = asyncio.sleep, **hooks: Any) -> AsyncRetrying:
        """Transient errors only, within max_attempts and the deadline, waits from `wait`;
        `sleep` lets a retraction cut a wait short."""
        return AsyncRetrying(
            stop=stop_after_attempt(self.settings.max_attempts)
            | stop_before_delay(self.settings.deadline.total_seconds()),
            wait=self.wait,
            retry=retry_if_exception_type(TransientError),
            reraise=True,
            sleep=sleep,
            **hooks,
        )

    def wait(self, state: RetryCallState) -> float:
        """Seconds before the next attempt: the provider's Retry-After when it gave one,
        else exponential backoff (first_retry, doubling, capped at max_retry) with full jitter."""
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransientError) and exc.retry_after is not None:
            return max(0.0, exc.retry_after)
        first = self.settings.first_retry.total_seconds()
        cap = self.settings.max_retry.total_seconds()
        ceiling = min(cap, first * 2 ** (state.attempt_number - 1))
        return random.uniform(first / 2, max(first / 2, ceiling))
