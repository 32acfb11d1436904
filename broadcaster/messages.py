"""An alert's texts: every language's templates rendered, then one message per channel.

A live alert is rendered only from approved template bytes; a drill may use
unapproved ones and lists them, and every drill text starts with the drill prefix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from jinja2 import TemplateError

from broadcaster.channels.settings import ChannelConfig
from broadcaster.config import drill_word
from broadcaster.limits import Measurement
from broadcaster.playbooks import Playbook
from broadcaster.templating import (
    RETRACTION_VARIANTS,
    Approvals,
    TemplateFolder,
    TemplateSource,
    retraction_key,
    template_key,
)
from broadcaster.warnings import page_url

Mode = Literal["live", "drill"]
Shower = Callable[[Path], str]  # a path as the user should read it (Deployment.show)


@dataclass(frozen=True)
class AlertContext:
    """What a trigger asks for, already checked against the playbook."""

    playbook: Playbook
    stage: str
    params: dict[str, Any]
    mode: Mode
    incident: str
    issued_at: datetime

    def variables(self, language: str) -> dict[str, Any]:
        return {
            **self.params,
            "scenario": self.playbook.id,
            "scenario_name": self.playbook.name[language],
            "stage": self.stage,
            "mode": self.mode,
            "incident": self.incident,
            "issued_at": self.issued_at,
        }


@dataclass(frozen=True)
class LanguageTexts:
    language: str
    title: str
    short: str
    long: str
    instruction: str | None = None

    def variant(self, name: Literal["short", "long"]) -> str:
        return self.short if name == "short" else self.long


@dataclass(frozen=True)
class RenderedAlert:
    texts: dict[str, LanguageTexts]
    unapproved: dict[str, str] = field(default_factory=dict)  # key -> why (drills only)


class TemplateFailed(TemplateError):
    """One template failed to render; the message names it, so an operator knows which."""

    def __init__(self, key: str, error: TemplateError) -> None:
        super().__init__(f"{key}: {error}")
        self.key = key
        self.error = error


def cannot_render(exc: TemplateError | OSError, folder: TemplateFolder, show: Shower) -> str:
    """Why the texts cannot be rendered, naming the template file and what is wrong:
    `template cannot be rendered: templates/x/warning/short.de.j2: 'locaton' is undefined`."""
    if isinstance(exc, TemplateFailed):
        return f"template cannot be rendered: {show(folder.path(exc.key))}: {exc.error}"
    if isinstance(exc, OSError) and exc.filename:
        why = exc.strerror or str(exc)
        return f"template cannot be rendered: {show(Path(str(exc.filename)))}: {why}"
    return f"template cannot be rendered: {exc}"


def _render(source: TemplateSource, context: dict[str, Any]) -> str:
    try:
        return source.render(context)
    except TemplateError as exc:
        raise TemplateFailed(source.key, exc) from exc


class TemplateNotApproved(Exception):
    """A live alert asked for template bytes that two people have not approved."""

    def __init__(self, refusals: dict[str, str]) -> None:
        self.refusals = refusals
        super().__init__("; ".join(f"{key} {why}" for key, why in refusals.items()))


@dataclass(frozen=True)
class ChannelMessage:
    channel_id: str
    channel_type: str
    language: str
    variant: Literal["short", "long"]
    title: str
    text: str
    measurement: Measurement


class Renderer:
    def __init__(
        self,
        folder: TemplateFolder,
        approvals: Approvals,
        drill_prefix: dict[str, str],
        public_url: str = "http://127.0.0.1:8080",
    ) -> None:
        self.folder = folder
        self.approvals = approvals
        self.drill_prefix = drill_prefix
        self.public_url = public_url

    def variables(self, alert: AlertContext, language: str) -> dict[str, Any]:
        """What a template sees: the alert's names and `page_url`, the public warning
        page (its marked exercise view for a drill)."""
        return {
            **alert.variables(language),
            "page_url": page_url(self.public_url, alert.mode == "drill"),
        }

    def prefix(self, language: str) -> str:
        return drill_word(self.drill_prefix, language)

    def render(self, alert: AlertContext) -> RenderedAlert:
        """Every language of the playbook, from the stage's templates."""
        playbook = alert.playbook
        sources: dict[str, TemplateSource] = {}
        for lang in playbook.languages:
            for variant in ("title", "short", "long", "instruction"):
                key = template_key(playbook.id, alert.stage, variant, lang)
                if variant != "instruction" or self.folder.exists(key):
                    sources[key] = self.folder.load(key)
        unapproved = self._check(sources, alert.mode)
        texts = {}
        for lang in playbook.languages:
            context = self.variables(alert, lang)
            key = template_key(playbook.id, alert.stage, "instruction", lang)
            instruction = _render(sources[key], context) if key in sources else None
            context["instruction"] = instruction or ""
            texts[lang] = self._texts(
                lang,
                alert.mode,
                context,
                instruction,
                *(
                    sources[template_key(playbook.id, alert.stage, v, lang)]
                    for v in ("title", "short", "long")
                ),
            )
        return RenderedAlert(texts, unapproved)

    def render_retraction(self, alert: AlertContext, reason: str) -> RenderedAlert:
        """The pre-approved correction of a false alarm, in every language of the alert."""
        sources = {
            retraction_key(v, lang): self.folder.load(retraction_key(v, lang))
            for lang in alert.playbook.languages
            for v in RETRACTION_VARIANTS
        }
        unapproved = self._check(sources, alert.mode)
        texts = {}
        for lang in alert.playbook.languages:
            context = {**self.variables(alert, lang), "reason": reason}
            texts[lang] = self._texts(
                lang,
                alert.mode,
                context,
                None,
                *(sources[retraction_key(v, lang)] for v in RETRACTION_VARIANTS),
            )
        return RenderedAlert(texts, unapproved)

    def _check(self, sources: dict[str, TemplateSource], mode: Mode) -> dict[str, str]:
        refusals = {
            key: why
            for key, source in sources.items()
            if (why := self.approvals.refusal(source)) is not None
        }
        if refusals and mode == "live":
            raise TemplateNotApproved(refusals)
        return refusals

    def _texts(
        self,
        lang: str,
        mode: Mode,
        context: dict[str, Any],
        instruction: str | None,
        title: TemplateSource,
        short: TemplateSource,
        long: TemplateSource,
    ) -> LanguageTexts:
        def text(source: TemplateSource) -> str:
            rendered = _render(source, context)
            return f"{self.prefix(lang)}: {rendered}" if mode == "drill" else rendered

        return LanguageTexts(lang, text(title), text(short), text(long), instruction)


