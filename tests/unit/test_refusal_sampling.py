"""Junk on the trigger topic: every refusal counted, only a sample written past a rate."""

from __future__ import annotations

from broadcaster.config import AuditSettings
from broadcaster.metrics import Metrics
from broadcaster.refusals import RefusalSampler


def test_past_the_rate_only_every_nth_refusal_is_written() -> None:
    metrics = Metrics()
    sampler = RefusalSampler(AuditSettings(refusals_per_minute=60, sample_every=100), metrics)
    kept = sum(sampler.keep() for _ in range(541 * 60))  # 541 refusals a second for a minute
    # 60 in full, then one in a hundred of the other 32,400.
    assert kept == 60 + (541 * 60 - 60) // 100
    not_recorded = metrics.refusals_not_recorded._value.get()
    assert not_recorded == 541 * 60 - kept


def test_below_the_rate_every_refusal_is_written() -> None:
    sampler = RefusalSampler(AuditSettings(refusals_per_minute=60), Metrics())
    assert all(sampler.keep() for _ in range(60))
