"""`broadcaster status --watch` on a real daemon: the view is redrawn as the daemon's
state messages arrive (an alert sending while its provider holds the request, then sent,
a failing channel counted with its error), and the command itself draws the view and
ends on Ctrl-C."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
from collections.abc import AsyncGenerator, AsyncIterator

from rich.console import Console, Group

from broadcaster.reload import load_usable
from broadcaster.store import open_store
from broadcaster.watch import frames
from tests.integration.harness import (
    publish,
    running_daemon,
    signed_trigger,
    webhook,
    write_deployment,
)


def text_of(view: Group) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(view)
    return console.file.getvalue()  # type: ignore[attr-defined,no-any-return]


async def until(views: AsyncIterator[Group], *wanted: str) -> str:
    async with asyncio.timeout(20):  # a safety net, not synchronisation
        async for view in views:
            shown = text_of(view)
            if all(w in shown for w in wanted):
                return shown
    raise AssertionError("the view ended")


async def test_the_view_follows_the_state_messages(tmp_path, mosquitto, hooks):
    held, failing, _ = hooks
    config = write_deployment(
        tmp_path,
        mqtt_url=mosquitto.url,
        channels={"website": webhook(held.url), "social": webhook(failing.url)},
        delivery={"max_attempts": 1},
    )
    deployment = load_usable(config).deployment
    async with running_daemon(config):
        store = open_store(deployment.settings.store.url, deployment.base_dir)
        await store.open()
        views: AsyncGenerator[Group] = frames(
            store, deployment, 20, every=60.0
        )  # redrawn by the messages alone
        try:
            first = await until(views, "Channels")
            assert "no alerts yet" in first
            held.hold()
            failing.fail_permanently(503, "Service Unavailable")
            await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-W-1", incident="E-W"))
            sending = await until(views, "FW-W-1", "sending")
            assert "LIVE" in sending
            held.release()
            done = await until(views, "FW-W-1", "partially_failed")
            social = next(line for line in done.splitlines() if "│ social" in line)
            assert "│ 1 " in social  # one failure in the last hour
            assert "Service Unavailable" in social
            website = next(line for line in done.splitlines() if "│ website" in line)
            assert "none yet" not in website  # its last success
        finally:
            await views.aclose()
            await store.close()


async def test_the_command_draws_the_view_and_ends_on_ctrl_c(tmp_path, mosquitto, hooks):
    config = write_deployment(
        tmp_path, mqtt_url=mosquitto.url, channels={"website": webhook(hooks[0].url)}
    )
    async with running_daemon(config):
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "broadcaster", "status", "--watch", "--config", str(config)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "COLUMNS": "160"},
        )
        assert process.stdout is not None
        seen = b""
        async with asyncio.timeout(30):  # a safety net, not synchronisation
            while b"website" not in seen:
                chunk = await process.stdout.read(4096)
                assert chunk, (seen, await process.stderr.read() if process.stderr else b"")
                seen += chunk
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(20):
            code = await process.wait()
    assert b"Channels" in seen
    assert code == 0