def fan_out_channels(
    playbook: Playbook, channels: dict[str, ChannelConfig]
) -> dict[str, ChannelConfig]:
    """The enabled public channels this playbook posts to."""
    wanted = channels.keys() if playbook.channels == "all" else playbook.channels
    return {
        cid: channels[cid]
        for cid in wanted
        if cid in channels and channels[cid].enabled and channels[cid].audience == "public"
    }


def channel_language(playbook: Playbook, channel: ChannelConfig) -> str:
    """The channel's language when the playbook has it, else the playbook's primary one."""
    if channel.language in playbook.languages:
        return channel.language
    return playbook.primary_language


def channel_message(
    channel_id: str, channel: ChannelConfig, playbook: Playbook, rendered: RenderedAlert
) -> ChannelMessage:
    texts = rendered.texts[channel_language(playbook, channel)]
    text = texts.variant(channel.variant)
    return ChannelMessage(
        channel_id=channel_id,
        channel_type=channel.channel_type,
        language=texts.language,
        variant=channel.variant,
        title=texts.title,
        text=text,
        measurement=channel.kind.measure_message(texts.title, text, channel.length_limit),
    )


def channel_messages(
    playbook: Playbook, channels: dict[str, ChannelConfig], rendered: RenderedAlert
) -> list[ChannelMessage]:
    return [
        channel_message(cid, channel, playbook, rendered)
        for cid, channel in fan_out_channels(playbook, channels).items()
    ]
