"""broadcaster.yaml: the daemon's settings (contract section 2)."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from broadcaster.durations import Duration
from broadcaster.problems import Problem, display_path
from broadcaster.store import DEFAULT_REPLICA_TIMEOUT, ReplicaWait
from broadcaster.store.urls import SENTINEL_FORM, is_sentinel_url, parse_sentinel_url
from broadcaster.yamlfiles import load_yaml, validation_problems

CONFIG_ENV = "BROADCASTER_CONFIG"
DEFAULT_CONFIG = Path("broadcaster.yaml")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MqttSettings(_Section):
    url: str | None = None  # None: the daemon starts an embedded broker on 127.0.0.1:1883
    # More brokers, tried in turn when the one in use goes away (two mosquitto, or the
    # nodes of a clustered broker); the daemon and the fire brigade use the same list.
    fallback_urls: list[str] = Field(default_factory=list)
    username: str | None = None
    password: str | None = None
    # mqtts://: the CA that signed the broker's certificate (default: the system's), and
    # a client certificate where the broker asks for one (require_certificate).
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    topic_prefix: str = "broadcaster"
    client_id: str = Field(default_factory=lambda: f"broadcaster-{socket.gethostname()}")
    # Where the embedded broker listens when `url` is absent (not in the contract; for trials).
    embedded_listen: str = "127.0.0.1:1883"
    # MQTT 5 for a real broker (the embedded amqtt speaks 3.1.1 only). The broker keeps the
    # session, and the triggers queued for it, this long while the daemon is away.
    protocol: Literal["5", "3.1.1"] | None = None  # None: 5, or 3.1.1 for the embedded broker
    session_expiry: Duration = timedelta(days=7)

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("mqtt://", "mqtts://")):
            raise ValueError("must start with mqtt:// or mqtts://")
        return value

    @field_validator("fallback_urls")
    @classmethod
    def _schemes(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("mqtt://", "mqtts://")):
                raise ValueError(f"{url!r} must start with mqtt:// or mqtts://")
        return value

    @model_validator(mode="after")
    def _brokers(self) -> MqttSettings:
        if self.fallback_urls and self.url is None:
            raise ValueError("fallback_urls needs url (the first broker) as well")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        return self

    @property
    def urls(self) -> list[str | None]:
        """Every broker in the order tried (None: the embedded one)."""
        return [self.url, *self.fallback_urls]

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value or any(c in value for c in "#+") or value.endswith("/"):
            raise ValueError("must be a plain topic without wildcards or a trailing /")
        return value


class StoreSettings(_Section):
    url: str = "sqlite:///var/broadcaster.db"
    # Calls wait out an outage this long (a Redis restart, a Sentinel failover); then the
    # daemon exits non-zero so that its supervisor restarts it cleanly.
    outage_limit: Duration = timedelta(seconds=60)
    # Redis only: after the writes that guard a promise, WAIT for this many replicas, at
    # most replica_timeout (0: no WAIT, for a Redis without replicas).
    replicas_to_wait: int = Field(default=0, ge=0)
    replica_timeout: Duration = DEFAULT_REPLICA_TIMEOUT

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if is_sentinel_url(value):
            parse_sentinel_url(value)  # its own message, naming the expected form
        elif not value.startswith(("sqlite:///", "redis://", "rediss://")):
            raise ValueError(f"must be sqlite:///path, redis://host:port/db or {SENTINEL_FORM}")
        return value

    @field_validator("replica_timeout")
    @classmethod
    def _timeout(cls, value: timedelta) -> timedelta:
        if value < timedelta(milliseconds=1):
            raise ValueError("must be at least 1ms (WAIT with 0 would wait for ever)")
        return value

    @model_validator(mode="after")
    def _replicas_need_redis(self) -> StoreSettings:
        if self.replicas_to_wait and self.url.startswith("sqlite:"):
            raise ValueError("replicas_to_wait needs a Redis store (SQLite has no replicas)")
        return self

    @property
    def replica_wait(self) -> ReplicaWait:
        return ReplicaWait(self.replicas_to_wait, self.replica_timeout)


class HttpSettings(_Section):
    listen: str = "127.0.0.1:8080"
    public_url: str = "http://127.0.0.1:8080"
    api_token: str | None = Field(default=None, min_length=16)
    # The reverse proxies in front (addresses or networks): their X-Forwarded-For and
    # X-Forwarded-Proto are believed (web/proxy.py); nobody else's are.
    trusted_proxies: list[str] = Field(default_factory=list)

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an address or network, e.g. 127.0.0.1 or 10.0.0.0/8"
                ) from None
        return value

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be host:port, e.g. 127.0.0.1:8080")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with https:// (or http:// for local trials)")
        return value.rstrip("/")


class SecuritySettings(_Section):
    # An empty or short secret would make signatures guessable: leave the key out instead.
    trigger_secret: str | None = Field(default=None, min_length=16)
    max_trigger_age: Duration = timedelta(minutes=15)


class PathSettings(_Section):
    playbooks: Path = Path("playbooks")
    templates: Path = Path("templates")
    channels: Path = Path("channels")


class DutyOfficer(_Section):
    name: str = Field(min_length=1)
    notify: list[str] = Field(min_length=1)
    pin: str | None = None


class DeliverySettings(_Section):
    """How hard the dispatcher tries (not in the contract: sensible defaults, tunable)."""

    max_attempts: int = Field(default=8, ge=1, le=100)
    first_retry: Duration = timedelta(seconds=1)  # backoff starts here, doubles, with jitter
    max_retry: Duration = timedelta(minutes=1)
    deadline: Duration = timedelta(minutes=10)  # per delivery, from its first attempt
    lease: Duration = timedelta(seconds=60)  # a crashed daemon's claim expires after this
    # Every daemon looks this often for work whose claim expired (a dead daemon's): a
    # dead daemon's work is taken over within lease + scan_interval.
    scan_interval: Duration = timedelta(seconds=5)
    shutdown_grace: Duration = timedelta(seconds=10)  # in-flight requests may finish
    # A channel that failed this many times in a row is paused (its circuit opens): the
    # waiting deliveries let one probe request through after `breaker_cooldown`.
    breaker_failures: int = Field(default=5, ge=1, le=1000)
    breaker_cooldown: Duration = timedelta(seconds=30)


class ConfirmSettings(_Section):
    """The duty officer's page (not in the contract: sensible defaults, tunable)."""

    undo_window: Duration = timedelta(seconds=5)  # after release, before anything goes out
    pin_attempts: int = Field(default=5, ge=1, le=20)  # wrong PINs before a link locks
    link_valid_after_decision: Duration = timedelta(hours=24)  # status and retraction


