"""The domain's records: trigger, alert, delivery, receipt, audit entry (contract sections 6, 7).

The store keeps these; MQTT and HTTP show `Alert.public(...)`. An alert carries the texts
rendered when it was accepted, so a crash or a later template change never alters what
goes out.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from broadcaster.text_hygiene import public_text_problem

AlertState = Literal[
    "received",
    "awaiting_confirmation",
    "sending",
    "sent",
    "partially_failed",
    "failed",
    "rejected",
    "expired",
    "retracted",
]
DeliveryState = Literal["pending", "sending", "delivered", "failed", "dry_run", "retracted"]
Mode = Literal["live", "drill"]
ErrorCode = Literal[
    "invalid_json",
    "invalid_trigger",
    "unknown_scenario",
    "unknown_stage",
    "invalid_params",
    "bad_signature",
    "stale",
    "template_not_approved",
    "duplicate",
]

# A delivery in one of these states is never attempted again.
FINAL_DELIVERY_STATES: frozenset[str] = frozenset({"delivered", "failed", "dry_run", "retracted"})
# An alert in one of these states sends nothing more.
FINAL_ALERT_STATES: frozenset[str] = frozenset(
    {"sent", "partially_failed", "failed", "rejected", "expired", "retracted"}
)
ID_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"
REASON_MAX_LENGTH = 120  # a retraction's reason must still fit the smallest channel
# An alert in one of these states has been released: it may have reached the public.
RELEASED_STATES: frozenset[str] = frozenset({"sending", "sent", "partially_failed", "failed"})


def reason_problem(reason: str) -> str | None:
    """Why `reason` cannot be a retraction's reason (it goes into public text), or None.
    The one rule for every entry: MQTT, the HTTP API and the confirm page."""
    if not reason.strip():
        return "must not be blank"
    if len(reason.strip()) > REASON_MAX_LENGTH:
        return f"one line of at most {REASON_MAX_LENGTH} characters"
    return public_text_problem(reason)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Trigger(BaseModel):
    """A request from the fire brigade's dispatch system, after the schema check."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=ID_PATTERN)
    scenario: str = Field(min_length=1, max_length=64)
    stage: str | None = Field(default=None, min_length=1, max_length=64)
    incident: str | None = Field(default=None, pattern=ID_PATTERN)
    mode: Mode
    issued_at: AwareDatetime
    params: dict[str, Any] = Field(default_factory=dict)
    signature: str | None = None


class RetractRequest(BaseModel):
    """A retraction of a false alarm from MQTT (signed like a trigger)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alert_id: str = Field(pattern=ID_PATTERN)
    issued_at: AwareDatetime
    reason: str = Field(min_length=1, max_length=REASON_MAX_LENGTH)
    signature: str | None = None


class Texts(BaseModel):
    """One language's rendered texts of an alert."""

    model_config = ConfigDict(frozen=True)

    title: str
    short: str
    long: str
    instruction: str | None = None


class Recipients(BaseModel):
    """Outcome per recipient, for channels that send to several (SMS, e-mail)."""

    total: int
    delivered: int = 0
    failed: int = 0


class Receipt(BaseModel):
    """What a provider answered for a post: enough to reply under it or delete it later."""

    model_config = ConfigDict(frozen=True)

    remote_id: str | None = None
    url: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    recipients: Recipients | None = None


class StatusReport(BaseModel):
    """A provider's report on one recipient's message, after it accepted it: a Twilio
    status callback, a WhatsApp status webhook. Kept as reported; reports may come twice
    and out of order, so readers rank them (receipts.py)."""

    model_config = ConfigDict(frozen=True)

    channel_id: str
    message_id: str  # the provider's id of one recipient's message (SMS sid, wamid)
    status: str  # the provider's word: sent, delivered, read, undelivered, failed, ...
    error: str | None = None  # the provider's error code and text, when it gave one
    at: datetime = Field(default_factory=utcnow)


