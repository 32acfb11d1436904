"""Receiving triggers: one path for MQTT, HTTP and the command line.

The raw bytes are written to the store's inbox first, before anything can fail, so a
crash after the broker's acknowledgement loses nothing: the entry is claimed by the daemon
that wrote it, and once that claim expires any daemon handles what is left (inbox.py).
Then the contract's checks run in order; every refusal is published on
`<prefix>/errors`, logged, and sends nothing. Handling an entry twice (after a crash in
the middle) carries on with the alert it made instead of calling it a duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import structlog
from jinja2 import TemplateError
from pydantic import ValidationError

from broadcaster.adhoc import (
    AdhocUpdate,
    latest_alert,
    rendered_update,
    text_problems,
)
from broadcaster.confirm import ConfirmationGate
from broadcaster.deployment import Deployment
from broadcaster.dispatch import Dispatcher
from broadcaster.events import Events
from broadcaster.intake import (
    Refusal,
    parse_retraction,
    parse_trigger,
    readable_context,
    resolve,
)
from broadcaster.messages import (
    AlertContext,
    ChannelMessage,
    RenderedAlert,
    TemplateNotApproved,
    cannot_render,
    channel_messages,
)
from broadcaster.metrics import Metrics
from broadcaster.models import Alert, AuditEntry, Delivery, InboxEntry, Texts
from broadcaster.officers import OfficerNotices
from broadcaster.playbooks import ADHOC_STAGE
from broadcaster.refusals import RefusalSampler
from broadcaster.retraction import Retractor
from broadcaster.store.base import Store

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Outcome:
    result: Literal["accepted", "duplicate", "refused"]
    alert: Alert | None = None
    deliveries: list[Delivery] = field(default_factory=list)
    refusal: dict[str, Any] | None = None

    def public(self) -> dict[str, Any]:
        if self.alert is not None:
            return self.alert.public(self.deliveries)
        return self.refusal or {}


class Receiver:
    def __init__(
        self,
        deployment: Deployment,
        store: Store,
        events: Events,
        metrics: Metrics,
        dispatcher: Dispatcher,
        gate: ConfirmationGate,
        retractor: Retractor | None = None,
        officers: OfficerNotices | None = None,
    ) -> None:
        self.deployment = deployment
        self.renderer = deployment.renderer()
        self.store = store
        self.events = events
        self.metrics = metrics
        self.dispatcher = dispatcher
        self.gate = gate
        self.retractor = retractor
        self.officers = officers
        self.sampler = RefusalSampler(deployment.settings.audit, metrics)

    async def receive_trigger(
        self, raw: bytes, source: str, *, owner: str, proposed_by: str | None = None
    ) -> Outcome:
        """`proposed_by`: a proposal from the console, which a second person releases."""
        return await self.take_in("trigger", raw, source, owner, proposed_by)

    async def take_in(
        self,
        kind: Literal["trigger", "update"],
        raw: bytes,
        source: str,
        owner: str,
        proposed_by: str | None,
    ) -> Outcome:
        """Into the inbox first (a crash on the way is taken over), then handled."""
        lease = self.deployment.settings.delivery.lease
        entry = InboxEntry.new(kind, source, raw, owner=owner, lease=lease, proposed_by=proposed_by)
        await self.store.inbox_add(entry)
        return await self.handle(entry)

    async def handle(self, entry: InboxEntry) -> Outcome:
        """Handle one inbox entry, then mark it done (also after a refusal)."""
        try:
            if entry.kind == "retract":
                outcome = await self.retract(entry)
            elif entry.kind == "update":
                outcome = await self.accept_update(entry)
            else:
                outcome = await self.accept(entry)
        except Refusal as refusal:
            outcome = await self.refuse(refusal, entry)
        await self.store.inbox_done(entry.id)
        return outcome

    async def gate_or_release(self, alert: Alert) -> None:
        playbook = self.deployment.playbooks.get(alert.scenario)
        if playbook is None:
            log.error("playbook_missing", alert_id=alert.id, scenario=alert.scenario)
        elif alert.retracts is not None or (
            playbook.confirmation.mode == "none" and alert.proposed_by is None
        ):
            # A proposal is never released at once: someone else must release it.
            await self.dispatcher.release(alert.id)
        else:
            await self.gate.request(alert, playbook)

    async def accept(self, entry: InboxEntry) -> Outcome:
        settings = self.deployment.settings
        trigger = parse_trigger(
            entry.payload,
            secret=settings.security.trigger_secret,
            max_age=settings.security.max_trigger_age,
            now=entry.received_at,
        )
        existing = await self.store.get_alert(trigger.id)
        if existing is not None:
            return await self.resumed_or_duplicate(existing, entry)
        playbook, stage, params = resolve(
            trigger, self.deployment.playbooks, self.deployment.aside("playbook")
        )
        context = AlertContext(
            playbook,
            stage,
            params,
            trigger.mode,
            trigger.incident or trigger.id,
            trigger.issued_at,
        )
        try:
            rendered = self.renderer.render(context)
        except TemplateNotApproved as exc:
            raise Refusal("template_not_approved", str(exc), trigger.id) from None
        except (TemplateError, OSError) as exc:
            # The contract has no code of its own for this; the detail names file and error.
            detail = cannot_render(exc, self.deployment.templates, self.deployment.show)
            raise Refusal("template_not_approved", detail, trigger.id) from None
        alert = Alert(
            id=trigger.id,
            incident=context.incident,
            scenario=playbook.id,
            stage=stage,
            mode=trigger.mode,
            msg_type=playbook.stages[stage].msg_type,
            issued_at=trigger.issued_at,
            created_at=entry.received_at,
            params=trigger.params,
            texts=alert_texts(rendered),
            unapproved=sorted(rendered.unapproved),
            inbox_id=entry.id,
            proposed_by=entry.proposed_by,
        )
        messages = channel_messages(playbook, self.deployment.channels, rendered)
        return await self.create(alert, messages, entry)

    async def receive_update(
        self, update: AdhocUpdate, source: str, *, owner: str, proposed_by: str
    ) -> Outcome:
        """An ad-hoc update from the console (adhoc.py): always a proposal."""
        raw = update.model_dump_json().encode()
        return await self.take_in("update", raw, source, owner, proposed_by)

    async def accept_update(self, entry: InboxEntry) -> Outcome:
        try:
            update = AdhocUpdate.model_validate_json(entry.payload)
        except ValidationError as exc:
            raise Refusal("invalid_trigger", f"not an ad-hoc update: {exc}", None) from None
        existing = await self.store.get_alert(update.id)
        if existing is not None:
            return await self.resumed_or_duplicate(existing, entry)
        if entry.proposed_by is None:  # the console always names its proposer
            raise Refusal("invalid_trigger", "an ad-hoc update needs its proposer", update.id)
        base = latest_alert(await self.store.incident_alerts(update.incident))
        if base is None:
            raise Refusal("invalid_trigger", f"no incident {update.incident}", update.id)
        playbook = self.deployment.playbooks.get(base.scenario)
        if playbook is None:
            why = f"the playbook {base.scenario} is not loaded"
            raise Refusal("unknown_scenario", why, update.id)
        channels = self.deployment.channels
        problems = text_problems(update, playbook, channels)
        if problems:
            detail = "; ".join(f"{field}: {why}" for field, why in problems.items())
            raise Refusal("invalid_params", detail, update.id)
        rendered = rendered_update(update, playbook, channels, base.mode, self.renderer.prefix)
        messages = channel_messages(playbook, channels, rendered)
        too_long = [f"{m.channel_id}: {m.measurement}" for m in messages if not m.measurement.fits]
        if too_long:
            raise Refusal("invalid_params", "too long for " + "; ".join(too_long), update.id)
        alert = Alert(
            id=update.id,
            incident=base.incident,
            scenario=base.scenario,
            stage=ADHOC_STAGE,
            mode=base.mode,
            msg_type="Update",
            issued_at=entry.received_at,
            created_at=entry.received_at,
            params=base.params,
            texts=alert_texts(rendered),
            inbox_id=entry.id,
            proposed_by=entry.proposed_by,
        )
        return await self.create(alert, messages, entry)

    async def create(
        self, alert: Alert, messages: list[ChannelMessage], entry: InboxEntry
    ) -> Outcome:
        """Store a new alert with one delivery per channel message, then gate or release it."""
        deliveries = [
            Delivery(
                alert_id=alert.id,
                channel_id=m.channel_id,
                channel_type=m.channel_type,
                language=m.language,
                variant=m.variant,
                title=m.title,
                text=m.text,
            )
            for m in messages
        ]
        for m in messages:
            if not m.measurement.fits:  # validate prevents this for params within max_length
                log.warning(
                    "text_over_limit",
                    alert_id=alert.id,
                    channel=m.channel_id,
                    length=str(m.measurement),
                )
        if not await self.store.create_alert(alert, deliveries, audit=[received(alert, entry)]):
            existing = await self.store.get_alert(alert.id)
            assert existing is not None  # create_alert said it exists
            return await self.resumed_or_duplicate(existing, entry)
        self.metrics.triggers.labels("accepted").inc()
        self.metrics.last_trigger.labels(alert.mode).set_to_current_time()
        log.info(
            "trigger_accepted",
            alert_id=alert.id,
            scenario=alert.scenario,
            stage=alert.stage,
            mode=alert.mode,
            source=entry.source,
        )
        self.events.changed(alert.id, self.store)
        await self.gate_or_release(alert)
        # As created: whoever shows it reads the state it has by then (the fan-out has
        # begun, and reading it here would only make the fan-out wait for the store).
        return Outcome("accepted", alert, deliveries)

    async def retract(self, entry: InboxEntry) -> Outcome:
        """A signed retraction from MQTT: no confirmation, speed matters most."""
        settings = self.deployment.settings
        request = parse_retraction(
            entry.payload,
            secret=settings.security.trigger_secret,
            max_age=settings.security.max_trigger_age,
            now=entry.received_at,
        )
        if self.retractor is None:
            raise Refusal("invalid_trigger", "retraction is not available here", request.alert_id)
        result = await self.retractor.retract(request.alert_id, request.reason, entry.source)
        if result.outcome == "not_found":
            raise Refusal("invalid_trigger", result.detail, request.alert_id)
        if result.outcome == "not_retractable":
            if (
                entry.attempts > 1
                and result.alert is not None
                and result.alert.state == "retracted"
            ):
                # This very request retracted it before a crash: it is done, not refused.
                return Outcome(
                    "accepted", result.alert, await self.store.get_deliveries(result.alert.id)
                )
            raise Refusal("invalid_trigger", f"cannot retract: {result.detail}", request.alert_id)
        assert result.alert is not None
        return Outcome("accepted", result.alert, await self.store.get_deliveries(result.alert.id))

    async def resumed_or_duplicate(self, existing: Alert, entry: InboxEntry) -> Outcome:
        """The alert this very entry made before a crash carries on; any other is a
        duplicate."""
        if existing.inbox_id != entry.id:
            return await self.duplicate(existing, entry)
        log.info("alert_resumed_from_inbox", alert_id=existing.id, entry_id=entry.id)
        trail = await self.store.audit_trail(existing.id)
        if not any(e.event == "trigger_received" for e in trail):
            await self.audit_received(existing, entry)  # the crash came before it
        if existing.state == "received":
            await self.gate_or_release(existing)
        current = await self.store.get_alert(existing.id) or existing
        return Outcome("accepted", current, await self.store.get_deliveries(existing.id))

    async def audit_received(self, alert: Alert, entry: InboxEntry) -> None:
        await self.store.audit(received(alert, entry))

    async def duplicate(self, existing: Alert, entry: InboxEntry) -> Outcome:
        refusal = Refusal(
            "duplicate",
            f"alert {existing.id} exists already (state {existing.state})",
            existing.id,
        )
        await self.refuse(refusal, entry)
        return Outcome("duplicate", existing, await self.store.get_deliveries(existing.id))

    async def refuse(self, refusal: Refusal, entry: InboxEntry) -> Outcome:
        """Published and logged always. Kept in the audit trail (a duplicate in its alert's
        trail, any other with the refused input), and a refused live trigger goes to the
        duty officers at once: the warning did not go out."""
        public = refusal.public(entry.received_at)
        context = readable_context(entry.payload)
        self.metrics.triggers.labels(refusal.error).inc()
        log.warning("trigger_refused", source=entry.source, **public, **context)
        if refusal.error == "duplicate":
            record = AuditEntry(
                alert_id=refusal.trigger_id, event="duplicate", actor=entry.source, detail=public
            )
            await self.store.audit(record)
        elif self.sampler.keep():
            detail = {**public, "source": entry.source, **context}
            await self.store.audit(
                AuditEntry(alert_id=None, event="refused", actor=entry.source, detail=detail)
            )
        await self.events.refused(public)
        if self.officers is not None:
            self.officers.refused(public, context, key=entry.id)
        return Outcome("refused", refusal=public)


def alert_texts(rendered: RenderedAlert) -> dict[str, Texts]:
    return {
        lang: Texts(title=t.title, short=t.short, long=t.long, instruction=t.instruction)
        for lang, t in rendered.texts.items()
    }


def received(alert: Alert, entry: InboxEntry) -> AuditEntry:
    """The audit entry of an accepted trigger."""
    return AuditEntry(
        alert_id=alert.id,
        event="trigger_received",
        actor=entry.source,
        detail={
            "scenario": alert.scenario,
            "stage": alert.stage,
            "mode": alert.mode,
            "incident": alert.incident,
        }
        | ({"proposed_by": alert.proposed_by} if alert.proposed_by else {}),
    )
