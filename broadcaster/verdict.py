"""`broadcaster trigger` and `broadcaster retract`: publish, then wait for the daemon's
verdict, so that nobody believes a warning went out when it was refused.

The verdict is what the daemon publishes (contract section 7): the alert's retained state
on `<prefix>/alerts/<id>` changing (accepted; for a retraction: `retracted`), or an entry
on `<prefix>/errors` with the same id (refused, `duplicate` included). Subscriptions stand
before the publish, and a retained state that was there before (an earlier alert with the
same id) is not taken for the answer. Exit codes: 0 accepted, 2 refused, 3 no verdict in
time (the daemon is down, or slow).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Literal

from broadcaster.config import MqttSettings
from broadcaster.mqtt import Topics, make_client

EXIT_CODES = {"accepted": 0, "refused": 2, "no_verdict": 3}


@dataclass(frozen=True)
class Verdict:
    outcome: Literal["accepted", "refused", "no_verdict"]
    alert: dict[str, Any] | None = None
    refusal: dict[str, Any] | None = None
    daemon: str | None = None  # what <prefix>/daemon last said (online/offline)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]

    def describe(self, subject: str, wait: float) -> str:
        """The verdict the way a person reads it, one line."""
        if self.outcome == "refused" and self.refusal is not None:
            return f"REFUSED {subject}: {self.refusal['error']}: {self.refusal['detail']}"
        if self.outcome == "accepted" and self.alert is not None:
            a = self.alert
            mode = "DRILL" if a.get("mode") == "drill" else "LIVE"
            return f"ACCEPTED {a['id']} ({a['scenario']}/{a['stage']}, {mode}): {a['state']}"
        state = f" (the daemon says {self.daemon})" if self.daemon else " (no daemon online)"
        return (
            f"NO VERDICT for {subject} within {wait:g}s{state}: it was published; "
            f"check with `broadcaster status {subject}`"
        )


async def publish_and_wait(
    settings: MqttSettings,
    kind: Literal["trigger", "retract"],
    subject_id: str,
    payload: str,
    wait: float,
) -> Verdict:
    topics = Topics(settings.topic_prefix)
    daemon: str | None = None
    async with make_client(settings) as client:
        await client.subscribe(
            [(topics.alert(subject_id), 1), (topics.errors, 1), (topics.daemon, 1)]
        )
        await client.publish(
            topics.retract if kind == "retract" else topics.trigger, payload, qos=1
        )

        # The alert's state as it was before (retained): an alert that existed already can
        # only answer with a refusal (a duplicate, or a retraction of a retracted alert).
        before: dict[str, Any] | None = None

        def answers(data: dict[str, Any]) -> bool:
            if kind == "trigger":
                return before is None or data.get("created_at") != before.get("created_at")
            return data.get("state") == "retracted" and (before or {}).get("state") != "retracted"

        async def verdict() -> Verdict:
            nonlocal daemon, before
            async for message in client.messages:
                body = message.payload if isinstance(message.payload, bytes) else b""
                topic = str(message.topic)
                if topic == topics.daemon:
                    daemon = body.decode(errors="replace")
                    continue
                try:
                    data = json.loads(body)
                except ValueError:
                    continue
                if topic == topics.errors and data.get("trigger_id") == subject_id:
                    return Verdict("refused", refusal=data, daemon=daemon)
                if topic != topics.alert(subject_id):
                    continue
                if message.retain:
                    before = data  # there before we published: not the answer
                elif answers(data):
                    return Verdict("accepted", alert=data, daemon=daemon)
            raise AssertionError("unreachable: the message stream ends only with an error")

        try:
            return await asyncio.wait_for(verdict(), wait)
        except TimeoutError:
            return Verdict("no_verdict", daemon=daemon)