class PushSubscription(BaseModel):
    """A browser's Web Push subscription, made on the city's warning page."""

    model_config = ConfigDict(frozen=True)

    id: str  # derived from the endpoint: the same browser subscribing twice is one
    endpoint: str
    p256dh: str  # the browser's public key (base64url), for aes128gcm
    auth: str  # the browser's auth secret (base64url)
    language: str | None = None  # the page's language when it subscribed
    # Made on the page's drill view: a test device, which gets drills (on a webpush
    # channel set `drill: send`) and never live warnings.
    drill: bool = False
    created_at: datetime = Field(default_factory=utcnow)


Role = Literal["viewer", "editor", "officer", "admin"]
# Ordered: each role may do everything the roles before it may.
ROLES: tuple[Role, ...] = ("viewer", "editor", "officer", "admin")
ACCOUNT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"


class Account(BaseModel):
    """A person who signs in to the newsroom console (`broadcaster user add`)."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(pattern=ACCOUNT_NAME_PATTERN)
    role: Role
    password_hash: str  # argon2id, as argon2-cffi encodes it; never the password
    disabled: bool = False
    failed_logins: int = 0  # wrong passwords in a row since the last sign-in or lock
    locked_until: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    officer: str | None = None  # the duty officer in broadcaster.yaml this person is
    # Part of every session cookie: a password reset or a disable bumps it, which ends
    # every session signed in before.
    session_version: int = 0

    def locked(self, now: datetime) -> bool:
        return self.locked_until is not None and self.locked_until > now

    def may(self, role: Role) -> bool:
        """Whether this account's role includes `role`."""
        return ROLES.index(self.role) >= ROLES.index(role)

    @property
    def person(self) -> str:
        """Who acts, for four eyes: the linked duty officer, else the account. Two
        accounts linked to one officer are one person."""
        return self.officer or self.name


class ManualTask(BaseModel):
    """Work a person must do by hand on a channel, e.g. delete a retracted post that the
    provider's API cannot delete (Instagram). Open until someone marks it done."""

    task: str  # "delete post https://www.instagram.com/p/... by hand"
    url: str | None = None  # the post to act on
    created_at: datetime = Field(default_factory=utcnow)
    done_at: datetime | None = None
    done_by: str | None = None

    def public(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "url": self.url,
            "created_at": self.created_at.isoformat(),
            "done_at": self.done_at.isoformat() if self.done_at else None,
            "done_by": self.done_by,
        }


class Delivery(BaseModel):
    """One alert on one public channel: the exact text, and what happened to it."""

    alert_id: str
    channel_id: str
    channel_type: str
    language: str
    variant: Literal["short", "long"]
    title: str
    text: str
    state: DeliveryState = "pending"
    attempts: int = 0
    remote_id: str | None = None
    url: str | None = None
    error: str | None = None
    delivered_at: datetime | None = None
    receipt: Receipt | None = None
    recipients: Recipients | None = None
    # A claim with a lease: one daemon sends a delivery at a time, and a crashed
    # daemon's claim expires so another can resume it.
    claimed_by: str | None = None
    claimed_until: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)
    # What a person must still do here (a retracted post to delete by hand).
    manual_task: ManualTask | None = None

    @property
    def idempotency_key(self) -> str:
        """Stable per (alert, channel): a retry after a crash reuses it."""
        return f"{self.alert_id}:{self.channel_id}"

    @property
    def final(self) -> bool:
        return self.state in FINAL_DELIVERY_STATES

    def public(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "state": self.state,
            "attempts": self.attempts,
            "remote_id": self.remote_id,
            "url": self.url,
            "error": self.error,
            "delivered_at": self.delivered_at.isoformat() if self.delivered_at else None,
        }
        if self.recipients is not None:
            out["recipients"] = self.recipients.model_dump()
        # The provider's own line about it (Instagram: posts left in 24 h).
        detail = self.receipt.data.get("detail") if self.receipt is not None else None
        if isinstance(detail, str) and detail:
            out["detail"] = detail
        if self.manual_task is not None:
            out["manual_task"] = self.manual_task.public()
        return out


