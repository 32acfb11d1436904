"""An ad-hoc update: a free text for an open incident ("A52 closed between ..."), written
in the console where the templates did not foresee it.

It is an alert of the incident's scenario at the stage `_update` (CAP msgType Update),
with one text per language and variant that the incident's channels post, checked
against each channel's length limit like any rendered text. It is always a proposal:
only a second person's release sends it (Receiver.gate_or_release), and then it goes
through the same dispatcher, threading, tracking and retraction as any alert. In a drill
every text starts with the drill word, as a rendered drill text does. It never arrives
over MQTT or HTTP: only the console makes one (an inbox entry of kind `update`).
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

from broadcaster.channels.settings import ChannelConfig
from broadcaster.messages import (
    LanguageTexts,
    Mode,
    RenderedAlert,
    channel_language,
    fan_out_channels,
)
from broadcaster.models import Alert
from broadcaster.playbooks import Playbook
from broadcaster.text_hygiene import public_text_problem

Variant = str  # "short" | "long"


class AdhocText(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str = ""
    short: str = ""
    long: str = ""


class AdhocUpdate(BaseModel):
    """What the console puts into the inbox: the new alert's id, its incident, its texts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=80)
    incident: str = Field(min_length=1, max_length=80)
    texts: dict[str, AdhocText]


def needed(playbook: Playbook, channels: dict[str, ChannelConfig]) -> dict[str, list[Variant]]:
    """Every language of the playbook (the public warning page shows them all), each with
    the variants its channels post (short, long; the long one for the page when no
    channel posts that language): the texts an update must have."""
    wanted: dict[str, set[Variant]] = {lang: set() for lang in playbook.languages}
    for channel in fan_out_channels(playbook, channels).values():
        wanted[channel_language(playbook, channel)].add(channel.variant)
    return {lang: sorted(v or {"long"}, reverse=True) for lang, v in wanted.items()}


def tidy(text: str) -> str:
    """Line breaks and runs of spaces folded to one space: a typed text's Enter must not
    make a line a reader could take for another post's."""
    return " ".join(text.split())


def latest_alert(alerts: list[Alert]) -> Alert | None:
    """The incident's newest alert that is not a correction: its mode, params and
    scenario carry over to the update."""
    own = [a for a in alerts if a.retracts is None]
    return max(own, key=lambda a: a.created_at, default=None)


def text_problems(
    update: AdhocUpdate, playbook: Playbook, channels: dict[str, ChannelConfig]
) -> dict[str, str]:
    """What is missing or not allowed, by field (`de.title`, `en.short`, ...)."""
    problems: dict[str, str] = {}
    for lang, variants in needed(playbook, channels).items():
        given = update.texts.get(lang, AdhocText())
        for name in ("title", *variants):
            text = tidy(getattr(given, name))
            if not text:
                problems[f"{lang}.{name}"] = "required"
            elif (why := public_text_problem(text)) is not None:
                problems[f"{lang}.{name}"] = why
    return problems


def rendered_update(
    update: AdhocUpdate,
    playbook: Playbook,
    channels: dict[str, ChannelConfig],
    mode: Mode,
    prefix: Callable[[str], str],
) -> RenderedAlert:
    """The update's texts as a rendering would give them (the drill word in front in a
    drill). A language that posts only one variant uses it for the other too."""
    texts: dict[str, LanguageTexts] = {}
    for lang, variants in needed(playbook, channels).items():
        given = update.texts.get(lang, AdhocText())

        def marked(text: str, lang: str = lang) -> str:
            return f"{prefix(lang)}: {text}" if mode == "drill" else text

        by_variant = {v: tidy(getattr(given, v)) for v in variants}
        short = by_variant.get("short") or by_variant["long"]
        long = by_variant.get("long") or short
        texts[lang] = LanguageTexts(
            lang, marked(tidy(given.title)), marked(short), marked(long), None
        )
    return RenderedAlert(texts)
