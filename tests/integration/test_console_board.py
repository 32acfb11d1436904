"""The console board's live stream on a real daemon: /console/events sends the board
first, then an event for each change of an alert while a trigger fans out to fake
providers (one held until we release it), and ends when the daemon stops."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import yaml

from tests.integration.harness import (
    console_sign_in,
    publish,
    running_daemon,
    signed_trigger,
    webhook,
    write_deployment,
)

SSE = {"Accept": "text/event-stream"}
STATE = re.compile(r'data-testid="delivery-FW-BOARD-1-(\w+)" data-state="(\w+)"')


async def next_event(response: aiohttp.ClientResponse) -> tuple[str, str]:
    """(event name, data) of the next SSE event; keep-alive comments are skipped."""
    name, data = "", list[str]()
    while True:
        line = (await response.content.readline()).decode()
        if line == "":
            return "", ""  # the stream ended
        if line == "\n":
            if name or data:
                return name, "\n".join(data)
            continue
        if line.startswith("event: "):
            name = line[7:].rstrip("\n")
        elif line.startswith("data: "):
            data.append(line[6:].rstrip("\n"))


async def test_the_board_stream_tells_each_delivery_change_and_ends_with_the_daemon(
    tmp_path, mosquitto, hooks
):
    held, other, _ = hooks
    config = write_deployment(
        tmp_path,
        mqtt_url=mosquitto.url,
        channels={"alpha": webhook(held.url), "beta": webhook(other.url)},
    )
    root = yaml.safe_load(config.read_text(encoding="utf-8"))["http"]["public_url"]
    jar = aiohttp.CookieJar(unsafe=True)  # the daemon listens on 127.0.0.1
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with running_daemon(config) as daemon:
            stranger = await http.get(f"{root}/console/events", headers=SSE)
            assert stranger.status == 401
            await console_sign_in(http, root, daemon)
            response = await http.get(f"{root}/console/events?lang=en", headers=SSE)
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            name, first = await next_event(response)
            assert name == "board"
            assert "No open incidents." in first
            held.hold()
            await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-BOARD-1"))
            seen: list[dict[str, str]] = []
            async with asyncio.timeout(20):  # a guard only: each step waits for its event
                while not seen or seen[-1].get("beta") != "delivered":
                    name, data = await next_event(response)
                    assert name == "board"
                    seen.append(dict(STATE.findall(data)))
                assert seen[-1]["alpha"] in ("pending", "sending")
                held.release()
                while seen[-1].get("alpha") != "delivered":
                    name, data = await next_event(response)
                    seen.append(dict(STATE.findall(data)))
            assert len(seen) >= 2  # at least one event before and one after the release
            assert seen[-1] == {"alpha": "delivered", "beta": "delivered"}
            assert len(held.posts) == 1
        # The daemon stopped: its stream ended rather than holding the stop (after the
        # events still on their way, such as the alert becoming `sent`).
        async with asyncio.timeout(20):  # a guard only
            while (event := await next_event(response)) != ("", ""):
                assert event[0] == "board"
        response.close()
