"""Integration fixtures: fake providers and a watcher on the test's own mosquitto."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.webhook import FakeWebhook
from tests.integration.harness import Watcher, watching
from tests.servers import MosquittoServer


@pytest.fixture
async def hooks() -> AsyncIterator[list[FakeWebhook]]:
    """Three independent fake webhook providers."""
    async with (
        FakeWebhook.start() as a,
        FakeWebhook.start() as b,
        FakeWebhook.start() as c,
    ):
        yield [a, b, c]


@pytest.fixture
async def watcher(mosquitto: MosquittoServer) -> AsyncIterator[Watcher]:
    async with watching(mosquitto.url) as w:
        yield w
