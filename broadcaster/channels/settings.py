"""channels/<channel_id>.yaml: one account or endpoint each (contract section 5)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from broadcaster.durations import Duration
from broadcaster.problems import Problem, display_path
from broadcaster.vapid import VapidKeyError, load_private_key, subject_problem
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
    "webpush",
    "whatsapp",
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
    # Ask Twilio for delivery receipts (StatusCallback to http.public_url's
    # /hooks/sms/<id>). None: on unless public_url is a loopback address, which Twilio
    # cannot reach.
    status_callback: bool | None = None

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


# -- webpush -------------------------------------------------------------------------------
# The push services of the browsers in use (endpoint hosts): Chrome, Edge, Opera and
# Samsung Internet (FCM), Firefox (Mozilla autopush), Safari (Apple), and Windows' WNS.
# A subscription whose endpoint is elsewhere is refused: the daemon would otherwise POST
# to any address a stranger names.
PUSH_SERVICES: tuple[str, ...] = (
    "fcm.googleapis.com",
    "updates.push.services.mozilla.com",
    "web.push.apple.com",
    "*.notify.windows.com",
)


class WebpushChannel(_Channel):
    """Web Push (RFC 8030/8291/8292) to the browsers subscribed on the warning page."""

    type: Literal["webpush"]
    vapid_private_key: str  # ${VAPID_PRIVATE_KEY}: `broadcaster vapid-keys` makes one
    vapid_subject: str  # mailto: or https: contact the push services may use
    # How long a push service keeps a warning for a phone that is offline (never 0).
    ttl: Duration = timedelta(hours=24)
    push_services: list[str] = Field(default_factory=lambda: list(PUSH_SERVICES), min_length=1)
    max_subscriptions: int = Field(default=100_000, ge=1, le=10_000_000)
    max_in_flight: int = Field(default=50, ge=1, le=1000)
    messages_per_second: float | None = Field(default=None, gt=0, le=100_000)

    @field_validator("vapid_private_key")
    @classmethod
    def _key(cls, value: str) -> str:
        try:
            load_private_key(value)
        except VapidKeyError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("vapid_subject")
    @classmethod
    def _subject(cls, value: str) -> str:
        problem = subject_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("ttl")
    @classmethod
    def _ttl(cls, value: timedelta) -> timedelta:
        # 0 drops a warning for every phone that is offline at that moment; the push
        # services keep a message four weeks at most.
        if not timedelta(minutes=1) <= value <= timedelta(days=28):
            raise ValueError(
                "must be between 1m and 28d (0 would drop warnings for offline phones)"
            )
        return value

    @field_validator("audience")
    @classmethod
    def _public(cls, value: str) -> str:
        if value != "public":
            raise ValueError(
                "must be public: anyone can subscribe, so a confirm link would reach strangers"
            )
        return value

    @field_validator("push_services")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        for host in value:
            bare = host.removeprefix("*.")
            if not re.fullmatch(r"[A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\]", bare) or not bare.strip("."):
                raise ValueError(f"{host!r} is not a host name (e.g. fcm.googleapis.com)")
        return [h.lower() for h in value]

    @property
    def ttl_seconds(self) -> int:
        return int(self.ttl.total_seconds())


# -- whatsapp -------------------------------------------------------------------------
_E164_NUMBER = re.compile(_E164)
# What may fill a template's body parameters, in the order of the template's {{1}}, {{2}}.
WhatsappParameter = Literal["title", "text", "incident", "alert_id"]
# Template keys besides stage names: the correction and the notices to duty officers.
WHATSAPP_SPECIAL_TEMPLATES = ("_retraction", "_confirmation_request", "_refusal")


class WhatsappTemplate(BaseModel):
    """A template Meta approved (WhatsApp Manager), named as Meta knows it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9_]{1,512}$")
    # Meta's language code (de, en_US); None: the channel's language, as the post's.
    language: str | None = Field(default=None, pattern=r"^[a-z]{2,3}(_[A-Za-z0-9]{2,4})?$")
    parameters: list[WhatsappParameter] | None = None  # None: the channel's `parameters`


def read_numbers(path: Path) -> tuple[list[str], list[str]]:
    """The numbers of a subscriber file (one E.164 number a line; `#` starts a comment,
    blank lines are skipped), and one error per bad line, naming it."""
    numbers: list[str] = []
    errors: list[str] = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [f"cannot read {path.name}: {exc.__class__.__name__}: {exc}"]
    for number, line in enumerate(text.splitlines(), start=1):
        value = line.split("#", 1)[0].strip()
        if not value:
            continue
        if _E164_NUMBER.match(value):
            numbers.append(value)
        else:
            errors.append(
                f"{path.name} line {number}: {value!r} is not an E.164 number "
                "(+, country code, 7 to 15 digits, no spaces)"
            )
    return numbers, errors


