"""The JSON Schemas in docs/schemas/: up to date, and true to the files as written.

Every sample file of the repository validates against its schema and loads with the
models; values the models accept before `${NAME}` is filled in (durations, rates,
variables in place of numbers or choices) pass the schema, and values the models refuse
do not.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from broadcaster import schemas
from broadcaster.channels.settings import (
    CHANNEL_TYPES,
    RateLimit,
    SmsChannel,
    load_channels,
    parse_channel,
)
from broadcaster.cli import app
from broadcaster.config import Settings, read_settings
from broadcaster.durations import parse_duration
from broadcaster.playbooks import Playbook, load_playbooks
from tests.servers import REPO
from tests.unit.sample_env import sample_value

SCHEMAS = REPO / "docs" / "schemas"
SAMPLES = {
    "broadcaster": [REPO / "broadcaster.yaml"],
    "playbook": sorted((REPO / "playbooks").glob("*.yaml")),
    "channel": sorted((REPO / "channels").glob("*.yaml"))
    + sorted((REPO / "docs" / "channels").glob("*.yaml")),
}
MODELINE = re.compile(r"# yaml-language-server: \$schema=(\S+)\n")
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / schemas.FILES[name]).read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def errors(name: str, data: Any) -> list[str]:
    """Every error, with those inside a oneOf/anyOf (which channel type did not fit)."""
    found: list[str] = []
    pending = list(validator(name).iter_errors(data))
    while pending:
        error = pending.pop(0)
        found.append(f"{list(error.absolute_path)}: {error.message}")
        pending += error.context or []
    return found


def test_the_checked_in_schemas_are_what_the_models_give(tmp_path):
    result = CliRunner().invoke(app, ["schema", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(schemas.FILES.values())
    stale = [
        f"{name}: run `broadcaster schema --out docs/schemas`"
        for name in schemas.FILES.values()
        if (tmp_path / name).read_bytes() != (SCHEMAS / name).read_bytes()
    ]
    assert stale == []


def test_schema_without_out_prints_one_document_keyed_by_name():
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert list(printed) == ["broadcaster", "playbook", "channel"]
    for name, file in schemas.FILES.items():
        assert printed[name] == json.loads((SCHEMAS / file).read_text(encoding="utf-8"))
        assert printed[name]["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        jsonschema.Draft202012Validator.check_schema(printed[name])


def test_the_samples_are_many_and_cover_every_channel_type():
    assert len(SAMPLES["playbook"]) == 3
    docs_channels = {p.stem for p in (REPO / "docs" / "channels").glob("*.yaml")}
    assert docs_channels == set(CHANNEL_TYPES)


@pytest.mark.parametrize(
    ("name", "path"),
    [(name, path) for name, paths in SAMPLES.items() for path in paths],
    ids=lambda value: value.relative_to(REPO).as_posix() if isinstance(value, Path) else value,
)
def test_every_sample_names_its_schema_and_validates_against_it(name, path):
    text = path.read_text(encoding="utf-8")
    match = MODELINE.match(text)
    assert match, f"{path.name}: the first line must name the schema"
    assert (path.parent / match[1]).resolve() == (SCHEMAS / schemas.FILES[name]).resolve()
    assert errors(name, yaml.safe_load(text)) == []


def test_every_sample_loads_with_the_models(monkeypatch):
    for path in SAMPLES["channel"]:
        for variable in VARIABLE.findall(path.read_text(encoding="utf-8")):
            monkeypatch.setenv(variable, sample_value(variable))
    settings, problems = read_settings(REPO / "broadcaster.yaml")
    assert settings is not None
    assert problems == []
    playbooks, problems = load_playbooks(REPO / "playbooks")
    assert len(playbooks) == 3
    assert problems == []
    for folder in (REPO / "channels", REPO / "docs" / "channels"):
        channels, problems = load_channels(folder)
        assert problems == []
        assert len(channels) == len(list(folder.glob("*.yaml")))
    docs_channels, _ = load_channels(REPO / "docs" / "channels")
    assert {c.channel_type for c in docs_channels.values()} == set(CHANNEL_TYPES)


def _accepts_duration(value: str) -> bool:
    try:
        parse_duration(value)
    except ValueError:
        return False
    return True


def _accepts_rate(value: str) -> bool:
    try:
        RateLimit.parse(value)
    except ValueError:
        return False
    return True


DURATIONS = ["250ms", "30s", "5m", "1h", "7d", "1h30m", "0s", "90d"]
NOT_DURATIONS = ["5 minutes", "5", "m5", "1.5h", "", "5M", "PT5M", "5m 30s", "-5m"]


@pytest.mark.parametrize("value", DURATIONS + NOT_DURATIONS)
def test_a_duration_passes_the_schema_exactly_when_the_model_takes_it(value):
    data = {"escalate_after": value, "delivery": {"lease": value}}
    assert (errors("broadcaster", data) == []) is _accepts_duration(value)
    assert _accepts_duration(value) is (value in DURATIONS)


@pytest.mark.parametrize("value", ["30/min", "1/s", "100/15min", "6/minute", "2/h", "30/day", "x"])
def test_a_rate_limit_passes_the_schema_exactly_when_the_model_takes_it(value):
    data = {"type": "log", "rate_limit": value}
    assert (errors("channel", data) == []) is _accepts_rate(value)


def test_variables_pass_wherever_the_file_may_hold_one(monkeypatch, tmp_path):
    """As written, before `${NAME}` is filled in; and the filled-in file loads."""
    settings = {
        "mqtt": {"url": "${MQTT_URL}", "protocol": "${MQTT_PROTOCOL}"},
        "http": {"api_token": "${API_TOKEN}", "listen": "${LISTEN}"},
        "security": {"trigger_secret": "${TRIGGER_SECRET}", "max_trigger_age": "${AGE}"},
        "delivery": {"max_attempts": "${ATTEMPTS}", "lease": "${LEASE}"},
        "duty_officers": [{"name": "A", "notify": ["sms"], "pin": "${PIN}"}],
    }
    channel = {
        "type": "sms",
        "enabled": "${SMS_ENABLED}",
        "drill": "${SMS_DRILL}",
        "account_sid": "${SID}",
        "auth_token": "${TOKEN}",
        "from": "${SMS_FROM}",
        "to": ["${OFFICER_A_MOBILE}", "+491701234567"],
        "max_segments": "${SEGMENTS}",
        "rate_limit": "${SMS_RATE}",
    }
    assert errors("broadcaster", settings) == []
    assert errors("channel", channel) == []
    values = {
        "MQTT_URL": "mqtts://broker.example.org",
        "MQTT_PROTOCOL": "5",
        "API_TOKEN": "a-long-enough-api-token",
        "LISTEN": "0.0.0.0:8080",
        "TRIGGER_SECRET": "a-long-enough-trigger-secret",
        "AGE": "10m",
        "ATTEMPTS": "5",
        "LEASE": "30s",
        "PIN": "4711",
        "SMS_ENABLED": "true",
        "SMS_DRILL": "send",
        "SID": "AC123",
        "TOKEN": "secret",
        "SMS_FROM": "+4921100000000",
        "OFFICER_A_MOBILE": "+491707654321",
        "SEGMENTS": "2",
        "SMS_RATE": "30/min",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "broadcaster.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")
    loaded, problems = read_settings(tmp_path / "broadcaster.yaml")
    assert problems == []
    assert loaded is not None
    assert loaded.delivery.max_attempts == 5
    assert loaded.http.api_token == values["API_TOKEN"]
    (tmp_path / "channels").mkdir()
    (tmp_path / "channels" / "sms.yaml").write_text(yaml.safe_dump(channel), encoding="utf-8")
    channels, problems = load_channels(tmp_path / "channels")
    sms = channels["sms"]
    assert problems == []
    assert isinstance(sms, SmsChannel)
    assert sms.max_segments == 2


SMS = {"type": "sms", "account_sid": "a", "auth_token": "t", "from": "f", "to": ["+491701234567"]}


@pytest.mark.parametrize(
    ("name", "data", "where"),
    [
        ("broadcaster", {"delivery": {"max_attemps": 3}}, "max_attemps"),  # a typo
        ("broadcaster", {"http": {"api_token": "short"}}, "api_token"),  # min 16
        ("broadcaster", {"mqtt": {"protocol": "4"}}, "protocol"),
        ("broadcaster", {"escalate_after": 300}, "escalate_after"),  # no unit
        ("playbook", {"id": "p", "name": {}, "languages": [], "cap": {}, "stages": {}}, ""),
        ("channel", {"type": "mastodon", "base_url": "https://m.example"}, "access_token"),
        ("channel", {"type": "smss"}, "smss"),
        ("channel", {"type": "log", "timout": "5s"}, "timout"),
        ("channel", {**SMS, "to": ["0170 1234567"]}, "0170 1234567"),  # not E.164
        ("channel", {"type": "${CHANNEL_TYPE}"}, ""),  # the type is written out
    ],
)
def test_the_schemas_refuse_what_the_models_refuse(name, data, where):
    model = {"broadcaster": Settings.model_validate, "playbook": Playbook.model_validate}
    with pytest.raises(ValueError, match=r"."):  # pydantic's ValidationError is one
        model.get(name, parse_channel)(data)
    found = errors(name, data)
    assert found, f"{name} schema took {data}"
    assert where in " ".join(found)
