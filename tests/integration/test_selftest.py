"""The weekly self-test on a real daemon: due at the first start, it sends a drill to the
channels set up for drills (released by itself, though the playbook asks the duty
officer), and a test account that does not answer is reported: the metrics, a notice to
the duty officers, the audit entry; the public channel gets nothing. `broadcaster
selftest` runs it now on the running daemon and exits 0 when every channel answered."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import aiohttp

from tests.fakes.webhook import FakeWebhook
from tests.integration.harness import FIRE, running_daemon, webhook, write_deployment


def deployment(tmp_path, mosquitto, test_a, test_b, public, officer):
    return write_deployment(
        tmp_path,
        mqtt_url=mosquitto.url,
        channels={
            "test_a": webhook(test_a.url),  # drill: send
            "test_b": webhook(test_b.url),
            "public": webhook(public.url, drill="dry_run"),
            "officer": webhook(officer.url, audience="internal"),
        },
        confirmation={"mode": "required", "timeout": "10m", "on_timeout": "abort"},
        extra={
            "duty_officers": [{"name": "A. Schmidt", "notify": ["officer"]}],
            "selftest": {"every": "7d", "playbook": "major_fire", "params": FIRE},
            "confirm": {"undo_window": "0s"},
        },
    )


def kinds(fake: FakeWebhook) -> list[tuple[str, str | None]]:
    return [(r.json["kind"], r.json.get("error")) for r in fake.requests if r.json]


async def test_the_self_test_reports_a_test_account_that_does_not_answer(
    tmp_path, mosquitto, hooks
):
    test_a, test_b, public = hooks
    async with FakeWebhook.start() as officer:
        config = deployment(tmp_path, mosquitto, test_a, test_b, public, officer)
        test_b.fail_permanently(401, "token expired")
        async with running_daemon(config) as daemon:
            # The officer's ÜBUNG request, then the notice of what did not answer.
            await officer.wait_for_requests(2)
            base = f"http://{daemon.settings.http.listen}"
            async with aiohttp.ClientSession() as http, http.get(f"{base}/metrics") as r:
                metrics = await r.text()
            runs = [e for e in await daemon.store.audit_tail(50) if e.event == "selftest"]
    assert kinds(officer) == [("confirmation_request", None), ("refusal", "selftest_failed")]
    notice = officer.requests[1].json
    assert notice["mode"] == "drill"
    assert "test_b" in notice["text"]
    assert "token expired" in notice["text"]
    assert len(test_a.posts) == 1
    assert test_a.posts[0].json["text"].startswith("ÜBUNG")
    assert public.requests == []  # not set up for drills: never reached
    assert "broadcaster_selftest_ok 0.0" in metrics
    assert "broadcaster_selftest_failed_channels 1.0" in metrics
    [run] = runs
    assert run.detail["ok"] is False
    assert run.detail["answered"] == ["test_a"]
    assert list(run.detail["failed"]) == ["test_b"]
    assert "token expired" in run.detail["failed"]["test_b"]


async def test_the_command_runs_it_now_and_says_every_channel_answered(tmp_path, mosquitto, hooks):
    test_a, test_b, public = hooks
    async with FakeWebhook.start() as officer:
        config = deployment(tmp_path, mosquitto, test_a, test_b, public, officer)
        async with running_daemon(config) as daemon:
            await officer.wait_for_requests(1)  # the scheduled run's ÜBUNG request
            done = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "broadcaster", "selftest", "--config", str(config)),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={**os.environ, "COLUMNS": "200"},
            )
            out, err = await done.communicate()
            runs = [e for e in await daemon.store.audit_tail(50) if e.event == "selftest"]
    assert done.returncode == 0, err.decode()
    text = out.decode()
    assert "test_a: answered" in text
    assert "test_b: answered" in text
    assert "every channel set up for drills answered" in text
    assert [r.detail["ok"] for r in runs] == [True, True]  # the command's, the schedule's
    assert [k for k in kinds(officer) if k[0] == "refusal"] == []  # nothing to report
    assert public.requests == []
    assert len(test_a.posts) == 2
