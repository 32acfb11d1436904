"""Several real daemons (subprocesses) on one Redis and one mosquitto, for fault tests:
each with its own folder, client id and HTTP port, all on the same store."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.fakes.webhook import FakeWebhook
from tests.integration.harness import Watcher, webhook, write_deployment

FAST_FAILOVER = {"lease": "3s", "scan_interval": "1s"}


@dataclass
class Node:
    name: str
    config: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def settings(self) -> dict[str, Any]:
        import yaml

        data: dict[str, Any] = yaml.safe_load(self.config.read_text(encoding="utf-8"))
        return data

    @property
    def http(self) -> str:
        return f"http://{self.settings['http']['listen']}"

    def events(self) -> list[dict[str, Any]]:
        lines = self.log.read_text(encoding="utf-8").splitlines() if self.log.exists() else []
        return [json.loads(line) for line in lines if line[:1] == "{"]


@dataclass
class Cluster:
    folder: Path
    mqtt_url: str
    store_url: str
    hooks: list[FakeWebhook]
    delivery: dict[str, Any] = field(default_factory=lambda: dict(FAST_FAILOVER))
    extra: dict[str, Any] = field(default_factory=dict)
    store: dict[str, Any] = field(default_factory=dict)  # more store settings
    channels: dict[str, dict[str, Any]] | None = None  # default: one webhook per hook
    confirmation: str | dict[str, Any] = "none"
    nodes: list[Node] = field(default_factory=list)

    def add(self, name: str, client_id: str | None = None) -> Node:
        folder = self.folder / name
        folder.mkdir()
        config = write_deployment(
            folder,
            mqtt_url=self.mqtt_url,
            store_url=self.store_url,
            channels=self.channels
            or {f"hook_{i}": webhook(h.url) for i, h in enumerate(self.hooks)},
            confirmation=self.confirmation,
            delivery=self.delivery,
            client_id=client_id or f"broadcaster-{name}",
            extra=self.extra,
            store=self.store,
        )
        node = Node(name, config, folder / "daemon.log")
        self.nodes.append(node)
        return node

    def start(self, node: Node, *, host: str | None = None) -> Node:
        """Run the node's daemon; with `host`, as if on another machine (its own host name,
        in a UTS namespace), so that only its lease tells the others it is gone."""
        command = [sys.executable, "-m", "broadcaster", "run", "--config", str(node.config)]
        if host is not None:
            command = ["unshare", "--uts", "sh", "-c", f'hostname {host} && exec "$@"', "--"]
            command += [sys.executable, "-m", "broadcaster", "run", "--config", str(node.config)]
        with node.log.open("ab") as out:
            node.process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        return node

    def kill(self, node: Node) -> None:
        assert node.process is not None
        node.process.send_signal(signal.SIGKILL)
        node.process.wait(10)

    def stop_all(self) -> None:
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.terminate()
                try:
                    node.process.wait(20)
                except subprocess.TimeoutExpired:
                    node.process.kill()
                    node.process.wait()

    def logs(self) -> str:
        return "\n".join(
            f"--- {n.name}\n" + (n.log.read_text() if n.log.exists() else "") for n in self.nodes
        )


async def healthz(node: Node) -> dict[str, bool] | None:
    try:
        async with aiohttp.ClientSession() as s, s.get(f"{node.http}/healthz") as r:
            parts: dict[str, bool] = await r.json()
            return parts
    except (aiohttp.ClientError, OSError, ValueError):
        return None


async def until_healthy(node: Node, want: bool = True, timeout: float = 30.0) -> None:
    """Poll /healthz until every part is (or some part is not) healthy."""

    async def poll() -> None:
        while True:
            parts = await healthz(node)
            if parts is not None and all(parts.values()) == want:
                return
            await asyncio.sleep(0.1)  # polling a daemon's health, as wait_for_port polls a port

    await asyncio.wait_for(poll(), timeout)


def onlines(watcher: Watcher) -> int:
    return sum(1 for t, p, _ in watcher.messages if t == "bc/daemon" and p == b"online")


def requests_per_key(hooks: list[FakeWebhook], *, in_progress: bool = False) -> Counter[str]:
    """Alert requests per idempotency key; without the ones the provider turned away as
    "in progress" (409: the same key still being processed, so they never reached it),
    or only those with `in_progress`."""
    return Counter(
        r.headers["Idempotency-Key"]
        for h in hooks
        for r in h.requests
        if r.json and r.json.get("kind") == "alert" and (r.status == 409) == in_progress
    )


def recorded(watcher: Watcher, key: str) -> bool:
    """The delivery behind an idempotency key `<alert>:<channel>` is delivered in the
    retained state (which is written to the store before it is published)."""
    alert_id, _, channel = key.rpartition(":")
    alert = watcher.alert(alert_id) or {}
    return bool(alert.get("deliveries", {}).get(channel, {}).get("state") == "delivered")
