"""3. Fan-out: N channels (10 and 50) each answering in 200 ms; trigger -> last answer and
trigger -> alert `sent` on MQTT, on SQLite and Redis. The floor: the bare subscriber's
aiohttp gather. The peer: Apprise sending the same text to the same N endpoints as
`json://` URLs, in async and in sync mode (bench/peer_apprise.py in bench/.peer-venv).

    uv run python -m bench fanout
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from bench.harness import (
    PEER_VENV,
    REPO,
    TOPIC,
    Provider,
    Rows,
    StateWatcher,
    collect,
    daemon,
    deploy,
    env_int,
    fixed,
    floor,
    publisher,
    repeats,
    run_id,
    selected_stores,
    services,
    serving,
    trigger_bytes,
    watching,
    webhooks,
)

SIZES = (10, 50)
ANSWER = 0.2  # seconds each provider takes


async def rounds(
    url: str, provider: Provider, n: int, count: int, watcher: StateWatcher | None
) -> list[tuple[float, float]]:
    """Per round: seconds to the last answer, and to `sent` on MQTT (0 without a watcher)."""
    found = []
    async with publisher(url) as client:
        for _ in range(count):
            alert_id = f"N{n}-{run_id()}"
            payload = trigger_bytes(alert_id)
            start = time.perf_counter()
            await client.publish(TOPIC, payload, qos=1)
            await provider.wait_answered(alert_id, n)
            last = max(h.answered for h in provider.by_alert[alert_id]) - start
            sent = (await watcher.wait_state(alert_id, "sent") - start) if watcher else 0.0
            found.append((last, sent))
    return found


async def apprise(provider: Provider, mode: str, n: int, count: int) -> tuple[list[float], str]:
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"{python} is missing: scripts/bench.sh installs Apprise there")
    host = provider.base_url.removeprefix("http://")
    urls = [f"json://{host}/hook/{i}" for i in range(n)]
    child = await asyncio.create_subprocess_exec(
        str(python),
        "-I",  # isolated: bench/ (with its email.py) must not shadow the standard library
        str(REPO / "bench" / "peer_apprise.py"),
        mode,
        str(count),
        f"P{run_id()}",
        *urls,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await child.communicate()
    if child.returncode:
        raise RuntimeError(f"Apprise peer failed ({child.returncode})")
    data = json.loads(out)
    return [float(t) for t in data["timings"]], str(data["version"])


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


async def run(rows: Rows, folder: Path) -> None:
    count = env_int("BENCH_FANOUT_ROUNDS", 3)
    stores = selected_stores()
    version = ""
    with services(folder, stores) as (broker, redis):
        async with serving(Provider(fixed(ANSWER))) as provider, watching(broker.url) as watcher:
            for _ in range(repeats()):
                for n in SIZES:
                    last = f"N={n}, trigger -> last answer"
                    sent = f"N={n}, trigger -> `sent` on MQTT"
                    targets = [provider.url(i) for i in range(n)]
                    async with floor(broker, targets):
                        found = await rounds(broker.url, provider, n, count, None)
                        rows.add(last, "floor", 1000 * median([f[0] for f in found]))
                        rows.add(sent, "floor", 1000 * median([f[0] for f in found]))
                    timings, version = await apprise(provider, "async", n, count)
                    rows.add(last, "peer", 1000 * median(timings))
                    timings, version = await apprise(provider, "sync", n, 1)
                    rows.add(f"N={n}, Apprise sync mode", "peer", 1000 * median(timings))
                    rows.add(f"N={n}, Apprise sync mode", "floor", rows.values[last]["floor"][-1])
                    for store in stores:
                        deployment = deploy(
                            folder / f"{store}-{n}-{run_id()}",
                            broker,
                            redis,
                            store,
                            webhooks(provider, n),
                        )
                        async with daemon(deployment):
                            await rounds(broker.url, provider, n, 1, watcher)  # warm up
                            found = await rounds(broker.url, provider, n, count, watcher)
                        rows.add(last, store, 1000 * median([f[0] for f in found]))
                        rows.add(sent, store, 1000 * median([f[1] for f in found]))
    for name in rows.values:
        peer = "Apprise async" if "last answer" in name else ""
        if "sync" in name:
            peer = "Apprise sync"
        rows.describe(name, unit="ms", peer_name=f"{peer} {version}".strip() if peer else "")
    rows.extra["notes"] = [
        f"{count} rounds per repeat, median taken; each provider answers in 200 ms; "
        f"Apprise {version} (async: async_notify; sync: AppriseAsset(async_mode=False)); "
        "the floor's `sent` is its last answer. Goal: at most 1.1x the floor to the last "
        "answer, 1.2x to `sent`."
    ]


async def measure() -> dict[str, Any]:
    return await collect(run)
