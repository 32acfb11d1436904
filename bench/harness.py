"""What every measure shares: the broker and Redis, a fake provider that timestamps what
it receives, a deployment folder, the real daemon as a child process, and the statistics.

Everything is found relative to this repository (REPO), so the same bench runs against
whatever source tree it sits in. Timing uses `time.perf_counter()` inside this process;
across processes (the daemon's release time) the wall clock `time.time()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import aiohttp
import aiomqtt
import redis as redis_client
import yaml
from aiohttp import web

from tests.integration.harness import signed_trigger, webhook, write_deployment
from tests.servers import RedisServer, free_port, start_redis, wait_for_port

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
PEER_VENV = REPO / "bench" / ".peer-venv"
STORES = ("sqlite", "redis")
FINAL = ("sent", "partially_failed", "failed")
TOPIC = "bc/trigger"


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise SystemExit(
            f"{name}={value!r} is not a whole number; unset it or give e.g. 3"
        ) from None


def repeats() -> int:
    return max(1, env_int("BENCH_REPEATS", 3))


def selected_stores() -> tuple[str, ...]:
    """BENCH_STORES=sqlite (or redis) runs one store only; default both."""
    wanted = tuple(s for s in os.environ.get("BENCH_STORES", ",".join(STORES)).split(",") if s)
    unknown = set(wanted) - set(STORES)
    if unknown:
        raise SystemExit(f"BENCH_STORES: unknown {sorted(unknown)}; use sqlite, redis or both")
    return wanted


# -- statistics --------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def inversions(order: list[int]) -> int:
    """Pairs out of order (i < j but order[i] > order[j]); 0 means order kept."""
    count = 0
    for i, a in enumerate(order):
        count += sum(1 for b in order[i + 1 :] if b < a)
    return count


@dataclass
class Rows:
    """Per repeat, one figure per (row, column); combined into min and median at the end.

    Columns: floor, peer, sqlite, redis. `meta` holds the row's unit, goal and notes."""

    values: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    meta: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, row: str, column: str, value: float) -> None:
        self.values.setdefault(row, {}).setdefault(column, []).append(value)

    def describe(self, row: str, *, unit: str, better: str = "lower", **more: Any) -> None:
        self.meta.setdefault(row, {}).update(unit=unit, better=better, **more)

    def to_json(self) -> dict[str, Any]:
        rows: list[dict[str, Any]] = []
        for name, columns in self.values.items():
            cells = {
                col: {
                    "min": min(v) if self.meta.get(name, {}).get("better") != "higher" else max(v),
                    "median": statistics.median(v),
                    "values": v,
                }
                for col, v in columns.items()
            }
            rows.append({"name": name, **self.meta.get(name, {}), "cells": cells})
        return {"rows": rows, **self.extra}


# -- machine -----------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = Path("/proc/loadavg").read_text().split()[:3]
    return {"nproc": os.cpu_count(), "cpu": model, "loadavg": " ".join(load)}


# -- processes ---------------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process so far (fields 14 and 15 of /proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def peak_rss_mb(pid: int) -> float:
    return status_kb(pid, "VmHWM") / 1024


def nodelay(client: aiomqtt.Client) -> None:
    """TCP_NODELAY on a connected aiomqtt client's socket (paho does not set it)."""
    sock = client._client.socket()
    if sock is not None:
        cast(socket.socket, sock).setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@dataclass