class WhatsappChannel(_Channel):
    type: Literal["whatsapp"]
    base_url: str = "https://graph.facebook.com/v21.0"  # the Graph API, with its version
    phone_number_id: str = Field(pattern=r"^[0-9]{1,32}$")
    access_token: str
    app_secret: str  # checks the status webhooks' X-Hub-Signature-256
    verify_token: str | None = None  # answers Meta's GET handshake when the webhook is set up
    # By stage (`warning`), or `<playbook>/<stage>` for one playbook only; `_retraction`
    # for the correction, `_confirmation_request` and `_refusal` on an internal channel.
    templates: dict[str, WhatsappTemplate] = Field(min_length=1)
    parameters: list[WhatsappParameter] = Field(default=["title", "text"], min_length=1)
    to: list[Annotated[str, Field(pattern=_E164)]] = Field(default_factory=list)
    # A file beside the channel file: one E.164 number a line, `#` comments.
    to_file: str | None = None
    # Meta's throughput: 80 messages a second per business number by default.
    messages_per_second: float = Field(default=80, gt=0, le=1000)
    # Meta's pair rate limit: about one message per 6 s to the same number (131056).
    pair_wait: float = Field(default=6.0, gt=0, le=600)
    # Meta's limit on a template body with its parameters filled in (132005).
    max_characters: int = Field(default=1024, gt=0, le=1024)
    _file_numbers: list[str] = PrivateAttr(default_factory=list)

    @field_validator("templates")
    @classmethod
    def _template_keys(cls, value: dict[str, WhatsappTemplate]) -> dict[str, WhatsappTemplate]:
        for key in value:
            if key.startswith("_") and key not in WHATSAPP_SPECIAL_TEMPLATES:
                raise ValueError(
                    f"unknown template key {key!r}: a stage name, <playbook>/<stage>, or one "
                    f"of {', '.join(WHATSAPP_SPECIAL_TEMPLATES)}"
                )
        return value

    @model_validator(mode="after")
    def _subscribers(self, info: ValidationInfo) -> WhatsappChannel:
        if self.to_file is not None:
            folder = (info.context or {}).get("folder")
            path = Path(self.to_file)
            if not path.is_absolute():
                path = (Path(folder) if folder is not None else Path.cwd()) / path
            numbers, errors = read_numbers(path)
            if errors:
                shown = "; ".join(errors[:5])
                more = f" and {len(errors) - 5} more" if len(errors) > 5 else ""
                raise ValueError(f"to_file: {shown}{more}")
            self._file_numbers = numbers
        if not self.recipients:
            raise ValueError(
                "no subscribers: set `to` (a list of E.164 numbers) or `to_file` (a file of them)"
            )
        return self

    @property
    def recipients(self) -> list[str]:
        """`to` and the numbers of `to_file`, each once, in that order."""
        return list(dict.fromkeys([*self.to, *self._file_numbers]))

    @property
    def length_limit(self) -> int | None:
        return self.max_characters

    def template_for(self, scenario: str, stage: str) -> WhatsappTemplate | None:
        """The template of a playbook's stage: `<playbook>/<stage>`, else `<stage>`."""
        return self.templates.get(f"{scenario}/{stage}") or self.templates.get(stage)


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
    | WebpushChannel
    | WhatsappChannel
    | InstagramChannel
)
# The model of each `type`, read from the models' own `type: Literal[...]`.
_BY_TYPE: dict[str, type[ChannelConfig]] = {
    get_args(model.model_fields["type"].annotation)[0]: model for model in get_args(ChannelConfig)
}


def parse_channel(data: dict[str, Any], folder: Path | None = None) -> ChannelConfig:
    """One channel's settings, validated by the model of its `type`; `folder` is where
    its file is (files it names, such as a whatsapp `to_file`, are beside it)."""
    kind = data.get("type")
    if kind not in _BY_TYPE:
        raise ValueError(f"type is {kind!r}; one of {', '.join(CHANNEL_TYPES)}")
    return _BY_TYPE[kind].model_validate(data, context={"folder": folder})


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
        channel = parse_channel(data, path.parent)
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
