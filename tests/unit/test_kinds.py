"""The table of channel kinds covers every channel type, and everything reads it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import aiohttp
import pytest
from mypy import api as mypy_api

from broadcaster.channels import kinds
from broadcaster.channels.kinds import KINDS, kind
from broadcaster.channels.registry import make_channel
from broadcaster.channels.settings import (
    CHANNEL_TYPES,
    ChannelConfig,
    RateLimit,
    load_channels,
)
from broadcaster.limits import measure
from tests.servers import REPO
from tests.unit.sample_env import sample_value

SAMPLES = REPO / "docs" / "channels"
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def test_the_table_the_type_list_and_the_settings_union_name_the_same_types() -> None:
    assert list(KINDS) == list(CHANNEL_TYPES)
    models = set(get_args(ChannelConfig))
    assert {k.settings for k in KINDS.values()} == models
    assert len(models) == len(KINDS)  # one model per kind, none shared
    for name, entry in KINDS.items():
        assert entry.channel_type == name
        assert get_args(entry.settings.model_fields["type"].annotation) == (name,)


def test_a_type_without_an_entry_fails_mypy(tmp_path: Path) -> None:
    # The table with one more type in ChannelType than it has entries for: mypy must name
    # the missing one at the closing assert_never, and report nothing else.
    source = Path(kinds.__file__).read_text(encoding="utf-8")
    assert "    ChannelType,\n" in source
    source = source.replace("    ChannelType,\n", "", 1)
    members = ", ".join(f'"{t}"' for t in (*CHANNEL_TYPES, "carrier_pigeon"))
    source = source.replace("\nVariant = ", f"\nChannelType = Literal[{members}]\nVariant = ", 1)
    module = tmp_path / "kinds_missing_one.py"
    module.write_text(source, encoding="utf-8")
    out, _, status = mypy_api.run(
        [str(module), "--config-file", str(REPO / "pyproject.toml"), "--no-error-summary"]
    )
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert status == 1
    assert len(errors) == 1, out
    assert "assert_never" in errors[0]
    assert "Literal['carrier_pigeon']" in errors[0]


def test_at_run_time_an_unknown_type_is_named() -> None:
    with pytest.raises(ValueError, match=r"'carrier_pigeon' \(known: mastodon, bluesky"):
        kind("carrier_pigeon")
    with pytest.raises(ValueError, match="carrier_pigeon"):
        measure("carrier_pigeon", "text")


@pytest.fixture
def samples(monkeypatch: pytest.MonkeyPatch) -> dict[str, ChannelConfig]:
    """docs/channels/<type>.yaml, one per type, with their ${VARIABLES} set."""
    for path in SAMPLES.glob("*.yaml"):
        for variable in VARIABLE.findall(path.read_text(encoding="utf-8")):
            monkeypatch.setenv(variable, sample_value(variable))
    channels, problems = load_channels(SAMPLES)
    assert problems == []
    return channels


@pytest.mark.parametrize("channel_type", CHANNEL_TYPES)
async def test_each_kind_makes_an_adapter_that_can_what_the_table_says(
    samples: dict[str, ChannelConfig], channel_type: str
) -> None:
    config = samples[channel_type]
    entry = KINDS[channel_type]
    async with aiohttp.ClientSession() as session:
        adapter = make_channel("c1", config, session, public_url="https://warn.example")
    assert adapter.channel_id == "c1"
    assert adapter.can_thread is entry.capabilities.threads
    assert adapter.can_delete is entry.capabilities.delete
    assert config.kind is entry
    assert config.model_copy(update={"template": None}).variant == entry.variant
    assert config.model_copy(update={"template": "long"}).variant == "long"
    if entry.rate_limit is not None:
        assert config.effective_rate_limit == (
            config.rate_limit or RateLimit.parse(entry.rate_limit)
        )


def test_the_small_kinds_take_the_short_template() -> None:
    short = {t for t, k in KINDS.items() if k.variant == "short"}
    assert short == {"mastodon", "bluesky", "x", "sms", "webpush", "whatsapp"}


def test_telegram_counts_the_title_with_the_text() -> None:
    title, text = "Warnung", "a" * 4090
    assert KINDS["telegram"].measure_message(title, text).count == len(title) + 2 + 4090
    assert not KINDS["telegram"].measure_message(title, text).fits
    assert KINDS["mastodon"].measure_message(title, "a" * 500).fits  # the text alone
    assert KINDS["mastodon"].measure_message(title, "a" * 600, 1000).limit == 1000


def test_only_channels_someone_reads_reach_a_duty_officer() -> None:
    unread = {t for t, k in KINDS.items() if not k.capabilities.reaches_people}
    assert unread == {"log", "cap_feed"}
    per_recipient = {t for t, k in KINDS.items() if k.capabilities.per_recipient}
    assert per_recipient == {"sms", "email", "webpush", "whatsapp"}
