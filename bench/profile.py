"""8. Where the daemon's time goes: py-spy (from bench/.peer-venv) samples the daemon
while it handles BENCH_PROFILE_TRIGGERS (default 150) sequential triggers of the latency
measure, on each store. Busy samples only (py-spy leaves out idle waits); every sample is
put in one category by the innermost frame that names one, and the top functions are
listed by own time and by time including what they call.

    uv run python -m bench profile
"""

from __future__ import annotations

import asyncio
import linecache
import re
import signal
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench import latency
from bench.harness import PEER_VENV, DaemonProcess, Rows, env_int, scratch

RATE = 250  # samples per second
TOP = 15
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")
# py-spy's own idle detection misses threads parked in C (aiosqlite's worker in
# SimpleQueue.get, the thread pool, epoll): a sample whose innermost Python line waits
# like this is idle, not busy.
WAITING = re.compile(r"\.(get|select|poll|wait|acquire)\(")

# Innermost match wins; checked in this order for each frame.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("store: SQLite", ("aiosqlite", "sqlite3", "broadcaster/store/sqlite")),
    ("store: Redis", ("redis/", "broadcaster/store/redis")),
    ("store: other", ("broadcaster/store/",)),
    ("pydantic", ("pydantic",)),
    ("MQTT (aiomqtt, paho)", ("aiomqtt", "paho")),
    ("aiohttp", ("aiohttp", "yarl", "multidict")),
    ("logging (structlog)", ("structlog", "logging/")),
    ("templating (Jinja2)", ("jinja2",)),
    ("json", ("json/",)),
    ("asyncio plumbing", ("asyncio/", "selectors", "threading", "concurrent/")),
    ("broadcaster (own code)", ("broadcaster/",)),
)


# Frames every busy sample passes through (start-up, the event loop running a callback):
# listing them "including what they call" says nothing.
ENTRY = (
    "typer/",
    "<frozen runpy>",
    "asyncio/runners.py",
    "asyncio/base_events.py",
    "asyncio/events.py",
    "broadcaster/cli.py",
    "threading.py",
    "broadcaster/__main__.py",
)


def short(path: str) -> str:
    for marker in ("site-packages/", "/lib/python3.11/", "/broadcaster/"):
        if marker in path:
            head = "broadcaster/" if marker == "/broadcaster/" else ""
            return head + path.split(marker, 1)[1]
    return path


def frames(stack: str) -> tuple[list[tuple[str, str]], bool]:
    """The stack's (function, short file) frames, and whether its innermost line waits."""
    found = []
    idle = False
    for part in stack.split(";"):
        match = FRAME.match(part.strip())
        if match:
            found.append((match["func"], short(match["file"])))
            line = linecache.getline(match["file"], int(match["line"] or 0))
            idle = bool(WAITING.search(line))
    return found, idle


def category(stack: list[tuple[str, str]]) -> str:
    for _, file in reversed(stack):
        for name, markers in CATEGORIES:
            if any(m in file for m in markers):
                return name
    return "other"


def summarise(raw: str) -> dict[str, Any]:
    """Shares (percent of busy samples) from py-spy's raw (collapsed) output."""
    total = 0
    waiting = 0
    by_category: Counter[str] = Counter()
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        found, idle = frames(stack)
        if not found:
            continue
        if idle:
            waiting += n
            continue
        total += n
        by_category[category(found)] += n
        own["{} ({})".format(*found[-1])] += n
        for name in {"{} ({})".format(*f) for f in found if not f[1].startswith(ENTRY)}:
            inclusive[name] += n

    def shares(counter: Counter[str], top: int | None = None) -> dict[str, float]:
        return {k: 100 * v / total for k, v in counter.most_common(top)} if total else {}

    return {
        "samples": total,
        "idle_samples": waiting,
        "categories": shares(by_category),
        "functions": shares(own, TOP),
        "inclusive": shares(inclusive, TOP),
    }


def profiler(
    folder: Path, found: dict[str, Any], count: int
) -> Callable[[str, DaemonProcess], Awaitable[Callable[[], Awaitable[None]]]]:
    spy = PEER_VENV / "bin" / "py-spy"
    if not spy.exists():
        raise SystemExit(f"{spy} is missing: scripts/bench.sh installs py-spy there")

    async def start(store: str, process: DaemonProcess) -> Callable[[], Awaitable[None]]:
        out = folder / f"profile-{store}.txt"
        child = await asyncio.create_subprocess_exec(
            str(spy),
            "record",
            "--pid",
            str(process.pid),
            "--rate",
            str(RATE),
            "--format",
            "raw",
            "--output",
            str(out),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await asyncio.sleep(0.5)  # py-spy attaching: it has no signal for being ready

        async def finish() -> None:
            child.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            await child.wait()
            summary = summarise(out.read_text(encoding="utf-8") if out.exists() else "")
            found[store] = {**summary, "triggers": count}

        return finish

    return start


async def measure() -> dict[str, Any]:
    rows = Rows()
    count = env_int("BENCH_PROFILE_TRIGGERS", 150)
    found: dict[str, Any] = {}
    with scratch() as folder:
        await latency.run(rows, folder, count, profiler(folder, found, count), with_floor=False)
    result = rows.to_json()
    # The latency under the profiler is slowed by it: kept apart from the latency rows.
    result["rows"] = []
    result["profiles"] = found
    result["notes"] = [
        f"py-spy at {RATE} Hz on the daemon during {count} sequential "
        "triggers of the latency measure, one run per store."
    ]
    return result
