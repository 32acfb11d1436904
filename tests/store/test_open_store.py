"""store.url (contract section 2) -> the store it names."""

from __future__ import annotations

from pathlib import Path

import pytest

from broadcaster.store import open_store
from broadcaster.store.redis import RedisStore
from broadcaster.store.sqlite import SqliteStore


def test_three_slashes_is_relative_to_the_config_folder(tmp_path: Path) -> None:
    store = open_store("sqlite:///var/broadcaster.db", tmp_path)
    assert isinstance(store, SqliteStore)
    assert store.path == tmp_path / "var" / "broadcaster.db"


def test_four_slashes_is_absolute(tmp_path: Path) -> None:
    store = open_store("sqlite:////srv/broadcaster/broadcaster.db", tmp_path)
    assert isinstance(store, SqliteStore)
    assert store.path == Path("/srv/broadcaster/broadcaster.db")


def test_opening_creates_nothing_yet(tmp_path: Path) -> None:
    open_store("sqlite:///var/broadcaster.db", tmp_path)
    assert not (tmp_path / "var").exists()


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://:secret@redis.example:6380/2"]
)
def test_redis_urls(url: str, tmp_path: Path) -> None:
    store = open_store(url, tmp_path)
    assert isinstance(store, RedisStore)
    assert (store.url, store.prefix) == (url, "broadcaster")


@pytest.mark.parametrize(
    "url",
    [
        "postgres://db.example/broadcaster",
        "sqlite://var/broadcaster.db",
        "sqlite:///",
        "sqlite:///broadcaster.db?mode=ro",
        "var/broadcaster.db",
        "",
    ],
)
def test_other_urls_are_refused_by_name(url: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected") as refused:
        open_store(url, tmp_path)
    assert repr(url) in str(refused.value)


def test_a_refused_url_does_not_show_its_password(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected") as refused:
        open_store("postgres://broadcaster:hunter2@db.example:5432/alerts", tmp_path)
    assert "hunter2" not in str(refused.value)
    assert "postgres://broadcaster:***@db.example:5432/alerts" in str(refused.value)
