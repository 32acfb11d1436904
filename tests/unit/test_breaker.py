"""The circuit breaker's states, driven by hand (no provider, no sleeps as sync)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from broadcaster.breaker import Breaker, CircuitOpen


def breaker(changes: list[str]) -> Breaker:
    return Breaker(
        "sms",
        failures=3,
        cooldown=timedelta(milliseconds=50),
        on_change=lambda cid, state: changes.append(state),
    )


async def test_it_opens_after_failures_in_a_row_and_a_success_resets_the_count() -> None:
    changes: list[str] = []
    b = breaker(changes)
    b.failed()
    b.failed()
    b.succeeded()  # the count starts again
    b.failed()
    b.failed()
    assert changes == []
    b.failed()
    assert changes == ["open"]
    assert str(b.state) == "open"


async def test_after_the_cooldown_one_probe_goes_and_the_others_wait() -> None:
    changes: list[str] = []
    b = breaker(changes)
    for _ in range(3):
        b.failed()
    waiters = {asyncio.create_task(b.admit(within=5)) for _ in range(6)}
    done, waiting = await asyncio.wait(waiters, timeout=5, return_when=asyncio.FIRST_COMPLETED)
    assert len(done) == 1
    assert b.state == "half_open"
    for _ in range(20):  # let every other waiter run: none gets in before the verdict
        await asyncio.sleep(0)
    assert not any(w.done() for w in waiting)
    b.succeeded()
    await asyncio.wait_for(asyncio.gather(*waiting), 5)
    assert changes == ["open", "half_open", "closed"]


async def test_a_failed_probe_opens_it_again() -> None:
    changes: list[str] = []
    b = breaker(changes)
    for _ in range(3):
        b.failed()
    await asyncio.wait_for(b.admit(within=5), 5)
    b.failed()
    assert changes == ["open", "half_open", "open"]


async def test_a_wait_ends_at_its_deadline_or_when_stopped() -> None:
    b = Breaker("x", failures=1, cooldown=timedelta(hours=1))
    b.failed()
    with pytest.raises(CircuitOpen, match="circuit open"):
        await b.admit(within=0.05)
    stop = asyncio.Event()
    waiting = asyncio.create_task(b.admit(stop, within=60))
    stop.set()
    with pytest.raises(CircuitOpen, match="stopped"):
        await asyncio.wait_for(waiting, 5)


async def test_an_abandoned_probe_lets_the_next_one_go() -> None:
    b = breaker([])
    for _ in range(3):
        b.failed()
    await asyncio.wait_for(b.admit(within=5), 5)
    b.abandoned()  # cancelled without a verdict
    await asyncio.wait_for(b.admit(within=5), 5)
    assert b.state == "half_open"
