"""Running the real daemon against real mosquitto/redis and fake providers, and watching
what it publishes. Waiting is on MQTT messages and fake-provider events, never on sleeps."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import yaml

from broadcaster.accounts import add_account
from broadcaster.daemon import Daemon
from broadcaster.models import Role
from broadcaster.reload import load_usable
from broadcaster.triggering import build_trigger
from tests.servers import REPO, free_port

SECRET = "trigger-secret-für-tests"
API_TOKEN = "api-token-for-tests"
FIRE = {"location": "Ackerstraße 12", "district": "Flingern-Nord", "smoke_direction": "Nordost"}


def write_deployment(
    folder: Path,
    *,
    mqtt_url: str,
    channels: dict[str, dict[str, Any]],
    store_url: str = "sqlite:///var/broadcaster.db",
    confirmation: str | dict[str, Any] = "none",
    delivery: dict[str, Any] | None = None,
    client_id: str | None = None,
    extra: dict[str, Any] | None = None,
    store: dict[str, Any] | None = None,
) -> Path:
    """A deployment with the repository's approved playbooks and templates, the given
    channels, fast retries, and major_fire released without confirmation by default."""
    for part in ("playbooks", "templates"):
        shutil.copytree(REPO / part, folder / part)
    for playbook_id in ("major_fire", "bomb_defusal", "severe_storm"):
        path = folder / "playbooks" / f"{playbook_id}.yaml"
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(confirmation, str):
            data["confirmation"]["mode"] = confirmation
        else:
            data["confirmation"] = confirmation
        path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    (folder / "channels").mkdir()
    for cid, channel in channels.items():
        (folder / "channels" / f"{cid}.yaml").write_text(yaml.safe_dump(channel), encoding="utf-8")
    listen = f"127.0.0.1:{free_port()}"
    settings: dict[str, Any] = {
        "mqtt": {
            "url": mqtt_url,
            "topic_prefix": "bc",
            "client_id": client_id or f"broadcaster-test-{uuid.uuid4().hex[:8]}",
        },
        "store": {"url": store_url, **(store or {})},
        "http": {"listen": listen, "public_url": f"http://{listen}", "api_token": API_TOKEN},
        "security": {"trigger_secret": SECRET, "max_trigger_age": "15m"},
        "delivery": {
            "first_retry": "20ms",
            "max_retry": "100ms",
            "deadline": "30s",
            **(delivery or {}),
        },
    }
    settings.update(extra or {})
    config = folder / "broadcaster.yaml"
    config.write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    return config


def webhook(url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "webhook", "url": url, "drill": "send", **extra}


def signed_trigger(alert_id: str | None = None, **changes: Any) -> dict[str, Any]:
    params = changes.pop("params", FIRE)
    return build_trigger(
        changes.pop("scenario", "major_fire"),
        changes.pop("mode", "live"),
        params,
        alert_id=alert_id,
        secret=changes.pop("secret", SECRET),
        **changes,
    )


@asynccontextmanager
async def running_daemon(config: Path, *, dry_run: bool = False) -> AsyncIterator[Daemon]:
    daemon = Daemon(load_usable(config).deployment, dry_run=dry_run)
    await daemon.start()
    try:
        await asyncio.wait_for(daemon.mqtt.connected.wait(), 15)
        yield daemon
    finally:
        await daemon.stop()


class Watcher:
    """Everything published under the prefix, kept in order, with waiting on conditions."""

    def __init__(self, url: str, prefix: str = "bc") -> None:
        self.url = url
        self.prefix = prefix
        self.messages: list[tuple[str, bytes, bool]] = []
        self.changed = asyncio.Condition()
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        host, port = self.url.removeprefix("mqtt://").split(":")
        async with aiomqtt.Client(host, int(port)) as client:
            await client.subscribe(f"{self.prefix}/#", qos=1)
            self.ready.set()
            async for message in client.messages:
                payload = message.payload if isinstance(message.payload, bytes) else b""
                async with self.changed:
                    self.messages.append((str(message.topic), payload, message.retain))
                    self.changed.notify_all()

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
        async with self.changed:
            return await asyncio.wait_for(self.changed.wait_for(predicate), timeout)

    def on(self, topic: str) -> list[Any]:
        return [json.loads(p) for t, p, _ in self.messages if t == f"{self.prefix}/{topic}" and p]

    def alert(self, alert_id: str) -> dict[str, Any] | None:
        states = self.on(f"alerts/{alert_id}")
        return states[-1] if states else None

    def errors(self) -> list[dict[str, Any]]:
        return self.on("errors")

    async def alert_in(self, alert_id: str, *states: str, timeout: float = 20.0) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            alert = self.alert(alert_id)
            return alert if alert and alert["state"] in states else None

        result: dict[str, Any] = await self.wait_for(reached, timeout)
        return result

    async def error_for(
        self, trigger_id: str | None, code: str, timeout: float = 20.0
    ) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next(
                (e for e in self.errors() if e["error"] == code and e["trigger_id"] == trigger_id),
                None,
            )

        result: dict[str, Any] = await self.wait_for(found, timeout)
        return result


@asynccontextmanager
async def watching(url: str, prefix: str = "bc") -> AsyncIterator[Watcher]:
    watcher = Watcher(url, prefix)
    watcher.task = asyncio.create_task(watcher.run())
    await asyncio.wait_for(watcher.ready.wait(), 10)
    try:
        yield watcher
    finally:
        watcher.task.cancel()
        await asyncio.gather(watcher.task, return_exceptions=True)


async def publish(url: str, topic: str, payload: dict[str, Any] | bytes | str) -> None:
    host, port = url.removeprefix("mqtt://").split(":")
    body = json.dumps(payload, ensure_ascii=False) if isinstance(payload, dict) else payload
    async with aiomqtt.Client(host, int(port)) as client:
        await client.publish(topic, body, qos=1)


async def publish_many(url: str, topic: str, payloads: list[dict[str, Any]]) -> None:
    """Publish a burst over one connection, all at once (each acknowledged, QoS 1)."""
    host, port = url.removeprefix("mqtt://").split(":")
    async with aiomqtt.Client(host, int(port)) as client:
        client.pending_calls_threshold = len(payloads) + 1  # a burst is the point here
        await asyncio.gather(
            *(client.publish(topic, json.dumps(p, ensure_ascii=False), qos=1) for p in payloads)
        )


CONSOLE_PASSWORD = "correct horse battery"


async def console_sign_in(
    http: aiohttp.ClientSession,
    root: str,
    daemon: Daemon,
    name: str = "leitstelle",
    role: Role = "viewer",
    officer: str | None = None,
) -> None:
    """As the control room (or `name` with `role`, linked to duty officer `officer`): a
    new account, signed in through the sign-in form."""
    officers = (officer,) if officer else ()
    await add_account(
        daemon.store, name, role, CONSOLE_PASSWORD, officer=officer, officers=officers, by="test"
    )
    async with http.get(f"{root}/console/login") as page:
        token = re.search(r'name="csrf" value="([^"]+)"', await page.text())
    assert token is not None
    form = {"csrf": token.group(1), "name": name, "password": CONSOLE_PASSWORD, "next": ""}
    async with http.post(f"{root}/console/login", data=form, allow_redirects=False) as answer:
        assert answer.status == 303


async def console_page(http: aiohttp.ClientSession, url: str) -> tuple[str, str]:
    """A console page (200) and the CSRF token of its forms."""
    async with http.get(url) as answer:
        assert answer.status == 200, await answer.text()
        html = await answer.text()
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return html, found.group(1)


async def console_post(
    http: aiohttp.ClientSession, url: str, form: dict[str, Any]
) -> tuple[int, str, str]:
    """A console form's POST: its status, its page and where it redirects to."""
    async with http.post(url, data=form, allow_redirects=False) as answer:
        return answer.status, await answer.text(), answer.headers.get("Location", "")


OIDC_SECRET = "oidc-client-secret-for-tests"


def oidc_deployment(tmp_path: Path, mosquitto: Any, hooks: list[Any], idp: Any) -> tuple[Path, str]:
    """A deployment whose console signs in through `idp` (tests/fakes/oidc.py), whose
    redirect URI is registered there; with its public URL."""
    config = write_deployment(
        tmp_path,
        mqtt_url=mosquitto.url,
        channels={"web": webhook(hooks[0].url)},
        extra={
            "console": {
                "oidc": {
                    "issuer": idp.issuer,
                    "client_id": "broadcaster",
                    "client_secret": OIDC_SECRET,
                }
            }
        },
    )
    root = yaml.safe_load(config.read_text(encoding="utf-8"))["http"]["public_url"]
    idp.redirect_uri = f"{root}/console/login/oidc/callback"
    return config, root
