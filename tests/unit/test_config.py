from datetime import timedelta
from pathlib import Path

import pytest

from broadcaster.config import read_settings
from broadcaster.durations import parse_duration
from broadcaster.yamlfiles import load_yaml


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("1h", timedelta(hours=1)),
        ("1h30m", timedelta(minutes=90)),
        ("250ms", timedelta(milliseconds=250)),
    ],
)
def test_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["5", "5x", "m5", "", "5 m", "1.5h", "5ns", 5])
def test_bad_durations_say_what_is_expected(text):
    with pytest.raises(ValueError, match=r"30s|unit"):
        parse_duration(text)


def test_variable_is_interpolated(tmp_path):
    path = write(tmp_path / "c.yaml", "http:\n  api_token: ${TOKEN}\n  x: a-${TOKEN}-b\n")
    data, problems = load_yaml(path, env={"TOKEN": "s3cret"})
    assert problems == []
    assert data == {"http": {"api_token": "s3cret", "x": "a-s3cret-b"}}


def test_unset_variable_names_file_and_key_and_is_never_empty(tmp_path):
    path = write(tmp_path / "c.yaml", "duty_officers:\n  - name: A\n    pin: ${PIN_A}\n")
    data, problems = load_yaml(path, env={})
    assert len(problems) == 1
    line = str(problems[0])
    assert "c.yaml" in line
    assert "duty_officers[0].pin" in line
    assert "PIN_A is not set" in line
    assert data["duty_officers"][0]["pin"] != ""


def test_settings_defaults(tmp_path):
    settings, problems = read_settings(write(tmp_path / "b.yaml", "{}\n"))
    assert problems == []
    assert settings is not None
    assert settings.mqtt.url is None
    assert settings.mqtt.topic_prefix == "broadcaster"
    assert settings.store.url == "sqlite:///var/broadcaster.db"
    assert settings.security.max_trigger_age == timedelta(minutes=15)
    assert settings.drill.prefix == {"de": "ÜBUNG", "en": "EXERCISE"}


def test_settings_errors_name_the_key(tmp_path):
    path = write(
        tmp_path / "b.yaml",
        "mqtt:\n  url: http://x\n  colour: red\nsecurity:\n  max_trigger_age: 15\n",
    )
    settings, problems = read_settings(path)
    assert settings is None
    lines = "\n".join(map(str, problems))
    assert "mqtt.url" in lines
    assert "mqtt://" in lines
    assert "mqtt.colour: unknown key" in lines
    assert "security.max_trigger_age" in lines
    assert "no unit" in lines


def test_missing_config_file(tmp_path):
    settings, problems = read_settings(tmp_path / "nope.yaml")
    assert settings is None
    assert "config file not found" in str(problems[0])


def test_store_sentinel_url_and_replica_wait(tmp_path):
    text = (
        "store:\n  url: redis+sentinel://:pw@s1:26379,s2:26379,s3:26379/mymaster/0\n"
        "  replicas_to_wait: 1\n  replica_timeout: 250ms\n"
    )
    settings, problems = read_settings(write(tmp_path / "b.yaml", text))
    assert problems == []
    assert settings is not None
    assert settings.store.replica_wait.replicas == 1
    assert settings.store.replica_wait.timeout == timedelta(milliseconds=250)


def test_store_wait_is_off_by_default(tmp_path):
    settings, _ = read_settings(write(tmp_path / "b.yaml", "store:\n  url: redis://r:6379/0\n"))
    assert settings is not None
    assert settings.store.replica_wait.replicas == 0


@pytest.mark.parametrize(
    ("store", "expected"),
    [
        ("url: redis+sentinel://:hunter2@s1,s2/mymaster/x", "not a database number"),
        ("url: redis+sentinel://s1,s2", "expected redis+sentinel://"),
        ("replicas_to_wait: 1", "needs a Redis store"),
        ("url: redis://r:6379/0\n  replica_timeout: 0ms", "at least 1ms"),
        ("url: redis://r:6379/0\n  replicas_to_wait: -1", "greater than or equal to 0"),
    ],
)
def test_store_problems_are_named(tmp_path, store, expected):
    settings, problems = read_settings(write(tmp_path / "b.yaml", f"store:\n  {store}\n"))
    assert settings is None
    lines = "\n".join(map(str, problems))
    assert "store" in lines
    assert expected in lines
    assert "hunter2" not in lines
