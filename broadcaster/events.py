"""Telling the outside what happened, after the store knows it.

Sinks (the MQTT publisher, later the duty officer page) subscribe to one `Events`;
a failing sink is logged and never stops the others or the caller.
"""

from __future__ import annotations

from typing import Any, Protocol

import structlog

from broadcaster.models import Alert, Delivery

log = structlog.get_logger(__name__)


class EventSink(Protocol):
    async def alert_changed(self, alert: Alert, deliveries: list[Delivery]) -> None: ...

    async def refused(self, refusal: dict[str, Any]) -> None: ...


class Events:
    def __init__(self) -> None:
        self.sinks: list[EventSink] = []

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
