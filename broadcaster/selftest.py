"""The weekly self-test, as public alerting systems test weekly: a drill through the whole
path (a signed trigger into the receiver, the fan-out, the providers) to the channels
set up for drills (`drill: send`, test accounts), then a look at which answered.

The drill goes through the playbook's confirmation like any other: the duty officers get
their ÜBUNG request (so their own channels are tested too), and the self-test releases it
at once itself, since a drill reaches only test accounts and nobody must be woken to let
it out. A channel that did not answer sets the metrics, tells the duty officers, and is
in the audit trail (`selftest`, without an alert, so that the schedule finds it again
after a restart). `selftest.every` runs it on a schedule, on one daemon at a time (a
lease in the store); `broadcaster selftest` asks a running daemon to run it now.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import structlog

from broadcaster.config import SelftestSettings
from broadcaster.deployment import Deployment
from broadcaster.dispatch import Dispatcher
from broadcaster.metrics import Metrics
from broadcaster.models import AuditEntry, utcnow
from broadcaster.officers import OfficerNotices
from broadcaster.receiving import Receiver
from broadcaster.store.base import Store
from broadcaster.triggering import build_trigger

log = structlog.get_logger(__name__)

EVENT = "selftest"
LEASE = "selftest"
CHECK_EVERY = 60.0  # seconds between looks at the schedule


@dataclass
class SelftestResult:
    alert_id: str
    answered: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # channel -> why
    refused: str | None = None  # the trigger was refused (a broken playbook, ...)

    @property
    def ok(self) -> bool:
        return self.refused is None and not self.failed

    def public(self) -> dict[str, object]:
        return {
            "alert_id": self.alert_id,
            "ok": self.ok,
            "answered": self.answered,
            "failed": self.failed,
            "refused": self.refused,
        }


class Selftest:
    def __init__(
        self,
        deployment: Deployment,
        receiver: Receiver,
        dispatcher: Dispatcher,
        store: Store,
        metrics: Metrics,
        officers: OfficerNotices,
        *,
        owner: str,
    ) -> None:
        self.deployment = deployment
        self.receiver = receiver
        self.dispatcher = dispatcher
        self.store = store
        self.metrics = metrics
        self.officers = officers
        self.owner = owner

    @property
    def settings(self) -> SelftestSettings | None:
        return self.deployment.settings.selftest

    async def run(self, settings: SelftestSettings, by: str = "selftest") -> SelftestResult:
        playbook = self.deployment.playbooks.get(settings.playbook)
        alert_id = f"SELFTEST-{uuid.uuid4().hex[:12]}"
        result = SelftestResult(alert_id)
        if playbook is None:
            result.refused = f"the playbook {settings.playbook} is not loaded"
            return await self.conclude(result, by)
        trigger = build_trigger(
            playbook.id,
            "drill",
            settings.params,
            alert_id=alert_id,
            stage=settings.stage or playbook.default_stage,
            secret=self.deployment.settings.security.trigger_secret,
        )
        raw = json.dumps(trigger, ensure_ascii=False).encode()
        outcome = await self.receiver.receive_trigger(raw, f"selftest:{by}", owner=self.owner)
        if outcome.result != "accepted" or outcome.alert is None:
            result.refused = str((outcome.refusal or {}).get("detail", outcome.result))
            return await self.conclude(result, by)
        await self.dispatcher.release(alert_id, by="selftest")  # nobody needs waking for it
        deadline = self.deployment.settings.delivery.deadline + timedelta(seconds=30)
        sending = self.dispatcher.by_alert.get(alert_id)  # this daemon's fan-out of it
        if sending is not None:
            # Shielded: the self-test giving up must not stop the drill's own sending.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(sending), deadline.total_seconds())
        for d in await self.store.get_deliveries(alert_id):
            if d.state == "dry_run":
                continue  # not set up for drills: never reached, by design
            if d.state == "delivered":
                result.answered.append(d.channel_id)
            else:
                result.failed[d.channel_id] = d.error or f"no answer ({d.state})"
        return await self.conclude(result, by)

    async def conclude(self, result: SelftestResult, by: str) -> SelftestResult:
        self.metrics.selftest_ok.set(int(result.ok))
        self.metrics.selftest_failed.set(len(result.failed))
        self.metrics.selftest_last.set_to_current_time()
        detail = result.public()
        await self.store.audit(AuditEntry(event=EVENT, actor=by, detail=detail))
        if not result.ok:
            failed = result.failed or {"(trigger)": result.refused or "refused"}
            self.officers.selftest_failed(result.alert_id, failed)
            log.error("selftest_failed", **detail)
        else:
            log.info("selftest_ok", **detail)
        return result

    async def schedule(self) -> None:
        """Run when due (the last run's time from the audit trail), on one daemon."""
        while True:
            settings = self.settings
            if settings is not None:
                now = utcnow()
                runs = [e for e in await self.store.audit_tail(200) if e.event == EVENT]
                last = max((e.at for e in runs), default=None)
                if last is None or now - last >= settings.every:
                    until = now + self.deployment.settings.delivery.deadline + timedelta(minutes=1)
                    if await self.store.take_lease(LEASE, self.owner, until, now) == self.owner:
                        try:
                            await self.run(settings)
                        finally:
                            await self.store.drop_lease(LEASE, self.owner)
            await asyncio.sleep(CHECK_EVERY)
