"""The floor: the least any daemon could do between a trigger and the providers.

A bare aiomqtt subscriber on `<prefix>/trigger` (QoS 1, TCP_NODELAY on its socket) that,
for every message, POSTs the message's alert id to every target URL at once with one
aiohttp session (TCP_NODELAY is aiohttp's default). No store, no checks, no state.

    python -m bench.floor_subscriber mqtt://127.0.0.1:1883 http://127.0.0.1:8000/hook/0 ...

Prints `ready` once subscribed; runs until terminated.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys

import aiohttp
import aiomqtt

from bench.harness import TOPIC, nodelay


async def main(url: str, targets: list[str]) -> None:
    host, port = url.removeprefix("mqtt://").split(":")
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        aiomqtt.Client(host, int(port), identifier="bench-floor") as client,
    ):
        nodelay(client)
        await client.subscribe(TOPIC, qos=1)
        print("ready", flush=True)
        tasks: set[asyncio.Task[None]] = set()

        async def post(target: str, body: bytes) -> None:
            async with http.post(
                target, data=body, headers={"Content-Type": "application/json"}
            ) as r:
                await r.read()

        async def fan_out(payload: bytes) -> None:
            alert_id = json.loads(payload).get("id", "")
            body = json.dumps({"alert_id": alert_id}).encode()
            await asyncio.gather(*(post(t, body) for t in targets))

        async def receive() -> None:
            async for message in client.messages:
                if isinstance(message.payload, bytes):
                    task = asyncio.create_task(fan_out(message.payload))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)

        receiver = asyncio.create_task(receive())
        await stop.wait()
        receiver.cancel()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2:]))
