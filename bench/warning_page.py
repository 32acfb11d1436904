"""How many citizens can open the warning page at once?

The page's routes in this process on a real SQLite store holding a few hundred alerts
(the feed's scan size), ten of them current. Clients open `GET /warnings` (half in
German, half in English) and poll `GET /warnings.json` as warnings.js does (with the
ETag they were given); an alert changes every second meanwhile. Prints requests per
second and how often the store was read.

    uv run python -m bench.warning_page [--requests 5000] [--concurrency 200]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from broadcaster.logging import configure_logging
from broadcaster.models import Alert, Texts
from broadcaster.reload import load_usable
from broadcaster.store.sqlite import SqliteStore
from broadcaster.web.api import WebState, make_app
from broadcaster.web.warnings import add_warning_routes
from tests.integration.harness import write_deployment
from tests.servers import free_port

ALERTS = 300
CURRENT = 10


def alert(i: int, now: datetime) -> Alert:
    current = i < CURRENT
    at = now - (timedelta(minutes=i) if current else timedelta(days=2, minutes=i))
    text = Texts(title=f"Warnung {i}", short="kurz", long="lang " * 80, instruction="Tun.")
    return Alert(
        id=f"FW-{i}",
        incident=f"E-{i}",
        scenario="major_fire",
        stage="warning",
        mode="live",
        state="sent",
        issued_at=at,
        created_at=at,
        updated_at=at,
        released_at=at,
        params={"location": "Ackerstraße", "district": "Flingern-Nord"},
        texts={"de": text, "en": text},
    )


async def bench(requests: int, concurrency: int, folder: Path) -> dict[str, Any]:
    config = write_deployment(folder, mqtt_url="mqtt://127.0.0.1:1", channels={})
    deployment = load_usable(config).deployment
    store = SqliteStore(folder / "bench.db")
    await store.open()
    now = datetime.now(UTC)
    for i in range(ALERTS):
        await store.create_alert(alert(i, now), [])
    reads = 0
    real = store.list_alerts

    async def counted(limit: int) -> list[Alert]:
        nonlocal reads
        reads += 1
        return await real(limit)

    store.list_alerts = counted  # type: ignore[method-assign, assignment]
    state = WebState(None, store, None, None, None, None)  # type: ignore[arg-type]
    app = make_app(state)
    page = add_warning_routes(app, deployment)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    statuses: dict[int, int] = {}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)

    async def client(http: aiohttp.ClientSession) -> None:
        etag = ""
        while not queue.empty():
            i = queue.get_nowait()
            if i % 2:
                headers = {"If-None-Match": etag} if etag else {}
                async with http.get(base + "/warnings.json", headers=headers) as r:
                    await r.read()
                    etag = r.headers.get("ETag", etag)
            else:
                lang = "de" if i % 4 else "en"
                async with http.get(f"{base}/warnings?lang={lang}") as r:
                    await r.read()
            statuses[r.status] = statuses.get(r.status, 0) + 1

    async def churn() -> None:
        while True:
            await asyncio.sleep(1.0)
            page.invalidate()  # as Events tells of an alert change

    changes = asyncio.create_task(churn())
    connector = aiohttp.TCPConnector(limit=concurrency)
    try:
        async with aiohttp.ClientSession(connector=connector) as http:
            started = time.perf_counter()
            await asyncio.gather(*(client(http) for _ in range(concurrency)))
            took = time.perf_counter() - started
    finally:
        changes.cancel()
        await runner.cleanup()
        await store.close()
    return {
        "requests": requests,
        "concurrency": concurrency,
        "seconds": took,
        "per_second": requests / took,
        "store_reads": reads,
        "statuses": statuses,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=200)
    args = parser.parse_args()
    configure_logging(json=True, level="WARNING")
    with tempfile.TemporaryDirectory() as folder:
        result = asyncio.run(bench(args.requests, args.concurrency, Path(folder)))
    statuses = ", ".join(f"{code}: {n}" for code, n in sorted(result["statuses"].items()))
    print(
        f"| {result['requests']} requests, {result['concurrency']} at once "
        f"| {result['per_second']:.0f} requests/s | {result['seconds']:.1f} s "
        f"| {result['store_reads']} store reads | {statuses} |"
    )


if __name__ == "__main__":
    main()
