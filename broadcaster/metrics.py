"""Prometheus metrics, one registry per daemon (so tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Seconds from receiving a trigger to the provider's confirmation; alerts should take seconds.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)


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

    def render(self) -> bytes:
        return generate_latest(self.registry)
