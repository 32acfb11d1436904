"""Channels with several recipients (SMS, e-mail): each recipient's outcome, across attempts.

A retry sends only to the recipients not yet reached, and the alert shows how many were.
While a long send runs, its progress is saved in batches (`Checkpoints`), so a crash or
a takeover resumes where it stood.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from broadcaster.channels.base import ChannelError, PermanentError, TransientError
from broadcaster.models import Receipt, Recipients

_SHOWN_FAILURES = 3  # recipients named in an error message


@dataclass
class RecipientProgress:
    """Where a delivery to several recipients stands, across attempts.

    Kept in the Receipt's `data`:

        {"delivered_to": [recipient, ...],        # reached, in configured order
         "ids": {recipient: provider id},          # Message-ID / SMS sid of each reached
         "failed": {recipient: error},             # not reached (yet), with the reason
         "permanent": [recipient, ...],            # refused for good: never tried again
         "in_flight": [recipient, ...],            # may have been sent; answer not known
         "in_flight_since": ISO 8601 time}          # when the oldest of those was reserved

    and in `recipients` as Recipients(total, delivered, failed = total - delivered).

    An attempt starts from `message.previous` (this delivery's partial Receipt) and tries
    only the recipients neither reached nor permanently refused. `in_flight` is written
    (by a checkpoint) before their requests start; after a crash these are the ambiguous
    ones, which an adapter that can ask the provider (SMS) looks up before sending again.
    After an attempt:

    - every recipient reached: the Receipt is returned;
    - else, if any recipient failed transiently on this attempt: TransientError (with the
      largest `retry_after` asked for), `partial` = the Receipt so far, and the next
      attempt sends only to those;
    - else (only permanent refusals are left): PermanentError with the same `partial`.
    """

    service: str
    recipients: list[str]
    ids: dict[str, str | None] = field(default_factory=dict)
    permanent: dict[str, str] = field(default_factory=dict)
    transient: dict[str, str] = field(default_factory=dict)
    retry_after: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # adapter-specific, kept in data
    in_flight: dict[str, None] = field(default_factory=dict)  # ordered set
    since: str | None = None  # in_flight_since

    @classmethod
    def resume(
        cls, service: str, recipients: Iterable[str], previous: Receipt | None
    ) -> RecipientProgress:
        unique = list(dict.fromkeys(recipients))
        progress = cls(service, unique)
        if previous is None:
            return progress
        data = previous.data
        delivered = _strings(data.get("delivered_to"))
        ids = _mapping(data.get("ids"))
        failed = _mapping(data.get("failed"))
        for recipient in unique:
            if recipient in delivered:
                found = ids.get(recipient)
                progress.ids[recipient] = found if isinstance(found, str) else None
        for recipient in _strings(data.get("permanent")):
            if recipient in unique and recipient not in progress.ids:
                progress.permanent[recipient] = str(failed.get(recipient, "refused"))
        known = set(unique)
        for recipient in _strings(data.get("in_flight")):
            if recipient in known and recipient not in progress.ids:
                progress.in_flight[recipient] = None
        since = data.get("in_flight_since")
        if progress.in_flight and isinstance(since, str):
            progress.since = since
        return progress

    def reserve(self, recipients: Iterable[str]) -> None:
        """These may be sent from now on: written as `in_flight` by the next checkpoint."""
        for recipient in recipients:
            self.in_flight[recipient] = None
        if self.in_flight and self.since is None:
            self.since = datetime.now(UTC).isoformat(timespec="seconds")

    def since_time(self) -> datetime | None:
        try:
            when = datetime.fromisoformat(self.since) if self.since else None
        except ValueError:
            return None
        if when is not None and when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when

    def pending(self) -> list[str]:
        """Recipients this attempt should try."""
        return [r for r in self.recipients if r not in self.ids and r not in self.permanent]

    def delivered(self, recipient: str, remote_id: str | None) -> None:
        self.ids[recipient] = remote_id
        self.transient.pop(recipient, None)
        self.in_flight.pop(recipient, None)

    def failed(self, recipient: str, error: ChannelError, *, unsure: bool = False) -> None:
        """Not reached on this attempt; `unsure`: maybe sent after all (stays in_flight)."""
        if not unsure:
            self.in_flight.pop(recipient, None)
        if isinstance(error, TransientError):
            self.transient[recipient] = error.message
            if error.retry_after is not None:
                self.retry_after = max(self.retry_after or 0.0, error.retry_after)
        else:
            self.permanent[recipient] = error.message

    def receipt(self) -> Receipt:
        reached = [r for r in self.recipients if r in self.ids]
        failed = {
            r: self.permanent.get(r) or self.transient.get(r) or "not attempted"
            for r in self.recipients
            if r not in self.ids
        }
        ids = {r: self.ids[r] for r in reached if self.ids[r] is not None}
        first = next(iter(ids.values()), None)
        return Receipt(
            remote_id=first,
            data={
                "delivered_to": reached,
                "ids": ids,
                "failed": failed,
                "permanent": [r for r in self.recipients if r in self.permanent],
                **self._in_flight_data(),
                # Copied: an adapter keeps filling its own while a checkpoint is saved.
                **{k: dict(v) if isinstance(v, dict) else v for k, v in self.extra.items()},
            },
            recipients=Recipients(
                total=len(self.recipients),
                delivered=len(reached),
                failed=len(self.recipients) - len(reached),
            ),
        )

    def _in_flight_data(self) -> dict[str, Any]:
        if not self.in_flight:
            return {}
        return {"in_flight": list(self.in_flight), "in_flight_since": self.since}

    def outcome(self) -> Receipt:
        """The Receipt when every recipient was reached; else raise (see the class)."""
        receipt = self.receipt()
        missing = [r for r in self.recipients if r not in self.ids]
        if not missing:
            return receipt
        text = (
            f"{self.service}: {len(missing)} of {len(self.recipients)} recipients "
            f"not reached: {_summary(receipt.data['failed'])}"
        )
        if self.transient:
            raise TransientError(text, self.retry_after, partial=receipt)
        raise PermanentError(text, partial=receipt)


Checkpoint = Callable[[Receipt], Awaitable[None]]


class Checkpoints:
    """When a long send saves its progress through `OutgoingMessage.checkpoint`: after
    `every` recipients settled or `interval` seconds, whichever comes first, and before
    recipients are reserved (`reserve`). Without a hook (a direct call, a test) nothing is
    saved. One save at a time; an error of the hook (the claim is lost) propagates."""

    every = 200  # recipients
    interval = 1.0  # seconds

    def __init__(
        self,
        progress: RecipientProgress,
        hook: Checkpoint | None,
        *,
        every: int | None = None,
        interval: float | None = None,
    ) -> None:
        self.progress = progress
        self.hook = hook
        if every is not None:
            self.every = every
        if interval is not None:
            self.interval = interval
        self.lock = asyncio.Lock()
        self.settled = 0
        self.last = asyncio.get_running_loop().time()
        self.saves = 0

    async def save(self) -> None:
        if self.hook is None:
            return
        async with self.lock:
            self.settled = 0
            self.last = asyncio.get_running_loop().time()
            self.saves += 1
            await self.hook(self.progress.receipt())

    async def reserve(self, recipients: list[str]) -> None:
        """Record these as in flight (durably, with a hook) before their requests start."""
        self.progress.reserve(recipients)
        await self.save()

    async def ticking(self) -> None:
        """Save what settled every `interval`, also while no answer comes (run as a task
        beside the send, cancelled when it ends)."""
        if self.hook is None:
            return
        while True:
            await asyncio.sleep(self.interval)  # a timer, not synchronisation
            if self.settled and not self.lock.locked():
                await self.save()

    async def settle(self, count: int = 1) -> None:
        """`count` recipients have an outcome; save when a batch or the interval is full."""
        self.settled += count
        if self.hook is None or self.lock.locked():
            return  # a save is under way: it or the next one carries these
        elapsed = asyncio.get_running_loop().time() - self.last
        if self.settled >= self.every or elapsed >= self.interval:
            await self.save()


class RecipientRun:
    """One attempt of a per-recipient send: up to `workers` tasks take the pending
    recipients in order (those in flight when an earlier attempt died first: they are
    reserved already). Before a batch is started it is recorded as in flight (a
    checkpoint). Once an answer concerns every recipient (`stop`), no new request starts
    and those not started get that error (`give_up`). A failing checkpoint (the claim is
    lost) cancels the requests under way and propagates.

    An adapter subclasses it with `work` (take recipients with `next`, send, record; a
    worker that finds `stop` set after its wait appends its recipient to `unstarted`)."""

    def __init__(
        self,
        progress: RecipientProgress,
        checkpoints: Checkpoints,
        workers: int,
        pending: list[str] | None = None,  # default: every recipient not yet reached
    ) -> None:
        self.progress = progress
        self.checkpoints = checkpoints
        pending = progress.pending() if pending is None else pending
        self.unsure = {r for r in pending if r in progress.in_flight}
        self.reserved: deque[str] = deque(r for r in pending if r in self.unsure)
        self.rest: Iterator[str] = (r for r in pending if r not in self.unsure)
        self.count = len(pending)
        self.workers = min(workers, self.count)
        self.unstarted: list[str] = []
        self.stop: ChannelError | None = None
        self.feed = asyncio.Lock()

    async def work(self) -> None:
        raise NotImplementedError

    def give_up(self, recipient: str, error: ChannelError) -> None:
        """A recipient not tried after `stop`."""
        self.progress.failed(recipient, error)

    async def go(self) -> None:
        if self.count == 0:
            return
        tasks = [asyncio.create_task(self.work()) for _ in range(self.workers)]
        ticker = asyncio.create_task(self.checkpoints.ticking())
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        if self.stop is not None:
            for recipient in [*self.unstarted, *self.reserved, *self.rest]:
                self.give_up(recipient, self.stop)

    async def next(self) -> str | None:
        """The next recipient to send to; None when there is none or `stop` is set."""
        async with self.feed:
            if self.stop is not None:
                return None
            if not self.reserved:
                batch = [r for _, r in zip(range(self.checkpoints.every), self.rest, strict=False)]
                if not batch:
                    return None
                await self.checkpoints.reserve(batch)
                self.reserved.extend(batch)
            return self.reserved.popleft()


def _summary(failed: Mapping[str, str]) -> str:
    """`error (a, b); other error (c)`: each error once, with (some of) its recipients."""
    by_error: dict[str, list[str]] = {}
    for recipient, error in failed.items():
        by_error.setdefault(error, []).append(recipient)
    parts = []
    for error, recipients in list(by_error.items())[:_SHOWN_FAILURES]:
        named = ", ".join(recipients[:_SHOWN_FAILURES])
        if len(recipients) > _SHOWN_FAILURES:
            named += f" and {len(recipients) - _SHOWN_FAILURES} more"
        parts.append(f"{error} ({named})")
    if len(by_error) > _SHOWN_FAILURES:
        parts.append(f"{len(by_error) - _SHOWN_FAILURES} more errors")
    return "; ".join(parts)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
