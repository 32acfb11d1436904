"""Stands in for the daemon's /media route in adapter tests: serves one card (or whatever
a test sets) at every path, and records the paths fetched."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

from broadcaster.sharepic import Card, render_card

CARD = Card(
    title="Großbrand in Flingern-Nord",
    text="Fenster und Türen schließen.",
    when="23.11.2026, 10:15 Uhr",
    sender="Feuerwehr Düsseldorf",
    language="de",
)


@dataclass
class CardServer:
    base_url: str = ""
    body: bytes = b""
    content_type: str = "image/jpeg"
    status: int = 200
    paths: list[str] = field(default_factory=list)


@asynccontextmanager
async def serving_cards() -> AsyncIterator[CardServer]:
    server = CardServer(body=render_card(CARD))

    async def serve(request: web.Request) -> web.Response:
        server.paths.append(request.path)
        return web.Response(
            status=server.status, body=server.body, content_type=server.content_type
        )

    app = web.Application()
    app.router.add_get("/{tail:.*}", serve)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        server.base_url = f"http://{host}:{port}"
        yield server
    finally:
        await runner.cleanup()
