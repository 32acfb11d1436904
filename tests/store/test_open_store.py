"""store.url (contract section 2) -> the store it names."""

from __future__ import annotations

from pathlib import Path

import pytest

from broadcaster.store import open_store
from broadcaster.store.redis import RedisStore
from broadcaster.store.sqlite import SqliteStore
from broadcaster.store.urls import SentinelUrl, parse_sentinel_url


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


def test_a_sentinel_url_names_the_sentinels_the_service_and_the_database(tmp_path: Path) -> None:
    url = "redis+sentinel://:s%40cret@s1:26379,s2:26380,[::1]/mymaster/3?sentinel_password=pw"
    store = open_store(url, tmp_path)
    assert isinstance(store, RedisStore)
    assert parse_sentinel_url(url) == SentinelUrl(
        sentinels=(("s1", 26379), ("s2", 26380), ("::1", 26379)),
        service="mymaster",
        db=3,
        username=None,
        password="s@cret",
        sentinel_password="pw",
    )


def test_a_sentinel_url_without_a_database_is_database_0() -> None:
    parts = parse_sentinel_url("redis+sentinel://broadcaster:pw@s1/mymaster")
    assert (parts.db, parts.username, parts.password) == (0, "broadcaster", "pw")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis+sentinel://s1:26379,s2:26379", "service name"),
        ("redis+sentinel://s1:26379/", "service name"),
        ("redis+sentinel://s1:26379/mymaster/zero", "not a database number"),
        ("redis+sentinel://s1:26379/mymaster/0/1", "not a database number"),
        ("redis+sentinel://s1:26379,,s2/mymaster/0", "'' is not a sentinel"),
        ("redis+sentinel://s1:port/mymaster/0", "'s1:port' is not a sentinel"),
        ("redis+sentinel://s1:99999/mymaster/0", "out of range"),
        ("redis+sentinel://s1/mymaster/0?db=2", "unknown option 'db'"),
    ],
)
def test_a_malformed_sentinel_url_is_refused_with_the_expected_form(
    url: str, problem: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="expected redis\\+sentinel://") as refused:
        open_store(url, tmp_path)
    assert problem in str(refused.value)


def test_a_refused_sentinel_url_shows_neither_password(tmp_path: Path) -> None:
    url = "redis+sentinel://:hunter2@s1:26379,s2/mymaster/x?sentinel_password=swordfish"
    with pytest.raises(ValueError, match="expected") as refused:
        open_store(url, tmp_path)
    message = str(refused.value)
    assert "hunter2" not in message
    assert "swordfish" not in message
    assert "redis+sentinel://:***@s1:26379,s2/mymaster/x?sentinel_password=***" in message