class CapSettings(_Section):
    """The CAP feed (not in the contract): who sends, and how long an alert is valid."""

    sender: str | None = None  # default: the host of http.public_url
    sender_name: str | None = None  # e.g. "Feuerwehr Düsseldorf"
    expires_after: Duration = timedelta(hours=6)


class AuditSettings(_Section):
    """How much of refused input is kept (not in the contract: sensible defaults)."""

    # Refused input (junk on the trigger topic too) is kept this long; an alert's own
    # trail is kept for good.
    retention: Duration = timedelta(days=90)
    # Past this many refusals a minute, only every `sample_every`-th is written to the
    # audit trail; all are counted (metric broadcaster_refusals_not_recorded).
    refusals_per_minute: int = Field(default=60, ge=1)
    sample_every: int = Field(default=100, ge=1)


# A frame-ancestors source: `*`, or a scheme and host (optionally a port, a `*.` subdomain
# wildcard). Nothing else may reach the header (a `;` or a quote would change the policy).
_FRAME_SOURCE = re.compile(r"^(\*|https?://(\*\.)?[A-Za-z0-9.-]+(:\d{1,5})?)$")


class WarningPageSettings(_Section):
    """The city's public warning page (not in the contract: sensible defaults)."""

    # After its all-clear, an incident shows "Entwarnung" this long, then drops off.
    all_clear_for: Duration = timedelta(hours=2)
    # A retracted warning shows its correction ("Korrektur") this long.
    correction_for: Duration = timedelta(hours=6)
    # How often an open page asks whether anything changed (a small cached JSON).
    refresh_every: Duration = timedelta(seconds=15)
    # Sites that may frame GET /warnings/banner (CSP frame-ancestors); the banner is
    # read-only public text with one link, so any site by default.
    banner_frame_ancestors: list[str] = Field(default_factory=lambda: ["*"], min_length=1)

    @field_validator("banner_frame_ancestors")
    @classmethod
    def _frame_sources(cls, value: list[str]) -> list[str]:
        for source in value:
            if not _FRAME_SOURCE.match(source):
                raise ValueError(
                    f"{source!r} is not a frame-ancestors source: write * or an origin "
                    "such as https://www.example.org"
                )
        return value