class ConfirmToken(BaseModel):
    """One duty officer's confirm link. Only the hash of its secret part is kept."""

    hash: str  # sha256 hex of the random part of the token
    officer: str
    officer_index: int
    issued_at: datetime
    expires_at: datetime
    pin_failures: int = 0
    # sha256 of the grant that lets this link's officer STOP a release within the undo
    # window without typing the PIN again (the release itself proved it).
    undo_grant: str | None = None


class Alert(BaseModel):
    """An accepted trigger: what to say, in which languages, and where it stands."""

    id: str
    incident: str
    scenario: str
    stage: str
    mode: Mode
    state: AlertState = "received"
    msg_type: Literal["Alert", "Update", "Cancel"] = "Alert"
    issued_at: datetime
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    params: dict[str, Any] = Field(default_factory=dict)  # JSON-safe, as the trigger sent them
    texts: dict[str, Texts] = Field(default_factory=dict)
    unapproved: list[str] = Field(default_factory=list)  # drills only
    confirmed_by: str | None = None
    released_at: datetime | None = None
    retraction_reason: str | None = None
    retracted_by: str | None = None
    retracts: str | None = None  # on a correction: the id of the alert it retracts
    # A proposal from the console: the person who proposed it (the account's linked duty
    # officer, else the account), who may never release it (four eyes).
    proposed_by: str | None = None
    # The inbox entry this alert came from: handling that entry again after a crash
    # resumes the alert instead of calling it a duplicate.
    inbox_id: str | None = None
    # Confirmation: the links handed out, and a release waiting out its undo window.
    confirm_tokens: list[ConfirmToken] = Field(default_factory=list)
    confirmation_requested_at: datetime | None = None
    release_at: datetime | None = None
    decided_by: str | None = None  # who released or rejected (or "timeout")

    def public(self, deliveries: list[Delivery]) -> dict[str, Any]:
        """The alert JSON of contract section 7."""
        return {
            "id": self.id,
            "incident": self.incident,
            "scenario": self.scenario,
            "stage": self.stage,
            "mode": self.mode,
            "state": self.state,
            "created_at": self.created_at.isoformat(),
            "confirmed_by": self.confirmed_by,
            "deliveries": {d.channel_id: d.public() for d in deliveries},
        }


class ChannelState(BaseModel):
    """A channel's circuit as the daemon that last changed it saw it (breaker.py)."""

    circuit: Literal["closed", "open", "half_open"]
    failures: int  # transient failures in a row
    changed_at: datetime = Field(default_factory=utcnow)
    by: str  # the daemon (process id)


class AuditEntry(BaseModel):
    """One line of the append-only audit trail: who did what, when."""

    model_config = ConfigDict(frozen=True)

    at: datetime = Field(default_factory=utcnow)
    alert_id: str | None = None
    event: str  # trigger_received, refused, confirmation_requested, released, delivered, ...
    actor: str = "system"
    detail: dict[str, Any] = Field(default_factory=dict)


class InboxEntry(BaseModel):
    """A raw trigger or retraction as it arrived, kept until it has been handled.

    Written first thing on receipt, so a crash right after the broker's acknowledgement
    loses nothing: the daemon that holds it, or another one once its claim has expired,
    handles what is still here.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    kind: Literal["trigger", "retract", "update"]
    source: str  # mqtt | http | cli | console
    payload: bytes
    received_at: datetime
    proposed_by: str | None = None  # a console proposal's proposer (Alert.proposed_by)
    # Who handles it, until when (a dead daemon's entries are taken over), and how often
    # it was taken: an entry that keeps failing is given up instead of retried forever.
    claimed_by: str | None = None
    claimed_until: datetime | None = None
    attempts: int = 0

    @classmethod
    def new(
        cls,
        kind: Literal["trigger", "retract", "update"],
        source: str,
        payload: bytes,
        *,
        owner: str | None = None,
        lease: timedelta | None = None,
        proposed_by: str | None = None,
    ) -> InboxEntry:
        now = utcnow()
        return cls(
            id=uuid.uuid4().hex,
            kind=kind,
            source=source,
            payload=payload,
            received_at=now,
            proposed_by=proposed_by,
            claimed_by=owner,
            claimed_until=now + lease if owner is not None and lease is not None else None,
        )
