"""GET /console/events: the board's live updates as Server-Sent Events.

`BoardStream` is an `Events` sink. A change (an alert's, or a refusal) makes it read the
board once and send the board's section, rendered once per language in use, to every
connection as an htmx SSE event named `board`; changes that come while it reads are
read once more after, so a fan-out is a few reads, and the last one is the latest state.
Each connection first gets the board as it is (a reconnect misses nothing), then the
updates, and a keep-alive comment every `KEEPALIVE` seconds so proxies keep it open.

Bounded: each connection has a queue of `QUEUE_SIZE` events. A client that does not
keep up is dropped (its browser reconnects and gets the board afresh), so a stalled
phone never holds memory or the daemon. The daemon's shutdown ends every stream, and
a stream whose session ended (signed out elsewhere, account disabled or reset, expired)
ends at its next keep-alive: the sign-in is checked when a stream starts, and again then.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web

from broadcaster.models import Alert, Delivery
from broadcaster.store.outage import StoreUnavailable
from broadcaster.web.console.board import HEADERS, BoardReader, board_language, render_section

log = structlog.get_logger(__name__)

KEEPALIVE = 15.0  # seconds between keep-alive comments on a quiet stream
QUEUE_SIZE = 8  # events a connection may be behind before it is dropped
EVENT = "board"  # the htmx `sse-swap` name of the board's section
KEEPALIVE_FRAME = ": keep-alive\n\n"


def frame(event: str, html: str) -> str:
    """One SSE event: every line of `html` a `data:` line (the browser joins them)."""
    lines = html.splitlines() or [""]
    return f"event: {event}\n" + "".join(f"data: {line}\n" for line in lines) + "\n"


@dataclass(eq=False)  # each connection is its own, however alike
class Client:
    lang: str
    request: web.Request
    queue: asyncio.Queue[str | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))

    def offer(self, item: str) -> bool:
        """Queue an event; False (and the connection closed) when the client is too far
        behind."""
        try:
            self.queue.put_nowait(item)
            return True
        except asyncio.QueueFull:
            self.end()
            if self.request.transport is not None:
                self.request.transport.close()  # unblocks a write stuck on a full socket
            return False

    def end(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)


Allowed = Callable[[web.Request], Awaitable[bool]]  # the request's session still valid


class BoardStream:
    def __init__(self, reader: BoardReader, still_allowed: Allowed | None = None) -> None:
        self.reader = reader
        self.still_allowed = still_allowed
        self.clients: set[Client] = set()
        self.refreshing: asyncio.Task[None] | None = None
        self.again = False
        self.closed = False
        self.dropped = 0  # clients dropped for being too slow (tests and logs)

    # -- Events sink --------------------------------------------------------------
    async def alert_changed(self, alert: Alert, deliveries: list[Delivery]) -> None:
        self.changed()

    async def refused(self, refusal: dict[str, Any]) -> None:
        self.changed()

    def changed(self) -> None:
        if self.closed or not self.clients:
            return
        if self.refreshing is not None:
            self.again = True
            return
        self.refreshing = asyncio.create_task(self._refresh(), name="board:refresh")

    async def _refresh(self) -> None:
        try:
            while True:
                self.again = False
                board = await self.reader.read()
                rendered: dict[str, str] = {}
                for client in list(self.clients):
                    if client.lang not in rendered:
                        rendered[client.lang] = frame(EVENT, render_section(board, client.lang))
                    if not client.offer(rendered[client.lang]):
                        self.dropped += 1
                        log.warning("board_client_dropped", reason="too slow")
                if not self.again or self.closed:
                    return
        except Exception:  # the next change tries again; the stream stays up
            log.exception("board_not_refreshed")
        finally:
            # No await between the last check of `again` and this: nothing is missed.
            self.refreshing = None

    # -- the route ----------------------------------------------------------------
    async def events(self, request: web.Request) -> web.StreamResponse:
        lang = board_language(request)
        response = web.StreamResponse(
            headers={
                **HEADERS,
                "Content-Type": "text/event-stream; charset=utf-8",
                "X-Accel-Buffering": "no",  # nginx in front: pass each event on at once
            }
        )
        client = Client(lang, request)
        self.clients.add(client)
        try:
            await response.prepare(request)
            board = await self.reader.read()
            await response.write(frame(EVENT, render_section(board, lang)).encode())
            while not self.closed:
                try:
                    async with asyncio.timeout(KEEPALIVE):
                        item = await client.queue.get()
                except TimeoutError:
                    if self.still_allowed is not None and not await self.still_allowed(request):
                        log.info("board_stream_ended", reason="session ended")
                        break
                    item = KEEPALIVE_FRAME
                if item is None:
                    break
                await response.write(item.encode())
        except (ConnectionResetError, ConnectionError):
            pass  # the browser went away (or was dropped): it reconnects if it wants
        except StoreUnavailable as exc:  # the browser reconnects; by then it may be back
            log.error("board_stream_ended", reason=str(exc))
        finally:
            self.clients.discard(client)
        return response

    async def close(self) -> None:
        """End every stream (the daemon is stopping: its HTTP shutdown waits for them)."""
        self.closed = True
        for client in list(self.clients):
            client.end()
        if self.refreshing is not None:
            self.refreshing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.refreshing


__all__ = ["KEEPALIVE", "QUEUE_SIZE", "BoardStream", "frame"]
