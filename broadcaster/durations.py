"""Durations as the files write them: `30s`, `5m`, `1h`, `1h30m`, `250ms`, `90d`."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_PART = re.compile(r"(\d+)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"expected a duration such as 30s, 5m or 1h, got {value!r}")
    text = str(value).strip()
    if isinstance(value, int) or text.isdigit():
        raise ValueError(f"{text!r} has no unit: write {text}s, {text}m or {text}h")
    parts = _PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"expected a duration such as 30s, 5m or 1h, got {text!r}")
    return timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in parts))


def format_duration(value: timedelta) -> str:
    if value.total_seconds() < 1:
        return f"{round(value.total_seconds() * 1000)}ms"
    seconds = int(value.total_seconds())
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out += f"{seconds // size}{unit}"
            seconds %= size
    return out or "0s"


Duration = Annotated[
    timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)
]
