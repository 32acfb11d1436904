"""The confirmation gate: the duty officer's link, escalation, timeouts, the undo window.

`confirmation.mode: none` releases at once (the receiver does that). `required` and
`auto` park the alert in `awaiting_confirmation` and send the first duty officer a
single-use, random, expiring link through their internal channels; if nobody acts
within `escalate_after`, the next officer gets a link of their own. When the playbook's
timeout passes, `on_timeout` decides (abort: `expired`; send: released by "timeout");
`auto` releases after the timeout unless someone rejected.

A release first waits out a short undo window (`confirm.undo_window`), in which nothing
has left the building and a false alarm costs nothing to stop. Timers are recomputed
from the stored alert, so a restarted daemon carries on where the old one stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

import structlog

from broadcaster.channels.base import OutgoingMessage
from broadcaster.config import Settings
from broadcaster.events import Events
from broadcaster.models import Alert, AuditEntry, ConfirmToken, utcnow
from broadcaster.playbooks import Playbook
from broadcaster.store.base import AlertChange, Store
from broadcaster.text_hygiene import person_key

log = structlog.get_logger(__name__)

Notify = Callable[[str, OutgoingMessage], Awaitable[bool]]
Release = Callable[[str, str], Awaitable[bool]]


class ConfirmationGate(Protocol):
    async def request(self, alert: Alert, playbook: Playbook) -> None:
        """Ask for a release of `alert` (state `received`); must not block for long."""


def token_hash(secret_part: str) -> str:
    return hashlib.sha256(secret_part.encode()).hexdigest()


def split_token(token: str) -> tuple[str, str]:
    """`<alert id>.<random>`: the alert id locates the alert, the random part proves the link."""
    alert_id, dot, secret_part = token.rpartition(".")
    return (alert_id, secret_part) if dot and alert_id and secret_part else ("", "")


@dataclass(frozen=True)
class Link:
    """A confirm link opened by someone: the alert and whose link it is."""

    alert: Alert
    token: ConfirmToken

    @property
    def decided(self) -> bool:
        return self.alert.state != "awaiting_confirmation" or self.alert.release_at is not None


Outcome = Literal[
    "release_pending",
    "released",
    "undone",
    "rejected",
    "wrong_pin",
    "locked",
    "too_late",
    "expired",
    "own_proposal",  # the proposer may not release their own proposal (four eyes)
]


def proposed_by(alert: Alert, person: str) -> bool:
    """Whether `person` proposed `alert` in the console, and so may not release it."""
    return alert.proposed_by is not None and person_key(alert.proposed_by) == person_key(person)


def asked_up_to(alert: Alert) -> int:
    """The index of the last duty officer who was given a link; -1 for none yet."""
    return max((t.officer_index for t in alert.confirm_tokens), default=-1)


def _pin_attempt(token: str, step: int, limit: int) -> AlertChange:
    """Take (+1) or give back (-1) one PIN attempt of a link; None when it is locked."""

    def change(alert: Alert) -> dict[str, object] | None:
        tokens = []
        for t in alert.confirm_tokens:
            if t.hash == token:
                if step > 0 and t.pin_failures >= limit:
                    return None
                t = t.model_copy(update={"pin_failures": max(0, t.pin_failures + step)})
            tokens.append(t)
        return {"confirm_tokens": tokens}

    return change


class ConfirmDesk:
    def __init__(
        self,
        settings: Settings,
        playbooks: dict[str, Playbook],
        store: Store,
        events: Events,
        notify: Notify,
        release: Release,
    ) -> None:
        self.settings = settings
        self.playbooks = playbooks
        self.store = store
        self.events = events
        self.notify = notify
        self.release = release
        self.wakeups: dict[str, asyncio.Event] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.asking: set[asyncio.Task[None]] = set()

    # -- the gate --------------------------------------------------------------------
    async def request(self, alert: Alert, playbook: Playbook) -> None:
        parked = await self.store.update_alert(
            alert.id,
            expect={"received"},
            state="awaiting_confirmation",
            confirmation_requested_at=utcnow(),
        )
        if parked is None:
            return
        await self.store.audit(
            AuditEntry(
                alert_id=alert.id,
                event="confirmation_requested",
                detail={
                    "mode": playbook.confirmation.mode,
                    "timeout_seconds": playbook.confirmation.timeout.total_seconds(),
                    "on_timeout": playbook.confirmation.on_timeout,
                },
            )
        )
        self.publish(parked)
        self.watch(alert.id)  # its first tick asks the first duty officer

    def watching(self, alert_id: str) -> bool:
        task = self.tasks.get(alert_id)
        return task is not None and not task.done()

    def expires_at(self, alert: Alert) -> datetime:
        start = alert.confirmation_requested_at or alert.created_at
        return start + self.playbooks[alert.scenario].confirmation.timeout

    async def ask(self, alert: Alert, index: int) -> str | None:
        """Give duty officer `index` a link of their own and send it (in the background);
        returns the link. Every daemon watches every waiting alert, so the link is added
        only when officer `index` is the next one to ask: one link, one notification."""
        officer = self.settings.duty_officers[index]
        secret_part = secrets.token_urlsafe(32)
        token = f"{alert.id}.{secret_part}"
        entry = ConfirmToken(
            hash=token_hash(secret_part),
            officer=officer.name,
            officer_index=index,
            issued_at=utcnow(),
            expires_at=self.expires_at(alert),
        )

        def next_link(current: Alert) -> dict[str, object] | None:
            if current.state != "awaiting_confirmation" or asked_up_to(current) != index - 1:
                return None
            return {"confirm_tokens": [*current.confirm_tokens, entry]}

        updated = await self.store.modify_alert(alert.id, next_link)
        if updated is None:
            return None
        url = f"{self.settings.http.public_url}/confirm/{token}"
        await self.store.audit(
            AuditEntry(
                alert_id=alert.id,
                event="officer_asked",
                detail={
                    "officer": officer.name,
                    "channels": officer.notify,
                    "expires_at": entry.expires_at.isoformat(),
                },
            )
        )
        message = self.request_message(updated, url, entry.expires_at)
        # In the background: a slow SMS gateway must not hold up the timers or a trigger.
        task = asyncio.create_task(
            self.tell(officer.name, officer.notify, message), name=f"ask:{alert.id}:{index}"
        )
        self.asking.add(task)
        task.add_done_callback(self.asking.discard)
        return url

    async def tell(self, officer: str, channels: list[str], message: OutgoingMessage) -> None:
        for channel_id in channels:
            if not await self.notify(channel_id, message):
                await self.store.audit(
                    AuditEntry(
                        alert_id=message.alert_id,
                        event="officer_notification_failed",
                        detail={"officer": officer, "channel": channel_id},
                    )
                )

    def request_message(self, alert: Alert, url: str, expires_at: datetime) -> OutgoingMessage:
        playbook = self.playbooks[alert.scenario]
        lang = playbook.primary_language
        where = next(
            (str(alert.params[k]) for k in ("location", "area", "district") if alert.params.get(k)),
            "",
        )
        # In the fire brigade's own time zone, as its trigger wrote it.
        until = expires_at.astimezone(alert.issued_at.tzinfo).strftime("%H:%M")
        if lang == "de":
            text = (
                f"Freigabe nötig: {playbook.name[lang]} ({alert.stage})"
                f"{', ' + where if where else ''}. Prüfen und freigeben oder ablehnen: {url}"
                f" (gültig bis {until} Uhr)"
            )
        else:
            text = (
                f"Release needed: {playbook.name[lang]} ({alert.stage})"
                f"{', ' + where if where else ''}. Check, then release or reject: {url}"
                f" (valid until {until})"
            )
        title = alert.texts[lang].title if lang in alert.texts else playbook.name[lang]
        if alert.mode == "drill":
            prefix = self.settings.drill.prefix.get(lang, "EXERCISE")
            text = f"{prefix}: {text}"
            title = title if title.startswith(prefix) else f"{prefix}: {title}"
        return OutgoingMessage(
            kind="confirmation_request",
            alert_id=alert.id,
            incident=alert.incident,
            scenario=alert.scenario,
            stage=alert.stage,
            mode=alert.mode,
            language=lang,
            title=title,
            text=text,
            idempotency_key=f"{alert.id}:confirm:{len(alert.confirm_tokens)}",
            confirm_url=url,
            expires_at=expires_at,
        )

    # -- timers ----------------------------------------------------------------------
    def watch(self, alert_id: str) -> None:
        if alert_id in self.tasks and not self.tasks[alert_id].done():
            self.wake(alert_id)
            return
        self.wakeups[alert_id] = asyncio.Event()
        task = asyncio.create_task(self.timers(alert_id), name=f"confirm:{alert_id}")
        self.tasks[alert_id] = task
        task.add_done_callback(lambda _: self.forget(alert_id, task))

    def forget(self, alert_id: str, task: asyncio.Task[None]) -> None:
        if self.tasks.get(alert_id) is task:
            del self.tasks[alert_id]
            self.wakeups.pop(alert_id, None)

    def wake(self, alert_id: str) -> None:
        if alert_id in self.wakeups:
            self.wakeups[alert_id].set()

    async def timers(self, alert_id: str) -> None:
        try:
            while await self.tick(alert_id):
                pass
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("confirmation_timer_failed", alert_id=alert_id)

    async def tick(self, alert_id: str) -> bool:
        """Act on what is due for one alert; False when there is nothing more to watch."""
        alert = await self.store.get_alert(alert_id)
        if alert is None or alert.state != "awaiting_confirmation":
            return False
        playbook = self.playbooks[alert.scenario]
        now = utcnow()
        if alert.release_at is not None:
            if now >= alert.release_at:
                await self.release(alert.id, alert.confirmed_by or "duty officer")
                return False
            return await self.sleep(alert_id, alert.release_at - now)
        timeout_at = self.expires_at(alert)
        if now >= timeout_at:
            await self.timed_out(alert, playbook)
            return False
        due = [timeout_at]
        asked = asked_up_to(alert)
        if asked < 0 and self.settings.duty_officers:
            await self.ask(alert, 0)
            return True
        if asked + 1 < len(self.settings.duty_officers):
            last = max(t.issued_at for t in alert.confirm_tokens)
            escalate_at = last + self.settings.escalate_after
            if now >= escalate_at:
                log.info("confirmation_escalated", alert_id=alert.id, officer_index=asked + 1)
                await self.ask(alert, asked + 1)
                return True
            due.append(escalate_at)
        return await self.sleep(alert_id, min(due) - now)

    async def sleep(self, alert_id: str, wait: timedelta) -> bool:
        """Until the next thing is due; at most a scan interval, so that what another
        daemon decided (a release whose undo window ends, a rejection) is seen here too."""
        event = self.wakeups.setdefault(alert_id, asyncio.Event())
        wait = min(wait, self.settings.delivery.scan_interval)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), max(wait.total_seconds(), 0.0) + 0.01)
        event.clear()
        return True

    async def timed_out(self, alert: Alert, playbook: Playbook) -> None:
        """Several daemons may time it out at once: only the one whose change lands acts."""
        # A console proposal has been seen by one person only: it never goes out unseen.
        sends = alert.proposed_by is None and (
            playbook.confirmation.mode == "auto" or playbook.confirmation.on_timeout == "send"
        )
        detail = {"mode": playbook.confirmation.mode, "then": "send" if sends else "abort"}
        if sends:
            if await self.release(alert.id, "timeout"):
                await self.store.audit(
                    AuditEntry(alert_id=alert.id, event="confirmation_timeout", detail=detail)
                )
            return
        expired = await self.store.update_alert(
            alert.id, expect={"awaiting_confirmation"}, state="expired", decided_by="timeout"
        )
        if expired is not None:
            await self.store.audit(
                AuditEntry(alert_id=alert.id, event="confirmation_timeout", detail=detail)
            )
            await self.store.audit(AuditEntry(alert_id=alert.id, event="expired"))
            self.publish(expired)

    # -- the officer's actions ---------------------------------------------------------
    async def open(self, token: str) -> Link | None:
        """The alert and link behind a token; None for a forged or unknown one."""
        alert_id, secret_part = split_token(token)
        if not alert_id:
            return None
        alert = await self.store.get_alert(alert_id)
        if alert is None:
            return None
        digest = token_hash(secret_part)
        for entry in alert.confirm_tokens:
            if hmac.compare_digest(entry.hash, digest):
                return Link(alert, entry)
        return None

    def usable(self, link: Link, now: datetime | None = None) -> bool:
        """Within its time: until expiry for a decision, a day longer to follow it."""
        now = now or utcnow()
        if link.alert.state == "expired":
            return False
        if link.decided:
            return now < link.token.expires_at + self.settings.confirm.link_valid_after_decision
        return now < link.token.expires_at

    def pin_of(self, link: Link) -> str | None:
        officers = self.settings.duty_officers
        index = link.token.officer_index
        return officers[index].pin if index < len(officers) else None

    def locked(self, link: Link) -> bool:
        return link.token.pin_failures >= self.settings.confirm.pin_attempts

    async def check_pin(self, link: Link, pin: str | None) -> Outcome | None:
        """None when the PIN is right or none is needed; else wrong_pin or locked.

        Every guess first takes one of the link's attempts in the store, atomically, and
        only then is it compared: fifty guesses at once get at most `pin_attempts`
        evaluated, whichever daemon they reach. A right PIN gives its attempt back."""
        expected = self.pin_of(link)
        if expected is None:
            return None
        limit = self.settings.confirm.pin_attempts
        reserved = await self.store.modify_alert(
            link.alert.id, _pin_attempt(link.token.hash, +1, limit)
        )
        if reserved is None:
            return "locked"
        if pin is not None and hmac.compare_digest(pin.strip().encode(), expected.encode()):
            await self.store.modify_alert(link.alert.id, _pin_attempt(link.token.hash, -1, limit))
            return None
        failures = next(
            t.pin_failures for t in reserved.confirm_tokens if t.hash == link.token.hash
        )
        await self.store.audit(
            AuditEntry(
                alert_id=link.alert.id,
                event="wrong_pin",
                actor=link.token.officer,
                detail={"failures": failures},
            )
        )
        if failures >= limit:
            await self.store.audit(
                AuditEntry(alert_id=link.alert.id, event="link_locked", actor=link.token.officer)
            )
            return "locked"
        return "wrong_pin"

    async def grant_undo(self, link: Link) -> str:
        """A secret that lets this link STOP its release without the PIN again."""
        grant = secrets.token_urlsafe(32)
        digest = token_hash(grant)

        def keep(alert: Alert) -> dict[str, object]:
            tokens = [
                t.model_copy(update={"undo_grant": digest}) if t.hash == link.token.hash else t
                for t in alert.confirm_tokens
            ]
            return {"confirm_tokens": tokens}

        await self.store.modify_alert(link.alert.id, keep)
        return grant

    def granted(self, link: Link, grant: str | None) -> bool:
        expected = link.token.undo_grant
        return (
            grant is not None
            and expected is not None
            and hmac.compare_digest(token_hash(grant), expected)
        )

    async def decide(
        self, link: Link, action: str, pin: str | None, *, grant: str | None = None
    ) -> Outcome:
        """release (after the undo window), undo, or reject, by the link's officer."""
        if not self.usable(link):
            return "expired"
        if action == "release" and proposed_by(link.alert, link.token.officer):
            return "own_proposal"
        if not (action == "undo" and self.granted(link, grant)):
            refused = await self.check_pin(link, pin)  # every action changes something
            if refused is not None:
                return refused
        return await self.act(link.alert.id, action, link.token.officer)

    async def decide_as(self, alert: Alert, action: str, person: str) -> Outcome:
        """release, undo or reject by a signed-in console account (`person`: its linked
        duty officer, else its name): the session stands in for the link and its PIN."""
        if alert.state != "awaiting_confirmation":
            return "too_late"
        if action == "release" and proposed_by(alert, person):
            return "own_proposal"
        return await self.act(alert.id, action, person)

    async def act(self, alert_id: str, action: str, officer: str) -> Outcome:
        """An officer's decision, once they have proved who they are."""
        if action == "release":
            release_at = utcnow() + self.settings.confirm.undo_window
            requested = AuditEntry(
                alert_id=alert_id,
                event="release_requested",
                actor=officer,
                detail={"release_at": release_at.isoformat()},
            )

            def request_release(current: Alert) -> dict[str, object] | None:
                # Only the first release: a second officer's tap changes nothing.
                if current.state != "awaiting_confirmation" or current.release_at is not None:
                    return None
                return {"release_at": release_at, "confirmed_by": officer, "decided_by": officer}

            alert = await self.store.modify_alert(alert_id, request_release, audit=[requested])
            if alert is None:
                return "too_late"
            self.publish(alert)
            if self.settings.confirm.undo_window <= timedelta(0):
                await self.release(alert.id, officer)
                return "released"
            self.watch(alert.id)
            return "release_pending"
        if action == "undo":

            def undo(current: Alert) -> dict[str, object] | None:
                if current.state != "awaiting_confirmation" or current.release_at is None:
                    return None
                # A grant stops one release: the next release needs the PIN again.
                tokens = [t.model_copy(update={"undo_grant": None}) for t in current.confirm_tokens]
                return {
                    "release_at": None,
                    "confirmed_by": None,
                    "decided_by": None,
                    "confirm_tokens": tokens,
                }

            alert = await self.store.modify_alert(alert_id, undo)
            if alert is None:
                return "too_late"
            await self.store.audit(
                AuditEntry(alert_id=alert.id, event="release_undone", actor=officer)
            )
            self.publish(alert)
            self.watch(alert.id)
            return "undone"
        if action == "reject":
            alert = await self.store.update_alert(
                alert_id,
                expect={"awaiting_confirmation"},
                state="rejected",
                decided_by=officer,
            )
            if alert is None:
                return "too_late"
            await self.store.audit(AuditEntry(alert_id=alert.id, event="rejected", actor=officer))
            self.publish(alert)
            self.wake(alert.id)
            return "rejected"
        raise ValueError(f"unknown action {action!r}")

    def publish(self, alert: Alert) -> None:
        self.events.changed(alert.id, self.store)

    async def close(self) -> None:
        tasks = [*self.tasks.values(), *self.asking]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
