"""No secret in any log line: a daemon run as in production (a subprocess, JSON logs)
through a whole incident: a signed trigger, the duty officer's confirm link with a PIN,
a console account made on the command line and signed in, a wrong API token, a
retraction through the API. Then its log is searched for every secret of the deployment
and of the run: the trigger secret, the API token, the webhook signing secret, the
console's session secret, the PIN, the confirm token, the password, the session cookie,
the wrong token. Each line is JSON, and the delivery lines name alert and channel."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from typing import Any

import aiohttp

from tests.fakes.webhook import FakeWebhook
from tests.integration.cluster import Cluster, until_healthy
from tests.integration.harness import API_TOKEN, SECRET, Watcher, publish, signed_trigger, webhook
from tests.integration.incidents import Officer

PIN = "80317"
HOOK_SECRET = "hook-signing-secret-5f1c2a"
SESSION_SECRET = "console-session-secret-9b7e4d0c1a2f3e4d5c6b"
PASSWORD = "Leitstelle-Passwort-2026!"
WRONG_TOKEN = "not-the-api-token-but-a-guess-7c3"


async def test_a_whole_incident_leaves_no_secret_in_the_log(tmp_path, mosquitto, watcher: Watcher):
    async with FakeWebhook.start(secret=HOOK_SECRET) as public, FakeWebhook.start() as phone:
        cluster = Cluster(
            tmp_path,
            mosquitto.url,
            "sqlite:///var/broadcaster.db",
            [public, phone],
            channels={
                "website": webhook(public.url, secret=HOOK_SECRET),
                "officer_phone": webhook(phone.url, audience="internal"),
            },
            confirmation={"mode": "required", "timeout": "10m", "on_timeout": "abort"},
            extra={
                "duty_officers": [{"name": "A. Schmidt", "notify": ["officer_phone"], "pin": PIN}],
                "confirm": {"undo_window": "0s"},
                "console": {"session_secret": SESSION_SECRET},
            },
        )
        node = cluster.start(cluster.add("a"))
        secrets: dict[str, str] = {
            "trigger secret": SECRET,
            "API token": API_TOKEN,
            "webhook secret": HOOK_SECRET,
            "session secret": SESSION_SECRET,
            "PIN": PIN,
            "password": PASSWORD,
            "wrong token": WRONG_TOKEN,
        }
        try:
            await until_healthy(node)
            made = await asyncio.to_thread(
                subprocess.run,
                [
                    *(sys.executable, "-m", "broadcaster", "user", "add", "leitstelle"),
                    *("--role", "officer", "--password-stdin", "--config", str(node.config)),
                ],
                input=PASSWORD + "\n",
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            assert made.returncode == 0, made.stderr
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
                await signed_in(http, node.http, secrets)
                await publish(
                    mosquitto.url, "bc/trigger", signed_trigger("FW-LOG-1", incident="E-LOG")
                )
                officer = Officer(phone, http)
                url = await officer.link("FW-LOG-1")
                secrets["confirm token"] = url.rsplit("/confirm/", 1)[1].split(".", 1)[1]
                assert len(secrets["confirm token"]) >= 16
                await officer.open(url)
                await officer.act(url, action="release", pin=PIN)
                await watcher.alert_in("FW-LOG-1", "sent")
                wrong = {"Authorization": f"Bearer {WRONG_TOKEN}"}
                async with http.get(f"{node.http}/api/alerts", headers=wrong) as r:
                    assert r.status == 401
                right = {"Authorization": f"Bearer {API_TOKEN}"}
                retract = f"{node.http}/api/alerts/FW-LOG-1/retract"
                async with http.post(retract, json={"reason": "Fehlalarm"}, headers=right) as r:
                    assert r.status == 202
                await watcher.alert_in("FW-LOG-1:retraction", "sent")
        finally:
            cluster.stop_all()
        log = node.log.read_text(encoding="utf-8")
    # The warning, its correction and the deletion of the warning, each signed.
    assert len(public.posts) == 3
    found = {name: value for name, value in secrets.items() if value in log}
    assert found == {}, f"in the log: {sorted(found)}"
    events = [json.loads(line) for line in log.splitlines() if line.strip()]
    # Every line is JSON (json.loads raised otherwise), and the run is in it.
    assert {"trigger_accepted", "console_login", "alert_retracted"} <= {e["event"] for e in events}
    delivered = [e for e in events if e.get("event") == "delivery_delivered"]
    assert {e["channel"] for e in delivered} == {"website"}
    assert {e["alert_id"] for e in delivered} == {"FW-LOG-1", "FW-LOG-1:retraction"}


async def signed_in(http: aiohttp.ClientSession, root: str, secrets: dict[str, Any]) -> None:
    async with http.get(f"{root}/console/login") as page:
        token = re.search(r'name="csrf" value="([^"]+)"', await page.text())
    assert token is not None
    form = {"csrf": token.group(1), "name": "leitstelle", "password": PASSWORD, "next": ""}
    async with http.post(f"{root}/console/login", data=form, allow_redirects=False) as answer:
        assert answer.status == 303
    cookies = {c.key: c.value for c in http.cookie_jar}
    assert cookies
    for key, value in cookies.items():
        secrets[f"cookie {key}"] = value
