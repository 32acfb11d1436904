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


def gone_state() -> WebState:
    return WebState(
        receiver=GoneReceiver(),  # type: ignore[arg-type]
        store=None,  # type: ignore[arg-type]
        metrics=Metrics(),
        api_token="api-token-for-tests",
        healthy=healthy,
        retractor=None,  # type: ignore[arg-type]
    )


async def test_a_store_that_gave_up_is_a_json_503() -> None:
    server = TestServer(make_app(gone_state()))
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
                assert h.status == 503
                assert h.headers["Server"] == "broadcaster"
    finally:
        await server.close()
    assert body["error"] == "unavailable"
    assert "unreachable" in body["detail"]


async def test_the_root_points_to_the_api_and_unknown_paths_say_where_to_look() -> None:
    server = TestServer(make_app(gone_state()))
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(server.make_url("/")) as root:
                assert root.status == 200
                index = await root.json()
            async with http.get(server.make_url("/no/such/page")) as missing:
                assert missing.status == 404
                assert missing.content_type == "application/json"
                refused = await missing.json()
    finally:
        await server.close()
    assert index["api"] == "/api/openapi.json"
    assert refused["error"] == "not_found"
    assert "/no/such/page" in refused["detail"]
    assert "/api/openapi.json" in refused["detail"]
