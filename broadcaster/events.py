"""Telling the outside what happened, after the store knows it.

Sinks (the MQTT publisher, later the duty officer page) subscribe to one `Events`;
a failing sink is logged and never stops the others or the caller.

A change is announced with `changed(alert_id, store)`, which returns at once: the sinks
hear of it from a task of the alert's own that, `TELL_AFTER` later, reads the alert's
latest state from the store. Changes that come meanwhile, or while that task is telling,
are told once more when it is done, with the state as it is then. So a burst of changes
(ten deliveries answering together) is one or two publishes rather than one each, the
last one is always the latest state, and no delivery waits for a publish: the fan-out's
requests are on their way before the store is read for it.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import structlog

from broadcaster.models import Alert, Delivery
from broadcaster.store.base import Store
from broadcaster.store.outage import StoreUnavailable

log = structlog.get_logger(__name__)

TELL_AFTER = 0.01  # seconds: long enough for a fan-out to start, short for a person


class EventSink(Protocol):
    async def alert_changed(self, alert: Alert, deliveries: list[Delivery]) -> None: ...

    async def refused(self, refusal: dict[str, Any]) -> None: ...


class Events:
    def __init__(self) -> None:
        self.sinks: list[EventSink] = []
        self.telling: dict[str, asyncio.Task[None]] = {}  # one task per alert at most
        self.again: set[str] = set()  # alerts changed again while being told

    def changed(self, alert_id: str, store: Store) -> None:
        """The alert changed in the store: the sinks hear of it soon (see the module)."""
        if alert_id in self.telling:
            self.again.add(alert_id)
            return
        task = asyncio.create_task(self._tell(alert_id, store), name=f"tell:{alert_id}")
        self.telling[alert_id] = task

    async def _tell(self, alert_id: str, store: Store) -> None:
        try:
            while True:
                await asyncio.sleep(TELL_AFTER)
                self.again.discard(alert_id)
                alert = await store.get_alert(alert_id)
                if alert is None:
                    return
                await self.alert_changed(alert, await store.get_deliveries(alert_id))
                if alert_id not in self.again:
                    return
        except StoreUnavailable as exc:  # the daemon is exiting for it
            log.error("state_not_told", alert_id=alert_id, error=str(exc))
        except Exception:
            log.exception("state_not_told", alert_id=alert_id)
        finally:
            # No await between the last check of `again` and this: nothing is missed.
            del self.telling[alert_id]

    async def flush(self, within: float | None = None) -> bool:
        """Wait (at most `within` seconds) until every change announced so far has been
        told, before a shutdown closes the MQTT link; False when some were not."""
        loop = asyncio.get_running_loop()
        deadline = None if within is None else loop.time() + within
        while self.telling:
            left = None if deadline is None else max(deadline - loop.time(), 0.0)
            _, pending = await asyncio.wait(set(self.telling.values()), timeout=left)
            if pending and left == 0.0:
                log.warning("states_not_told", alerts=len(pending))
                return False
        return True

    def subscribe(self, sink: EventSink) -> None:
        self.sinks.append(sink)

    def unsubscribe(self, sink: EventSink) -> None:
        if sink in self.sinks:
            self.sinks.remove(sink)

    async def alert_changed(self, alert: Alert, deliveries: list[Delivery]) -> None:
        for sink in list(self.sinks):
            try:
                await sink.alert_changed(alert, deliveries)
            except Exception:
                log.exception("event_sink_failed", sink=type(sink).__name__, alert_id=alert.id)

    async def refused(self, refusal: dict[str, Any]) -> None:
        for sink in list(self.sinks):
            try:
                await sink.refused(refusal)
            except Exception:
                log.exception("event_sink_failed", sink=type(sink).__name__)