class OidcSettings(_Section):
    """Single sign-on through the city's OIDC provider (web/console/oidc.py)."""

    issuer: str  # e.g. https://login.stadt.example/realms/staff (its discovery document)
    client_id: str = Field(min_length=1)
    client_secret: str = Field(min_length=8)
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile"])
    # The claim that names the console account (the account must exist: its role is
    # given with `broadcaster user add`, never by the provider).
    account_claim: str = "preferred_username"
    label: dict[str, str] = Field(
        default_factory=lambda: {
            "de": "Mit dem Stadt-Konto anmelden",
            "en": "Sign in with the city account",
        }
    )

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        if not value.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise ValueError("must start with https:// (http:// only for 127.0.0.1 or localhost)")
        return value.rstrip("/")


class SelftestSettings(_Section):
    """The weekly self-test (selftest.py): a drill through the whole path."""

    every: Duration = timedelta(days=7)
    playbook: str
    stage: str | None = None  # default: the playbook's first stage
    params: dict[str, Any] = Field(default_factory=dict)  # the drill's params


class ConsoleSettings(_Section):
    """The newsroom console's sign-in (not in the contract: sensible defaults)."""

    # Signs the session cookies. Set it (`${CONSOLE_SESSION_SECRET}`) for sessions that
    # survive a restart and work across daemons; unset, each start makes a random one.
    session_secret: str | None = Field(default=None, min_length=32)
    session_lifetime: Duration = timedelta(hours=8)  # a sign-in lasts this long
    lock_after: int = Field(default=5, ge=1, le=100)  # wrong passwords in a row
    lock_for: Duration = timedelta(minutes=15)
    oidc: OidcSettings | None = None  # unset: passwords only


class DrillSettings(_Section):
    prefix: dict[str, str] = Field(default_factory=lambda: {"de": "ÜBUNG", "en": "EXERCISE"})


def drill_word(prefix: Mapping[str, str], language: str) -> str:
    """The word that marks a drill in `language` (drill.prefix), else English's."""
    return prefix.get(language) or prefix.get("en") or "EXERCISE"


class Settings(_Section):
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    paths: PathSettings = Field(default_factory=PathSettings)
    duty_officers: list[DutyOfficer] = Field(default_factory=list)
    escalate_after: Duration = timedelta(minutes=5)
    drill: DrillSettings = Field(default_factory=DrillSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    confirm: ConfirmSettings = Field(default_factory=ConfirmSettings)
    cap: CapSettings = Field(default_factory=CapSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    warning_page: WarningPageSettings = Field(default_factory=WarningPageSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    selftest: SelftestSettings | None = None  # unset: no scheduled self-test


def config_path(explicit: Path | None = None) -> Path:
    """--config, else $BROADCASTER_CONFIG, else ./broadcaster.yaml."""
    if explicit is not None:
        return explicit
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    return DEFAULT_CONFIG


def read_settings(path: Path) -> tuple[Settings | None, list[Problem]]:
    """Every problem of broadcaster.yaml at once, and the settings when they could be read."""
    shown = display_path(path)
    if not path.is_file():
        return None, [Problem(shown, "", "config file not found", "pass --config FILE")]
    data, problems = load_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return None, [*problems, Problem(shown, "", "must be a mapping of settings")]
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        return None, problems + validation_problems(shown, exc)
    # Settings come back even with unset variables, so `validate` can look at everything else.
    return settings, problems
