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
