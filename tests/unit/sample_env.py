"""Values for the `${VARIABLES}` of the sample channel files in docs/channels/: any text,
except where the settings check the value's form (a VAPID key must be a P-256 key)."""

from __future__ import annotations

from broadcaster.vapid import new_key_pair

FORMED = {"VAPID_PRIVATE_KEY": new_key_pair()[0]}


def sample_value(variable: str) -> str:
    return FORMED.get(variable, f"value-of-{variable}")
