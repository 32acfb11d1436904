"""channels/<channel_id>.yaml: one account or endpoint each (contract section 5)."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from broadcaster.problems import Problem, display_path
from broadcaster.yamlfiles import load_yaml, validation_problems

if TYPE_CHECKING:
    from broadcaster.channels.kinds import Kind

# Every channel type. Each has a settings model below (in ChannelConfig) and an entry in
# the table of kinds (broadcaster/channels/kinds.py), which mypy checks against this list.
ChannelType = Literal[
    "mastodon",
    "bluesky",
    "telegram",
    "facebook",
    "x",
    "email",
    "sms",
    "webhook",
    "cap_feed",
    "log",
    "instagram",
]
CHANNEL_TYPES: tuple[str, ...] = get_args(ChannelType)
_CHANNEL_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_SECONDS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
}
_E164 = r"^\+[1-9]\d{6,14}$"


class RateLimit(BaseModel):
    """`30/min`, `1/s`, `100/15min`: at most `count` requests per `period` seconds."""

    model_config = ConfigDict(frozen=True)
    count: int = Field(gt=0)
    period: float = Field(gt=0)

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        match = _RATE.match(text)
        if not match:
            raise ValueError(f"expected a rate such as 30/min, 1/s or 100/15min, got {text!r}")
        count, multiple, unit = match.groups()
        return cls(count=int(count), period=int(multiple or 1) * _SECONDS[unit])


def _rate(value: Any) -> Any:
    return RateLimit.parse(value) if isinstance(value, str) else value


class _Channel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    audience: Literal["public", "internal"] = "public"
    enabled: bool = True
    language: str | None = None
    template: Literal["short", "long"] | None = None
    drill: Literal["dry_run", "send"] = "dry_run"
    rate_limit: RateLimit | None = None
    # Requests to this channel at once, with a connection pool of its own: a slow or
    # hanging provider never holds up another channel.
    max_in_flight: int = Field(default=10, ge=1, le=1000)

    _parse_rate = field_validator("rate_limit", mode="before")(_rate)

    @property
    def channel_type(self) -> str:
        return str(getattr(self, "type"))  # noqa: B009 - every subclass declares its Literal type

    @property
    def kind(self) -> Kind:
        """This channel's entry in the table of kinds."""
        # Imported here: the table imports the adapters, which import these models.
        from broadcaster.channels.kinds import kind

        return kind(self.channel_type)

    @property
    def variant(self) -> Literal["short", "long"]:
        """`template` when set, else the kind's default."""
        return self.template if self.template is not None else self.kind.variant

    @property
    def length_limit(self) -> int | None:
        """The limit this channel's text is measured against: the kind's default."""
        return self.kind.length_limit

    @property
    def effective_rate_limit(self) -> RateLimit | None:
        """`rate_limit` when set, else the kind's default."""
        if self.rate_limit is not None:
            return self.rate_limit
        default = self.kind.rate_limit
        return RateLimit.parse(default) if default else None


class MastodonChannel(_Channel):
    type: Literal["mastodon"]
    base_url: str
    access_token: str
    visibility: Literal["public", "unlisted", "private", "direct"] = "public"
    max_characters: int = Field(default=500, gt=0)  # per instance: /api/v2/instance

    @property
    def length_limit(self) -> int | None:
        return self.max_characters


class BlueskyChannel(_Channel):
    type: Literal["bluesky"]
    base_url: str = "https://bsky.social"
    identifier: str
    app_password: str


class TelegramChannel(_Channel):
    type: Literal["telegram"]
    base_url: str = "https://api.telegram.org"
    bot_token: str
    chat_id: str | int


class FacebookChannel(_Channel):
    type: Literal["facebook"]
    base_url: str = "https://graph.facebook.com/v21.0"
    page_id: str
    page_access_token: str
    # `card`: a photo post of the share-pic card (served under /media/), the text as its
    # caption; `text` (the default): a text post.
    media: Literal["text", "card"] = "text"


class XChannel(_Channel):
    type: Literal["x"]
    base_url: str = "https://api.x.com"
    api_key: str
    api_secret: str
    access_token: str
    access_secret: str


