"""A malformed Authorization header is a JSON 401, never a 500.

HTTP clients refuse to send such headers, so the requests are written as raw bytes over
a TCP connection to the real daemon's HTTP server.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.integration.harness import API_TOKEN, running_daemon, write_deployment

TOKEN = API_TOKEN.encode("ascii")
MALFORMED = [
    b"Authorization: Bearer \xff\xfe\r\n",  # not UTF-8
    b"Authorization: Bearer " + TOKEN + b"\xff\r\n",
    b"Authorization: Bearer \xed\xa0\x80\r\n",  # an encoded surrogate
    b"Authorization: Bearer t\xc3\xa4st\r\n",  # UTF-8, but not ASCII
    b"Authorization: \xff\xfe " + TOKEN + b"\r\n",  # the scheme undecodable
    b"Authorization: Bearer  " + TOKEN + b"\r\n",  # two spaces
    b"Authorization: Bearer " + TOKEN + b" extra\r\n",
    b"Authorization: Bearer\r\n",
    b"Authorization: \r\n",
    b"Authorization: " + TOKEN + b"\r\n",  # no scheme
    b"Authorization: Basic " + TOKEN + b"\r\n",
    b"",  # no header at all
]


async def raw_get(listen: str, path: str, header: bytes) -> tuple[int, Any]:
    """One request written byte for byte; the status and the JSON body of the answer."""
    host, _, port = listen.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {listen}\r\n".encode()
            + header
            + b"Connection: close\r\n\r\n"
        )
        await writer.drain()
        answer = await reader.read()  # to the end: the server closes
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    try:
        return status, json.loads(body)
    except ValueError:  # e.g. aiohttp's plain-text 500 page
        return status, body.decode("utf-8", "replace")


async def test_every_malformed_authorization_header_is_a_json_401(tmp_path, mosquitto):
    config = write_deployment(tmp_path, mqtt_url=mosquitto.url, channels={})
    async with running_daemon(config) as daemon:
        listen = daemon.settings.http.listen
        answers = [await raw_get(listen, "/api/alerts", header) for header in MALFORMED]
        right = await raw_get(listen, "/api/alerts", b"Authorization: Bearer " + TOKEN + b"\r\n")
        lower = await raw_get(listen, "/api/alerts", b"Authorization: bearer " + TOKEN + b"\r\n")
    unauthorized = {"error": "unauthorized", "detail": "missing or wrong bearer token"}
    assert answers == [(401, unauthorized)] * len(MALFORMED)
    assert right == (200, [])
    assert lower == (200, [])
