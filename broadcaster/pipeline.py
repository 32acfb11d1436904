"""One place that builds the path a trigger travels (ARCHITECTURE.md, "one path"):
receiver -> confirmation gate -> dispatcher -> channels, with retraction beside it.

The daemon, `broadcaster drill` and the tests all build it here, so none wires the parts
by hand. Resources (the store, the channels' connection pools) are opened and closed by
whoever made them, not here.
"""

from __future__ import annotations

from dataclasses import dataclass

from broadcaster.channels.base import Channel
from broadcaster.confirm import ConfirmationGate, ConfirmDesk
from broadcaster.deployment import Deployment
from broadcaster.dispatch import Dispatcher
from broadcaster.events import Events
from broadcaster.metrics import Metrics
from broadcaster.officers import OfficerNotices
from broadcaster.receiving import Receiver
from broadcaster.retraction import CorrectionFollowUp, Retractor
from broadcaster.retries import RetryPolicy
from broadcaster.store.base import Store


@dataclass(frozen=True)
class Pipeline:
    deployment: Deployment
    store: Store
    events: Events
    metrics: Metrics
    dispatcher: Dispatcher
    desk: ConfirmDesk
    retractor: Retractor
    receiver: Receiver
    officers: OfficerNotices


def build_pipeline(
    deployment: Deployment,
    store: Store,
    channels: dict[str, Channel],
    *,
    owner: str,
    dry_run: bool = False,
    gate: ConfirmationGate | None = None,
    events: Events | None = None,
    metrics: Metrics | None = None,
) -> Pipeline:
    """The parts, wired; `gate` replaces the duty officer's confirmation (drills)."""
    settings = deployment.settings
    events = events or Events()
    metrics = metrics or Metrics()
    corrections = CorrectionFollowUp(store, events, RetryPolicy(settings.delivery))
    dispatcher = Dispatcher(
        store,
        events,
        metrics,
        channels,
        deployment.channels,  # the live mapping: a reload changes it in place
        settings.delivery,
        owner=owner,
        corrections=corrections,
        dry_run=dry_run,
    )
    # Duty officers hear through the dispatcher: the same retries, limits and breakers.
    desk = ConfirmDesk(
        settings, deployment.playbooks, store, events, dispatcher.notify, dispatcher.release
    )
    retractor = Retractor(deployment, store, events, dispatcher)
    officers = OfficerNotices(
        settings,
        deployment.channels,
        dispatcher.notify,
        store,
        owner=owner,
        language=deployment.primary_language,
    )
    corrections.tell = officers.manual_task  # a post to delete by hand: tell the officers
    receiver = Receiver(
        deployment, store, events, metrics, dispatcher, gate or desk, retractor, officers
    )
    return Pipeline(
        deployment, store, events, metrics, dispatcher, desk, retractor, receiver, officers
    )
