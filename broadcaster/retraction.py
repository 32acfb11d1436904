"""Retracting a false alarm: fast, no confirmation, always through, tracked like any alert.

An alert still waiting for its duty officer is simply cancelled. One that went out gets a
correction, an alert of its own (`<id>:retraction`, CAP msgType Cancel), sent to every
channel that carried the original, threaded under it where the channel allows; once the
correction is out on a channel, the original is deleted there where the provider allows.

The order makes it crash-safe and never leaves a false alarm up:

1. the correction's texts are built first: from the approved retraction templates, or,
   when they cannot be used, from the built-in correction (emergency.py). A retraction
   that cannot be built changes nothing and the alert stays retractable.
2. the correction is stored (state `received`) with a delivery per channel that carries
   or is sending the original;
3. the original becomes `retracted`: nothing more of it goes out, requests already on
   their way get their answer (bounded wait);
4. correction deliveries to channels whose original never went out are set aside, and
   the correction is released to the dispatcher.

A daemon that dies after step 2 leaves a correction in `received`: any daemon's takeover
scan resumes it at step 3 (`resume`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import structlog
from jinja2 import TemplateError

from broadcaster.channels.base import Channel, ChannelError
from broadcaster.channels.kinds import KINDS
from broadcaster.deployment import Deployment
from broadcaster.dispatch import Dispatcher
from broadcaster.emergency import emergency_correction
from broadcaster.events import Events
from broadcaster.messages import AlertContext, TemplateNotApproved
from broadcaster.models import (
    Alert,
    AlertState,
    AuditEntry,
    Delivery,
    ManualTask,
    Receipt,
    Texts,
    utcnow,
)
from broadcaster.playbooks import ParamError, validate_params
from broadcaster.retries import RetryPolicy
from broadcaster.store.base import Store

log = structlog.get_logger(__name__)

RETRACTABLE: frozenset[AlertState] = frozenset(
    {"received", "awaiting_confirmation", "sending", "sent", "partially_failed", "failed"}
)
UNSENT: frozenset[AlertState] = frozenset({"received", "awaiting_confirmation"})
# Bounded wait for requests already sent to a provider before the correction goes out.
IN_FLIGHT_WAIT = 15.0
# Channels whose original post may exist: they get the correction.
CARRIED = frozenset({"delivered", "sending"})
# (the correction, the retracted original's delivery, its task) -> tell the officers.
TellTask = Callable[[Alert, Delivery, ManualTask], None]


def was_carried(delivery: Delivery) -> bool:
    """The original may have reached someone on this channel: delivered or on its way, or,
    on a channel with several recipients (SMS, e-mail, WhatsApp), failed after it reached
    some of them (one undeliverable number fails the delivery, not the others' messages)."""
    if delivery.state in CARRIED:
        return True
    reached = delivery.recipients.delivered if delivery.recipients is not None else 0
    return delivery.state == "failed" and reached > 0


@dataclass(frozen=True)
class RetractionResult:
    outcome: Literal["retracted", "cancelled", "not_found", "not_retractable"]
    alert: Alert | None = None
    correction: Alert | None = None
    detail: str = ""


def correction_id(alert_id: str) -> str:
    return f"{alert_id}:retraction"


class CorrectionFollowUp:
    """The dispatcher's hooks for a correction: reply under the original, then delete it."""

    def __init__(self, store: Store, events: Events, retry: RetryPolicy) -> None:
        self.store = store
        self.events = events
        self.retry = retry
        # Tells the duty officers of a manual task (OfficerNotices.manual_task), once wired.
        self.tell: TellTask | None = None

    async def original(self, correction: Alert, channel_id: str) -> Delivery | None:
        if correction.retracts is None:
            return None
        deliveries = await self.store.get_deliveries(correction.retracts)
        return next((d for d in deliveries if d.channel_id == channel_id), None)

    async def reply_to(self, correction: Alert, channel_id: str) -> Receipt | None:
        original = await self.original(correction, channel_id)
        return original.receipt if original is not None else None

    async def delivered(self, correction: Alert, delivery: Delivery, channel: Channel) -> None:
        """After the correction is out (so a reply has its parent), delete the false
        alarm where the provider allows it; either way the original counts as retracted.
        A public post that stays up (Instagram cannot delete; a delete failed) gets a
        manual task in the same write, and the duty officers are told."""
        original = await self.original(correction, delivery.channel_id)
        if (
            original is None
            or original.state not in ("delivered", "failed")
            or not was_carried(original)
        ):
            return
        deleted = False
        why = "the provider's API cannot delete a post"
        if channel.can_delete and original.receipt is not None:
            receipt = original.receipt
            try:
                async for attempt in self.retry.retrying():
                    with attempt:
                        await channel.delete(receipt)
                deleted = True
            except ChannelError as exc:
                why = exc.message
                await self.store.audit(
                    AuditEntry(
                        alert_id=original.alert_id,
                        event="delete_failed",
                        detail={"channel": original.channel_id, "error": exc.message},
                    )
                )
        original.state = "retracted"
        audit = [
            AuditEntry(
                alert_id=original.alert_id,
                event="retracted",
                detail={
                    "channel": original.channel_id,
                    "deleted": deleted,
                    "correction": delivery.remote_id,
                },
            )
        ]
        task = None if deleted else manual_deletion(original)
        if task is not None:
            original.manual_task = task
            audit.append(
                AuditEntry(
                    alert_id=original.alert_id,
                    event="manual_task",
                    detail={"channel": original.channel_id, "task": task.task, "why": why},
                )
            )
        await self.store.save_delivery(original, audit=audit)
        self.events.changed(original.alert_id, self.store)
        if task is not None:
            log.warning(
                "manual_task",
                alert_id=original.alert_id,
                channel=original.channel_id,
                task=task.task,
            )
            if self.tell is not None:
                self.tell(correction, original, task)


def manual_deletion(original: Delivery) -> ManualTask | None:
    """The task of deleting a retracted post by hand, for kinds whose posts stay up unless
    a person deletes them; None for messages nobody can take back (SMS, e-mail)."""
    if (
        original.channel_type not in KINDS
        or not KINDS[original.channel_type].capabilities.deleted_by_hand
    ):
        return None
    if original.url or original.remote_id:
        where = original.url or f"with id {original.remote_id}"
        return ManualTask(task=f"delete post {where} by hand", url=original.url)
    # Published, but its address is not known (a lost answer): a person must find it.
    return ManualTask(
        task=f"find and delete the post of alert {original.alert_id} on "
        f"{original.channel_id} by hand (its address is not known)"
    )


class Retractor:
    def __init__(
        self, deployment: Deployment, store: Store, events: Events, dispatcher: Dispatcher
    ) -> None:
        self.deployment = deployment
        self.renderer = deployment.renderer()
        self.store = store
        self.events = events
        self.dispatcher = dispatcher

    async def retract(self, alert_id: str, reason: str, actor: str) -> RetractionResult:
        alert = await self.store.get_alert(alert_id)
        if alert is None or alert.retracts is not None:
            return RetractionResult("not_found", detail=f"no alert {alert_id!r}")
        if alert.state not in RETRACTABLE:
            return RetractionResult(
                "not_retractable", alert, detail=f"alert {alert_id} is {alert.state}"
            )
        if alert.state in UNSENT:
            return await self.cancel(alert, reason, actor)
        carried = [d for d in await self.store.get_deliveries(alert_id) if was_carried(d)]
        if not carried:
            retracted = await self.mark_retracted(alert, reason, actor)
            if retracted is None:
                return RetractionResult("not_retractable", alert, detail="its state just changed")
            # A fan-out claimed just before the mark may be on its way (no claim is taken
            # after it): stop ours, and look again. What went out gets its correction.
            await self.dispatcher.settled(alert_id, IN_FLIGHT_WAIT)
            deliveries = await self.store.get_deliveries(alert_id)
            carried = [d for d in deliveries if was_carried(d)]
            if not carried:
                await self.set_aside_unsent(alert_id)
                return RetractionResult("retracted", retracted, detail="no channel had carried it")
        correction, fallback = self.build(alert, reason, actor)
        if await self.store.create_alert(correction, correction_deliveries(correction, carried)):
            await self.store.audit(
                AuditEntry(
                    alert_id=correction.id,
                    event="correction_created",
                    actor=actor,
                    detail={
                        "retracts": alert.id,
                        "channels": [d.channel_id for d in carried],
                        **({"built_in_text": fallback} if fallback else {}),
                    },
                )
            )
            if fallback:
                log.error("correction_built_in_text", alert_id=alert.id, why=fallback)
        else:  # a twin request, or this one before a crash, stored it first
            correction = await self.store.get_alert(correction.id) or correction
        return await self.resume(correction, detail=fallback or "")

    async def cancel(self, alert: Alert, reason: str, actor: str) -> RetractionResult:
        """Nothing has gone out: the retraction simply cancels the alert."""
        retracted = await self.mark_retracted(alert, reason, actor, expect=UNSENT)
        if retracted is None:
            return await self.retract(alert.id, reason, actor)  # it was released meanwhile
        return RetractionResult("cancelled", retracted)

    async def resume(self, correction: Alert, *, detail: str = "") -> RetractionResult:
        """Steps 3 and 4: after the request, or after a crash in between."""
        assert correction.retracts is not None
        original = await self.store.get_alert(correction.retracts)
        if original is None:
            return RetractionResult("not_found", detail=f"no alert {correction.retracts!r}")
        actor = correction.retracted_by or "system"
        retracted = await self.mark_retracted(original, correction.retraction_reason or "", actor)
        await self.dispatcher.settled(original.id, IN_FLIGHT_WAIT)
        await self.set_aside_unsent(original.id)
        # What went out meanwhile gets a correction too; what never went out needs none.
        originals = {d.channel_id: d for d in await self.store.get_deliveries(original.id)}
        planned = {d.channel_id: d for d in await self.store.get_deliveries(correction.id)}
        late = [d for cid, d in originals.items() if was_carried(d) and cid not in planned]
        for d in correction_deliveries(correction, late):
            await self.store.save_delivery(d)
        for cid, d in planned.items():
            if d.state == "pending" and not was_carried(originals.get(cid, d)):
                await self.store.save_delivery(
                    d.model_copy(
                        update={
                            "state": "retracted",
                            "error": "nothing to correct: the original never went out here",
                        }
                    )
                )
        await self.dispatcher.release(correction.id, actor)
        current = await self.store.get_alert(correction.id) or correction
        return RetractionResult("retracted", retracted or original, current, detail)

    async def mark_retracted(
        self,
        alert: Alert,
        reason: str,
        actor: str,
        expect: frozenset[AlertState] = RETRACTABLE,
    ) -> Alert | None:
        retracted = await self.store.update_alert(
            alert.id,
            expect=expect,
            state="retracted",
            retraction_reason=reason,
            retracted_by=actor,
            release_at=None,
        )
        if retracted is None:
            return None
        await self.store.audit(
            AuditEntry(
                alert_id=alert.id,
                event="retraction_requested",
                actor=actor,
                detail={"reason": reason, "state_before": alert.state},
            )
        )
        log.warning("alert_retracted", alert_id=alert.id, actor=actor, state_before=alert.state)
        self.publish(retracted)
        return retracted

    async def set_aside_unsent(self, alert_id: str) -> None:
        """Deliveries of the retracted alert not yet sent stay unsent. Their claim is
        cleared too: a daemon about to send one can no longer record it as `sending`, so
        it stops (LostClaim) instead of posting the false alarm."""
        for d in await self.store.get_deliveries(alert_id):
            if d.state == "pending":
                await self.store.save_delivery(
                    d.model_copy(
                        update={
                            "state": "retracted",
                            "error": "retracted before sending",
                            "claimed_by": None,
                            "claimed_until": None,
                        }
                    )
                )

    def build(self, alert: Alert, reason: str, actor: str) -> tuple[Alert, str | None]:
        """The correction alert, and why the built-in text was used (None: templates)."""
        at = utcnow().astimezone(alert.issued_at.tzinfo)  # the correction's own time
        texts, unapproved, fallback = self.texts(alert, reason, at)
        correction = Alert(
            id=correction_id(alert.id),
            incident=alert.incident,
            scenario=alert.scenario,
            stage=alert.stage,
            mode=alert.mode,
            msg_type="Cancel",
            issued_at=at,
            params=alert.params,
            texts=texts,
            unapproved=unapproved,
            retracts=alert.id,
            retraction_reason=reason,
            retracted_by=actor,
        )
        return correction, fallback

    def texts(
        self, alert: Alert, reason: str, at: datetime
    ) -> tuple[dict[str, Texts], list[str], str | None]:
        """The approved retraction templates' texts; the built-in ones when they cannot
        be used, with the reason why (naming the template)."""
        playbook = self.deployment.playbooks.get(alert.scenario)
        if playbook is None:
            why = f"playbook {alert.scenario} is not loaded"
        else:
            try:
                params = validate_params(playbook, alert.params)
                context = AlertContext(
                    playbook, alert.stage, params, alert.mode, alert.incident, at
                )
                rendered = self.renderer.render_retraction(context, reason)
            except TemplateNotApproved as exc:
                why = f"retraction templates not approved: {exc}"
            except (TemplateError, OSError, ParamError) as exc:
                why = f"retraction templates cannot be rendered: {exc}"
            else:
                texts = {
                    lang: Texts(title=t.title, short=t.short, long=t.long)
                    for lang, t in rendered.texts.items()
                }
                return texts, sorted(rendered.unapproved), None
        prefix = None
        texts = {}
        for lang, original in alert.texts.items():
            if alert.mode == "drill":
                prefix = self.renderer.prefix(lang)
            title = original.title.removeprefix(f"{prefix}: ") if prefix else original.title
            built = emergency_correction(lang, title, reason, at, prefix)
            texts[lang] = Texts(title=built.title, short=built.short, long=built.long)
        return texts, [], why

    def publish(self, alert: Alert) -> None:
        self.events.changed(alert.id, self.store)


def correction_deliveries(correction: Alert, originals: list[Delivery]) -> list[Delivery]:
    """One correction delivery per original: same channel, language and variant."""
    deliveries = []
    for original in originals:
        texts = correction.texts.get(original.language) or next(iter(correction.texts.values()))
        deliveries.append(
            Delivery(
                alert_id=correction.id,
                channel_id=original.channel_id,
                channel_type=original.channel_type,
                language=original.language,
                variant=original.variant,
                title=texts.title,
                text=texts.short if original.variant == "short" else texts.long,
            )
        )
    return deliveries
