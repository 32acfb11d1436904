"""Retracting a false alarm: fast, no confirmation, tracked like any delivery.

The alert becomes `retracted` at once, so nothing more of it leaves: deliveries not yet
sent stop. Requests already on their way get their answer (bounded), then every channel
that carried the alert gets the pre-approved correction as a new message of the same
incident (msgType Cancel), threaded under the original where the channel allows; once
the correction is out, the original is deleted where the provider allows it. The
correction is an alert of its own (`<id>:retraction`), so it is retried, tracked and
resumed after a crash by the same dispatcher.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import structlog

from broadcaster.deployment import Deployment
from broadcaster.dispatch import Dispatcher
from broadcaster.events import Events
from broadcaster.messages import AlertContext, TemplateNotApproved, channel_language
from broadcaster.models import Alert, AlertState, AuditEntry, Delivery, Texts
from broadcaster.playbooks import validate_params
from broadcaster.store.base import Store

log = structlog.get_logger(__name__)

RETRACTABLE: frozenset[AlertState] = frozenset(
    {"received", "awaiting_confirmation", "sending", "sent", "partially_failed", "failed"}
)
# Bounded wait for requests already sent to a provider before the correction goes out.
IN_FLIGHT_WAIT = 15.0


@dataclass(frozen=True)
class RetractionResult:
    outcome: Literal["retracted", "cancelled", "not_found", "not_retractable", "refused"]
    alert: Alert | None = None
    correction: Alert | None = None
    detail: str = ""


def correction_id(alert_id: str) -> str:
    return f"{alert_id}:retraction"


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
        before = alert.state
        retracted = await self.store.update_alert(
            alert_id,
            expect=RETRACTABLE,
            state="retracted",
            retraction_reason=reason,
            retracted_by=actor,
            release_at=None,
        )
        if retracted is None:
            return RetractionResult("not_retractable", alert, detail="its state just changed")
        await self.store.audit(
            AuditEntry(
                alert_id=alert_id,
                event="retraction_requested",
                actor=actor,
                detail={"reason": reason, "state_before": before},
            )
        )
        log.warning("alert_retracted", alert_id=alert_id, actor=actor, state_before=before)
        await self.publish(retracted)
        if before in ("received", "awaiting_confirmation"):
            # Nothing has gone out: the retraction simply cancels it.
            return RetractionResult("cancelled", retracted)
        await self.dispatcher.settled(alert_id, IN_FLIGHT_WAIT)
        deliveries = await self.store.get_deliveries(alert_id)
        carried = [d for d in deliveries if d.state in ("delivered", "sending")]
        for d in deliveries:
            if d.state == "pending":  # never sent: stays unsent
                d.state = "retracted"
                d.error = "retracted before sending"
                await self.store.save_delivery(d)
        if not carried:
            await self.publish(retracted)
            return RetractionResult("retracted", retracted, detail="no channel had carried it")
        try:
            correction = await self.correction(retracted, reason, carried)
        except TemplateNotApproved as exc:
            # The false alarm stays stopped; the correction text itself needs approval.
            await self.store.audit(
                AuditEntry(
                    alert_id=alert_id, event="correction_refused", detail={"error": str(exc)}
                )
            )
            return RetractionResult("refused", retracted, detail=f"template_not_approved: {exc}")
        await self.dispatcher.release(correction.id, actor)
        return RetractionResult("retracted", retracted, correction)

    async def correction(self, alert: Alert, reason: str, carried: list[Delivery]) -> Alert:
        playbook = self.deployment.playbooks[alert.scenario]
        params = validate_params(playbook, alert.params)
        context = AlertContext(
            playbook, alert.stage, params, alert.mode, alert.incident, alert.issued_at
        )
        rendered = self.renderer.render_retraction(context, reason)
        correction = Alert(
            id=correction_id(alert.id),
            incident=alert.incident,
            scenario=alert.scenario,
            stage=alert.stage,
            mode=alert.mode,
            msg_type="Cancel",
            issued_at=alert.issued_at,
            params=alert.params,
            texts={
                lang: Texts(title=t.title, short=t.short, long=t.long)
                for lang, t in rendered.texts.items()
            },
            unapproved=sorted(rendered.unapproved),
            retracts=alert.id,
            retraction_reason=reason,
        )
        deliveries = []
        for original in carried:
            config = self.deployment.channels.get(original.channel_id)
            lang = channel_language(playbook, config) if config else original.language
            texts = rendered.texts[lang]
            deliveries.append(
                Delivery(
                    alert_id=correction.id,
                    channel_id=original.channel_id,
                    channel_type=original.channel_type,
                    language=lang,
                    variant=original.variant,
                    title=texts.title,
                    text=texts.variant(original.variant),
                )
            )
        if not await self.store.create_alert(correction, deliveries):
            existing = await self.store.get_alert(correction.id)
            assert existing is not None
            return existing
        await self.store.audit(
            AuditEntry(
                alert_id=correction.id,
                event="correction_created",
                detail={"retracts": alert.id, "channels": [d.channel_id for d in deliveries]},
            )
        )
        return correction

    async def publish(self, alert: Alert) -> None:
        await self.events.alert_changed(alert, await self.store.get_deliveries(alert.id))
