"""No task of the daemon dies silently.

A daemon is a handful of long-running loops (the MQTT session, the intake, the takeover
scan, heartbeats) and many short tasks (one per alert being sent, one per confirmation
timer). The supervisor runs both kinds: a loop that ends with an error is logged and
started again after a backoff; a short task's error is logged with its name instead of
"Task exception was never retrieved". The store giving up (`StoreUnavailable`) is not
retried here: the daemon exits non-zero so that its own supervisor restarts it cleanly.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import structlog

from broadcaster.store.outage import StoreUnavailable

log = structlog.get_logger(__name__)

CLOSE_TRIES = 20
CLOSE_WAIT = 0.5  # seconds for cancelled tasks to end before they are cancelled again
FIRST_RESTART = 0.5  # seconds before a crashed loop starts again, doubling
MAX_RESTART = 30.0


def process_id() -> str:
    """Who claims work in the store: unique per process (host, pid and a random part),
    never the MQTT client id, which two processes may share by mistake."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def same_host_and_dead(owner: str) -> bool:
    """True when `owner` (a process_id) was a process on this host that has ended."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, someone else's
    return False


@dataclass
class LoopState:
    running: bool = False
    restarts: int = 0
    last_error: str | None = None
    started_at: float = field(default_factory=time.monotonic)


class Supervisor:
    def __init__(self, on_fatal: Callable[[str], None]) -> None:
        self.on_fatal = on_fatal
        self.loops: dict[str, LoopState] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.closing = False

    def loop(self, name: str, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Keep `run()` running: started again after an error, with a growing backoff."""
        state = self.loops.setdefault(name, LoopState())
        self._track(asyncio.create_task(self._keep(name, run, state), name=name))

    def spawn(self, name: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """A short task whose error is logged (and a store that gave up is fatal)."""
        task = asyncio.create_task(coro, name=name)
        self._track(task)
        task.add_done_callback(self._report)
        return task

    def healthy(self, name: str) -> bool:
        state = self.loops.get(name)
        return state is not None and state.running

    async def close(self) -> None:
        """Cancel everything and wait for it. A cancellation can be swallowed (Python
        3.11's wait_for, used inside aiomqtt, loses one that meets a result), so a task
        still running a moment later is cancelled again."""
        self.closing = True
        pending = set(self.tasks)
        for _ in range(CLOSE_TRIES):
            if not pending:
                return
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=CLOSE_WAIT)
        for task in pending:
            log.error("task_would_not_stop", task=task.get_name())

    def _track(self, task: asyncio.Task[Any]) -> None:
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _keep(
        self, name: str, run: Callable[[], Coroutine[Any, Any, None]], state: LoopState
    ) -> None:
        wait = FIRST_RESTART
        while not self.closing:
            state.running = True
            state.started_at = time.monotonic()
            try:
                await run()
                log.warning("loop_ended", loop=name)  # a loop should run until cancelled
            except asyncio.CancelledError:
                state.running = False
                raise
            except StoreUnavailable as exc:
                state.running = False
                state.last_error = str(exc)
                self.on_fatal(str(exc))
                return
            except Exception as exc:
                state.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("loop_crashed", loop=name, restart_in=wait)
            state.running = False
            state.restarts += 1
            if time.monotonic() - state.started_at > 60:
                wait = FIRST_RESTART  # it ran a good while: a fresh failure
            await asyncio.sleep(wait)  # backoff before the restart
            wait = min(wait * 2, MAX_RESTART)

    def _report(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        if isinstance(exc, StoreUnavailable):
            self.on_fatal(str(exc))
            return
        log.error(
            "task_failed",
            task=task.get_name(),
            error=f"{type(exc).__name__}: {exc}",
            exc_info=exc,
        )