class Broker:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_broker(folder: Path) -> Broker:
    """mosquitto in memory with `set_tcp_nodelay true`, as the sample configuration has."""
    port = free_port()
    config = folder / f"mosquitto-{port}.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "set_tcp_nodelay true\nmax_queued_messages 100000\nmax_inflight_messages 20\n"
        f"log_dest file {folder / 'mosquitto.log'}\nlog_type error\nlog_type warning\n",
        encoding="utf-8",
    )
    binary = "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else "mosquitto"
    process = subprocess.Popen(
        [binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_for_port(port, process)
    return Broker(process, port)


@contextlib.contextmanager
def services(folder: Path, stores: tuple[str, ...]) -> Iterator[tuple[Broker, RedisServer | None]]:
    broker = start_broker(folder)
    redis = start_redis(folder) if "redis" in stores else None
    try:
        yield broker, redis
    finally:
        broker.stop()
        if redis is not None:
            redis.stop()


# -- fake provider -----------------------------------------------------------------------


@dataclass
class Hit:
    path: str
    alert_id: str
    received: float  # perf_counter when the request arrived
    wall: float  # time.time() then, to compare with the daemon's own clock
    answered: float = 0.0  # perf_counter just before the answer went out


class Provider:
    """One aiohttp server; every path is an endpoint (`/hook/<n>` per channel). Records
    each request's arrival and answer time by alert id, answers like the fake webhook
    (`{"id", "url"}`), after `delay()` seconds, and counts requests in flight."""

    def __init__(self, delay: Callable[[], float] = lambda: 0.0) -> None:
        self.delay = delay
        self.base_url = ""
        self.hits: list[Hit] = []
        self.by_alert: dict[str, list[Hit]] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.keep: set[str] = set()  # paths whose JSON bodies are kept in `kept`
        self.kept: list[dict[str, Any]] = []
        self._changed = asyncio.Event()

    def url(self, n: int) -> str:
        return f"{self.base_url}/hook/{n}"

    def reset(self) -> None:
        self.hits.clear()
        self.by_alert.clear()
        self.max_in_flight = 0

    async def _handle(self, request: web.Request) -> web.Response:
        received = time.perf_counter()
        body = await request.read()
        alert_id = ""
        with contextlib.suppress(ValueError, AttributeError):
            data = json.loads(body)
            # The daemon's webhook names the alert; Apprise's json:// only has a title.
            alert_id = str(data.get("alert_id") or data.get("title") or "")
            if request.path in self.keep:
                self.kept.append(data)
        hit = Hit(request.path, alert_id, received, time.time())
        self.hits.append(hit)
        self.by_alert.setdefault(alert_id, []).append(hit)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self._changed.set()
        try:
            pause = self.delay()
            if pause > 0:
                await asyncio.sleep(pause)  # the provider's own latency
            remote = uuid.uuid4().hex
            hit.answered = time.perf_counter()
            return web.json_response({"id": remote, "url": f"https://hooks.example/{remote}"})
        finally:
            self.in_flight -= 1
            self._changed.set()

    async def wait(self, predicate: Callable[[], bool], timeout: float = 120.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def wait_answered(self, alert_id: str, count: int, timeout: float = 120.0) -> None:
        await self.wait(
            lambda: sum(h.answered > 0 for h in self.by_alert.get(alert_id, [])) >= count, timeout
        )


def fixed(seconds: float) -> Callable[[], float]:
    return lambda: seconds


def uniform(low: float, high: float, seed: int = 11) -> Callable[[], float]:
    rng = random.Random(seed)
    return lambda: rng.uniform(low, high)


@contextlib.asynccontextmanager
async def serving(provider: Provider) -> AsyncIterator[Provider]:
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", provider._handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        host, port = runner.addresses[0][:2]
        provider.base_url = f"http://{host}:{port}"
        yield provider
    finally:
        await runner.cleanup()


# -- MQTT --------------------------------------------------------------------------------


class StateWatcher:
    """Subscribes to bc/alerts/+ and notes when each alert is first seen in a state."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.seen: dict[tuple[str, str], float] = {}  # (alert id, state) -> perf_counter
        self.latest: dict[str, dict[str, Any]] = {}
        self.ready = asyncio.Event()
        self._changed = asyncio.Event()

    async def run(self) -> None:
        host, port = self.url.removeprefix("mqtt://").split(":")
        async with aiomqtt.Client(host, int(port), max_queued_incoming_messages=0) as client:
            nodelay(client)
            await client.subscribe("bc/alerts/+", qos=1)
            self.ready.set()
            async for message in client.messages:
                now = time.perf_counter()
                if not isinstance(message.payload, bytes) or not message.payload:
                    continue
                alert = json.loads(message.payload)
                # The id from the topic (bc/alerts/<id>): a payload may be a partial update.
                alert_id = str(message.topic).rsplit("/", 1)[-1]
                if not isinstance(alert, dict) or "state" not in alert:
                    continue
                self.latest[alert_id] = alert
                self.seen.setdefault((alert_id, str(alert["state"])), now)
                self._changed.set()

    async def wait_state(self, alert_id: str, state: str, timeout: float = 120.0) -> float:
        async with asyncio.timeout(timeout):
            while (alert_id, state) not in self.seen:
                self._changed.clear()
                await self._changed.wait()
        return self.seen[(alert_id, state)]

    async def wait(self, predicate: Callable[[], bool], timeout: float = 120.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def wait_final(self, alert_id: str, timeout: float = 120.0) -> float:
        """When the alert first reached a final state (sent, partially_failed, failed)."""
        await self.wait(lambda: any((alert_id, s) in self.seen for s in FINAL), timeout)
        return min(self.seen[(alert_id, s)] for s in FINAL if (alert_id, s) in self.seen)


@contextlib.asynccontextmanager
async def watching(url: str) -> AsyncIterator[StateWatcher]:
    watcher = StateWatcher(url)
    task = asyncio.create_task(watcher.run())
    await asyncio.wait_for(watcher.ready.wait(), 15)
    try:
        yield watcher
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@contextlib.asynccontextmanager
async def publisher(url: str) -> AsyncIterator[aiomqtt.Client]:
    host, port = url.removeprefix("mqtt://").split(":")
    async with aiomqtt.Client(host, int(port)) as client:
        client.pending_calls_threshold = 100_000  # a burst is the point here
        nodelay(client)
        yield client


def trigger_bytes(alert_id: str) -> bytes:
    return json.dumps(signed_trigger(alert_id), ensure_ascii=False).encode("utf-8")


def run_id() -> str:
    return uuid.uuid4().hex[:6].upper()


# -- the daemon --------------------------------------------------------------------------


@dataclass
class Deployment:
    folder: Path
    config: Path
    store: str
    http: str  # host:port


def deploy(
    folder: Path,
    broker: Broker,
    redis: RedisServer | None,
    store: str,
    channels: dict[str, dict[str, Any]],
    **more: Any,
) -> Deployment:
    """A deployment folder (the repository's playbooks and templates, `channels`) on the
    given store (Redis emptied first, SQLite in the folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    if store == "redis":
        assert redis is not None
        store_url = redis.url
        with redis_client.Redis.from_url(store_url) as connection:
            connection.flushall()  # every deployment starts on an empty store
    else:
        store_url = "sqlite:///var/broadcaster.db"
    config = write_deployment(
        folder, mqtt_url=broker.url, channels=channels, store_url=store_url, **more
    )
    settings = yaml.safe_load(config.read_text(encoding="utf-8"))
    return Deployment(folder, config, store, str(settings["http"]["listen"]))


def webhooks(provider: Provider, n: int) -> dict[str, dict[str, Any]]:
    return {f"hook_{i:02}": webhook(provider.url(i)) for i in range(n)}


class DaemonProcess:
    """`python -m broadcaster run` of this repository, logging JSON to a file."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.log = deployment.folder / "daemon.log"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "broadcaster",
                    "run",
                    "--config",
                    str(deployment.config),
                    "--json-logs",
                ],
                cwd=deployment.folder,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    async def ready(self, timeout: float = 60.0) -> None:
        url = f"http://{self.deployment.http}/healthz"
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"daemon exited; see {self.log}:\n{self.tail()}")
                with contextlib.suppress(aiohttp.ClientError, OSError, ValueError):
                    async with http.get(url) as r:
                        body = await r.json(content_type=None)
                        if isinstance(body, dict) and body.get("mqtt") and body.get("store"):
                            return
                await asyncio.sleep(0.1)  # polling a starting process, nothing to wait on
        raise TimeoutError(f"daemon not ready after {timeout}s:\n{self.tail()}")

    def tail(self, lines: int = 20) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def peak_rss_mb(self) -> float:
        return peak_rss_mb(self.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.asynccontextmanager
async def daemon(deployment: Deployment) -> AsyncIterator[DaemonProcess]:
    process = DaemonProcess(deployment)
    try:
        await process.ready()
        yield process
    finally:
        process.stop()


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="bench-") as folder:
        yield Path(folder)


# -- the floor subscriber ----------------------------------------------------------------


class FloorProcess:
    """bench/floor_subscriber.py in a child process: the least a daemon could do."""

    def __init__(self, broker: Broker, targets: list[str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.floor_subscriber", broker.url, *targets],
            cwd=REPO,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )

    async def ready(self) -> None:
        assert self.process.stdout is not None
        line = await asyncio.to_thread(self.process.stdout.readline)
        if line.strip() != b"ready":
            raise RuntimeError(f"floor subscriber failed to start: {line!r}")

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@contextlib.asynccontextmanager
async def floor(broker: Broker, targets: list[str]) -> AsyncIterator[FloorProcess]:
    process = FloorProcess(broker, targets)
    try:
        await process.ready()
        yield process
    finally:
        process.stop()


async def sequential(
    broker_url: str,
    provider: Provider,
    channels: int,
    count: int,
    prefix: str,
    watcher: StateWatcher | None = None,
) -> tuple[list[float], list[float]]:
    """`count` triggers one after another, each waited out (all `channels` answered and,
    with a watcher, the alert `sent` on MQTT); per trigger the seconds from publishing to
    the first request at the provider and to the last answer."""
    first: list[float] = []
    last: list[float] = []
    payloads = [(f"{prefix}-{n}", trigger_bytes(f"{prefix}-{n}")) for n in range(count)]
    async with publisher(broker_url) as client:
        for alert_id, payload in payloads:
            start = time.perf_counter()
            await client.publish(TOPIC, payload, qos=1)
            await provider.wait_answered(alert_id, channels)
            if watcher is not None:
                await watcher.wait_state(alert_id, "sent")
            hits = provider.by_alert[alert_id]
            first.append(min(h.received for h in hits) - start)
            last.append(max(h.answered for h in hits) - start)
    return first, last


async def collect(run: Callable[[Rows, Path], Awaitable[None]]) -> dict[str, Any]:
    """A measure's result: `run(rows, folder)` in a scratch folder, rows as JSON."""
    rows = Rows()
    with scratch() as folder:
        await run(rows, folder)
    return rows.to_json()


async def one_alert(
    folder: Path,
    broker: Broker,
    redis: RedisServer | None,
    watcher: StateWatcher,
    store: str,
    channels: dict[str, dict[str, Any]],
    timeout: float,
    prepare: Callable[[Deployment], Awaitable[None]] | None = None,
) -> tuple[float, float]:
    """A fresh daemon with `channels`, one trigger: seconds from publishing to the alert's
    final state on MQTT, and the daemon's peak RSS in MB. `prepare` runs on the deployment
    before the daemon starts (the Web Push subscriptions are put in its store)."""
    deployment = deploy(
        folder / f"{store}-{run_id()}", broker, redis, store, channels, delivery={"deadline": "2h"}
    )
    if prepare is not None:
        await prepare(deployment)
    async with daemon(deployment) as process, publisher(broker.url) as client:
        alert_id = f"A-{run_id()}"
        payload = trigger_bytes(alert_id)
        start = time.perf_counter()
        await client.publish(TOPIC, payload, qos=1)
        end = await watcher.wait_final(alert_id, timeout=timeout)
        return end - start, process.peak_rss_mb()
