"""An HTTP call that meets a store that gave up gets a JSON 503 saying to retry, never a
plain 500 with a traceback."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from broadcaster.metrics import Metrics
from broadcaster.store.outage import StoreUnavailable
from broadcaster.web.api import WebState, make_app


class GoneReceiver:
    async def receive_trigger(self, raw: bytes, source: str, *, owner: str) -> Any:
        raise StoreUnavailable("the redis store has been unreachable for 60s")


async def healthy() -> dict[str, bool]:
    return {"store": False}


async def test_a_store_that_gave_up_is_a_json_503() -> None:
    state = WebState(
        receiver=GoneReceiver(),  # type: ignore[arg-type]
        store=None,  # type: ignore[arg-type]
        metrics=Metrics(),
        api_token="api-token-for-tests",
        healthy=healthy,
        retractor=None,  # type: ignore[arg-type]
    )
    server = TestServer(make_app(state))
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(
                server.make_url("/api/triggers"),
                data=b"{}",
                headers={"Authorization": "Bearer api-token-for-tests"},
            ) as r:
                assert r.status == 503
                assert r.headers["Retry-After"] == "5"
                body = await r.json()
            async with http.get(server.make_url("/healthz")) as h:
                assert h.status == 503 and h.headers["Server"] == "broadcaster"
    finally:
        await server.close()
    assert body["error"] == "unavailable" and "unreachable" in body["detail"]