class EmailChannel(_Channel):
    type: Literal["email"]
    host: str
    port: int = Field(default=587, gt=0, lt=65536)
    starttls: bool = True
    username: str | None = None
    password: str | None = None
    sender: str = Field(alias="from")
    to: list[str] = Field(min_length=1)
    # Recipients per message, all in the envelope only (the To header names nobody): fewer
    # messages for long lists. 1 (the default): one message per recipient, To: them.
    bcc_batch: int = Field(default=1, ge=1, le=1000)


class SmsChannel(_Channel):
    type: Literal["sms"]
    base_url: str = "https://api.twilio.com"
    account_sid: str
    auth_token: str
    sender: str = Field(alias="from")
    to: list[Annotated[str, Field(pattern=_E164)]] = Field(min_length=1)
    max_segments: int = Field(default=3, gt=0, le=10)  # Twilio takes 1 600 characters at most
    # The sender's pace (Twilio: 1 for a US long code, 3 toll-free, 100 a short code);
    # None: Twilio's own queue paces the messages.
    messages_per_second: float | None = Field(default=None, gt=0, le=10000)

    @property
    def length_limit(self) -> int | None:
        return self.max_segments


class WebhookChannel(_Channel):
    type: Literal["webhook"]
    url: str
    secret: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with https:// (or http://)")
        return value


class CapFeedChannel(_Channel):
    type: Literal["cap_feed"]


class LogChannel(_Channel):
    type: Literal["log"]


class InstagramChannel(_Channel):
    """An Instagram professional account; each post is the share-pic card (sharepic.py)."""

    type: Literal["instagram"]
    base_url: str = "https://graph.facebook.com/v21.0"  # or https://graph.instagram.com/v21.0
    ig_user_id: str
    access_token: str
    # Posts per 24 h (of the account's content_publishing_limit, 50) kept for updates and
    # corrections: a new warning is refused when only these are left.
    reserve: int = Field(default=10, ge=0, le=100)


ChannelConfig = (
    MastodonChannel
    | BlueskyChannel
    | TelegramChannel
    | FacebookChannel
    | XChannel
    | EmailChannel
    | SmsChannel
    | WebhookChannel
    | CapFeedChannel
    | LogChannel
    | InstagramChannel
)
# The model of each `type`, read from the models' own `type: Literal[...]`.
_BY_TYPE: dict[str, type[ChannelConfig]] = {
    get_args(model.model_fields["type"].annotation)[0]: model for model in get_args(ChannelConfig)
}


def parse_channel(data: dict[str, Any]) -> ChannelConfig:
    """One channel's settings, validated by the model of its `type`."""
    kind = data.get("type")
    if kind not in _BY_TYPE:
        raise ValueError(f"type is {kind!r}; one of {', '.join(CHANNEL_TYPES)}")
    return _BY_TYPE[kind].model_validate(data)


def _load_channel(path: Path, base: Path | None) -> tuple[ChannelConfig | None, list[Problem]]:
    shown = display_path(path, base)
    if not _CHANNEL_ID.match(path.stem):
        return None, [
            Problem(
                shown,
                "",
                "channel id (the file name) must be lower-case letters, digits, - and _",
            )
        ]
    data, problems = load_yaml(path, base=base)
    if not isinstance(data, dict):
        if data is not None or not problems:
            problems.append(Problem(shown, "", "must be a mapping with at least `type`"))
        return None, problems
    try:
        channel = parse_channel(data)
    except ValidationError as exc:
        return None, problems + validation_problems(shown, exc)
    except ValueError as exc:
        return None, [*problems, Problem(shown, "type", str(exc).removeprefix("type "))]
    if any(p.severity == "error" for p in problems):
        return None, problems  # an unset ${VAR}: not usable as it is
    return channel, problems


def load_channels(
    folder: Path, base: Path | None = None
) -> tuple[dict[str, ChannelConfig], list[Problem]]:
    """Every channels/<id>.yaml; a broken file is reported and left out."""
    channels: dict[str, ChannelConfig] = {}
    problems: list[Problem] = []
    if not folder.is_dir():
        return {}, [Problem(display_path(folder, base), "", "channel folder not found")]
    for path in sorted(folder.glob("*.y*ml")):
        channel, found = _load_channel(path, base)
        problems += [replace(p, subject=f"channel:{path.stem}") for p in found]
        if channel is not None:
            channels[path.stem] = channel
    return channels, problems
