"""Prometheus metrics, one registry per daemon (so tests can run several)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from broadcaster.models import Alert, AlertState

# Seconds from receiving a trigger to the provider's confirmation; alerts should take seconds.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)
# Waits inside one delivery: a rate limit's slot, a retry's back-off.
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)
# A duty officer's answer takes seconds to minutes.
OFFICER_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600)
OPEN_STATES: tuple[AlertState, ...] = ("received", "awaiting_confirmation", "sending")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.triggers = Counter(
            "broadcaster_triggers",
            "Triggers received, by result (accepted, duplicate or the refusal's error code)",
            ["result"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "broadcaster_deliveries",
            "Deliveries that reached a final state, by channel and state",
            ["channel", "state"],
            registry=self.registry,
        )
        self.attempts = Counter(
            "broadcaster_delivery_attempts",
            "Provider requests made, by channel and outcome (ok, transient, permanent)",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "broadcaster_trigger_to_delivered_seconds",
            "Seconds from receiving the trigger to the provider confirming the post",
            ["channel"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

        self.first_delivery = Histogram(
            "broadcaster_trigger_to_first_delivery_seconds",
            "Seconds from receiving the trigger to an alert's first confirmed post, by mode",
            ["mode"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.last_delivery = Histogram(
            "broadcaster_trigger_to_last_delivery_seconds",
            "Seconds from receiving the trigger to an alert's last confirmed post, by mode",
            ["mode"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.officer_wait = Histogram(
            "broadcaster_confirmation_wait_seconds",
            "Seconds an alert waited for its release, from the request to the release",
            ["mode"],
            buckets=OFFICER_BUCKETS,
            registry=self.registry,
        )
        self.retry_wait = Histogram(
            "broadcaster_retry_wait_seconds",
            "Back-off before a retry of a delivery, by channel",
            ["channel"],
            buckets=WAIT_BUCKETS,
            registry=self.registry,
        )
        self.rate_limit_wait = Histogram(
            "broadcaster_rate_limit_wait_seconds",
            "Seconds a request waited for its channel's rate limit, by channel",
            ["channel"],
            buckets=WAIT_BUCKETS,
            registry=self.registry,
        )
        self.quota_left = Gauge(
            "broadcaster_provider_quota_remaining",
            "Posts the provider still allows in its window (Instagram's 24 h), by channel",
            ["channel"],
            registry=self.registry,
        )
        self.alerts = Gauge(
            "broadcaster_alerts",
            "Unfinished alerts in the store, by state (received, awaiting_confirmation, sending)",
            ["state"],
            registry=self.registry,
        )
        self.oldest_unfinished = Gauge(
            "broadcaster_oldest_unfinished_alert_age_seconds",
            "Age of the oldest alert that has not finished sending (0 when none)",
            registry=self.registry,
        )
        self.last_trigger = Gauge(
            "broadcaster_last_trigger_timestamp_seconds",
            "Unix time of the last accepted trigger, by mode (drills include self-tests)",
            ["mode"],
            registry=self.registry,
        )
        self.selftest_ok = Gauge(
            "broadcaster_selftest_ok",
            "1 when the last self-test reached every channel set up for drills, else 0",
            registry=self.registry,
        )
        self.selftest_failed = Gauge(
            "broadcaster_selftest_failed_channels",
            "Channels set up for drills that the last self-test did not reach",
            registry=self.registry,
        )
        self.selftest_last = Gauge(
            "broadcaster_selftest_last_run_timestamp_seconds",
            "Unix time of the last self-test run by this daemon",
            registry=self.registry,
        )
        self.breaker = Gauge(
            "broadcaster_channel_circuit",
            "A channel's circuit breaker: 0 closed (sending), 1 half open (probing), 2 open",
            ["channel"],
            registry=self.registry,
        )
        self.refusals_not_recorded = Counter(
            "broadcaster_refusals_not_recorded",
            "Refused inputs past audit.refusals_per_minute that were counted, not written",
            registry=self.registry,
        )
        self.takeovers = Counter(
            "broadcaster_takeovers",
            "Work another daemon left behind and this one took over, by kind",
            ["kind"],
            registry=self.registry,
        )
        self.store_up = Gauge(
            "broadcaster_store_up", "1 while the store answers", registry=self.registry
        )
        self.mqtt_up = Gauge(
            "broadcaster_mqtt_up", "1 while the MQTT session stands", registry=self.registry
        )

    def count_open(self, alerts: Iterable[Alert], now: datetime) -> None:
        """The unfinished alerts' gauges, from the store's alerts in OPEN_STATES."""
        counts = dict.fromkeys(OPEN_STATES, 0)
        oldest: datetime | None = None
        for alert in alerts:
            counts[alert.state] = counts.get(alert.state, 0) + 1
            oldest = alert.created_at if oldest is None else min(oldest, alert.created_at)
        for state, count in counts.items():
            self.alerts.labels(state).set(count)
        self.oldest_unfinished.set((now - oldest).total_seconds() if oldest else 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)
