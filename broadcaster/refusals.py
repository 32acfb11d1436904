"""Keeping refused input in the audit trail without letting junk fill the store.

Anyone who can publish to the trigger topic can send junk at hundreds of messages a
second. Every refusal is counted and published, but past `audit.refusals_per_minute`
only every `audit.sample_every`-th is written to the audit trail (the rest counted in
broadcaster_refusals_not_recorded), and refused input is pruned after `audit.retention`.
"""

from __future__ import annotations

import time
from typing import Any

from broadcaster.config import AuditSettings
from broadcaster.metrics import Metrics
from broadcaster.store.base import Store

WINDOW = 60.0  # seconds


class RefusalSampler:
    def __init__(self, settings: AuditSettings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.window_start = time.monotonic()
        self.in_window = 0

    def keep(self) -> bool:
        """Whether this refusal goes to the audit trail."""
        now = time.monotonic()
        if now - self.window_start >= WINDOW:
            self.window_start, self.in_window = now, 0
        self.in_window += 1
        over = self.in_window - self.settings.refusals_per_minute
        if over <= 0 or over % self.settings.sample_every == 0:
            return True
        self.metrics.refusals_not_recorded.inc()
        return False


async def recent_refusals(store: Store, limit: int = 50) -> list[dict[str, Any]]:
    """Refused input, newest first (`GET /api/refusals`, `broadcaster status --refused`):
    the error JSON of `<prefix>/errors` with where it came from and, when readable, its
    scenario and mode."""
    # The entries of no alert are nearly all refusals; the others (notices) are few.
    entries = await store.audit_tail(limit * 2 + 20)
    return [dict(e.detail) for e in entries if e.event == "refused"][:limit]
