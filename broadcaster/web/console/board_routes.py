"""Serving the board: GET /console and its live updates, GET /console/events, both for
signed-in accounts of the role `viewer` or higher (web/console/auth.py; the app needs
`add_console_auth`)."""

from __future__ import annotations

from aiohttp import web

from broadcaster.deployment import Deployment
from broadcaster.events import Events
from broadcaster.store.base import Store
from broadcaster.web.console.auth import requires
from broadcaster.web.console.board import (
    BOARD_PATH,
    EVENTS_PATH,
    BoardPage,
    BoardReader,
    Expiry,
)
from broadcaster.web.console.board_stream import BoardStream
from broadcaster.web.console.context import console_auth

BOARD_STREAM = web.AppKey("board_stream", BoardStream)


async def still_viewer(request: web.Request) -> bool:
    """The stream's session is still valid and may see the board (checked again while
    the stream lasts: a disabled account must stop getting updates)."""
    found = await console_auth(request).signed_in(request)
    return found is not None and found[0].may("viewer")


def add_board_routes(
    app: web.Application,
    store: Store,
    events: Events,
    expiry: Expiry,
    deployment: Deployment | None = None,
) -> BoardStream:
    """The board reads `store`; `events` tells it of changes; `expiry`: when an alert
    awaiting confirmation expires (the confirm desk's); `deployment`: its playbooks name
    scenarios, stages and params."""
    reader = BoardReader(store, expiry, deployment)
    stream = BoardStream(reader, still_viewer)
    events.subscribe(stream)
    page = BoardPage(reader)
    app[BOARD_STREAM] = stream

    async def end_streams(_: web.Application) -> None:
        events.unsubscribe(stream)
        await stream.close()

    app.on_shutdown.append(end_streams)
    # The one place the board is guarded: a viewer (or any higher role) may see it.
    app.router.add_get(BOARD_PATH, requires("viewer")(page.get))
    app.router.add_get(EVENTS_PATH, requires("viewer")(stream.events))
    return stream


__all__ = ["BOARD_STREAM", "add_board_routes"]
