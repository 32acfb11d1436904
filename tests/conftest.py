"""Fixtures shared by every kind of test."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.fakes.webhook import FakeWebhook
from tests.integration.harness import Watcher, watching
from tests.servers import REPO, MosquittoServer, RedisServer, start_mosquitto, start_redis


@pytest.fixture
def deployment_copy(tmp_path: Path) -> Path:
    """A private copy of the repository's sample deployment, safe to break; returns its config."""
    for folder in ("playbooks", "templates", "channels"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    shutil.copy(REPO / "broadcaster.yaml", tmp_path / "broadcaster.yaml")
    return tmp_path / "broadcaster.yaml"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the session; tests use their own key prefix or flush it."""
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoServer]:
    """A real mosquitto of the test's own, so a test may stop and start it."""
    server = start_mosquitto(tmp_path)
    yield server
    server.stop()


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
