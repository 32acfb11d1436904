"""Fixtures for the adapter tests: an HTTP session, a fake receiver and a message."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from broadcaster.channels.base import OutgoingMessage
from broadcaster.store.sqlite import SqliteStore
from tests.fakes.webhook import FakeWebhook

SECRET = "webhook-secret-ÄÖÜ"
MESSAGE = OutgoingMessage(
    kind="alert",
    alert_id="FW-DUS-2026-000123",
    incident="E-2026-4711",
    scenario="major_fire",
    stage="warning",
    mode="drill",
    language="de",
    title="ÜBUNG: Großbrand in Flingern-Nord",
    text="ÜBUNG: Großbrand 🔥 Ackerstraße. Fenster und Türen schließen.",
    idempotency_key="FW-DUS-2026-000123:hook",
    expires_at=datetime(2026, 11, 23, 11, 15, tzinfo=UTC),
)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
async def fake() -> AsyncIterator[FakeWebhook]:
    async with FakeWebhook.start(secret=SECRET) as server:
        yield server


@pytest.fixture
def message() -> Callable[..., OutgoingMessage]:
    """The sample message, with any field replaced."""

    def make(**changes: Any) -> OutgoingMessage:
        return replace(MESSAGE, **changes)

    return make


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """A store of the test's own (Web Push keeps its subscriptions there)."""
    opened = SqliteStore(tmp_path / "channel.db")
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()
