"""Prometheus metrics, one registry per daemon (so tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

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

    def render(self) -> bytes:
        return generate_latest(self.registry)
